variable "name" {
  description = "Environment prefix and ECS cluster name, e.g. agentic-staging."
  type        = string
}

variable "environment" {
  description = "Environment name as the deployer knows it (staging, production)."
  type        = string
}

variable "production" {
  description = "Production hardening: multi-AZ data, deletion protection, NAT per AZ."
  type        = bool
}

variable "vpc_cidr" {
  description = "VPC CIDR."
  type        = string
}

variable "az_count" {
  description = "Availability zones."
  type        = number
  default     = 2
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listeners."
  type        = string
}

variable "domain_name" {
  description = "Public host name of the orchestrator (a DNS record pointing at the ALB, managed outside)."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the GitHub repository."
  type        = string
}

variable "image_tag" {
  description = "Tag of the image the bootstrap task definitions use (the first pushed release)."
  type        = string
}

variable "ecr_repository_name" {
  description = "ECR repository name."
  type        = string
}

variable "services" {
  description = "The ECS services of the platform, keyed by ECS service name. Exactly one is load-balanced (the orchestrator)."
  type = map(object({
    container_name = string
    container_port = optional(number)
    command        = list(string)
    load_balanced  = bool
    strategy       = string
    pause_stages   = list(string)
    cpu            = number
    memory         = number
    desired_count  = number
    min_count      = number
    max_count      = number
    spot_weight    = optional(number, 0)
    agent_kind     = optional(string)
  }))
  validation {
    condition     = length([for s in values(var.services) : s if s.load_balanced]) == 1
    error_message = "Exactly one service (the orchestrator) must be load_balanced."
  }
}

variable "migration_task" {
  description = "The one-off migration task the deployer runs before updating services."
  type = object({
    family         = string
    container_name = string
    command        = list(string)
    cpu            = number
    memory         = number
  })
}

variable "bake_time_minutes" {
  description = "BLUE_GREEN bake time."
  type        = number
}

variable "pause_timeout_minutes" {
  description = "PAUSE hook timeout; ECS rolls back by itself when the deployer does not answer in time."
  type        = number
  default     = 30
}

variable "test_listener_port" {
  description = "Port of the ALB test listener."
  type        = number
  default     = 8443
}

variable "backlog_metric_namespace" {
  description = "CloudWatch namespace of the stream backlog metric the orchestrator publishes."
  type        = string
  default     = "Agentic/Platform"
}

variable "backlog_metric_name" {
  description = "Name of the stream backlog metric (dimension AgentKind)."
  type        = string
  default     = "StreamBacklog"
}

variable "log_retention_days" {
  description = "Log retention."
  type        = number
  default     = 365
}

variable "state_bucket" {
  description = "Terraform state bucket (created by terraform/bootstrap)."
  type        = string
}

variable "state_kms_key_arn" {
  description = "KMS key of the state bucket (output of terraform/bootstrap)."
  type        = string
}

variable "region" {
  description = "Region of the environment (the provider's region; passed explicitly so no 6.x-only data source attribute is needed)."
  type        = string
}

variable "create_ecr_repository" {
  description = "Create the ECR repository here (true), or use the one of that name another environment in the same account created (false)."
  type        = bool
  default     = true
}

variable "test_listener_cidrs" {
  description = "CIDRs allowed to reach the ALB test listener: where the smoke checks run from (the CI runners' egress)."
  type        = list(string)
  validation {
    condition     = length(var.test_listener_cidrs) > 0 && alltrue([for c in var.test_listener_cidrs : can(cidrhost(c, 0))])
    error_message = "test_listener_cidrs must list at least one valid IPv4 CIDR."
  }
}

variable "secret_versions" {
  description = "Rotation counters of the generated secrets (write-only arguments): raise one and apply to generate and store a new value."
  type = object({
    database  = optional(number, 1)
    redis     = optional(number, 1)
    api_token = optional(number, 1)
  })
  default = {}
}

variable "plan_pull_requests" {
  description = "Whether pull requests may run `terraform plan` for this environment (read-only role, no secret values, no refresh)."
  type        = bool
}
