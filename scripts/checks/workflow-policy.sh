#!/usr/bin/env bash
# The workflows' rules for real-account releases (scripts/checks/lib/workflow_policy.py): SHA
# pins where id-token is granted, credentials that outlive the job, one concurrency group per
# environment for releases and applies, no second copy of the API token, no shared state bucket.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/venv.sh"
ensure_pip_tool python "PyYAML==6.0.2"
cd "$ROOT"
"$VENV/bin/python" scripts/checks/lib/workflow_policy.py
echo "workflow-policy: ok ($(ls .github/workflows/*.yml | wc -l) workflows)"
