# Root outputs = the platform module's, one by one: `terraform output -json > <file>` is what the
# deployer's `tf_output "<name>"` reads. Shared by both environments (production links here).

output "aws_region" {
  description = "Region of the environment."
  value       = module.platform.aws_region
}

output "aws_account_id" {
  description = "Account of the environment."
  value       = module.platform.aws_account_id
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.platform.ecs_cluster_name
}

output "ecs_cluster_arn" {
  description = "ECS cluster ARN."
  value       = module.platform.ecs_cluster_arn
}

output "ecs_service_names" {
  description = "ECS services by name (keys equal values)."
  value       = module.platform.ecs_service_names
}

output "task_definition_families" {
  description = "Task definition family per ECS service, plus `migrate`."
  value       = module.platform.task_definition_families
}

output "ecr_repository_name" {
  description = "ECR repository."
  value       = module.platform.ecr_repository_name
}

output "ecr_repository_url" {
  description = "ECR repository URL (no tag)."
  value       = module.platform.ecr_repository_url
}

output "log_group_name" {
  description = "awslogs-group of every container; the stream prefix is the service name."
  value       = module.platform.log_group_name
}

output "task_execution_role_arn" {
  description = "executionRoleArn of every task definition."
  value       = module.platform.task_execution_role_arn
}

output "orchestrator_task_role_arn" {
  description = "taskRoleArn of the orchestrator."
  value       = module.platform.orchestrator_task_role_arn
}

output "agent_task_role_arn" {
  description = "taskRoleArn of the agents."
  value       = module.platform.agent_task_role_arn
}

output "migrate_task_role_arn" {
  description = "taskRoleArn of the migration task."
  value       = module.platform.migrate_task_role_arn
}

output "database_url_secret_arn" {
  description = "Secret for DATABASE_URL (secrets[].valueFrom)."
  value       = module.platform.database_url_secret_arn
}

output "redis_url_secret_arn" {
  description = "Secret for REDIS_URL."
  value       = module.platform.redis_url_secret_arn
}

output "api_token_secret_arn" {
  description = "Secret for PLATFORM_API_TOKEN."
  value       = module.platform.api_token_secret_arn
}

output "private_subnet_ids" {
  description = "Subnets of tasks (RunTask of the migration)."
  value       = module.platform.private_subnet_ids
}

output "tasks_security_group_id" {
  description = "Security group of tasks (RunTask of the migration)."
  value       = module.platform.tasks_security_group_id
}

output "orchestrator_target_group_arn" {
  description = "Primary (blue) target group of the orchestrator at creation."
  value       = module.platform.orchestrator_target_group_arn
}

output "orchestrator_alternate_target_group_arn" {
  description = "Alternate (green) target group of the orchestrator at creation."
  value       = module.platform.orchestrator_alternate_target_group_arn
}

output "orchestrator_target_group_names" {
  description = "Both orchestrator target group names (blue, green)."
  value       = module.platform.orchestrator_target_group_names
}

output "production_listener_rule_arn" {
  description = "Listener rule of production traffic."
  value       = module.platform.production_listener_rule_arn
}

output "test_listener_rule_arn" {
  description = "Listener rule of test traffic."
  value       = module.platform.test_listener_rule_arn
}

output "ecs_infrastructure_role_arn" {
  description = "Role ECS uses to shift ALB traffic."
  value       = module.platform.ecs_infrastructure_role_arn
}

output "alb_dns_name" {
  description = "ALB DNS name (point domain_name at it)."
  value       = module.platform.alb_dns_name
}

output "production_url" {
  description = "Base URL of production traffic (smoke checks during bake)."
  value       = module.platform.production_url
}

output "test_url" {
  description = "Base URL of test traffic (smoke checks at POST_TEST_TRAFFIC_SHIFT)."
  value       = module.platform.test_url
}

output "deploy_lock_table_name" {
  description = "DynamoDB table of the deploy lock."
  value       = module.platform.deploy_lock_table_name
}

output "deploy_audit_table_name" {
  description = "DynamoDB table of the release audit log."
  value       = module.platform.deploy_audit_table_name
}

output "github_deploy_role_arn" {
  description = "Role the release workflow assumes (secret AWS_DEPLOY_ROLE_ARN of the GitHub environment)."
  value       = module.platform.github_deploy_role_arn
}

output "github_terraform_plan_role_arn" {
  description = "Role terraform plan assumes on pull requests (read only, no secret values)."
  value       = module.platform.github_terraform_plan_role_arn
}

output "github_terraform_plan_main_role_arn" {
  description = "Role terraform plan assumes on main (the plan the apply job applies)."
  value       = module.platform.github_terraform_plan_main_role_arn
}

output "github_terraform_apply_role_arn" {
  description = "Role terraform apply assumes."
  value       = module.platform.github_terraform_apply_role_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms (subscribe on-call)."
  value       = module.platform.alarm_topic_arn
}
