#!/usr/bin/env bash
# `terraform test` of every module and root with a tests/ folder, on the same generated copy
# terraform-validate.sh validates (the local mirror's hashicorp/aws 5.100.0, the arguments of
# terraform/compat/newer-provider-attributes.json removed). No account, no network: modules use
# mock providers; the environments' plan tests use the real provider with overridden data
# sources and a local stand-in for the one Secrets Manager call planning makes.
# TF_CHECK_SRC=<dir> tests another copy of terraform/ (mutation proofs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/terraform.sh"
work=$(mktemp -d)
stub=
trap '[[ -n $stub ]] && kill "$stub" 2>/dev/null; rm -rf "$work"' EXIT
tf_offline_config "$work"
python3 "$ROOT/scripts/checks/lib/secretsmanager_stub.py" "$work/stub.port" &
stub=$!
for _ in $(seq 1 50); do [[ -s $work/stub.port ]] && break; sleep 0.1; done
[[ -s $work/stub.port ]] || { echo "terraform-test: the Secrets Manager stand-in did not start" >&2; exit 1; }
endpoint="http://127.0.0.1:$(cat "$work/stub.port")"
tf_compat_copy "$work/tf" >/dev/null

mapfile -t modules < <(cd "$work/tf" && find . -path '*/tests/*.tftest.hcl' -not -path '*/.terraform/*' | sed 's|/tests/[^/]*$||' | sort -u)
[[ ${#modules[@]} -gt 0 ]] || { echo "terraform-test: no module has tests/*.tftest.hcl" >&2; exit 1; }
for m in "${modules[@]}"; do
  dir="$work/tf/${m#./}"
  terraform -chdir="$dir" init -backend=false -input=false -no-color >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
  if ! AWS_ENDPOINT_URL_SECRETS_MANAGER=$endpoint AWS_EC2_METADATA_DISABLED=true \
    terraform -chdir="$dir" test -no-color >"$work/test.log" 2>&1; then
    cat "$work/test.log" >&2
    echo "terraform-test: ${m#./} FAILED" >&2
    exit 1
  fi
  grep -E '^(Success|tests/)|run "' "$work/test.log" || true
  echo "terraform-test: ${m#./}: $(tail -n1 "$work/test.log")"
done
