# `terraform test` of the service module with a mock AWS provider (no account, no network):
# scripts/checks/terraform-test.sh runs it. The provider on the test machine (hashicorp/aws
# 5.100.0) predates the deployment_configuration block, so the strategy, bake time and PAUSE
# hook are asserted on the value that block is built from (output deployment_configuration);
# everything else on the planned resources themselves.
mock_provider "aws" {
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:eu-west-1:111111111111:task-definition/agentic-test-orchestrator:1"
    }
  }
}

variables {
  name               = "orchestrator"
  region             = "eu-west-1"
  family             = "agentic-test-orchestrator"
  cluster_arn        = "arn:aws:ecs:eu-west-1:111111111111:cluster/agentic-test"
  cluster_name       = "agentic-test"
  container_name     = "orchestrator"
  container_port     = 3000
  command            = ["orchestrator"]
  image              = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/agentic-platform:0000000"
  cpu                = 1024
  memory             = 2048
  execution_role_arn = "arn:aws:iam::111111111111:role/agentic-test-task-execution"
  task_role_arn      = "arn:aws:iam::111111111111:role/agentic-test-task-orchestrator"
  log_group_name     = "/ecs/agentic-test"
  desired_count      = 2
  min_count          = 1
  max_count          = 6
  subnet_ids         = ["subnet-00000000000000001", "subnet-00000000000000002"]
  security_group_ids = ["sg-00000000000000001"]
  alarm_topic_arn    = "arn:aws:sns:eu-west-1:111111111111:agentic-test-alarms"
  strategy           = "BLUE_GREEN"
  bake_time_minutes  = 2
  pause_stages       = ["POST_TEST_TRAFFIC_SHIFT"]
  load_balancer = {
    target_group_arn             = "arn:aws:elasticloadbalancing:eu-west-1:111111111111:targetgroup/agentic-test-orc-blue/0000000000000001"
    alternate_target_group_arn   = "arn:aws:elasticloadbalancing:eu-west-1:111111111111:targetgroup/agentic-test-orc-green/0000000000000002"
    production_listener_rule_arn = "arn:aws:elasticloadbalancing:eu-west-1:111111111111:listener-rule/app/agentic-test/1/2/3"
    test_listener_rule_arn       = "arn:aws:elasticloadbalancing:eu-west-1:111111111111:listener-rule/app/agentic-test/1/4/5"
    role_arn                     = "arn:aws:iam::111111111111:role/agentic-test-ecs-infra-lb"
    alb_arn_suffix               = "app/agentic-test/0000000000000001"
    target_group_arn_suffixes    = ["targetgroup/agentic-test-orc-blue/0000000000000001", "targetgroup/agentic-test-orc-green/0000000000000002"]
  }
  scaling = {
    cpu_target               = 60
    requests_per_task_target = 1000
  }
}

run "load_balanced_service_is_blue_green_with_a_pause_hook" {
  command = apply

  assert {
    condition     = output.deployment_configuration.strategy == "BLUE_GREEN"
    error_message = "a load-balanced service must be released BLUE_GREEN"
  }
  assert {
    condition     = output.deployment_configuration.bake_time_in_minutes == 2
    error_message = "bake time must be var.bake_time_minutes"
  }
  assert {
    condition     = length(output.deployment_configuration.lifecycle_hooks) == 1
    error_message = "exactly one PAUSE hook"
  }
  assert {
    condition     = output.deployment_configuration.lifecycle_hooks[0].target_type == "PAUSE"
    error_message = "the hook must be a PAUSE hook"
  }
  assert {
    condition     = join(",", output.deployment_configuration.lifecycle_hooks[0].lifecycle_stages) == "POST_TEST_TRAFFIC_SHIFT"
    error_message = "the PAUSE hook must be at POST_TEST_TRAFFIC_SHIFT"
  }
  assert {
    condition     = output.deployment_configuration.lifecycle_hooks[0].timeout_configuration.action == "ROLLBACK"
    error_message = "a PAUSE hook nobody answers must roll back"
  }
  assert {
    condition     = output.deployment_configuration.lifecycle_hooks[0].timeout_configuration.timeout_in_minutes == 30
    error_message = "PAUSE timeout must default to 30 minutes"
  }
  assert {
    condition     = aws_ecs_service.this.deployment_circuit_breaker[0].enable && aws_ecs_service.this.deployment_circuit_breaker[0].rollback
    error_message = "the circuit breaker must be on, with rollback"
  }
  assert {
    condition     = aws_ecs_service.this.alarms[0].enable && aws_ecs_service.this.alarms[0].rollback && length(aws_ecs_service.this.alarms[0].alarm_names) == 2
    error_message = "memory and target-5xx alarms must roll a deployment back"
  }
  assert {
    condition     = one(aws_ecs_service.this.load_balancer).target_group_arn == var.load_balancer.target_group_arn && one(aws_ecs_service.this.load_balancer).container_port == 3000
    error_message = "the service must be registered with the blue target group on the container port"
  }
  assert {
    condition     = aws_ecs_service.this.deployment_controller[0].type == "ECS"
    error_message = "native blue/green needs the ECS deployment controller"
  }
  assert {
    condition     = aws_ecs_service.this.desired_count == 2
    error_message = "the first desired count is var.desired_count"
  }
}

# Autoscaling owns desired_count after creation: a changed value must not be planned.
run "desired_count_is_ignored_after_creation" {
  command = plan

  variables {
    desired_count = 5
  }

  assert {
    condition     = aws_ecs_service.this.desired_count == 2
    error_message = "desired_count must be in ignore_changes (autoscaling owns it)"
  }
}

run "headless_service_is_rolling_without_hooks" {
  command = apply
  # Its own state: the same module instance, not an update of the load-balanced one.
  state_key = "headless"

  variables {
    name           = "agent-scaffold"
    container_name = "agent-scaffold"
    container_port = null
    strategy       = "ROLLING"
    pause_stages   = []
    load_balancer  = null
    scaling = {
      backlog_per_task_target = 20
      backlog_metric          = { namespace = "Agentic/Platform", name = "StreamBacklog", dimensions = { AgentKind = "scaffold" } }
    }
  }

  assert {
    condition     = output.deployment_configuration.strategy == "ROLLING" && length(output.deployment_configuration.lifecycle_hooks) == 0 && output.deployment_configuration.bake_time_in_minutes == null
    error_message = "a headless agent is ROLLING, with no hook and no bake time"
  }
  assert {
    condition     = length(aws_ecs_service.this.load_balancer) == 0
    error_message = "a headless agent has no load balancer"
  }
  assert {
    condition     = aws_ecs_service.this.deployment_circuit_breaker[0].rollback
    error_message = "the circuit breaker rolls agents back too"
  }
}
