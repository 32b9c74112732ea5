#!/usr/bin/env bash
# Terraform's own proof of terraform/: `terraform init` from the machine's local provider mirror
# (hashicorp/aws 5.100.0, nothing downloaded) and `terraform validate` of environments/staging,
# environments/production and bootstrap (backend disabled). 5.100.0 predates the ECS blue/green
# arguments (6.4.0) and the PAUSE-hook fields (PR 48128), so it validates a generated copy from
# which exactly the arguments in terraform/compat/newer-provider-attributes.json are removed; any
# other error or warning fails. Also checks that list: every entry is used, absent from 5.100.0
# and present in the 6.47.0 schema extract (or says why no dump has it yet).
#
# TF_CHECK_SRC=<dir> validates another copy of terraform/ (the mutation proof in docs/aws.md).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/terraform.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tf_offline_config "$work"
echo "terraform-validate: provider mirror $TF_PROVIDER_MIRROR (hashicorp/aws $TF_MIRROR_VERSION)"

tf_compat_copy "$work/tf"

results=()
for root in environments/staging environments/production bootstrap; do
  dir="$work/tf/$root"
  if ! terraform -chdir="$dir" init -backend=false -input=false -no-color >"$work/init.log" 2>&1; then
    cat "$work/init.log" >&2
    echo "terraform-validate: init of $root failed (see above)" >&2
    exit 1
  fi
  out="$work/$(echo "$root" | tr / _).json"
  terraform -chdir="$dir" validate -json -no-color >"$out" || true
  results+=("$out")
done
if ! python3 "$ROOT/scripts/checks/lib/tf_compat.py" diagnostics "${results[@]}"; then
  echo "terraform-validate: FAILED (diagnostics above; paths are in the generated copy, same files and lines as terraform/ except in modules/service/main.tf below the removed blocks)" >&2
  exit 1
fi

# The list itself, against the provider schemas.
mkdir "$work/schema"
printf 'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", version = "%s" }\n  }\n}\n' "$TF_MIRROR_VERSION" >"$work/schema/main.tf"
terraform -chdir="$work/schema" init -input=false -no-color >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
terraform -chdir="$work/schema" providers schema -json >"$work/schema.json"
python3 "$ROOT/scripts/checks/lib/tf_compat.py" schema "$ROOT/terraform/compat/newer-provider-attributes.json" "$work/schema.json"
echo "terraform-validate: ok (staging, production, bootstrap: 0 errors, 0 warnings with hashicorp/aws $TF_MIRROR_VERSION)"
