locals {
  deployment_alarm_names = concat(
    [aws_cloudwatch_metric_alarm.memory_high.alarm_name],
    local.load_balanced ? [aws_cloudwatch_metric_alarm.target_5xx[0].alarm_name] : [],
  )
}

resource "aws_cloudwatch_metric_alarm" "memory_high" {
  alarm_name          = "${var.cluster_name}-${var.name}-memory-high"
  alarm_description   = "Memory of ${var.name} above 90% for 3 minutes; rolls a deployment back."
  namespace           = "AWS/ECS"
  metric_name         = "MemoryUtilization"
  dimensions          = { ClusterName = var.cluster_name, ServiceName = var.name }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 3
  threshold           = 90
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "cpu_high" {
  alarm_name          = "${var.cluster_name}-${var.name}-cpu-high"
  alarm_description   = "CPU of ${var.name} above 90% for 10 minutes despite autoscaling."
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  dimensions          = { ClusterName = var.cluster_name, ServiceName = var.name }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 10
  threshold           = 90
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
}

# 5xx from the orchestrator's targets in either colour: used by ECS to roll back a deployment.
resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  count               = local.load_balanced ? 1 : 0
  alarm_name          = "${var.cluster_name}-${var.name}-target-5xx"
  alarm_description   = "More than 10 target 5xx per minute on ${var.name} for 2 minutes; rolls a deployment back."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 2
  threshold           = 10
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]

  dynamic "metric_query" {
    for_each = var.load_balancer.target_group_arn_suffixes
    content {
      id = "tg${metric_query.key}"
      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = "HTTPCode_Target_5XX_Count"
        dimensions  = { LoadBalancer = var.load_balancer.alb_arn_suffix, TargetGroup = metric_query.value }
        stat        = "Sum"
        period      = 60
      }
    }
  }

  metric_query {
    id          = "total"
    expression  = "SUM(METRICS())"
    label       = "target 5xx, both colours"
    return_data = true
  }
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this.name}"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  count              = var.scaling.cpu_target == null ? 0 : 1
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling.cpu_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Requests per running task across the whole ALB: independent of which colour is live.
resource "aws_appautoscaling_policy" "requests" {
  count              = var.scaling.requests_per_task_target == null || !local.load_balanced ? 0 : 1
  name               = "${var.name}-requests-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling.requests_per_task_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    customized_metric_specification {
      metrics {
        id          = "requests"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/ApplicationELB"
            metric_name = "RequestCount"
            dimensions {
              name  = "LoadBalancer"
              value = var.load_balancer.alb_arn_suffix
            }
          }
        }
      }
      metrics {
        id          = "tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = var.cluster_name
            }
            dimensions {
              name  = "ServiceName"
              value = var.name
            }
          }
        }
      }
      metrics {
        id          = "per_task"
        expression  = "requests / MAX([tasks, 1])"
        label       = "ALB requests per running task"
        return_data = true
      }
    }
  }
}

# Agents scale on the backlog of their stream, published by the orchestrator.
resource "aws_appautoscaling_policy" "backlog" {
  count              = var.scaling.backlog_per_task_target == null ? 0 : 1
  name               = "${var.name}-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling.backlog_per_task_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 30
    customized_metric_specification {
      metrics {
        id          = "backlog"
        return_data = false
        metric_stat {
          stat = "Maximum"
          metric {
            namespace   = var.scaling.backlog_metric.namespace
            metric_name = var.scaling.backlog_metric.name
            dynamic "dimensions" {
              for_each = var.scaling.backlog_metric.dimensions
              content {
                name  = dimensions.key
                value = dimensions.value
              }
            }
          }
        }
      }
      metrics {
        id          = "tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = var.cluster_name
            }
            dimensions {
              name  = "ServiceName"
              value = var.name
            }
          }
        }
      }
      metrics {
        id          = "per_task"
        expression  = "backlog / MAX([tasks, 1])"
        label       = "stream backlog per running task"
        return_data = true
      }
    }
  }
}
