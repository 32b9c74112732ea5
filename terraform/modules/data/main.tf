# PostgreSQL (RDS) and Redis (ElastiCache), encrypted, in private subnets, reachable only from the
# platform's tasks. Connection strings live in Secrets Manager and are referenced from task
# definitions (never in plain environment variables).
#
# Generated secrets stay out of Terraform state where the provider allows it: the database
# password and the API token come from an ephemeral `aws_secretsmanager_random_password` (never
# stored) and reach AWS only through write-only arguments (`password_wo`, `secret_string_wo`,
# Terraform >= 1.11). They are written again only when their counter in var.secret_versions goes
# up (rotation, docs/aws.md). The Redis AUTH token is the exception: `auth_token` has no
# write-only form in any provider release (checked up to 6.47.0), so it is generated once and
# kept in state (see docs/aws.md, "Secrets").
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "Security group of the tasks allowed to connect."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for storage, snapshots, logs and secrets."
  type        = string
}

variable "production" {
  description = "Production settings: multi-AZ, deletion protection, final snapshot, two Redis nodes."
  type        = bool
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage" {
  description = "Initial storage (GiB); autoscaling up to 5x."
  type        = number
  default     = 20
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "secret_versions" {
  description = "Rotation counters: raising one generates and writes a new value of that secret."
  type = object({
    database  = optional(number, 1)
    redis     = optional(number, 1)
    api_token = optional(number, 1)
  })
  default = {}
}

locals {
  db_name = "agentic_sdlc"
  db_user = "agentic"
}

resource "aws_security_group" "data" {
  name        = "${var.name}-data"
  description = "PostgreSQL and Redis, from the platform tasks only."
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "postgres" {
  security_group_id            = aws_security_group.data.id
  description                  = "PostgreSQL from the tasks"
  referenced_security_group_id = var.client_security_group_id
  from_port                    = 5432
  to_port                      = 5432
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "redis" {
  security_group_id            = aws_security_group.data.id
  description                  = "Redis from the tasks"
  referenced_security_group_id = var.client_security_group_id
  from_port                    = 6379
  to_port                      = 6379
  ip_protocol                  = "tcp"
}

# ---------------------------------------------------------------- PostgreSQL
# Opened anew on every plan and apply, never stored; used only when password_wo_version changes.
ephemeral "aws_secretsmanager_random_password" "db" {
  password_length     = 32
  exclude_punctuation = true
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-pg16"
  family = "postgres16"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_293:Deletion protection follows var.production (on in production, off so staging can be torn down).
  #checkov:skip=CKV_AWS_157:Multi-AZ follows var.production (on in production; staging runs single-AZ to save cost).
  identifier                          = var.name
  engine                              = "postgres"
  engine_version                      = "16"
  instance_class                      = var.db_instance_class
  allocated_storage                   = var.db_allocated_storage
  max_allocated_storage               = var.db_allocated_storage * 5
  storage_type                        = "gp3"
  storage_encrypted                   = true
  kms_key_id                          = var.kms_key_arn
  db_name                             = local.db_name
  username                            = local.db_user
  password_wo                         = ephemeral.aws_secretsmanager_random_password.db.random_password
  password_wo_version                 = var.secret_versions.database
  db_subnet_group_name                = aws_db_subnet_group.this.name
  parameter_group_name                = aws_db_parameter_group.this.name
  vpc_security_group_ids              = [aws_security_group.data.id]
  publicly_accessible                 = false
  multi_az                            = var.production
  deletion_protection                 = var.production
  skip_final_snapshot                 = !var.production
  final_snapshot_identifier           = var.production ? "${var.name}-final" : null
  backup_retention_period             = var.production ? 14 : 3
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = var.kms_key_arn
  monitoring_interval                 = 60
  monitoring_role_arn                 = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  apply_immediately                   = !var.production
}

# ---------------------------------------------------------------- Redis
# The Redis AUTH token: `auth_token` is not write-only, so this value is in state. Generated by
# Secrets Manager (no other provider needed) and latched in terraform_data: the data source
# returns a new value on every read, the latch keeps the first one until secret_versions.redis
# goes up.
data "aws_secretsmanager_random_password" "redis" {
  password_length     = 48
  exclude_punctuation = true
}

resource "terraform_data" "redis_auth_token" {
  input            = sensitive(data.aws_secretsmanager_random_password.redis.random_password)
  triggers_replace = [var.secret_versions.redis]
  lifecycle {
    ignore_changes = [input]
  }
}

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV2_AWS_50:Automatic failover follows var.production (two nodes in production; staging has one node).
  replication_group_id       = var.name
  description                = "Redis Streams bus of ${var.name}"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.redis_node_type
  num_cache_clusters         = var.production ? 2 : 1
  automatic_failover_enabled = var.production
  multi_az_enabled           = var.production
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.data.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = terraform_data.redis_auth_token.output
  # ROTATE keeps the old token valid next to the new one until tasks run with the new REDIS_URL.
  auth_token_update_strategy = "ROTATE"
  snapshot_retention_limit   = var.production ? 7 : 1
  auto_minor_version_upgrade = true
  # The default group evicts only keys with a TTL (volatile-lru): the streams are never evicted.
  parameter_group_name = "default.redis7"
}

# ---------------------------------------------------------------- Secrets
resource "aws_secretsmanager_secret" "database_url" {
  #checkov:skip=CKV2_AWS_57:Generated by Terraform and written through a write-only argument; rotate by raising var.secret_versions and re-applying, see docs/aws.md.
  name        = "${var.name}/database-url"
  description = "DATABASE_URL of the platform."
  kms_key_id  = var.kms_key_arn
}

# Written in the same run as the database password (same ephemeral value), and only then.
resource "aws_secretsmanager_secret_version" "database_url" {
  secret_id                = aws_secretsmanager_secret.database_url.id
  secret_string_wo         = "postgres://${local.db_user}:${ephemeral.aws_secretsmanager_random_password.db.random_password}@${aws_db_instance.this.address}:${aws_db_instance.this.port}/${local.db_name}?sslmode=require"
  secret_string_wo_version = var.secret_versions.database
  # A replaced instance got this run's password: write the matching URL in the same run.
  lifecycle {
    replace_triggered_by = [aws_db_instance.this.resource_id]
  }
}

resource "aws_secretsmanager_secret" "redis_url" {
  #checkov:skip=CKV2_AWS_57:Generated by Terraform and written through a write-only argument; rotate by raising var.secret_versions and re-applying, see docs/aws.md.
  name        = "${var.name}/redis-url"
  description = "REDIS_URL of the platform."
  kms_key_id  = var.kms_key_arn
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id                = aws_secretsmanager_secret.redis_url.id
  secret_string_wo         = "rediss://:${terraform_data.redis_auth_token.output}@${aws_elasticache_replication_group.this.primary_endpoint_address}:6379"
  secret_string_wo_version = var.secret_versions.redis
}

ephemeral "aws_secretsmanager_random_password" "api_token" {
  password_length     = 48
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "api_token" {
  #checkov:skip=CKV2_AWS_57:Generated by Terraform and written through a write-only argument; rotate by raising var.secret_versions and re-applying, see docs/aws.md.
  name        = "${var.name}/api-token"
  description = "PLATFORM_API_TOKEN: bearer token of the orchestrator API (smoke checks read it too)."
  kms_key_id  = var.kms_key_arn
}

# The one copy of the token: the release jobs read it from here too (docs/aws.md).
resource "aws_secretsmanager_secret_version" "api_token" {
  secret_id                = aws_secretsmanager_secret.api_token.id
  secret_string_wo         = ephemeral.aws_secretsmanager_random_password.api_token.random_password
  secret_string_wo_version = var.secret_versions.api_token
}

output "security_group_id" {
  description = "Security group of the data stores."
  value       = aws_security_group.data.id
}

output "database_url_secret_arn" {
  description = "Secret holding DATABASE_URL."
  value       = aws_secretsmanager_secret.database_url.arn
}

output "redis_url_secret_arn" {
  description = "Secret holding REDIS_URL."
  value       = aws_secretsmanager_secret.redis_url.arn
}

output "api_token_secret_arn" {
  description = "Secret holding PLATFORM_API_TOKEN."
  value       = aws_secretsmanager_secret.api_token.arn
}

output "db_instance_identifier" {
  description = "RDS instance identifier."
  value       = aws_db_instance.this.identifier
}

output "redis_replication_group_id" {
  description = "ElastiCache replication group id."
  value       = aws_elasticache_replication_group.this.id
}
