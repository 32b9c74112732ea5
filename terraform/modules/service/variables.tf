variable "name" {
  description = "ECS service name (also the log stream prefix)."
  type        = string
}

variable "region" {
  description = "Region of the log group (awslogs-region)."
  type        = string
}

variable "family" {
  description = "Task definition family the deployer registers revisions into."
  type        = string
}

variable "cluster_arn" {
  description = "Cluster ARN."
  type        = string
}

variable "cluster_name" {
  description = "Cluster name (autoscaling resource id, alarm dimensions)."
  type        = string
}

variable "container_name" {
  description = "Name of the essential container."
  type        = string
}

variable "container_port" {
  description = "Container port for the load balancer; null for headless services."
  type        = number
  default     = null
}

variable "command" {
  description = "Container command (arguments to the image's entrypoint)."
  type        = list(string)
}

variable "image" {
  description = "Image of the bootstrap revision (repository URL and tag)."
  type        = string
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
}

variable "execution_role_arn" {
  description = "Task execution role."
  type        = string
}

variable "task_role_arn" {
  description = "Task role."
  type        = string
}

variable "environment" {
  description = "Plain environment variables of the bootstrap revision."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables read from Secrets Manager: name => secret ARN."
  type        = map(string)
  default     = {}
}

variable "health_check_command" {
  description = "Container health check command, or null."
  type        = list(string)
  default     = null
}

variable "log_group_name" {
  description = "Log group of the containers."
  type        = string
}

variable "desired_count" {
  description = "Initial desired count (autoscaling owns it afterwards)."
  type        = number
}

variable "min_count" {
  description = "Autoscaling minimum."
  type        = number
}

variable "max_count" {
  description = "Autoscaling maximum."
  type        = number
}

variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks."
  type        = list(string)
}

variable "capacity_providers" {
  description = "Capacity provider strategy."
  type = list(object({
    name   = string
    base   = number
    weight = number
  }))
  default = [{ name = "FARGATE", base = 1, weight = 1 }]
}

variable "strategy" {
  description = "ECS deployment strategy: BLUE_GREEN (load-balanced services) or ROLLING."
  type        = string
  validation {
    condition     = contains(["BLUE_GREEN", "ROLLING"], var.strategy)
    error_message = "strategy must be BLUE_GREEN or ROLLING."
  }
}

variable "bake_time_minutes" {
  description = "BLUE_GREEN: minutes both revisions stay up after production traffic moved."
  type        = number
  default     = 5
}

variable "pause_stages" {
  description = "Lifecycle stages with a PAUSE hook (the deployer continues or rolls back there)."
  type        = list(string)
  default     = []
}

variable "pause_timeout_minutes" {
  description = "How long a PAUSE hook waits for the deployer before ECS rolls back by itself."
  type        = number
  default     = 30
}

variable "load_balancer" {
  description = "Blue/green load balancer wiring, or null for headless services."
  type = object({
    target_group_arn             = string
    alternate_target_group_arn   = string
    production_listener_rule_arn = string
    test_listener_rule_arn       = string
    role_arn                     = string
    alb_arn_suffix               = string
    target_group_arn_suffixes    = list(string)
  })
  default = null
}

variable "scaling" {
  description = "Target tracking: cpu (percent), requests_per_task (ALB requests per task per minute), backlog_per_task (stream entries per task, from the metric the orchestrator publishes)."
  type = object({
    cpu_target               = optional(number)
    requests_per_task_target = optional(number)
    backlog_per_task_target  = optional(number)
    backlog_metric = optional(object({
      namespace  = string
      name       = string
      dimensions = map(string)
    }))
  })
}

variable "alarm_topic_arn" {
  description = "SNS topic notified by the service alarms."
  type        = string
}
