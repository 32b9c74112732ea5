//! LINEAR and CANARY releases gated at every traffic step, and the metric analysis that judges
//! each step: CloudWatch datapoints the test publishes into moto for the new (green) and old
//! (blue) target group, read back by the deployer with GetMetricData.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_ecs::types::{
    CanaryConfiguration, DeploymentConfiguration, DeploymentStrategy, LinearConfiguration,
};

use crate::support::*;

const ORCHESTRATOR_ONLY: &[Service] = &[Service {
    name: "orchestrator",
    kind: "blue_green",
}];

/// The 5xx share of the new target group may be at most twice the old one's, judged on
/// periods with at least 100 requests; `$extra` adds keys (the inconclusive rule).
macro_rules! analysis_5xx {
    ($extra:literal) => {
        concat!(
            r#"
[[environments.test.analysis]]
name = "5xx rate"
metric = "HTTPCode_Target_5XX_Count"
per = "RequestCount"
dimensions = { LoadBalancer = "app/lb/1" }
max_relative = 2.0
min_requests = 100
"#,
            $extra
        )
    };
}

const ANALYSIS_5XX: &str = analysis_5xx!("");

fn linear_terraform() -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::Linear)
        .linear_configuration(
            LinearConfiguration::builder()
                .step_percent(25.0)
                .step_bake_time_in_minutes(1)
                .build(),
        )
        .build()
}

fn canary_terraform() -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::Canary)
        .canary_configuration(
            CanaryConfiguration::builder()
                .canary_percent(10.0)
                .canary_bake_time_in_minutes(1)
                .build(),
        )
        .build()
}

/// A LINEAR world: 4 steps of 25 %, each baked one emulated minute (`minute_seconds`).
fn linear(extra_toml: &'static str, emulator: serde_json::Value) -> Options {
    Options {
        migration: false,
        minute_seconds: 3.0,
        bake: "0s",
        deployment_timeout: "120s",
        lb_strategy: "linear",
        lb_keys: "step_percent = 25.0\nstep_bake_time = \"1m\"\n",
        extra_toml,
        emulator,
        load_balanced_configuration: Some(linear_terraform()),
        ..Options::default()
    }
}

fn canary(extra_toml: &'static str) -> Options {
    Options {
        migration: false,
        minute_seconds: 3.0,
        bake: "0s",
        deployment_timeout: "120s",
        lb_strategy: "canary",
        lb_keys: "canary_percent = 10.0\ncanary_bake_time = \"1m\"\n",
        extra_toml,
        load_balanced_configuration: Some(canary_terraform()),
        ..Options::default()
    }
}

/// Requests and 5xx responses per second, per target group: what the load balancer reports.
#[derive(Debug, Clone, Copy)]
struct Load {
    requests: f64,
    errors: f64,
}

/// The load balancer's metrics, published every second into the account's CloudWatch for both
/// target groups of the world's pair (as ELB publishes them all the time), at the rates the
/// test sets; stopped when dropped.
struct Traffic {
    rates: std::sync::Arc<std::sync::Mutex<(Load, Load)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(w: &World, blue: Load, green: Load) -> Self {
        let rates = std::sync::Arc::new(std::sync::Mutex::new((blue, green)));
        let cw = aws_sdk_cloudwatch::Client::new(&w.aws.config);
        let lb = w.lb.clone();
        let tail = |arn: &str| arn.rsplit_once(':').map(|(_, t)| t.to_owned()).unwrap();
        let (blue_tg, green_tg) = (tail(&lb.blue), tail(&lb.green));
        let shared = rates.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let (b, g) = *shared.lock().unwrap();
                for (tg, load) in [(&blue_tg, b), (&green_tg, g)] {
                    publish(&cw, tg, load).await;
                }
            }
        });
        Self { rates, task }
    }

    fn set_green(&self, green: Load) {
        self.rates.lock().unwrap().1 = green;
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn publish(cw: &aws_sdk_cloudwatch::Client, tg: &str, load: Load) {
    let dims = [
        Dimension::builder()
            .name("LoadBalancer")
            .value("app/lb/1")
            .build(),
        Dimension::builder().name("TargetGroup").value(tg).build(),
    ];
    let datum = |name: &str, value: f64| {
        MetricDatum::builder()
            .metric_name(name)
            .value(value)
            .timestamp(aws_smithy_types::DateTime::from(
                std::time::SystemTime::now(),
            ))
            .set_dimensions(Some(dims.to_vec()))
            .build()
    };
    cw.put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum("RequestCount", load.requests))
        .metric_data(datum("HTTPCode_Target_5XX_Count", load.errors))
        .send()
        .await
        .expect("PutMetricData into moto's CloudWatch");
}

const BLUE: Load = Load {
    requests: 100.0,
    errors: 0.3,
};
const GREEN_HEALTHY: Load = Load {
    requests: 100.0,
    errors: 0.4,
};
/// 30 times blue's 5xx share.
const GREEN_SICK: Load = Load {
    requests: 100.0,
    errors: 9.0,
};
/// Three times blue's 5xx share (0.9 % vs 0.3 %), over the 2 x baseline limit.
const GREEN_3X: Load = Load {
    requests: 100.0,
    errors: 0.9,
};
/// Six requests a minute: below any period's `min_requests = 100`.
const GREEN_THIN: Load = Load {
    requests: 0.1,
    errors: 0.0,
};

/// The deployments of the service so far (the one that created it): not the release's.
async fn existing(w: &World) -> Vec<String> {
    // Listings lag under the strict emulator: wait until the creation deployment shows.
    test_support::eventually(
        "the creation deployment listed",
        Duration::from_secs(10),
        || async {
            let arns: Vec<String> = w
                .ecs
                .list_service_deployments()
                .cluster(&w.cluster)
                .service("orchestrator")
                .send()
                .await?
                .service_deployments()
                .iter()
                .filter_map(|d| d.service_deployment_arn().map(str::to_owned))
                .collect();
            Ok((!arns.is_empty()).then_some(arns))
        },
    )
    .await
    .unwrap()
}

/// The newest of the release's deployments (not in `before`): its production weight, whether
/// a hook awaits action, and its status.
async fn step(w: &World, before: &[String]) -> Option<(f64, bool, String)> {
    let list = w
        .ecs
        .list_service_deployments()
        .cluster(&w.cluster)
        .service("orchestrator")
        .send()
        .await
        .ok()?;
    let arns: Vec<String> = list
        .service_deployments()
        .iter()
        .filter_map(|d| d.service_deployment_arn().map(str::to_owned))
        .filter(|a| !before.contains(a))
        .collect();
    if arns.is_empty() {
        return None;
    }
    let described = w
        .ecs
        .describe_service_deployments()
        .set_service_deployment_arns(Some(arns))
        .send()
        .await
        .ok()?;
    described
        .service_deployments()
        .iter()
        .filter(|d| d.target_service_revision().is_some())
        .max_by_key(|d| d.created_at().map(|t| t.secs()))
        .map(|d| {
            (
                d.target_service_revision()
                    .and_then(|r| r.requested_production_traffic_weight())
                    .unwrap_or_default(),
                d.lifecycle_hook_details().iter().any(|h| {
                    h.status()
                        == Some(&aws_sdk_ecs::types::DeploymentLifecycleHookStatus::AwaitingAction)
                }),
                d.status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
}

/// Polls the deployment until `until` holds for its (weight, awaiting hook); returns the
/// highest weight seen.
async fn watch_until(
    w: &World,
    before: &[String],
    what: &str,
    within: Duration,
    until: impl Fn(f64, bool, &str) -> bool,
) -> f64 {
    let highest = std::sync::Mutex::new(0.0f64);
    test_support::eventually(what, within, || async {
        Ok(step(w, before)
            .await
            .and_then(|(weight, awaiting, status)| {
                let mut h = highest.lock().unwrap();
                *h = h.max(weight);
                until(weight, awaiting, &status).then_some(())
            }))
    })
    .await
    .unwrap();
    *highest.lock().unwrap()
}

/// A linear release of 4 steps: green's 5xx share jumps to 30 times blue's once it has half of
/// production; the analysis rolls the release back at step 2, before step 3 moves more
/// traffic, with the numbers in the reason. Under both orders of a step's hook and bake (the
/// emulator's `step_hook_timing`: AWS does not document it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linear_release_is_rolled_back_at_step_two_of_four_by_the_analysis() {
    for timing in ["after_bake", "before_bake"] {
        let w = World::with_services(
            linear(
                ANALYSIS_5XX,
                serde_json::json!({"step_hook_timing": timing}),
            ),
            ORCHESTRATOR_ONLY,
        )
        .await;
        let traffic = Traffic::start(&w, BLUE, GREEN_HEALTHY);
        let new = spawn_target(NEW_SHA, None).await;
        let before = existing(&w).await;
        let run = w.background(RELEASE, &new.url);
        watch_until(
            &w,
            &before,
            "step 2 (50 %) reached",
            Duration::from_secs(90),
            |weight, _, _| weight >= 50.0,
        )
        .await;
        traffic.set_green(GREEN_SICK);
        let highest = watch_until(
            &w,
            &before,
            "the deployment rolled back",
            Duration::from_secs(90),
            |_, _, status| status == "ROLLBACK_SUCCESSFUL" || status == "ROLLBACK_FAILED",
        )
        .await;
        let out = run.finish(Duration::from_secs(60)).await;
        assert_exit(&out, Code::RolledBackSmoke);
        assert!(highest < 75.0, "{timing}: step 3 ran ({highest} %)");
        assert_stderr_has(&out, "analysis `5xx rate`: green");
        assert_stderr_has(&out, "vs blue 0.3 %, limit 2 x baseline = 0.6 %");
        w.assert_all_on(OLD_SHA).await;
        let rec = w.last_record().await;
        assert_eq!(
            rec.outcome,
            RecordOutcome::Ended(Outcome::RolledBackSmoke),
            "{timing}"
        );
        // The step summary: a timeline of the steps, and the analysis verdict that decided.
        let summary = std::fs::read_to_string(&w.summary).unwrap();
        for want in [
            "```mermaid\ngantt",
            "section orchestrator",
            "PRODUCTION_TRAFFIC_SHIFT 25%",
            "ROLLBACK_SUCCESSFUL :crit, ",
            // Found while the traffic moves, or at the next step's gate when that comes first.
            "| 5xx rate | orchestrator | ",
            "FAIL: analysis `5xx rate`: green",
        ] {
            assert!(
                summary.contains(want),
                "{timing}: {want:?} not in the summary:\n{summary}"
            );
        }
    }
}

/// Green at three times blue's 5xx share from its first request: the analysis rolls the linear
/// release back at its first step, before a second moves more of production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_at_three_times_blues_error_rate_is_rolled_back_at_the_first_step() {
    let w = World::with_services(
        linear(ANALYSIS_5XX, serde_json::json!({})),
        ORCHESTRATOR_ONLY,
    )
    .await;
    let _traffic = Traffic::start(&w, BLUE, GREEN_3X);
    let new = spawn_target(NEW_SHA, None).await;
    let before = existing(&w).await;
    let run = w.background(RELEASE, &new.url);
    let highest = watch_until(
        &w,
        &before,
        "the deployment rolled back",
        Duration::from_secs(120),
        |_, _, status| status == "ROLLBACK_SUCCESSFUL" || status == "ROLLBACK_FAILED",
    )
    .await;
    let out = run.finish(Duration::from_secs(60)).await;
    assert_exit(&out, Code::RolledBackSmoke);
    // The first step's traffic reached green (the timeline shows it), no second step did.
    assert!(highest <= 25.0, "a second step ran ({highest} %)");
    let summary = std::fs::read_to_string(&w.summary).unwrap();
    assert!(
        summary.contains("PRODUCTION_TRAFFIC_SHIFT 25%"),
        "no first step in the summary:\n{summary}"
    );
    // The reason, then what the failure showed, an item each.
    assert!(
        summary.contains("\n- reason: orchestrator: analysis `5xx rate`: green 0.9 %")
            && summary.contains("\n  - event: (service orchestrator)"),
        "{summary}"
    );
    assert!(
        !stderr(&out).contains("at 50% of production"),
        "a second step was gated"
    );
    assert_stderr_has(
        &out,
        "green 0.9 % HTTPCode_Target_5XX_Count vs blue 0.3 %, limit 2 x baseline = 0.6 %",
    );
    w.assert_all_on(OLD_SHA).await;
}

/// A canary with a healthy green passes every gate: the release succeeds and the step gate's
/// analysis says what it saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_passes_its_analysis() {
    let w = World::with_services(canary(ANALYSIS_5XX), ORCHESTRATOR_ONLY).await;
    let _traffic = Traffic::start(&w, BLUE, GREEN_HEALTHY);
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    assert_exit(&out, Code::Ok);
    assert_stderr_has(&out, "(new revision at 10");
    let summary = std::fs::read_to_string(&w.summary).unwrap();
    assert!(
        summary.contains("| 5xx rate | orchestrator | gate at 10% of production | pass: "),
        "{summary}"
    );
    assert_stderr_has(
        &out,
        "analysis `5xx rate`: green 0.4 % HTTPCode_Target_5XX_Count within limits",
    );
    w.assert_all_on(NEW_SHA).await;
}

const FEW_REQUESTS_FAIL: &str = analysis_5xx!("inconclusive = \"fail\"\n");
const FEW_REQUESTS_PASS: &str = analysis_5xx!("inconclusive = \"pass\"\n");

/// Too little traffic to judge (10 requests, 100 needed): `inconclusive = "fail"` rolls back
/// at the canary's gate, `"pass"` lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconclusive_analysis_follows_its_rule() {
    for (rule, toml, want) in [
        ("fail", FEW_REQUESTS_FAIL, Code::RolledBackSmoke),
        ("pass", FEW_REQUESTS_PASS, Code::Ok),
    ] {
        let w = World::with_services(canary(toml), ORCHESTRATOR_ONLY).await;
        let _traffic = Traffic::start(&w, BLUE, GREEN_THIN);
        let new = spawn_target(NEW_SHA, None).await;
        let out = w.run(RELEASE, &new.url).await;
        assert_exit(&out, want);
        assert_stderr_has(&out, "fewer than min_requests = 100");
        if rule == "fail" {
            assert_stderr_has(&out, "analysis inconclusive");
            w.assert_all_on(OLD_SHA).await;
        } else {
            w.assert_all_on(NEW_SHA).await;
        }
    }
}

/// `inconclusive = "wait"` (the default): the canary's pause is held while traffic is too
/// thin to judge, and released once enough requests arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconclusive_analysis_waits_for_traffic_by_default() {
    let w = World::with_services(canary(ANALYSIS_5XX), ORCHESTRATOR_ONLY).await;
    let traffic = Traffic::start(&w, BLUE, GREEN_THIN);
    let new = spawn_target(NEW_SHA, None).await;
    let before = existing(&w).await;
    let run = w.background(RELEASE, &new.url);
    watch_until(
        &w,
        &before,
        "the canary's gate paused",
        Duration::from_secs(60),
        |weight, awaiting, _| weight > 0.0 && awaiting,
    )
    .await;
    // Held: for the next 4 s (two analysis rounds) the pause stays.
    let held_until = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < held_until {
        let (weight, awaiting, _) = step(&w, &before).await.expect("the deployment");
        assert!(
            awaiting && weight < 100.0,
            "the pause was released on too little traffic ({weight} %)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    traffic.set_green(GREEN_HEALTHY);
    let out = run.finish(Duration::from_secs(60)).await;
    assert_exit(&out, Code::Ok);
    assert_stderr_has(&out, "waiting for more data");
    w.assert_all_on(NEW_SHA).await;
}
