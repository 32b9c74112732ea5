//! Gates: what decides whether a paused deployment continues. HTTP smoke checks against the
//! test listener (or production), the agent gate (agents of the new sha heart-beating on the
//! orchestrator's API), and the production checks repeated during bake time.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::DeploymentLifecycleHookStage as Stage;
use serde_json::Value;

use super::Ctx;
use super::smoke::{self, Vars};
use crate::config::{Service, SmokeTarget};

/// A gate said no; the text says why (with the failing request, secrets redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GateFailed(pub String);

/// The production smoke checks once, during bake time: `None` when there is nothing to check.
pub(crate) async fn bake_check(
    ctx: &Ctx,
    svc: &Service,
    vars: &Vars,
) -> Option<Result<(), GateFailed>> {
    let name = &svc.name;
    let url = ctx.env.urls.production.clone()?;
    let checks = ctx.smoke_checks(svc, SmokeTarget::Production);
    if checks.is_empty() {
        return None;
    }
    match smoke::run_all(&ctx.http, &url, &checks, vars).await {
        Ok(rep) if !rep.passed() => {
            ctx.record_smoke(&format!("{name} @ BAKE_TIME"), &rep);
            let f = rep.first_failure().map(|f| f.explain()).unwrap_or_default();
            Some(Err(GateFailed(f)))
        }
        Ok(rep) => {
            // The first passing round is enough for the summary.
            let mut s = ctx.stats.lock().expect("stats");
            if !s
                .smoke
                .iter()
                .any(|(p, _)| p.ends_with("BAKE_TIME") && p.starts_with(name.as_str()))
            {
                for c in &rep.results {
                    s.smoke.push((format!("{name} @ BAKE_TIME"), c.clone()));
                }
            }
            Some(Ok(()))
        }
        Err(e) => {
            // The checks could not run (not a verdict): say so and try again next round.
            ctx.report.line(&format!("[{name}] {e:#}"));
            None
        }
    }
}

/// Agents of `kind` reporting `git_sha` and a recent heartbeat on the orchestrator's API.
pub(crate) async fn agent_gate(
    ctx: &Ctx,
    kind: &str,
    git_sha: &str,
    timeout: Duration,
) -> Result<(), GateFailed> {
    let Some(base) = ctx.env.urls.production.clone() else {
        return Err(GateFailed(format!(
            "the agent gate for '{kind}' needs urls.production (the orchestrator API) in environment {}",
            ctx.env_name
        )));
    };
    let url = format!("{}/api/v1/agents", base.trim_end_matches('/'));
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        let mut req = ctx.http.get(&url).timeout(Duration::from_secs(5));
        if let Some(t) = ctx.token() {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or_default();
                let now = chrono::Utc::now();
                let ok = body["agents"].as_array().is_some_and(|agents| {
                    agents.iter().any(|a| {
                        a["kind"] == kind
                            && a["git_sha"] == git_sha
                            && a["last_heartbeat"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                .is_some_and(|t| {
                                    (now - t.with_timezone(&chrono::Utc)).num_seconds() < 60
                                })
                    })
                });
                if ok {
                    return Ok(());
                }
                last = format!("no '{kind}' agent with git sha {git_sha} heart-beating yet");
            }
            Ok(r) => last = format!("GET {url} answered HTTP {}", r.status()),
            Err(e) => {
                last = format!(
                    "GET {url} failed: {}",
                    if e.is_timeout() {
                        "timeout".to_owned()
                    } else {
                        "connection error".to_owned()
                    }
                )
            }
        }
        if Instant::now() >= deadline {
            return Err(GateFailed(format!(
                "agent gate for '{kind}' failed after {timeout:?}: {last}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the gate for a pause at the configured `stage`: `Ok` = CONTINUE. Before production
/// traffic moves the checks run against the test listener; after it, against production. At
/// POST_SCALE_UP (no traffic yet) an agent service gets the agent gate.
pub(crate) async fn gate_for_hook(
    ctx: &Ctx,
    svc: &Service,
    git_sha: &str,
    stage: &Stage,
    vars: &Vars,
) -> Result<(), GateFailed> {
    let (place, url) = match stage {
        Stage::PostTestTrafficShift
        | Stage::TestTrafficShift
        | Stage::PreProductionTrafficShift => (SmokeTarget::Test, ctx.env.urls.test.clone()),
        Stage::PostProductionTrafficShift | Stage::ProductionTrafficShift => {
            (SmokeTarget::Production, ctx.env.urls.production.clone())
        }
        Stage::PostScaleUp => {
            if let Some(kind) = &svc.agent_kind {
                return agent_gate(ctx, kind, git_sha, ctx.env.timeouts.agent_gate).await;
            }
            return Ok(());
        }
        // Before the new revision runs there is nothing to check.
        Stage::ReconcileService | Stage::PreScaleUp => return Ok(()),
        other => {
            return Err(GateFailed(format!(
                "the deployment paused at {}, a stage the deployer has no gate for; failing closed",
                other.as_str()
            )));
        }
    };
    let checks = ctx.smoke_checks(svc, place);
    if checks.is_empty() {
        return Ok(());
    }
    // urls.test unset: the service's test listener rule tells (engine/traffic.rs).
    let (url, client, checks) = match place {
        SmokeTarget::Test => match super::traffic::test_target(ctx, svc, url, checks)
            .await
            .map_err(GateFailed)?
        {
            Some(t) => (Some(t.url), t.client, t.checks),
            None => (None, ctx.http.clone(), vec![]),
        },
        _ => (url, ctx.http.clone(), checks),
    };
    let Some(url) = url else {
        return Err(GateFailed(format!(
            "smoke checks for {} at {} need urls.{} in environment {}",
            svc.name,
            stage.as_str(),
            if place == SmokeTarget::Test {
                "test"
            } else {
                "production"
            },
            ctx.env_name
        )));
    };
    let label = format!("{} @ {}", svc.name, stage.as_str());
    let rep = smoke::run_all(&client, &url, &checks, vars)
        .await
        .map_err(|e| GateFailed(format!("{e:#}")))?;
    ctx.record_smoke(&label, &rep);
    for r in &rep.results {
        ctx.report.line(&format!("[{}] {}", svc.name, r.explain()));
    }
    match rep.first_failure() {
        None => Ok(()),
        Some(f) => Err(GateFailed(f.explain())),
    }
}
