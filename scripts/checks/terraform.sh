#!/usr/bin/env bash
# Terraform formatting (no provider can be downloaded here, so fmt is the Terraform-native check;
# checkov.sh and the consistency test cover the rest).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
command -v terraform >/dev/null || { echo "terraform not found: install Terraform >= 1.11" >&2; exit 1; }
if ! terraform fmt -check -recursive -diff "$ROOT/terraform" 2> >(grep -v -e 'CLI configuration' -e '^[│╷╵]' -e '^$' >&2); then
  echo "terraform fmt: files above are not formatted; run: terraform fmt -recursive terraform" >&2
  exit 1
fi
echo "terraform fmt: ok ($(find "$ROOT/terraform" -name '*.tf' -not -path '*/.terraform/*' | wc -l) files)"
