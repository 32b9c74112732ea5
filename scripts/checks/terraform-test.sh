#!/usr/bin/env bash
# `terraform test` of every module with a tests/ folder (mock AWS provider: no account, no
# network), on the same generated copy terraform-validate.sh validates (the local mirror's
# hashicorp/aws 5.100.0, the arguments of terraform/compat/newer-provider-attributes.json removed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/terraform.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tf_offline_config "$work"
tf_compat_copy "$work/tf" >/dev/null

mapfile -t modules < <(cd "$work/tf" && find . -path '*/tests/*.tftest.hcl' -not -path '*/.terraform/*' | sed 's|/tests/[^/]*$||' | sort -u)
[[ ${#modules[@]} -gt 0 ]] || { echo "terraform-test: no module has tests/*.tftest.hcl" >&2; exit 1; }
for m in "${modules[@]}"; do
  dir="$work/tf/${m#./}"
  terraform -chdir="$dir" init -backend=false -input=false -no-color >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
  if ! terraform -chdir="$dir" test -no-color >"$work/test.log" 2>&1; then
    cat "$work/test.log" >&2
    echo "terraform-test: ${m#./} FAILED" >&2
    exit 1
  fi
  grep -E '^(Success|tests/)|run "' "$work/test.log" || true
  echo "terraform-test: ${m#./}: $(tail -n1 "$work/test.log")"
done
