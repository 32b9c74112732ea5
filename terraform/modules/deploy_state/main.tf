# DynamoDB tables of the deployer: the deploy lock (one item per environment, conditional writes)
# and the audit log of releases. Both encrypted with the environment's key, with point-in-time
# recovery: the audit log is the record of what ran in production.
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

variable "name" {
  description = "Prefix of the table names."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the tables."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the tables from deletion."
  type        = bool
  default     = true
}

resource "aws_dynamodb_table" "lock" {
  name                        = "${var.name}-deploy-lock"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  point_in_time_recovery {
    enabled = true
  }
}

resource "aws_dynamodb_table" "audit" {
  name                        = "${var.name}-deploy-audit"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "env"
  range_key                   = "release_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "env"
    type = "S"
  }

  attribute {
    name = "release_id"
    type = "S"
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  point_in_time_recovery {
    enabled = true
  }
}

output "lock_table_name" {
  description = "Deploy lock table."
  value       = aws_dynamodb_table.lock.name
}

output "lock_table_arn" {
  description = "Deploy lock table ARN."
  value       = aws_dynamodb_table.lock.arn
}

output "audit_table_name" {
  description = "Deploy audit table."
  value       = aws_dynamodb_table.audit.name
}

output "audit_table_arn" {
  description = "Deploy audit table ARN."
  value       = aws_dynamodb_table.audit.arn
}
