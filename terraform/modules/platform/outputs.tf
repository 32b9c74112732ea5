# Every value the deployer needs, flat and named for `tf_output "<name>"` in deployer.toml and
# templates/ (docs/aws.md lists them). Never copy ARNs by hand.

output "aws_region" {
  description = "Region of the environment."
  value       = local.region
}

output "aws_account_id" {
  description = "Account of the environment."
  value       = local.account
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.cluster.cluster_name
}

output "ecs_cluster_arn" {
  description = "ECS cluster ARN."
  value       = module.cluster.cluster_arn
}

output "ecs_service_names" {
  description = "ECS services by name (keys equal values)."
  value       = { for k, m in module.service : k => m.service_name }
}

output "task_definition_families" {
  description = "Task definition family per ECS service, plus `migrate`."
  value       = merge({ for k, m in module.service : k => m.task_definition_family }, { migrate = aws_ecs_task_definition.migrate.family })
}

output "ecr_repository_name" {
  description = "ECR repository."
  value       = module.ecr.repository_name
}

output "ecr_repository_url" {
  description = "ECR repository URL (no tag)."
  value       = module.ecr.repository_url
}

output "log_group_name" {
  description = "awslogs-group of every container; the stream prefix is the service name."
  value       = module.cluster.log_group_name
}

output "task_execution_role_arn" {
  description = "executionRoleArn of every task definition."
  value       = module.cluster.execution_role_arn
}

output "orchestrator_task_role_arn" {
  description = "taskRoleArn of the orchestrator."
  value       = local.task_roles["orchestrator"]
}

output "agent_task_role_arn" {
  description = "taskRoleArn of the agents."
  value       = local.task_roles["agent"]
}

output "migrate_task_role_arn" {
  description = "taskRoleArn of the migration task."
  value       = local.task_roles["migrate"]
}

output "database_url_secret_arn" {
  description = "Secret for DATABASE_URL (secrets[].valueFrom)."
  value       = module.data.database_url_secret_arn
}

output "redis_url_secret_arn" {
  description = "Secret for REDIS_URL."
  value       = module.data.redis_url_secret_arn
}

output "api_token_secret_arn" {
  description = "Secret for PLATFORM_API_TOKEN."
  value       = module.data.api_token_secret_arn
}

output "private_subnet_ids" {
  description = "Subnets of tasks (RunTask of the migration)."
  value       = module.network.private_subnet_ids
}

output "tasks_security_group_id" {
  description = "Security group of tasks (RunTask of the migration)."
  value       = aws_security_group.tasks.id
}

output "orchestrator_target_group_arn" {
  description = "Primary (blue) target group of the orchestrator at creation."
  value       = module.alb.target_group_arns["blue"]
}

output "orchestrator_alternate_target_group_arn" {
  description = "Alternate (green) target group of the orchestrator at creation."
  value       = module.alb.target_group_arns["green"]
}

output "orchestrator_target_group_names" {
  description = "Both orchestrator target group names (blue, green)."
  value       = module.alb.target_group_names
}

output "production_listener_rule_arn" {
  description = "Listener rule of production traffic."
  value       = module.alb.production_listener_rule_arn
}

output "test_listener_rule_arn" {
  description = "Listener rule of test traffic."
  value       = module.alb.test_listener_rule_arn
}

output "ecs_infrastructure_role_arn" {
  description = "Role ECS uses to shift ALB traffic."
  value       = module.alb.ecs_infrastructure_role_arn
}

output "alb_dns_name" {
  description = "ALB DNS name (point domain_name at it)."
  value       = module.alb.dns_name
}

output "production_url" {
  description = "Base URL of production traffic (smoke checks during bake)."
  value       = "https://${var.domain_name}"
}

output "test_url" {
  description = "Base URL of test traffic (smoke checks at POST_TEST_TRAFFIC_SHIFT)."
  value       = "https://${var.domain_name}:${module.alb.test_listener_port}"
}

output "deploy_lock_table_name" {
  description = "DynamoDB table of the deploy lock."
  value       = module.deploy_state.lock_table_name
}

output "deploy_audit_table_name" {
  description = "DynamoDB table of the release audit log."
  value       = module.deploy_state.audit_table_name
}

output "github_deploy_role_arn" {
  description = "Role the release workflow assumes (secret AWS_DEPLOY_ROLE_ARN of the GitHub environment)."
  value       = module.github.deploy_role_arn
}

output "github_terraform_plan_role_arn" {
  description = "Role terraform plan assumes."
  value       = module.github.terraform_plan_role_arn
}

output "github_terraform_plan_main_role_arn" {
  description = "Role terraform plan assumes on main (the plan the apply job applies)."
  value       = module.github.terraform_plan_main_role_arn
}

output "github_terraform_apply_role_arn" {
  description = "Role terraform apply assumes."
  value       = module.github.terraform_apply_role_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms (subscribe on-call)."
  value       = aws_sns_topic.alarms.arn
}
