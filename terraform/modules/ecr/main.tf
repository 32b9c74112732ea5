# The one image repository: immutable tags (a git sha always means the same bytes), scan on push,
# and a lifecycle policy that keeps the last N releases so rollbacks always have an image.
# With create = false the repository is looked up instead: when staging and production share one
# account, staging creates it and production promotes the very image staging released (the
# deployer finds the `<sha>` tag already there and does not push it again).
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

variable "name" {
  description = "Repository name."
  type        = string
}

variable "keep_releases" {
  description = "How many tagged images to keep; older ones expire."
  type        = number
  default     = 30
}

variable "create" {
  description = "Create the repository (false: it exists already, created by another environment in this account)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images."
  type        = string
}

resource "aws_ecr_repository" "this" {
  count                = var.create ? 1 : 0
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

data "aws_ecr_repository" "existing" {
  count = var.create ? 0 : 1
  name  = var.name
}

# One attribute at a time, so nothing relies on Terraform unifying the object types of a resource
# and a data source.
locals {
  repository_name = var.create ? aws_ecr_repository.this[0].name : data.aws_ecr_repository.existing[0].name
  repository_url  = var.create ? aws_ecr_repository.this[0].repository_url : data.aws_ecr_repository.existing[0].repository_url
  repository_arn  = var.create ? aws_ecr_repository.this[0].arn : data.aws_ecr_repository.existing[0].arn
}

resource "aws_ecr_lifecycle_policy" "this" {
  count      = var.create ? 1 : 0
  repository = aws_ecr_repository.this[0].name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Untagged layers from interrupted pushes go after a day"
        selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 1 }
        action       = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.keep_releases} releases"
        selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = var.keep_releases }
        action       = { type = "expire" }
      },
    ]
  })
}

output "repository_name" {
  description = "Repository name."
  value       = local.repository_name
}

output "repository_url" {
  description = "Repository URL (registry/name), without tag."
  value       = local.repository_url
}

output "repository_arn" {
  description = "Repository ARN."
  value       = local.repository_arn
}
