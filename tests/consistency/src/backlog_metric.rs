//! The agents' autoscaling metric, held together on both sides: what the orchestrator publishes
//! (`platform_orchestrator::cloudwatch`: namespace, metric name, dimension, one series per agent
//! kind), what Terraform's target tracking reads (`terraform/modules/platform`: the
//! `backlog_metric_*` variables, the `AgentKind` dimension, the IAM condition on the namespace,
//! the environments' `agent_kind`s), and what the orchestrator's task definition turns on
//! (`PLATFORM_CLOUDWATCH_NAMESPACE` in `templates/task-definitions/orchestrator.json.hbs`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use regex::Regex;

/// What the orchestrator publishes (its constants, passed in by the test).
#[derive(Debug, Clone)]
pub struct Publisher<'a> {
    pub namespace: &'a str,
    pub metric: &'a str,
    pub dimension: &'a str,
    /// Agent kinds it publishes a series for.
    pub kinds: Vec<&'a str>,
}

fn read(root: &Path, rel: &str) -> Result<String> {
    std::fs::read_to_string(root.join(rel)).with_context(|| format!("reading {rel}"))
}

/// The `default` of `variable "<name>"` in a variables.tf.
fn variable_default(text: &str, name: &str) -> Option<String> {
    let body = hcl::from_str::<hcl::Body>(text).ok()?;
    body.blocks()
        .filter(|b| b.identifier() == "variable")
        .find(|b| b.labels().first().map(|l| l.as_str()) == Some(name))?
        .body()
        .attributes()
        .find(|a| a.key() == "default")
        .and_then(|a| match a.expr() {
            hcl::Expression::String(s) => Some(s.clone()),
            _ => None,
        })
}

pub fn check_backlog_metric(root: &Path, publisher: &Publisher) -> Result<Vec<String>> {
    let mut p = Vec::new();
    let vars_at = "terraform/modules/platform/variables.tf";
    let vars = read(root, vars_at)?;
    for (var, ours, what) in [
        ("backlog_metric_namespace", publisher.namespace, "namespace"),
        ("backlog_metric_name", publisher.metric, "metric name"),
    ] {
        match variable_default(&vars, var) {
            Some(tf) if tf == ours => {}
            Some(tf) => p.push(format!(
                "{vars_at}: `{var}` defaults to `{tf}`, but the orchestrator publishes the {what} `{ours}` (platform/orchestrator/src/cloudwatch.rs)"
            )),
            None => p.push(format!("{vars_at}: no string default for `{var}`")),
        }
    }

    let main_at = "terraform/modules/platform/main.tf";
    let main = read(root, main_at)?;
    let dims = Regex::new(r"dimensions\s*=\s*\{\s*(\w+)\s*=\s*each\.value\.agent_kind\s*\}")?;
    let tf_dims: Vec<String> = dims.captures_iter(&main).map(|c| c[1].to_owned()).collect();
    if tf_dims.is_empty() {
        p.push(format!(
            "{main_at}: the backlog metric's `dimensions = {{ <name> = each.value.agent_kind }}` is missing"
        ));
    }
    for d in tf_dims.iter().filter(|d| *d != publisher.dimension) {
        p.push(format!(
            "{main_at}: autoscaling reads the dimension `{d}`, but the orchestrator publishes `{}`",
            publisher.dimension
        ));
    }
    for needle in [
        "namespace  = var.backlog_metric_namespace",
        "name       = var.backlog_metric_name",
        "values   = [var.backlog_metric_namespace]",
    ] {
        let pattern = Regex::new(&regex::escape(needle).replace(' ', r"\s*"))?;
        if !pattern.is_match(&main) {
            p.push(format!(
                "{main_at}: expected `{needle}` (scaling metric or the PutMetricData IAM condition)"
            ));
        }
    }

    let kind_re = Regex::new(r#"agent_kind\s*=\s*"([^"]+)""#)?;
    let ours: BTreeSet<&str> = publisher.kinds.iter().copied().collect();
    for env in crate::terraform_environments(root)? {
        let at = format!("terraform/environments/{env}/main.tf");
        let text = read(root, &at)?;
        let kinds: BTreeSet<String> = kind_re
            .captures_iter(&text)
            .map(|c| c[1].to_owned())
            .collect();
        for k in kinds.iter().filter(|k| !ours.contains(k.as_str())) {
            p.push(format!(
                "{at}: agent_kind `{k}` scales on a StreamBacklog series the orchestrator never publishes (it publishes {ours:?})"
            ));
        }
        for k in ours.iter().filter(|k| !kinds.contains(**k)) {
            p.push(format!("{at}: no agent service with agent_kind `{k}`"));
        }
    }

    let tpl_at = "templates/task-definitions/orchestrator.json.hbs";
    let tpl = read(root, tpl_at)?;
    let ns_re = Regex::new(r#"cloudwatch_namespace="([^"]*)""#)?;
    match ns_re.captures(&tpl) {
        Some(c) if &c[1] == publisher.namespace => {}
        Some(c) => p.push(format!(
            "{tpl_at}: the orchestrator publishes to `{}`, but Terraform's autoscaling reads `{}`",
            &c[1], publisher.namespace
        )),
        None => p.push(format!(
            "{tpl_at}: the orchestrator's environment does not set PLATFORM_CLOUDWATCH_NAMESPACE (cloudwatch_namespace=\"…\"): nothing publishes the backlog"
        )),
    }
    let partial_at = "templates/task-definitions/partials/environment.hbs";
    let partial = read(root, partial_at)?;
    if !partial
        .contains(r#""name": "PLATFORM_CLOUDWATCH_NAMESPACE", "value": "{{cloudwatch_namespace}}""#)
    {
        p.push(format!(
            "{partial_at}: PLATFORM_CLOUDWATCH_NAMESPACE is not set from cloudwatch_namespace"
        ));
    }
    Ok(p)
}
