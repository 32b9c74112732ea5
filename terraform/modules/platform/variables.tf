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
