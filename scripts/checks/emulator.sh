#!/usr/bin/env bash
# The ECS emulator's own tests: tests/moto/test_*.py drive moto with the lifecycle plugin
# (tests/moto/ecs_lifecycle.py and its lifecycle_*.py modules) through boto3, one test per AWS
# behaviour and per knob (docs/moto-plugin.md). Installs moto and boto3 (the versions scripts/env
# pins) and pytest into a venv of their own: the shared checks venv holds checkov, which pins an
# older botocore whose ECS model refuses the 2025 deployment fields (strategy, lifecycleHooks). The tests start their own moto server on a free
# loopback port; set MOTO_ENDPOINT=http://127.0.0.1:PORT to use a running one instead.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CHECKS_VENV=${EMULATOR_VENV:-$ROOT/.local/emulator-venv}
source "$ROOT/scripts/checks/lib/venv.sh"
moto_version=$(sed -n 's/^MOTO_VERSION=//p' "$ROOT/scripts/env")
boto_version=$(sed -n 's/^BOTO_VERSION=//p' "$ROOT/scripts/env")
[[ -n $moto_version && -n $boto_version ]] \
  || { echo "emulator: MOTO_VERSION or BOTO_VERSION not found in scripts/env" >&2; exit 1; }
ensure_pip_tool moto_server "moto[server]==$moto_version" "boto3==$boto_version" "botocore==$boto_version"
ensure_pip_tool pytest "pytest==9.2.0"
cd "$ROOT/tests/moto"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! EMULATOR_TEST_LOG=$log "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" . >"$log.out" 2>&1; then
  cat "$log.out" >&2
  echo "--- moto server log (last 40 lines)" >&2
  tail -n 40 "$log" >&2
  rm -f "$log.out"
  echo "emulator: tests failed" >&2
  exit 1
fi
summary=$(tail -n 1 "$log.out")
rm -f "$log.out"
echo "emulator: ok ($summary, moto $moto_version)"
