output "service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "task_definition_family" {
  description = "Task definition family."
  value       = aws_ecs_task_definition.bootstrap.family
}

output "container_name" {
  description = "Essential container name."
  value       = var.container_name
}

output "alarm_names" {
  description = "Alarms that roll a deployment back."
  value       = local.deployment_alarm_names
}

output "deployment_configuration" {
  description = "The service's deployment configuration: strategy, bake time, PAUSE hooks and their timeout action."
  value       = local.deployment_configuration
}
