# Application Load Balancer for the orchestrator's ECS native blue/green deployments:
# - HTTPS production listener (+ HTTP -> HTTPS redirect) and an HTTPS test listener;
# - a production and a test listener rule, each forwarding to the blue/green target group pair
#   (ECS moves the weights during a deployment, so Terraform ignores them after creation);
# - two `ip` target groups with fast health checks and a short deregistration delay;
# - the ECS infrastructure role ECS assumes to change the listener rules.
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

variable "name" {
  description = "Prefix for the ALB, target groups and roles (at most 21 characters: target group names are limited to 32)."
  type        = string
  validation {
    condition     = length(var.name) <= 21
    error_message = "name must be at most 21 characters so that \"<name>-orc-green\" fits the 32-character target group limit."
  }
}

variable "vpc_id" {
  description = "VPC of the targets."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the ALB."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listeners."
  type        = string
}

variable "container_port" {
  description = "Port the orchestrator container listens on."
  type        = number
}

variable "health_check_path" {
  description = "Readiness path probed by the target groups."
  type        = string
  default     = "/health/ready"
}

variable "test_listener_port" {
  description = "Port of the test listener (test traffic during a blue/green deployment)."
  type        = number
  default     = 8443
}

variable "test_listener_cidrs" {
  description = "Who may reach the test listener (where the smoke checks run from). No default: the test listener serves a revision that has not passed its checks yet."
  type        = list(string)
}

variable "deletion_protection" {
  description = "Protect the ALB from deletion."
  type        = bool
  default     = true
}

variable "access_logs_bucket" {
  description = "S3 bucket for access logs."
  type        = string
}

variable "web_acl_arn" {
  description = "Optional WAFv2 web ACL to associate with the ALB."
  type        = string
  default     = null
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Public HTTPS in; targets out."
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  #checkov:skip=CKV_AWS_260:Port 80 is open only to answer with a redirect to HTTPS.
  security_group_id = aws_security_group.alb.id
  description       = "HTTP, redirected to HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 80
  to_port           = 80
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS production traffic"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "test" {
  for_each          = toset(var.test_listener_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS test traffic (smoke checks during blue/green)"
  cidr_ipv4         = each.value
  from_port         = var.test_listener_port
  to_port           = var.test_listener_port
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "targets" {
  security_group_id = aws_security_group.alb.id
  description       = "To the orchestrator tasks"
  cidr_ipv4         = data.aws_vpc.this.cidr_block
  from_port         = var.container_port
  to_port           = var.container_port
  ip_protocol       = "tcp"
}

data "aws_vpc" "this" {
  id = var.vpc_id
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_150:Deletion protection follows var.deletion_protection: on in production, off in staging so it can be torn down.
  #checkov:skip=CKV2_AWS_28:A WAF web ACL is an account-level choice; pass web_acl_arn to associate one.
  #checkov:skip=CKV2_AWS_76:Same: the WAF web ACL (and its managed rule groups) is supplied by the account, not this module.
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  access_logs {
    bucket  = var.access_logs_bucket
    prefix  = var.name
    enabled = true
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  count        = var.web_acl_arn == null ? 0 : 1
  resource_arn = aws_lb.this.arn
  web_acl_arn  = var.web_acl_arn
}

resource "aws_lb_target_group" "orchestrator" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; ALB to task traffic stays inside the VPC, restricted by security groups.
  for_each = toset(["blue", "green"])

  name                 = "${var.name}-orc-${each.key}"
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = var.container_port
  vpc_id               = var.vpc_id
  deregistration_delay = 10

  health_check {
    path                = var.health_check_path
    matcher             = "200"
    interval            = 5
    timeout             = 2
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "production" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      message_body = "{\"error\":{\"code\":\"not_found\",\"message\":\"no route\"}}"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener" "test" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.test_listener_port
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      message_body = "{\"error\":{\"code\":\"not_found\",\"message\":\"no route\"}}"
      status_code  = "404"
    }
  }
}

# ECS owns the weights once the service exists: it moves traffic between blue and green.
resource "aws_lb_listener_rule" "orchestrator" {
  for_each = {
    production = aws_lb_listener.production.arn
    test       = aws_lb_listener.test.arn
  }

  listener_arn = each.value
  priority     = 100

  condition {
    path_pattern {
      values = ["/*"]
    }
  }

  action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.orchestrator["blue"].arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.orchestrator["green"].arn
        weight = 0
      }
    }
  }

  lifecycle {
    ignore_changes = [action]
  }
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ecs_infrastructure" {
  name               = "${var.name}-ecs-infra-lb"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

data "aws_partition" "current" {}

# AWS managed policy (no `service-role/` path): see docs/aws.md for the source.
resource "aws_iam_role_policy_attachment" "ecs_infrastructure" {
  role       = aws_iam_role.ecs_infrastructure.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
}

output "security_group_id" {
  description = "ALB security group (source of traffic to the orchestrator tasks)."
  value       = aws_security_group.alb.id
}

output "dns_name" {
  description = "ALB DNS name."
  value       = aws_lb.this.dns_name
}

output "arn_suffix" {
  description = "ALB ARN suffix (CloudWatch dimension)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arns" {
  description = "Orchestrator target groups by colour (blue is production at creation)."
  value       = { for k, tg in aws_lb_target_group.orchestrator : k => tg.arn }
}

output "target_group_names" {
  description = "Orchestrator target group names by colour."
  value       = { for k, tg in aws_lb_target_group.orchestrator : k => tg.name }
}

output "target_group_arn_suffixes" {
  description = "Target group ARN suffixes (CloudWatch dimension)."
  value       = { for k, tg in aws_lb_target_group.orchestrator : k => tg.arn_suffix }
}

output "production_listener_rule_arn" {
  description = "Listener rule that carries production traffic."
  value       = aws_lb_listener_rule.orchestrator["production"].arn
}

output "test_listener_rule_arn" {
  description = "Listener rule that carries test traffic."
  value       = aws_lb_listener_rule.orchestrator["test"].arn
}

output "test_listener_port" {
  description = "Port of the test listener."
  value       = var.test_listener_port
}

# Only once the role has its policy: a service created with the bare role fails its first
# deployment (ECS cannot modify the listener rules).
output "ecs_infrastructure_role_arn" {
  description = "Role ECS assumes to shift traffic between the target groups."
  value       = aws_iam_role.ecs_infrastructure.arn
  depends_on  = [aws_iam_role_policy_attachment.ecs_infrastructure]
}
