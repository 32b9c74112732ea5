#!/usr/bin/env bash
# IAM from code: renders the deploy role's policy with Terraform (modules/deploy_policy, the local
# mirror's provider, no AWS account: only aws_iam_policy_document) and checks it against every
# AWS SDK operation the deployer's code calls (found recursively under deployer/src, see
# scripts/checks/lib/iam_from_code.py): each call allowed, every grant called or explained in
# terraform/modules/github_oidc/iam-beyond-sdk-calls.json. Then proves the check bites: the same
# policy without one called action, and with one action nobody calls, must both fail.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/checks/lib/terraform.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tf_offline_config "$work"
tf_compat_copy "$work/tf" >/dev/null

mkdir "$work/render"
cat >"$work/render/main.tf" <<HCL
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "$TF_MIRROR_VERSION" }
  }
}

# No account: the provider is configured but never calls AWS (policy documents render locally).
provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "render-only"
  secret_key                  = "render-only"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

module "deploy_policy" {
  source                   = "$work/tf/modules/deploy_policy"
  arn_prefix               = "arn:aws"
  region                   = "eu-west-1"
  account_id               = "111111111111"
  cluster_arn              = "arn:aws:ecs:eu-west-1:111111111111:cluster/agentic-staging"
  cluster_name             = "agentic-staging"
  task_definition_families = ["agentic-staging-orchestrator", "agentic-staging-migrate"]
  pass_role_arns           = ["arn:aws:iam::111111111111:role/agentic-staging-task-execution"]
  ecr_repository_arn       = "arn:aws:ecr:eu-west-1:111111111111:repository/agentic-platform"
  dynamodb_table_arns      = ["arn:aws:dynamodb:eu-west-1:111111111111:table/agentic-staging-deploy-lock"]
  readable_secret_arns     = ["arn:aws:secretsmanager:eu-west-1:111111111111:secret:agentic-staging/api-token-AbCdEf"]
  kms_key_arn              = "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-0000-0000-000000000001"
  state_bucket_arn         = "arn:aws:s3:::example-terraform-state"
  state_kms_key_arn        = "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-0000-0000-000000000002"
  outputs_object_key       = "agentic/staging/outputs.json"
}

output "policy" {
  value = module.deploy_policy.json
}
HCL
terraform -chdir="$work/render" init -input=false -no-color >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
terraform -chdir="$work/render" apply -auto-approve -input=false -no-color >"$work/apply.log" 2>&1 || { cat "$work/apply.log" >&2; exit 1; }
terraform -chdir="$work/render" output -raw policy >"$work/policy.json"

python3 "$ROOT/scripts/checks/lib/iam_from_code.py" "$ROOT" "$work/policy.json"

# The check must bite both ways.
python3 - "$work/policy.json" "$work" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); w = sys.argv[2]
drop = json.loads(json.dumps(p))
for s in drop["Statement"]:
    a = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
    if "ecs:UpdateService" in a:
        s["Action"] = [x for x in a if x != "ecs:UpdateService"]
json.dump(drop, open(w + "/without-update-service.json", "w"))
extra = json.loads(json.dumps(p))
extra["Statement"].append({"Effect": "Allow", "Action": "ecs:DeleteService", "Resource": "*"})
json.dump(extra, open(w + "/with-delete-service.json", "w"))
PY
for m in without-update-service with-delete-service; do
  if python3 "$ROOT/scripts/checks/lib/iam_from_code.py" "$ROOT" "$work/$m.json" 2>"$work/$m.err"; then
    echo "iam: the check passed a policy $m; it must fail" >&2
    exit 1
  fi
  grep -qE 'ecs:UpdateService is called|grants ecs:DeleteService' "$work/$m.err" \
    || { echo "iam: unexpected complaint for the policy $m:" >&2; cat "$work/$m.err" >&2; exit 1; }
done
# Calls are found however deep the sources are: the same policy against a copy of deployer/src
# with one more call three folders down must fail naming it.
cp -r "$ROOT/deployer/src" "$work/src"
mkdir -p "$work/src/probe/deeper/still"
printf 'async fn probe(ecs: &aws_sdk_ecs::Client) {\n    let _ = ecs\n        .delete_service()\n        .send()\n        .await;\n}\n' >"$work/src/probe/deeper/still/nested.rs"
if python3 "$ROOT/scripts/checks/lib/iam_from_code.py" "$ROOT" "$work/policy.json" --src="$work/src" 2>"$work/nested.err"; then
  echo "iam: a call in src/probe/deeper/still/nested.rs went unnoticed" >&2
  exit 1
fi
grep -q 'ecs:DeleteService is called (src/probe/deeper/still/nested.rs:3)' "$work/nested.err" \
  || { echo "iam: unexpected complaint for the nested call:" >&2; cat "$work/nested.err" >&2; exit 1; }
echo "iam: ok (and the check fails a policy without ecs:UpdateService, one with ecs:DeleteService, and a call three folders down)"
