//! The run context every verb that changes ECS shares: the resolved environment, AWS clients,
//! progress output, statistics, the open audit record, and the cancel signal (Ctrl-C/SIGTERM).

use std::sync::Mutex;

use aws_sdk_ecs::types::ServiceDeploymentStatus;
use tokio::sync::watch;

use super::report::Reporter;
use super::smoke::{self, CheckResult, SmokeCheck};
use crate::config::{self, Config, Environment, SmokeTarget};
use crate::state::audit::{AuditTable, ReleaseRecord, ServiceStatus};
use crate::state::lock::DeployLock;

/// Everything a release needs: the resolved config, AWS clients, output, and the cancel signal.
pub struct Ctx {
    pub cfg: Config,
    pub env_name: String,
    pub env: Environment,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// The metric analysis' GetMetricData.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub http: reqwest::Client,
    pub report: Reporter,
    /// Flips to true on Ctrl-C / SIGTERM.
    pub cancel: watch::Receiver<bool>,
    pub stats: Mutex<Stats>,
    /// The release being run, so deployment ARNs reach the audit table as soon as they exist
    /// (what `--resume` and `status` need when this process dies).
    pub open_record: Mutex<Option<ReleaseRecord>>,
    /// Pause notifications still being posted (beside the gate, not in its way): awaited before
    /// the outcome is posted, so none is lost when the process exits and they arrive in order.
    pub pause_notifications: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    /// From a hook appearing (its expiresAt minus its timeout) to our ContinueServiceDeployment.
    pub hook_to_action_ms: Vec<f64>,
    /// From a hook appearing to the deployer noticing it.
    pub hook_detect_ms: Vec<f64>,
    pub smoke: Vec<(String, CheckResult)>,
    pub polls: u64,
    /// What each service's deployment went through, as the deployer saw it: (service, what,
    /// epoch seconds), in order — the step summary's timeline.
    pub timeline: Vec<(String, String, f64)>,
    /// Every analysis verdict that decided something: (service, where, verdict).
    pub analysis: Vec<(String, String, String)>,
}

impl Ctx {
    pub fn new(
        cfg: Config,
        env_name: &str,
        sdk: &aws_config::SdkConfig,
        quiet: bool,
        cancel: watch::Receiver<bool>,
    ) -> Result<Self, config::ConfigError> {
        let env = cfg.environment(env_name)?.clone();
        Ok(Self {
            cfg,
            env_name: env_name.to_owned(),
            env,
            ecs: aws_sdk_ecs::Client::new(sdk),
            ecr: aws_sdk_ecr::Client::new(sdk),
            ddb: aws_sdk_dynamodb::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            http: reqwest::Client::builder()
                .user_agent(concat!("deployer/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("an HTTP client"),
            report: Reporter::new(quiet),
            cancel,
            stats: Mutex::new(Stats::default()),
            open_record: Mutex::new(None),
            pause_notifications: Mutex::new(Vec::new()),
        })
    }

    /// Writes a just-started deployment's ARN into the open audit record.
    pub(crate) async fn note_deployment(&self, service: &str, arn: &str) {
        let rec = {
            let mut guard = self.open_record.lock().expect("open record");
            let Some(rec) = guard.as_mut() else { return };
            if let Some(s) = rec.services.iter_mut().find(|s| s.service == service) {
                s.deployment_arn = arn.to_owned();
                s.status = ServiceStatus::Deployment(ServiceDeploymentStatus::InProgress);
            }
            rec.clone()
        };
        if let Err(e) = self.audit().put(&rec).await {
            self.report
                .line(&format!("warning: audit record not updated: {e:#}"));
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    pub fn lock(&self) -> DeployLock {
        DeployLock::new(
            self.ddb.clone(),
            &self.env.lock_table,
            &self.env_name,
            self.env.timeouts.lock_ttl,
        )
    }

    pub fn audit(&self) -> AuditTable {
        AuditTable::new(self.ddb.clone(), &self.env.audit_table)
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.env.api_token.as_ref().map(config::expose)
    }

    pub(crate) fn smoke_checks(
        &self,
        svc: &config::Service,
        place: SmokeTarget,
    ) -> Vec<SmokeCheck> {
        let names = svc.smoke_checks.clone();
        if names.is_none() && svc.agent_kind.is_some() {
            // Agent services are gated by the agent gate, not HTTP checks, unless named.
            return vec![];
        }
        self.env
            .smoke_checks
            .iter()
            .filter(|c| c.target == place || c.target == SmokeTarget::Both)
            .filter(|c| names.as_ref().is_none_or(|n| n.contains(&c.name)))
            .map(|c| SmokeCheck::from_config(c, self.token()))
            .collect()
    }

    pub(crate) fn record_smoke(&self, place: &str, r: &smoke::SmokeReport) {
        let mut s = self.stats.lock().expect("stats");
        for c in &r.results {
            s.smoke.push((place.to_owned(), c.clone()));
        }
    }
}

/// Ctrl-C / SIGTERM flip the returned receiver to true (the release rolls back and cleans up).
pub fn cancel_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("interrupted: rolling back what is in flight, then releasing the lock");
        let _ = tx.send(true);
    });
    rx
}
