# One ECS service of the platform: the service itself, a bootstrap task definition (the deployer
# registers every later revision), deployment safety (circuit breaker, CloudWatch alarms, and for
# BLUE_GREEN a PAUSE hook whose timeout rolls back), and Application Auto Scaling.
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 6.66" }
  }
}

locals {
  blue_green = var.strategy == "BLUE_GREEN"
  # What the service's deployment_configuration block is built from, also an output: the
  # module's `terraform test` asserts on it (the provider on the test machine predates the block,
  # docs/aws.md).
  deployment_configuration = {
    strategy             = var.strategy
    bake_time_in_minutes = local.blue_green ? var.bake_time_minutes : null
    lifecycle_hooks = [for stages in(length(var.pause_stages) > 0 ? [var.pause_stages] : []) : {
      target_type      = "PAUSE"
      lifecycle_stages = stages
      timeout_configuration = {
        timeout_in_minutes = var.pause_timeout_minutes
        action             = "ROLLBACK"
      }
    }]
  }
  load_balanced = var.load_balancer != null
  health_check = var.health_check_command == null ? null : {
    command     = var.health_check_command
    interval    = 10
    timeout     = 3
    retries     = 3
    startPeriod = 10
  }
}

# Bootstrap revision only: after creation the deployer owns the task definition (ignore_changes).
resource "aws_ecs_task_definition" "bootstrap" {
  family                   = var.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name                   = var.container_name
      image                  = var.image
      essential              = true
      command                = var.command
      readonlyRootFilesystem = true
      portMappings = var.container_port == null ? [] : [
        { containerPort = var.container_port, protocol = "tcp", name = "http" }
      ]
      environment = [for k, v in var.environment : { name = k, value = v }]
      secrets     = [for k, v in var.secrets : { name = k, valueFrom = v }]
      healthCheck = local.health_check
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.log_group_name
          awslogs-region        = var.region
          awslogs-stream-prefix = var.name
        }
      }
    }
  ])

  lifecycle {
    ignore_changes = [container_definitions]
  }
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = var.cluster_arn
  task_definition                   = aws_ecs_task_definition.bootstrap.arn
  desired_count                     = var.desired_count
  platform_version                  = "LATEST"
  propagate_tags                    = "SERVICE"
  enable_ecs_managed_tags           = true
  enable_execute_command            = false
  availability_zone_rebalancing     = "ENABLED"
  health_check_grace_period_seconds = local.load_balanced ? 30 : null

  deployment_controller {
    type = "ECS"
  }

  deployment_configuration {
    strategy             = local.deployment_configuration.strategy
    bake_time_in_minutes = local.deployment_configuration.bake_time_in_minutes

    dynamic "lifecycle_hook" {
      for_each = local.deployment_configuration.lifecycle_hooks
      content {
        target_type      = lifecycle_hook.value.target_type
        lifecycle_stages = lifecycle_hook.value.lifecycle_stages
        timeout_configuration {
          timeout_in_minutes = lifecycle_hook.value.timeout_configuration.timeout_in_minutes
          action             = lifecycle_hook.value.timeout_configuration.action
        }
      }
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  alarms {
    alarm_names = local.deployment_alarm_names
    enable      = true
    rollback    = true
  }

  dynamic "capacity_provider_strategy" {
    for_each = var.capacity_providers
    content {
      capacity_provider = capacity_provider_strategy.value.name
      base              = capacity_provider_strategy.value.base
      weight            = capacity_provider_strategy.value.weight
    }
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = local.load_balanced ? [var.load_balancer] : []
    content {
      target_group_arn = load_balancer.value.target_group_arn
      container_name   = var.container_name
      container_port   = var.container_port

      advanced_configuration {
        alternate_target_group_arn = load_balancer.value.alternate_target_group_arn
        production_listener_rule   = load_balancer.value.production_listener_rule_arn
        test_listener_rule         = load_balancer.value.test_listener_rule_arn
        role_arn                   = load_balancer.value.role_arn
      }
    }
  }

  # What the deployer and the autoscaler own. After a blue/green deployment ECS swaps the primary
  # and alternate target groups, so the load_balancer block drifts by design too.
  lifecycle {
    ignore_changes = [task_definition, desired_count, load_balancer]
  }
}
