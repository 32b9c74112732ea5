# The whole AWS side of one environment, composed from the modules. Environment roots call this
# with their literal catalogue of services (which the consistency test checks against deployer.toml).
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account    = data.aws_caller_identity.current.account_id
  region     = var.region
  image      = "${module.ecr.repository_url}:${var.image_tag}"
  lb_service = one([for k, s in var.services : k if s.load_balanced])
  task_roles = {
    orchestrator = aws_iam_role.task["orchestrator"].arn
    agent        = aws_iam_role.task["agent"].arn
    migrate      = aws_iam_role.task["migrate"].arn
  }
  common_secrets = {
    DATABASE_URL = module.data.database_url_secret_arn
    REDIS_URL    = module.data.redis_url_secret_arn
  }
}

# ---------------------------------------------------------------- encryption and notifications
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource means this key only.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource means this key only.
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource means this key only; the account root must administer its key.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${local.region}:${local.account}:*"]
    }
  }
  statement {
    sid       = "AlarmsPublishToTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "this" {
  description         = "Encrypts ${var.name}: logs, secrets, images, databases, deploy tables."
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
}

# ---------------------------------------------------------------- building blocks
module "network" {
  source             = "../network"
  name               = var.name
  cidr_block         = var.vpc_cidr
  az_count           = var.az_count
  single_nat_gateway = !var.production
  kms_key_arn        = aws_kms_key.this.arn
}

module "ecr" {
  source      = "../ecr"
  name        = var.ecr_repository_name
  create      = var.create_ecr_repository
  kms_key_arn = aws_kms_key.this.arn
}

module "cluster" {
  source             = "../ecs_cluster"
  name               = var.name
  kms_key_arn        = aws_kms_key.this.arn
  log_retention_days = var.log_retention_days
  secret_arns = [
    module.data.database_url_secret_arn,
    module.data.redis_url_secret_arn,
    module.data.api_token_secret_arn,
  ]
}

module "alb_logs" {
  source = "../log_bucket"
  name   = "${var.name}-alb-logs-${local.account}"
}

module "alb" {
  source              = "../alb"
  name                = var.name
  vpc_id              = module.network.vpc_id
  public_subnet_ids   = module.network.public_subnet_ids
  certificate_arn     = var.certificate_arn
  container_port      = var.services[local.lb_service].container_port
  test_listener_port  = var.test_listener_port
  test_listener_cidrs = var.test_listener_cidrs
  deletion_protection = var.production
  access_logs_bucket  = module.alb_logs.bucket
}

module "data" {
  source                   = "../data"
  name                     = var.name
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.private_subnet_ids
  client_security_group_id = aws_security_group.tasks.id
  kms_key_arn              = aws_kms_key.this.arn
  production               = var.production
  secret_versions          = var.secret_versions
}

module "deploy_state" {
  source              = "../deploy_state"
  name                = var.name
  kms_key_arn         = aws_kms_key.this.arn
  deletion_protection = var.production
}

# ---------------------------------------------------------------- tasks
resource "aws_security_group" "tasks" {
  #checkov:skip=CKV2_AWS_5:Attached to every ECS service (module.service, network_configuration, through for_each) and to the migration RunTask; checkov's graph does not follow the module's for_each (it reported nothing while the scaling conditional made the services unevaluable).
  name        = "${var.name}-tasks"
  description = "Platform tasks: the orchestrator port from the ALB; out to AWS APIs and data stores."
  vpc_id      = module.network.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Orchestrator from the ALB"
  referenced_security_group_id = module.alb.security_group_id
  from_port                    = var.services[local.lb_service].container_port
  to_port                      = var.services[local.lb_service].container_port
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_tasks" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Agents reach the orchestrator API"
  referenced_security_group_id = aws_security_group.tasks.id
  from_port                    = var.services[local.lb_service].container_port
  to_port                      = var.services[local.lb_service].container_port
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "AWS APIs, ECR, Secrets Manager (through NAT)"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "tasks_vpc" {
  for_each          = toset(["5432", "6379", tostring(var.services[local.lb_service].container_port)])
  security_group_id = aws_security_group.tasks.id
  description       = "Data stores and the orchestrator inside the VPC"
  cidr_ipv4         = module.network.vpc_cidr_block
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  ip_protocol       = "tcp"
}

# One task role per kind of task: only the orchestrator calls AWS (it publishes the backlog metric).
resource "aws_iam_role" "task" {
  for_each           = toset(["orchestrator", "agent", "migrate"])
  name               = "${var.name}-task-${each.key}"
  assume_role_policy = module.cluster.tasks_assume_role_policy
}

# The orchestrator publishes the per-kind stream backlog the agents scale on.
data "aws_iam_policy_document" "orchestrator_metrics" {
  statement {
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.backlog_metric_namespace]
    }
  }
}

resource "aws_iam_role_policy" "orchestrator_metrics" {
  name   = "publish-backlog-metric"
  role   = aws_iam_role.task["orchestrator"].id
  policy = data.aws_iam_policy_document.orchestrator_metrics.json
}

module "service" {
  source   = "../service"
  for_each = var.services

  name               = each.key
  region             = local.region
  family             = "${var.name}-${each.key}"
  cluster_arn        = module.cluster.cluster_arn
  cluster_name       = module.cluster.cluster_name
  container_name     = each.value.container_name
  container_port     = each.value.container_port
  command            = each.value.command
  image              = local.image
  cpu                = each.value.cpu
  memory             = each.value.memory
  execution_role_arn = module.cluster.execution_role_arn
  task_role_arn      = each.value.load_balanced ? local.task_roles["orchestrator"] : local.task_roles["agent"]
  log_group_name     = module.cluster.log_group_name
  desired_count      = each.value.desired_count
  min_count          = each.value.min_count
  max_count          = each.value.max_count
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [aws_security_group.tasks.id]
  alarm_topic_arn    = aws_sns_topic.alarms.arn

  environment = merge(
    { LOG_FORMAT = "json", RUST_LOG = "info" },
    each.value.container_port == null ? {} : { PORT = tostring(each.value.container_port) },
    # The orchestrator publishes the agents' StreamBacklog metric, read by their autoscaling below.
    each.value.load_balanced ? { PLATFORM_CLOUDWATCH_NAMESPACE = var.backlog_metric_namespace } : {},
  )
  secrets = merge(
    local.common_secrets,
    each.value.load_balanced ? { PLATFORM_API_TOKEN = module.data.api_token_secret_arn } : {},
  )
  health_check_command = each.value.load_balanced ? ["CMD", "platform", "healthcheck"] : null

  strategy              = each.value.strategy
  bake_time_minutes     = var.bake_time_minutes
  pause_stages          = each.value.pause_stages
  pause_timeout_minutes = var.pause_timeout_minutes

  capacity_providers = each.value.spot_weight > 0 ? [
    { name = "FARGATE", base = 1, weight = 1 },
    { name = "FARGATE_SPOT", base = 0, weight = each.value.spot_weight },
  ] : [{ name = "FARGATE", base = 1, weight = 1 }]

  load_balancer = each.value.load_balanced ? {
    target_group_arn             = module.alb.target_group_arns["blue"]
    alternate_target_group_arn   = module.alb.target_group_arns["green"]
    production_listener_rule_arn = module.alb.production_listener_rule_arn
    test_listener_rule_arn       = module.alb.test_listener_rule_arn
    role_arn                     = module.alb.ecs_infrastructure_role_arn
    alb_arn_suffix               = module.alb.arn_suffix
    target_group_arn_suffixes    = values(module.alb.target_group_arn_suffixes)
  } : null

  # One object type for both kinds of service (a conditional between two object types with
  # different attributes is an error): the load-balanced one scales on CPU and requests, the
  # agents on their stream backlog.
  scaling = {
    cpu_target               = each.value.load_balanced ? 60 : null
    requests_per_task_target = each.value.load_balanced ? 1000 : null
    backlog_per_task_target  = each.value.load_balanced ? null : 20
    backlog_metric = each.value.load_balanced ? null : {
      namespace  = var.backlog_metric_namespace
      name       = var.backlog_metric_name
      dimensions = { AgentKind = each.value.agent_kind }
    }
  }
}

# Bootstrap revision of the migration task (the deployer registers the real ones and runs them).
resource "aws_ecs_task_definition" "migrate" {
  family                   = var.migration_task.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.migration_task.cpu
  memory                   = var.migration_task.memory
  execution_role_arn       = module.cluster.execution_role_arn
  task_role_arn            = local.task_roles["migrate"]

  container_definitions = jsonencode([
    {
      name                   = var.migration_task.container_name
      image                  = local.image
      essential              = true
      command                = var.migration_task.command
      readonlyRootFilesystem = true
      environment            = [{ name = "LOG_FORMAT", value = "json" }]
      secrets                = [for k, v in local.common_secrets : { name = k, valueFrom = v }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = module.cluster.log_group_name
          awslogs-region        = local.region
          awslogs-stream-prefix = var.migration_task.container_name
        }
      }
    }
  ])

  lifecycle {
    ignore_changes = [container_definitions]
  }
}

module "github" {
  source                   = "../github_oidc"
  name                     = var.name
  github_repository        = var.github_repository
  github_environment       = var.environment
  region                   = local.region
  plan_pull_requests       = var.plan_pull_requests
  cluster_arn              = module.cluster.cluster_arn
  cluster_name             = module.cluster.cluster_name
  task_definition_families = concat([for m in module.service : m.task_definition_family], [var.migration_task.family])
  pass_role_arns           = concat([module.cluster.execution_role_arn], values(local.task_roles))
  ecr_repository_arn       = module.ecr.repository_arn
  dynamodb_table_arns      = [module.deploy_state.lock_table_arn, module.deploy_state.audit_table_arn]
  readable_secret_arns     = [module.data.api_token_secret_arn]
  terraform_secret_arns    = [module.data.database_url_secret_arn, module.data.redis_url_secret_arn, module.data.api_token_secret_arn]
  kms_key_arn              = aws_kms_key.this.arn
  state_bucket_arn         = "arn:${data.aws_partition.current.partition}:s3:::${var.state_bucket}"
  state_kms_key_arn        = var.state_kms_key_arn
  outputs_object_key       = "agentic/${var.environment}/outputs.json"
}
