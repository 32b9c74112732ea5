# Roles GitHub Actions assumes through OIDC (no long-lived keys):
# - deploy: exactly the calls `deployer` makes, only from jobs in the GitHub environment of the
#   same name (so production needs its environment's required reviewers);
# - terraform plan (pull requests): read-only, no secret values, this environment's state only,
#   and only where var.plan_pull_requests (staging): pull-request code runs with this role;
# - terraform plan (main): the full, refreshing plan the apply job applies; may read the
#   environment's generated secrets (refreshing aws_secretsmanager_secret_version reads them);
# - terraform apply: from the `<env>-infrastructure` GitHub environment only (required reviewers).
# The OIDC provider itself is per account and created by terraform/bootstrap.
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

variable "name" {
  description = "Prefix of the role names."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows may assume the roles."
  type        = string
}

variable "github_environment" {
  description = "GitHub environment of the deploy jobs (e.g. staging, production)."
  type        = string
}

variable "region" {
  description = "Region of the environment."
  type        = string
}

variable "plan_pull_requests" {
  description = "Trust the pull-request plan role from pull requests (staging: true; production: false, its plans run on main only)."
  type        = bool
}

variable "terraform_secret_arns" {
  description = "Secrets whose versions Terraform manages: refreshing them calls GetSecretValue (main-branch plan only)."
  type        = list(string)
}

variable "cluster_arn" {
  description = "ECS cluster the deployer releases to."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "task_definition_families" {
  description = "Families the deployer registers (services and the migration task)."
  type        = list(string)
}

variable "pass_role_arns" {
  description = "Execution and task roles the deployer passes to ECS in task definitions."
  type        = list(string)
}

variable "ecr_repository_arn" {
  description = "Repository the deployer pushes to."
  type        = string
}

variable "dynamodb_table_arns" {
  description = "Lock and audit tables."
  type        = list(string)
}

variable "readable_secret_arns" {
  description = "Secrets the smoke checks need (the API token)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Key of those secrets and tables."
  type        = string
}

variable "state_bucket_arn" {
  description = "Terraform state bucket."
  type        = string
}

variable "state_kms_key_arn" {
  description = "Key of the state bucket."
  type        = string
}

variable "outputs_object_key" {
  description = "Object in the state bucket holding `terraform output -json` of this environment (written by terraform apply, read by the deploy jobs)."
  type        = string
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_openid_connect_provider" "github" {
  url = "https://token.actions.githubusercontent.com"
}

locals {
  account = data.aws_caller_identity.current.account_id
  region  = var.region
  # This environment's objects in the state bucket (state, lock file, published outputs).
  state_prefix = "${var.state_bucket_arn}/${dirname(var.outputs_object_key)}"
  arn          = "arn:${data.aws_partition.current.partition}"
}

data "aws_iam_policy_document" "trust_deploy" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [data.aws_iam_openid_connect_provider.github.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${var.name}-github-deploy"
  assume_role_policy   = data.aws_iam_policy_document.trust_deploy.json
  max_session_duration = 7200
}

# What the deployer calls, and nothing else: scripts/checks/iam.sh renders this module and checks
# it against the SDK calls under deployer/src (and iam-beyond-sdk-calls.json beside this file).
module "deploy_policy" {
  source                   = "../deploy_policy"
  arn_prefix               = local.arn
  region                   = local.region
  account_id               = local.account
  cluster_arn              = var.cluster_arn
  cluster_name             = var.cluster_name
  task_definition_families = var.task_definition_families
  pass_role_arns           = var.pass_role_arns
  ecr_repository_arn       = var.ecr_repository_arn
  dynamodb_table_arns      = var.dynamodb_table_arns
  readable_secret_arns     = var.readable_secret_arns
  kms_key_arn              = var.kms_key_arn
  state_bucket_arn         = var.state_bucket_arn
  state_kms_key_arn        = var.state_kms_key_arn
  outputs_object_key       = var.outputs_object_key
}

resource "aws_iam_role_policy" "deploy" {
  name   = "deployer"
  role   = aws_iam_role.deploy.id
  policy = module.deploy_policy.json
}

# ---------------------------------------------------------------- Terraform plan (pull requests)
# What a pull-request plan may see: the configuration, this environment's state (which holds no
# generated secret value except the Redis AUTH token, see modules/data) and AWS metadata through
# ReadOnlyAccess, which grants no secretsmanager:GetSecretValue and no kms:Decrypt. Pull-request
# plans run with -refresh=false -lock=false: no secret read, nothing written.
data "aws_iam_policy_document" "trust_plan" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [data.aws_iam_openid_connect_provider.github.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      # Nobody when pull requests may not plan this environment (an impossible subject).
      values = [var.plan_pull_requests ? "repo:${var.github_repository}:pull_request" : "repo:${var.github_repository}:pull_request-disabled"]
    }
  }
}

resource "aws_iam_role" "terraform_plan" {
  name               = "${var.name}-github-terraform-plan"
  assume_role_policy = data.aws_iam_policy_document.trust_plan.json
}

resource "aws_iam_role_policy_attachment" "terraform_plan" {
  role       = aws_iam_role.terraform_plan.name
  policy_arn = "${local.arn}:iam::aws:policy/ReadOnlyAccess"
}

# Read this environment's state (not the other environment's, even in a shared bucket).
data "aws_iam_policy_document" "state_read" {
  statement {
    sid       = "ListOwnPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.state_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${dirname(var.outputs_object_key)}/*"]
    }
  }
  statement {
    sid       = "ReadOwnState"
    actions   = ["s3:GetObject"]
    resources = ["${local.state_prefix}/*"]
  }
  statement {
    sid       = "DecryptState"
    actions   = ["kms:Decrypt"]
    resources = [var.state_kms_key_arn]
  }
  # Opening the ephemeral aws_secretsmanager_random_password (and the Redis token data source)
  # during plan: returns a random string, reads nothing.
  statement {
    sid       = "GenerateRandomPasswords"
    actions   = ["secretsmanager:GetRandomPassword"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "terraform_plan_state" {
  name   = "terraform-state-read"
  role   = aws_iam_role.terraform_plan.id
  policy = data.aws_iam_policy_document.state_read.json
}

# ---------------------------------------------------------------- Terraform plan (main)
# The plan the apply job applies: refreshes everything (so it reads the generated secrets'
# versions), takes the state lock. Trusted only from jobs on main, which are reviewed code.
data "aws_iam_policy_document" "trust_plan_main" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [data.aws_iam_openid_connect_provider.github.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:ref:refs/heads/main"]
    }
  }
}

resource "aws_iam_role" "terraform_plan_main" {
  name               = "${var.name}-github-terraform-plan-main"
  assume_role_policy = data.aws_iam_policy_document.trust_plan_main.json
}

resource "aws_iam_role_policy_attachment" "terraform_plan_main" {
  role       = aws_iam_role.terraform_plan_main.name
  policy_arn = "${local.arn}:iam::aws:policy/ReadOnlyAccess"
}

data "aws_iam_policy_document" "plan_main" {
  source_policy_documents = [data.aws_iam_policy_document.state_read.json]
  statement {
    sid       = "StateLockFile"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.state_prefix}/*.tflock"]
  }
  # The saved plan goes to the state bucket (KMS, this environment's prefix), not to a workflow
  # artifact that anyone with read access to the repository could download.
  statement {
    sid       = "SavedPlans"
    actions   = ["s3:PutObject"]
    resources = ["${local.state_prefix}/plans/*"]
  }
  statement {
    sid       = "EncryptLockFileAndPlans"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.state_kms_key_arn]
  }
  statement {
    sid       = "RefreshSecretVersions"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.terraform_secret_arns
  }
  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "terraform_plan_main" {
  name   = "terraform-plan"
  role   = aws_iam_role.terraform_plan_main.id
  policy = data.aws_iam_policy_document.plan_main.json
}

# ---------------------------------------------------------------- Terraform apply
data "aws_iam_policy_document" "trust_apply" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [data.aws_iam_openid_connect_provider.github.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}-infrastructure"]
    }
  }
}

resource "aws_iam_role" "terraform_apply" {
  name                 = "${var.name}-github-terraform-apply"
  assume_role_policy   = data.aws_iam_policy_document.trust_apply.json
  max_session_duration = 7200
}

# Terraform manages IAM, networking and data stores: applying needs broad rights. The trust
# policy is what limits it: only approved jobs in the `<env>-infrastructure` GitHub environment.
resource "aws_iam_role_policy_attachment" "terraform_apply" {
  #checkov:skip=CKV_AWS_274:Apply creates IAM, VPC, RDS etc.; the trust policy limits it to an approved GitHub environment.
  role       = aws_iam_role.terraform_apply.name
  policy_arn = "${local.arn}:iam::aws:policy/AdministratorAccess"
}

output "deploy_role_arn" {
  description = "Role of the deploy jobs."
  value       = aws_iam_role.deploy.arn
}

output "terraform_plan_role_arn" {
  description = "Role of terraform plan on pull requests."
  value       = aws_iam_role.terraform_plan.arn
}

output "terraform_plan_main_role_arn" {
  description = "Role of terraform plan on main (the plan the apply job applies)."
  value       = aws_iam_role.terraform_plan_main.arn
}

output "terraform_apply_role_arn" {
  description = "Role of terraform apply."
  value       = aws_iam_role.terraform_apply.arn
}
