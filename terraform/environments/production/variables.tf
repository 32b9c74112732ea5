variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-west-1"
}

variable "certificate_arn" {
  description = "ACM certificate (in this region) for domain_name."
  type        = string
}

variable "domain_name" {
  description = "Host name of the orchestrator; create its DNS record (alias to alb_dns_name) outside."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the GitHub repository allowed to deploy."
  type        = string
}

variable "image_tag" {
  description = "Image tag (git sha) of the bootstrap task definitions: the first image pushed. Later releases are the deployer's."
  type        = string
}

variable "state_bucket" {
  description = "Terraform state bucket (output of terraform/bootstrap)."
  type        = string
}

variable "state_kms_key_arn" {
  description = "KMS key of the state bucket (output of terraform/bootstrap)."
  type        = string
}
