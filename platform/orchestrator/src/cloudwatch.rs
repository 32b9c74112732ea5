//! Publishes the per-kind stream backlog to CloudWatch (PutMetricData), the metric the agents'
//! autoscaling (terraform: target tracking per running task) reads. Off unless
//! `PLATFORM_CLOUDWATCH_NAMESPACE` is set; the task definition sets it to [`NAMESPACE`], and the
//! consistency test holds namespace, metric name and dimension equal to terraform's.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use platform_bus::{ConfigError, env_parse};
use platform_core::Stage;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The namespace terraform's autoscaling reads (`backlog_metric_namespace`).
pub const NAMESPACE: &str = "Agentic/Platform";
/// The metric (`backlog_metric_name`): undelivered task entries of a kind's stream.
pub const BACKLOG_METRIC: &str = "StreamBacklog";
/// Its one dimension; the value is the agent kind (`scaffold`, …).
pub const KIND_DIMENSION: &str = "AgentKind";

#[derive(Debug, Clone)]
pub struct CloudWatchConfig {
    pub namespace: String,
    pub interval: Duration,
}

impl CloudWatchConfig {
    /// `PLATFORM_CLOUDWATCH_NAMESPACE` (unset or empty: publishing is off) and
    /// `PLATFORM_CLOUDWATCH_INTERVAL_MS` (default 60000).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(namespace) = std::env::var("PLATFORM_CLOUDWATCH_NAMESPACE")
            .ok()
            .filter(|n| !n.trim().is_empty())
        else {
            return Ok(None);
        };
        let ms: u64 = env_parse("PLATFORM_CLOUDWATCH_INTERVAL_MS", 60_000u64)?;
        Ok(Some(Self {
            namespace: namespace.trim().to_owned(),
            interval: Duration::from_millis(ms.max(100)),
        }))
    }
}

/// The data points of one publication: the backlog of every kind.
pub fn backlog_data(backlogs: &[(Stage, u64)]) -> Vec<MetricDatum> {
    backlogs
        .iter()
        .map(|(kind, n)| {
            MetricDatum::builder()
                .metric_name(BACKLOG_METRIC)
                .dimensions(
                    Dimension::builder()
                        .name(KIND_DIMENSION)
                        .value(kind.as_str())
                        .build(),
                )
                .value(*n as f64)
                .unit(StandardUnit::Count)
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
                    std::time::SystemTime::now(),
                ))
                .build()
        })
        .collect()
}

pub fn spawn(
    state: Arc<AppState>,
    cfg: CloudWatchConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let client = aws_sdk_cloudwatch::Client::new(&sdk);
        tracing::info!(namespace = %cfg.namespace, interval_ms = cfg.interval.as_millis() as u64, "publishing the stream backlog to CloudWatch");
        loop {
            let mut backlogs = Vec::new();
            for kind in Stage::ALL {
                match state.bus.task_backlog(kind).await {
                    Ok(n) => backlogs.push((kind, n)),
                    Err(e) => {
                        tracing::warn!(kind = %kind, error = %e, "reading a stream backlog failed")
                    }
                }
            }
            if !backlogs.is_empty() {
                let put = client
                    .put_metric_data()
                    .namespace(&cfg.namespace)
                    .set_metric_data(Some(backlog_data(&backlogs)))
                    .send();
                match tokio::time::timeout(Duration::from_secs(10), put).await {
                    Ok(Ok(_)) => tracing::debug!("stream backlog published"),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %aws_sdk_cloudwatch::error::DisplayErrorContext(&e), "PutMetricData failed");
                    }
                    Err(_) => tracing::warn!("PutMetricData timed out after 10 s"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(cfg.interval) => {}
            }
        }
    })
}
