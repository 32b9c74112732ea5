# The deploy role's policy: exactly the AWS calls `deployer` makes (scripts/checks/iam.sh derives
# them from the SDK calls under deployer/src and fails on anything missing or unexplained), plus
# what the release workflow's own steps need (iam-beyond-sdk-calls.json in modules/github_oidc).
# Only aws_iam_policy_document: renders without an AWS account.
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

variable "arn_prefix" {
  description = "arn:<partition>"
  type        = string
}

variable "region" {
  description = "Region of the environment."
  type        = string
}

variable "account_id" {
  description = "Account of the environment."
  type        = string
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
  description = "Secrets the release jobs read (the API token of the smoke checks)."
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
  description = "Object holding `terraform output -json` of this environment."
  type        = string
}

data "aws_iam_policy_document" "deploy" {
  #checkov:skip=CKV_AWS_356:Only actions IAM cannot scope (Describe*, RegisterTaskDefinition, GetAuthorizationToken) use "*"; the rest are scoped.
  # Describe/List calls that IAM cannot scope to a resource.
  statement {
    sid = "ReadOnlyUnscoped"
    actions = [
      "ecs:DescribeTaskDefinition",
      "ecs:ListTaskDefinitions",
      "ecs:RegisterTaskDefinition",
      "ecr:GetAuthorizationToken",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeRules",
      # The test endpoint (listener, load balancer DNS name) and a failure's target health.
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeTargetHealth",
      # A failure's stopped tasks (ListTasks takes no task resource).
      "ecs:ListTasks",
      # The metric analysis; GetMetricData has no resource-level permissions.
      "cloudwatch:GetMetricData",
    ]
    resources = ["*"]
  }

  statement {
    sid     = "TagOwnTaskDefinitions"
    actions = ["ecs:TagResource"]
    resources = [
      for f in var.task_definition_families : "${var.arn_prefix}:ecs:${var.region}:${var.account_id}:task-definition/${f}:*"
    ]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition", "RunTask"]
    }
  }

  statement {
    sid = "Cluster"
    actions = [
      "ecs:DescribeClusters",
      "ecs:DescribeServices",
      "ecs:UpdateService",
      "ecs:ListServiceDeployments",
      "ecs:DescribeServiceDeployments",
      "ecs:DescribeServiceRevisions",
      "ecs:StopServiceDeployment",
      "ecs:ContinueServiceDeployment",
      "ecs:DescribeTasks",
    ]
    resources = [
      var.cluster_arn,
      "${var.arn_prefix}:ecs:${var.region}:${var.account_id}:service/${var.cluster_name}/*",
      "${var.arn_prefix}:ecs:${var.region}:${var.account_id}:service-deployment/${var.cluster_name}/*",
      "${var.arn_prefix}:ecs:${var.region}:${var.account_id}:service-revision/${var.cluster_name}/*",
      "${var.arn_prefix}:ecs:${var.region}:${var.account_id}:task/${var.cluster_name}/*",
    ]
  }

  statement {
    sid     = "MigrationTask"
    actions = ["ecs:RunTask", "ecs:StopTask"]
    resources = concat(
      [for f in var.task_definition_families : "${var.arn_prefix}:ecs:${var.region}:${var.account_id}:task-definition/${f}:*"],
      ["${var.arn_prefix}:ecs:${var.region}:${var.account_id}:task/${var.cluster_name}/*"],
    )
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = var.pass_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid = "PushImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:DescribeRepositories",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid = "LockAndAudit"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
    ]
    resources = var.dynamodb_table_arns
  }

  statement {
    sid       = "SmokeCheckToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.readable_secret_arns
  }

  statement {
    sid       = "TerraformOutputs"
    actions   = ["s3:GetObject"]
    resources = ["${var.state_bucket_arn}/${var.outputs_object_key}"]
  }

  statement {
    sid       = "DecryptTerraformOutputs"
    actions   = ["kms:Decrypt"]
    resources = [var.state_kms_key_arn]
  }

  statement {
    sid       = "DecryptOwnData"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

output "json" {
  description = "The policy document."
  value       = data.aws_iam_policy_document.deploy.json
}
