//! CloudWatch GetMetricData for the metric analysis: per-period values of a few metric queries,
//! one request (paginated) for all of them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use aws_sdk_cloudwatch::Client as CloudWatch;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};

/// One metric of one target group: what a query asks for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Query id: lowercase letters and digits, starting with a letter.
    pub id: String,
    pub namespace: String,
    pub metric: String,
    pub stat: String,
    pub dimensions: Vec<(String, String)>,
}

/// Per query id: the value of each period, keyed by the period's start (epoch seconds).
pub type Series = BTreeMap<String, BTreeMap<i64, f64>>;

/// The values of `queries` per `period` from `start` (aligned down to the period) to `end`.
pub async fn values(
    cw: &CloudWatch,
    queries: &[Query],
    start: SystemTime,
    end: SystemTime,
    period: Duration,
) -> Result<Series> {
    let period_s = period.as_secs().max(1) as i32;
    let start_s = epoch(start);
    let aligned = start_s - start_s.rem_euclid(i64::from(period_s));
    let mut request = cw
        .get_metric_data()
        .start_time(DateTime::from_secs(aligned))
        .end_time(DateTime::from_secs(epoch(end) + 1))
        .scan_by(ScanBy::TimestampAscending);
    for q in queries {
        let mut metric = Metric::builder()
            .namespace(&q.namespace)
            .metric_name(&q.metric);
        for (name, value) in &q.dimensions {
            metric = metric.dimensions(Dimension::builder().name(name).value(value).build());
        }
        request = request.metric_data_queries(
            MetricDataQuery::builder()
                .id(&q.id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric.build())
                        .period(period_s)
                        .stat(&q.stat)
                        .build(),
                )
                .return_data(true)
                .build(),
        );
    }
    let mut out = Series::new();
    let mut token: Option<String> = None;
    loop {
        let page = request
            .clone()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", super::error_chain(&e)))
            .context("CloudWatch GetMetricData")?;
        for r in page.metric_data_results() {
            let series = out
                .entry(r.id().unwrap_or_default().to_owned())
                .or_default();
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                series.insert(t.secs(), *v);
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(out);
        }
    }
}

fn epoch(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
