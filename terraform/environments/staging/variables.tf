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

variable "test_listener_cidrs" {
  description = "Who may reach the ALB test listener (:8443): the egress CIDRs of the runners that run the smoke checks."
  type        = list(string)
  validation {
    condition     = length(var.test_listener_cidrs) > 0 && alltrue([for c in var.test_listener_cidrs : can(cidrhost(c, 0))])
    error_message = "test_listener_cidrs must list at least one valid IPv4 CIDR (no default: the test listener serves unreleased revisions)."
  }
}

variable "create_ecr_repository" {
  description = "Create the agentic-platform ECR repository (keep true: staging owns it when both environments share an account)."
  type        = bool
  default     = true
}

variable "secret_versions" {
  description = "Rotation counters of the generated secrets (database, redis, api_token); raise one and apply to rotate it."
  type = object({
    database  = optional(number, 1)
    redis     = optional(number, 1)
    api_token = optional(number, 1)
  })
  default = {}
}
