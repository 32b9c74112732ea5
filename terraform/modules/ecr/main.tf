# The one image repository: immutable tags (a git sha always means the same bytes), scan on push,
# and a lifecycle policy that keeps the last N releases so rollbacks always have an image.
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

variable "kms_key_arn" {
  description = "KMS key that encrypts the images."
  type        = string
}

resource "aws_ecr_repository" "this" {
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

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
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
  value       = aws_ecr_repository.this.name
}

output "repository_url" {
  description = "Repository URL (registry/name), without tag."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "Repository ARN."
  value       = aws_ecr_repository.this.arn
}
