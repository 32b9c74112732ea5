//! Static proof that the three descriptions of the system agree:
//! - Terraform (`terraform/environments/<env>/main.tf` declares a literal catalogue in `locals`,
//!   `outputs.tf` the outputs), parsed with hcl-rs;
//! - the deployer's `deployer.toml` and `templates/`;
//! - the GitHub workflows (`.github/workflows/*.yml`), parsed as YAML, against the deployer's real
//!   command tree (`deployer <sub> --help` of the built binary).
//!
//! Every check returns problems as sentences naming both sides, so a failing test says what to
//! change where. Everything takes the repository root as a parameter so tests can run it on a
//! mutated copy.

pub mod backlog_metric;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use hcl::{Block, Body, Expression, ObjectKey};
use regex::Regex;
use serde_json::Value as Json;

// ------------------------------------------------------------------ Terraform side

/// One ECS service as the Terraform catalogue declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct TfService {
    pub container_name: String,
    pub container_port: Option<u16>,
    pub load_balanced: bool,
    pub strategy: String,
    pub pause_stages: Vec<String>,
    pub family: String,
    pub cpu: u64,
    pub memory: u64,
}

/// What one Terraform environment root declares.
#[derive(Debug, Clone)]
pub struct TfEnvironment {
    pub name: String,
    pub cluster_name: String,
    pub services: BTreeMap<String, TfService>,
    pub migration_family: String,
    pub migration_container: String,
    pub outputs: BTreeSet<String>,
    pub lock_table: String,
    pub audit_table: String,
    /// Target group names (blue, green) of the load-balanced service.
    pub target_groups: Vec<String>,
    /// ECR repository name the environment creates.
    pub ecr_repository: String,
}

fn parse_hcl(path: &Path) -> Result<Body> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    hcl::from_str(&text).with_context(|| format!("parsing {} as HCL", path.display()))
}

fn blocks<'a>(body: &'a Body, ident: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == ident)
}

fn labelled<'a>(body: &'a Body, ident: &str, labels: &[&str]) -> Option<&'a Block> {
    body.blocks().find(|b| {
        b.identifier() == ident
            && b.labels().len() == labels.len()
            && b.labels()
                .iter()
                .zip(labels)
                .all(|(l, want)| l.as_str() == *want)
    })
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// An expression as HCL source text, for checking how values are wired (`each.value.x`).
fn source(expr: &Expression) -> String {
    hcl::format::to_string(expr)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn key_name(k: &ObjectKey) -> String {
    match k {
        ObjectKey::Identifier(i) => i.to_string(),
        ObjectKey::Expression(Expression::String(s)) => s.clone(),
        ObjectKey::Expression(e) => source(e),
        // ObjectKey is non-exhaustive; anything newer is shown as written.
        other => format!("{other:?}"),
    }
}

fn object(expr: &Expression) -> Option<BTreeMap<String, &Expression>> {
    match expr {
        Expression::Object(o) => Some(o.iter().map(|(k, v)| (key_name(k), v)).collect()),
        _ => None,
    }
}

fn string(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn literal_string(obj: &BTreeMap<String, &Expression>, key: &str, at: &str) -> Result<String> {
    obj.get(key)
        .and_then(|e| string(e))
        .ok_or_else(|| anyhow!("{at}: `{key}` must be a literal string"))
}

fn number(obj: &BTreeMap<String, &Expression>, key: &str, at: &str) -> Result<u64> {
    match obj.get(key) {
        Some(Expression::Number(n)) => n
            .as_u64()
            .ok_or_else(|| anyhow!("{at}: `{key}` must be a whole number")),
        _ => bail!("{at}: `{key}` must be a literal number"),
    }
}

/// Substitutes `${name}` references of a Terraform template string (only the given names).
fn interpolate(template: &str, vars: &[(&str, &str)]) -> Result<String> {
    let mut out = template.trim_matches('"').to_string();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    if out.contains("${") {
        bail!("cannot evaluate `{template}`: only {vars:?} are known to the consistency test");
    }
    Ok(out)
}

/// Reads the modules' naming rules and one environment root's catalogue.
pub fn terraform_environment(root: &Path, env: &str) -> Result<TfEnvironment> {
    let tf = root.join("terraform");
    let env_dir = tf.join("environments").join(env);
    let main = parse_hcl(&env_dir.join("main.tf"))?;
    let at = format!("terraform/environments/{env}/main.tf");

    let locals: BTreeMap<String, &Expression> = blocks(&main, "locals")
        .flat_map(|b| {
            b.body()
                .attributes()
                .map(|a| (a.key().to_string(), a.expr()))
        })
        .collect();
    let local = |k: &str| {
        locals
            .get(k)
            .copied()
            .ok_or_else(|| anyhow!("{at}: no `locals.{k}`"))
    };
    let cluster_name = string(local("cluster_name")?)
        .ok_or_else(|| anyhow!("{at}: cluster_name must be a literal"))?;

    // The catalogue must be what the platform module receives, not a decoy.
    let platform = labelled(&main, "module", &["platform"])
        .ok_or_else(|| anyhow!("{at}: no module \"platform\""))?;
    for (arg, want) in [
        ("name", "local.cluster_name"),
        ("services", "local.ecs_services"),
        ("migration_task", "local.migration_task"),
    ] {
        let got = attr(platform.body(), arg).map(source).unwrap_or_default();
        if got != want {
            bail!("{at}: module \"platform\" must set `{arg} = {want}` (found `{got}`)");
        }
    }

    // How the platform module names things.
    let pm = parse_hcl(&tf.join("modules/platform/main.tf"))?;
    let pm_at = "terraform/modules/platform/main.tf";
    let svc_mod = labelled(&pm, "module", &["service"])
        .ok_or_else(|| anyhow!("{pm_at}: no module \"service\""))?;
    let wiring = |arg: &str| attr(svc_mod.body(), arg).map(source).unwrap_or_default();
    for (arg, want) in [
        ("for_each", "var.services"),
        ("name", "each.key"),
        ("container_name", "each.value.container_name"),
        ("container_port", "each.value.container_port"),
        ("strategy", "each.value.strategy"),
        ("pause_stages", "each.value.pause_stages"),
    ] {
        if wiring(arg) != want {
            bail!(
                "{pm_at}: module \"service\" must set `{arg} = {want}` (found `{}`)",
                wiring(arg)
            );
        }
    }
    let family_rule = wiring("family");
    let ecr_repository = attr(platform.body(), "ecr_repository_name")
        .and_then(string)
        .ok_or_else(|| {
            anyhow!("{at}: module \"platform\" must set ecr_repository_name to a literal")
        })?;

    let mut services = BTreeMap::new();
    let catalogue = object(local("ecs_services")?)
        .ok_or_else(|| anyhow!("{at}: ecs_services must be a literal object"))?;
    for (name, spec) in catalogue {
        let s_at = format!("{at}: ecs_services[\"{name}\"]");
        let spec = object(spec).ok_or_else(|| anyhow!("{s_at} must be an object"))?;
        let container_port = match spec.get("container_port") {
            None | Some(Expression::Null) => None,
            Some(Expression::Number(n)) => Some(
                n.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| anyhow!("{s_at}: container_port {n} is not a port"))?,
            ),
            Some(e) => bail!(
                "{s_at}: container_port must be a literal number (found {})",
                source(e)
            ),
        };
        let pause_stages = match spec.get("pause_stages") {
            Some(Expression::Array(a)) => a
                .iter()
                .map(|e| string(e).ok_or_else(|| anyhow!("{s_at}: pause_stages must be literals")))
                .collect::<Result<_>>()?,
            _ => bail!("{s_at}: pause_stages must be a literal list"),
        };
        let service = TfService {
            container_name: literal_string(&spec, "container_name", &s_at)?,
            container_port,
            load_balanced: matches!(spec.get("load_balanced"), Some(Expression::Bool(true))),
            strategy: literal_string(&spec, "strategy", &s_at)?,
            pause_stages,
            family: interpolate(
                &family_rule,
                &[("var.name", &cluster_name), ("each.key", &name)],
            )?,
            cpu: number(&spec, "cpu", &s_at)?,
            memory: number(&spec, "memory", &s_at)?,
        };
        services.insert(name, service);
    }

    let migration = object(local("migration_task")?)
        .ok_or_else(|| anyhow!("{at}: migration_task must be a literal object"))?;
    let m_at = format!("{at}: migration_task");

    let outputs_body = parse_hcl(&env_dir.join("outputs.tf"))?;
    let outputs = blocks(&outputs_body, "output")
        .filter_map(|b| b.labels().first().map(|l| l.as_str().to_string()))
        .collect();

    // Deploy tables: hash/range keys must be what the deployer writes (checked by the caller).
    let ds = parse_hcl(&tf.join("modules/deploy_state/main.tf"))?;
    let table_name = |res: &str| -> Result<String> {
        let b = labelled(&ds, "resource", &["aws_dynamodb_table", res])
            .ok_or_else(|| anyhow!("modules/deploy_state: no aws_dynamodb_table.{res}"))?;
        let rule = attr(b.body(), "name").map(source).unwrap_or_default();
        interpolate(&rule, &[("var.name", &cluster_name)])
    };

    let alb = parse_hcl(&tf.join("modules/alb/main.tf"))?;
    let tg = labelled(&alb, "resource", &["aws_lb_target_group", "orchestrator"])
        .ok_or_else(|| anyhow!("modules/alb: no aws_lb_target_group.orchestrator"))?;
    let tg_rule = attr(tg.body(), "name").map(source).unwrap_or_default();
    let target_groups = ["blue", "green"]
        .iter()
        .map(|c| interpolate(&tg_rule, &[("var.name", &cluster_name), ("each.key", c)]))
        .collect::<Result<_>>()?;

    Ok(TfEnvironment {
        name: env.to_string(),
        migration_family: literal_string(&migration, "family", &m_at)?,
        migration_container: literal_string(&migration, "container_name", &m_at)?,
        lock_table: table_name("lock")?,
        audit_table: table_name("audit")?,
        cluster_name,
        services,
        outputs,
        target_groups,
        ecr_repository,
    })
}

/// Key schema of a deploy table in Terraform: (hash key, range key).
pub fn terraform_table_keys(root: &Path, table: &str) -> Result<(String, Option<String>)> {
    let ds = parse_hcl(&root.join("terraform/modules/deploy_state/main.tf"))?;
    let b = labelled(&ds, "resource", &["aws_dynamodb_table", table])
        .ok_or_else(|| anyhow!("modules/deploy_state: no aws_dynamodb_table.{table}"))?;
    let hash = attr(b.body(), "hash_key")
        .and_then(string)
        .unwrap_or_default();
    let range = attr(b.body(), "range_key").and_then(string);
    Ok((hash, range))
}

/// Environments that have a Terraform root.
pub fn terraform_environments(root: &Path) -> Result<Vec<String>> {
    let mut envs: Vec<String> = std::fs::read_dir(root.join("terraform/environments"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("main.tf").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    envs.sort();
    Ok(envs)
}

// ------------------------------------------------------------------ deployer side

/// `tf_output "name"` references in a text (templates, config values).
pub fn tf_output_refs(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r#"tf_output\s+\\?["']([A-Za-z0-9_\-]+)\\?["']"#).expect("static regex");
    re.captures_iter(text).map(|c| c[1].to_string()).collect()
}

fn strings_in(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|v| strings_in(v, out)),
        Json::Object(o) => o.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// A literal config value must equal Terraform's; a `tf_output` reference must name an output.
fn same_or_output(
    problems: &mut Vec<String>,
    what: &str,
    value: Option<&str>,
    tf_value: &str,
    tf: &TfEnvironment,
) {
    let Some(value) = value else { return };
    let refs = tf_output_refs(value);
    if refs.is_empty() {
        if value != tf_value {
            problems.push(format!(
                "{what} is `{value}` in deployer.toml but `{tf_value}` in Terraform ({})",
                tf.name
            ));
        }
    } else {
        for r in refs.iter().filter(|r| !tf.outputs.contains(*r)) {
            problems.push(format!(
                "{what} uses tf_output \"{r}\", which terraform/environments/{}/outputs.tf does not declare",
                tf.name
            ));
        }
    }
}

fn template_path(root: &Path, config: &Json, template: &str) -> PathBuf {
    let dir = config
        .pointer("/project/templates")
        .and_then(Json::as_str)
        .unwrap_or("templates");
    root.join(dir).join(format!("{template}.json.hbs"))
}

/// deployer.toml and the templates it names against one Terraform environment.
pub fn check_deployer_config(root: &Path, config: &Json, tf: &TfEnvironment) -> Vec<String> {
    let mut p = Vec::new();
    let env = &tf.name;
    let Some(ec) = config.pointer(&format!("/environments/{env}")) else {
        p.push(format!(
            "deployer.toml has no [environments.{env}], but terraform/environments/{env} exists"
        ));
        return p;
    };
    let s = |ptr: &str| ec.pointer(ptr).and_then(Json::as_str);

    same_or_output(
        &mut p,
        &format!("[environments.{env}] cluster"),
        s("/cluster"),
        &tf.cluster_name,
        tf,
    );
    same_or_output(
        &mut p,
        &format!("[environments.{env}] lock_table"),
        s("/lock_table"),
        &tf.lock_table,
        tf,
    );
    same_or_output(
        &mut p,
        &format!("[environments.{env}] audit_table"),
        s("/audit_table"),
        &tf.audit_table,
        tf,
    );
    if s("/lock_table").is_none() || s("/audit_table").is_none() {
        p.push(format!(
            "[environments.{env}] must set lock_table and audit_table (the deployer's defaults are not the tables Terraform creates: {} / {})",
            tf.lock_table, tf.audit_table
        ));
    }

    let repo = s("/ecr_repository").or_else(|| {
        config
            .pointer("/project/ecr_repository")
            .and_then(Json::as_str)
    });
    same_or_output(
        &mut p,
        &format!("[environments.{env}] ECR repository"),
        repo,
        &tf.ecr_repository,
        tf,
    );

    // Every tf_output reference anywhere in the environment's config.
    let mut all = Vec::new();
    strings_in(ec, &mut all);
    for r in all.iter().flat_map(|v| tf_output_refs(v)) {
        if !tf.outputs.contains(&r) {
            p.push(format!(
                "[environments.{env}] uses tf_output \"{r}\", which terraform/environments/{env}/outputs.tf does not declare"
            ));
        }
    }

    let services: Vec<&Json> = ec
        .get("services")
        .and_then(Json::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut templates = Vec::new();
    for svc in services {
        let name = svc
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or("<unnamed>");
        seen.insert(name.to_string());
        let at = format!("[environments.{env}] service `{name}`");
        let Some(t) = tf.services.get(name) else {
            p.push(format!(
                "{at} is not an ECS service in terraform/environments/{env} (ecs_services has: {})",
                tf.services.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        if let Some(tpl) = svc.get("template").and_then(Json::as_str) {
            templates.push((at.clone(), tpl.to_string(), Some(t.clone())));
        }
        let strategy = svc.get("strategy").and_then(Json::as_str).unwrap_or("");
        if strategy.to_uppercase() != t.strategy {
            p.push(format!(
                "{at}: strategy `{strategy}` in deployer.toml, `{}` in Terraform",
                t.strategy
            ));
        }
        match (svc.get("load_balancer"), t.load_balanced) {
            (Some(lb), true) => {
                let cn = lb.get("container_name").and_then(Json::as_str);
                if cn != Some(t.container_name.as_str()) {
                    p.push(format!(
                        "{at}: load_balancer.container_name {cn:?} in deployer.toml, `{}` in Terraform",
                        t.container_name
                    ));
                }
                let port = lb.get("container_port").and_then(Json::as_u64);
                if port != t.container_port.map(u64::from) {
                    p.push(format!(
                        "{at}: load_balancer.container_port {port:?} in deployer.toml, {:?} in Terraform",
                        t.container_port
                    ));
                }
                for key in [
                    "target_group_arn",
                    "alternate_target_group_arn",
                    "production_listener_rule",
                    "test_listener_rule",
                    "role_arn",
                ] {
                    let v = lb.get(key).and_then(Json::as_str).unwrap_or("");
                    // ARNs come from Terraform, never pasted: a tf_output reference (or a local ARN).
                    if !v.is_empty()
                        && tf_output_refs(v).is_empty()
                        && !v.contains(&tf.cluster_name)
                    {
                        let tg_named = tf.target_groups.iter().any(|g| v.contains(g.as_str()));
                        if !tg_named {
                            p.push(format!(
                                "{at}: load_balancer.{key} = `{v}` is neither a tf_output reference nor one of Terraform's target groups ({})",
                                tf.target_groups.join(", ")
                            ));
                        }
                    }
                }
            }
            (None, true) => p.push(format!(
                "{at} has no load_balancer but Terraform puts it behind the ALB"
            )),
            (Some(_), false) => p.push(format!(
                "{at} has a load_balancer but Terraform runs it headless"
            )),
            (None, false) => {}
        }
        let hooks: BTreeSet<String> = svc
            .get("hooks")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.get("stage")?.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let tf_hooks: BTreeSet<String> = t.pause_stages.iter().cloned().collect();
        if hooks != tf_hooks {
            p.push(format!(
                "{at}: PAUSE hook stages {hooks:?} in deployer.toml, {tf_hooks:?} in Terraform"
            ));
        }
    }
    for missing in tf.services.keys().filter(|k| !seen.contains(*k)) {
        p.push(format!(
            "ECS service `{missing}` exists in terraform/environments/{env} but [environments.{env}] does not deploy it"
        ));
    }
    if let Some(m) = ec.get("migration") {
        if let Some(c) = m.get("container").and_then(Json::as_str)
            && c != tf.migration_container
        {
            p.push(format!(
                "[environments.{env}] migration.container `{c}`, Terraform's migration task container `{}`",
                tf.migration_container
            ));
        }
        if let Some(tpl) = m.get("template").and_then(Json::as_str) {
            templates.push((
                format!("[environments.{env}] migration"),
                tpl.to_string(),
                None,
            ));
        }
    }

    for (at, tpl, svc) in templates {
        let path = template_path(root, config, &tpl);
        let Ok(text) = std::fs::read_to_string(&path) else {
            p.push(format!("{at}: template {} does not exist", path.display()));
            continue;
        };
        p.extend(check_template_text(&text, &path, tf, svc.as_ref()));
    }
    p
}

/// A template's literal names and ports, and its tf_output references.
fn check_template_text(
    text: &str,
    path: &Path,
    tf: &TfEnvironment,
    svc: Option<&TfService>,
) -> Vec<String> {
    let mut p = Vec::new();
    let shown = path.display();
    for r in tf_output_refs(text)
        .iter()
        .filter(|r| !tf.outputs.contains(*r))
    {
        p.push(format!(
            "{shown} uses tf_output \"{r}\", which terraform/environments/{}/outputs.tf does not declare",
            tf.name
        ));
    }
    let ports = Regex::new(r#""containerPort"\s*:\s*(\d+)"#).expect("static regex");
    let families = Regex::new(r#""family"\s*:\s*"([^"{}]+)""#).expect("static regex");
    let names = Regex::new(r#""name"\s*:\s*"([^"{}]+)"\s*,\s*"image""#).expect("static regex");
    if let Some(s) = svc {
        for c in ports.captures_iter(text) {
            let port: u64 = c[1].parse().unwrap_or(0);
            if Some(port) != s.container_port.map(u64::from) {
                p.push(format!(
                    "{shown}: containerPort {port}, Terraform's service port {:?}",
                    s.container_port
                ));
            }
        }
        for c in names.captures_iter(text) {
            if c[1] != s.container_name {
                p.push(format!(
                    "{shown}: container `{}`, Terraform's container `{}`",
                    &c[1], s.container_name
                ));
            }
        }
        for c in families.captures_iter(text) {
            if c[1] != s.family {
                p.push(format!(
                    "{shown}: family `{}`, Terraform's family `{}`",
                    &c[1], s.family
                ));
            }
        }
    }
    p
}

/// The DynamoDB key schema the deployer uses (from its source: `ensure_table(..., "pk", sk)`).
pub fn deployer_table_keys(
    root: &Path,
) -> Result<BTreeMap<&'static str, (String, Option<String>)>> {
    let re = Regex::new(
        r#"ensure_table\(\s*&self\.ddb,\s*&self\.table,\s*"([^"]+)",\s*(None|Some\("([^"]+)"\))"#,
    )
    .expect("static regex");
    let mut keys = BTreeMap::new();
    for (table, file) in [
        ("lock", "deployer/src/state/lock.rs"),
        ("audit", "deployer/src/state/audit.rs"),
    ] {
        let text =
            std::fs::read_to_string(root.join(file)).with_context(|| format!("reading {file}"))?;
        let c = re.captures(&text).ok_or_else(|| {
            anyhow!("{file}: no `ensure_table(&self.ddb, &self.table, \"<hash>\", <range>)`")
        })?;
        keys.insert(
            table,
            (c[1].to_string(), c.get(3).map(|m| m.as_str().to_string())),
        );
    }
    Ok(keys)
}

// ------------------------------------------------------------------ workflows side

/// One `deployer ...` invocation found in a workflow `run:` script.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub workflow: String,
    pub job: String,
    /// Words after `deployer` up to the first flag: the subcommand path (`lock`, `release`).
    pub args: Vec<String>,
    /// Long and short flags used (`--env`, `-v`).
    pub flags: Vec<String>,
    /// Environment variables of the step (names).
    pub step_env: BTreeSet<String>,
}

fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for ch in line.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, ';' | '|' | '&') => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
                words.push(ch.to_string());
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Names a `run:` script exports (`export NAME` / `export NAME=...`).
fn exported_names(run: &str) -> Vec<String> {
    let re = Regex::new(r"(?m)^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)").expect("static regex");
    re.captures_iter(run).map(|c| c[1].to_string()).collect()
}

/// Every `deployer` call in `.github/workflows/*.yml`.
pub fn workflow_invocations(root: &Path) -> Result<Vec<Invocation>> {
    let dir = root.join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&file)?;
        let doc: serde_norway::Value =
            serde_norway::from_str(&text).with_context(|| format!("parsing {name} as YAML"))?;
        let Some(jobs) = doc.get("jobs").and_then(|j| j.as_mapping()) else {
            continue;
        };
        for (job_id, job) in jobs {
            let job_id = job_id.as_str().unwrap_or_default().to_string();
            let steps = job
                .get("steps")
                .and_then(|s| s.as_sequence())
                .cloned()
                .unwrap_or_default();
            for step in steps {
                let Some(run) = step.get("run").and_then(|r| r.as_str()) else {
                    continue;
                };
                let mut step_env: BTreeSet<String> = step
                    .get("env")
                    .and_then(|e| e.as_mapping())
                    .map(|m| {
                        m.keys()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                // Variables the script itself exports (a secret read in the step, e.g. the API
                // token from Secrets Manager) reach the deployer too.
                step_env.extend(exported_names(run));
                // Join continuation lines, then look at each command of each line.
                let joined = run.replace("\\\n", " ");
                for line in joined.lines() {
                    let words = shell_words(line);
                    let mut i = 0;
                    while i < words.len() {
                        let w = &words[i];
                        let is_deployer = w == "deployer" || w.ends_with("/deployer");
                        let in_command_position = i == 0
                            || matches!(
                                words[i - 1].as_str(),
                                ";" | "|" | "&" | "then" | "do" | "else" | "if" | "!"
                            );
                        if is_deployer && in_command_position {
                            let mut args = Vec::new();
                            let mut flags = Vec::new();
                            let mut j = i + 1;
                            while j < words.len() && !matches!(words[j].as_str(), ";" | "|" | "&") {
                                let a = &words[j];
                                if a.starts_with('-') {
                                    flags.push(a.split('=').next().unwrap_or(a).to_string());
                                } else if flags.is_empty() {
                                    args.push(a.clone());
                                }
                                j += 1;
                            }
                            out.push(Invocation {
                                workflow: name.clone(),
                                job: job_id.clone(),
                                args,
                                flags,
                                step_env: step_env.clone(),
                            });
                            i = j;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Subcommands and flags of the real deployer, read from its `--help` (clap's command tree).
pub struct DeployerCli {
    bin: PathBuf,
}

impl DeployerCli {
    /// The built binary: `DEPLOYER_BIN`, else `<target dir>/debug/deployer`.
    pub fn locate(root: &Path) -> Result<Self> {
        let bin = match std::env::var_os("DEPLOYER_BIN") {
            Some(p) => PathBuf::from(p),
            None => {
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| root.join("target"));
                target.join("debug").join("deployer")
            }
        };
        if !bin.is_file() {
            bail!(
                "the deployer binary is not at {}: build it first (`cargo build -p deployer`; scripts/test does) or set DEPLOYER_BIN",
                bin.display()
            );
        }
        Ok(Self { bin })
    }

    /// `Ok(flags)` of `deployer <path> --help`, `Err` when the subcommand does not exist.
    pub fn flags(&self, path: &[String]) -> Result<BTreeSet<String>> {
        let out = Command::new(&self.bin)
            .args(path)
            .arg("--help")
            .env("NO_COLOR", "1")
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "`deployer {} --help` failed: {}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
        let re = Regex::new(r"(?m)^\s+(?:(-[A-Za-z0-9]),\s+)?(--[a-z0-9][a-z0-9-]*)")
            .expect("static regex");
        let short = Regex::new(r"(?m)^\s+(-[A-Za-z0-9])(?:\s|,|$)").expect("static regex");
        let mut flags = BTreeSet::new();
        for c in re.captures_iter(&text) {
            if let Some(s) = c.get(1) {
                flags.insert(s.as_str().to_string());
            }
            flags.insert(c[2].to_string());
        }
        for c in short.captures_iter(&text) {
            flags.insert(c[1].to_string());
        }
        Ok(flags)
    }

    /// The names under `Commands:` of `deployer <path> --help`.
    pub fn subcommands(&self, path: &[String]) -> Result<BTreeSet<String>> {
        let out = Command::new(&self.bin)
            .args(path)
            .arg("--help")
            .env("NO_COLOR", "1")
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut subs = BTreeSet::new();
        let mut in_commands = false;
        for line in text.lines() {
            if line.trim_end() == "Commands:" {
                in_commands = true;
                continue;
            }
            if in_commands {
                if !line.starts_with("  ") {
                    break;
                }
                if let Some(w) = line.split_whitespace().next() {
                    subs.insert(w.to_string());
                }
            }
        }
        Ok(subs)
    }
}

/// Every workflow call against the real command tree.
pub fn check_invocations(cli: &DeployerCli, calls: &[Invocation]) -> Vec<String> {
    let mut p = Vec::new();
    for call in calls {
        let at = format!(
            "{} job `{}`: `deployer {}`",
            call.workflow,
            call.job,
            call.args.join(" ")
        );
        // The subcommand path: words that are subcommands of their parent.
        let mut path: Vec<String> = Vec::new();
        for a in &call.args {
            match cli.subcommands(&path) {
                Ok(subs) if subs.contains(a) => path.push(a.clone()),
                Ok(subs) if path.is_empty() => {
                    p.push(format!(
                        "{at}: `{a}` is not a deployer subcommand (it has: {})",
                        subs.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                    break;
                }
                _ => break,
            }
        }
        if path.is_empty() {
            if call.args.is_empty() {
                p.push(format!("{at}: no subcommand"));
            }
            continue;
        }
        match cli.flags(&path) {
            Ok(known) => {
                for f in call.flags.iter().filter(|f| !known.contains(*f)) {
                    p.push(format!(
                        "{at}: flag `{f}` does not exist on `deployer {}` (it has: {})",
                        path.join(" "),
                        known.iter().cloned().collect::<Vec<_>>().join(" ")
                    ));
                }
            }
            Err(e) => p.push(format!("{at}: {e}")),
        }
    }
    p
}

/// The `tf_output` file of each Terraform-backed environment must be where the workflows put
/// `terraform output -json` (downloaded from the state bucket before the deployer runs).
pub fn check_tf_output_files(root: &Path, config: &Json, envs: &[String]) -> Vec<String> {
    let mut p = Vec::new();
    let workflows: String = std::fs::read_dir(root.join(".github/workflows"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    for env in envs {
        let Some(file) = config
            .pointer(&format!("/environments/{env}/tf_output"))
            .and_then(Json::as_str)
        else {
            p.push(format!(
                "[environments.{env}] has no tf_output file: set it to the `terraform output -json` file the release workflow downloads"
            ));
            continue;
        };
        let generic = file.replace(env.as_str(), "${TARGET_ENV}");
        if !workflows.contains(file) && !workflows.contains(&generic) {
            p.push(format!(
                "[environments.{env}] tf_output = \"{file}\", but no workflow writes that file before calling the deployer"
            ));
        }
    }
    p
}

/// Secret-holding variables deployer.toml names must be set on the workflow steps that release.
pub fn check_workflow_env(config: &Json, calls: &[Invocation]) -> Vec<String> {
    let mut p = Vec::new();
    let Some(envs) = config.get("environments").and_then(Json::as_object) else {
        return p;
    };
    for (env, ec) in envs {
        let needed: Vec<&str> = [
            ec.pointer("/api_token_env"),
            ec.pointer("/notifications/webhook_url_env"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
        for call in calls.iter().filter(|c| {
            matches!(
                c.args.first().map(String::as_str),
                Some("release" | "rollback")
            ) && c.flags.iter().any(|f| f == "--env")
                && c.job == *env
        }) {
            for var in needed.iter().filter(|v| !call.step_env.contains(**v)) {
                p.push(format!(
                    "{} job `{}`: `deployer {}` runs without {var}, which deployer.toml [environments.{env}] reads",
                    call.workflow,
                    call.job,
                    call.args.join(" ")
                ));
            }
        }
    }
    p
}

/// deployer.toml as a generic document (the deployer's own types would reject nothing less).
pub fn load_config(root: &Path) -> Result<Json> {
    let path = root.join("deployer.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(serde_json::to_value(value)?)
}

/// Every template file (`<templates>/task-definitions/**/*.hbs`) against one Terraform
/// environment: `tf_output` references must be declared outputs; a template named like an ECS
/// service (`orchestrator.json.hbs`) must use that service's literal container name and port.
pub fn check_template_dir(root: &Path, templates: &Path, tf: &TfEnvironment) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().and_then(|x| x.to_str()) == Some("hbs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join(templates), &mut files);
    files.sort();
    let mut p = Vec::new();
    if files.is_empty() {
        p.push(format!("no templates under {}", templates.display()));
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let stem = f
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json.hbs"))
            .unwrap_or("");
        let shown = f.strip_prefix(root).unwrap_or(&f).to_path_buf();
        p.extend(check_template_text(
            &text,
            &shown,
            tf,
            tf.services.get(stem),
        ));
    }
    p
}

/// Terraform's deploy tables against the key schema the deployer uses.
pub fn check_table_keys(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (table, deployer_keys) in deployer_table_keys(root)? {
        let tf_keys = terraform_table_keys(root, table)?;
        if tf_keys != deployer_keys {
            problems.push(format!(
                "the {table} table's key schema is {tf_keys:?} in terraform/modules/deploy_state but the deployer uses {deployer_keys:?}"
            ));
        }
    }
    Ok(problems)
}

/// Placeholder `terraform output -json` for an environment: every declared output, its value
/// naming the output (`tf:<name>`), so a rendered field shows which output it came from.
pub fn placeholder_outputs(tf: &TfEnvironment) -> Json {
    let mut m = serde_json::Map::new();
    for name in &tf.outputs {
        let tag = Json::String(format!("tf:{name}"));
        let value = if name.ends_with("_ids") {
            Json::Array(vec![tag])
        } else if name.ends_with("_names") || name.ends_with("_families") {
            serde_json::json!({ "tf": tag })
        } else {
            tag
        };
        m.insert(
            name.clone(),
            serde_json::json!({ "value": value, "type": "string", "sensitive": false }),
        );
    }
    Json::Object(m)
}

/// Renders every service's (and the migration's) task definition with the deployer's own config
/// loader, variables and renderer, against placeholder Terraform outputs, and compares what
/// would be registered with Terraform: family, container name, port, roles, log group, size.
pub fn check_rendered(root: &Path) -> Result<Vec<String>> {
    use deployer::config;
    use deployer::taskdef::{Release, RenderSet};
    let mut p = Vec::new();
    let tmp = tempfile::tempdir()?;
    let cfg_text =
        std::fs::read_to_string(root.join("deployer.toml")).context("reading deployer.toml")?;
    std::fs::write(tmp.path().join("deployer.toml"), &cfg_text)?;
    let raw = load_config(root)?;
    let templates = raw
        .pointer("/project/templates")
        .and_then(Json::as_str)
        .unwrap_or("templates");
    test_support::copy_tree(&root.join(templates), &tmp.path().join(templates))?;
    let envs = terraform_environments(root)?;
    let mut tfs = BTreeMap::new();
    for env in &envs {
        let tf = terraform_environment(root, env)?;
        if let Some(file) = raw
            .pointer(&format!("/environments/{env}/tf_output"))
            .and_then(Json::as_str)
        {
            let path = tmp.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap_or(tmp.path()))?;
            std::fs::write(&path, serde_json::to_string(&placeholder_outputs(&tf))?)?;
        }
        tfs.insert(env.clone(), tf);
    }
    let cfg = config::load_with_env(&tmp.path().join("deployer.toml"), &[])
        .map_err(|e| anyhow!("deployer.toml does not load with Terraform's outputs: {e}"))?;
    let release = Release {
        git_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        version: "0.0.0".into(),
        image: Some("registry.invalid/agentic-platform@sha256:0".into()),
        release_id: None,
    };
    for (env_name, tf) in &tfs {
        let env = match cfg.environment(env_name) {
            Ok(e) => e,
            Err(e) => {
                p.push(format!("[environments.{env_name}]: {e}"));
                continue;
            }
        };
        let set = RenderSet::new(&cfg, env_name, env).map_err(|e| anyhow!("{e}"))?;
        for target in set.all_targets() {
            let (name, template, svc) = (target.name.to_owned(), target.template, target.service);
            let at = format!("{env_name}: `{template}` rendered for {name}");
            let td = match set.render(&target, &release) {
                Ok(td) => serde_json::to_value(td)?,
                Err(e) => {
                    p.push(format!("{at} fails: {e}"));
                    continue;
                }
            };
            let get = |ptr: &str| {
                td.pointer(ptr)
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (family, container, port, cpu, memory, role) = match tf.services.get(&name) {
                Some(t) => (
                    t.family.clone(),
                    t.container_name.clone(),
                    t.container_port,
                    Some(t.cpu),
                    Some(t.memory),
                    if t.load_balanced {
                        "orchestrator_task_role_arn"
                    } else {
                        "agent_task_role_arn"
                    },
                ),
                None if svc.is_none() => (
                    tf.migration_family.clone(),
                    tf.migration_container.clone(),
                    None,
                    None,
                    None,
                    "migrate_task_role_arn",
                ),
                None => continue, // reported by check_deployer_config
            };
            let mut expect = |what: &str, got: String, want: String| {
                if got != want {
                    p.push(format!("{at}: {what} is `{got}`, Terraform's is `{want}`"));
                }
            };
            expect("family", get("/family"), family);
            expect(
                "container name",
                get("/containerDefinitions/0/name"),
                container,
            );
            expect(
                "container port",
                td.pointer("/containerDefinitions/0/portMappings/0/containerPort")
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "none".into()),
                port.map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
            );
            expect(
                "executionRoleArn",
                get("/executionRoleArn"),
                "tf:task_execution_role_arn".into(),
            );
            expect("taskRoleArn", get("/taskRoleArn"), format!("tf:{role}"));
            expect(
                "awslogs-group",
                get("/containerDefinitions/0/logConfiguration/options/awslogs-group"),
                "tf:log_group_name".into(),
            );
            if let (Some(c), Some(m)) = (cpu, memory) {
                expect("cpu", get("/cpu"), c.to_string());
                expect("memory", get("/memory"), m.to_string());
            }
        }
    }
    Ok(p)
}

/// All checks on a repository tree; empty = consistent. Without a `deployer.toml` the templates
/// directory, tables and workflows are still checked (and the caller is told).
pub fn check_all(root: &Path, cli: Option<&DeployerCli>) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let config = if root.join("deployer.toml").is_file() {
        Some(load_config(root)?)
    } else {
        None
    };
    let templates = config
        .as_ref()
        .and_then(|c| c.pointer("/project/templates").and_then(Json::as_str))
        .unwrap_or("templates")
        .to_string();
    for env in terraform_environments(root)? {
        let tf = terraform_environment(root, &env)?;
        if let Some(config) = &config {
            problems.extend(check_deployer_config(root, config, &tf));
        }
        problems.extend(check_template_dir(root, Path::new(&templates), &tf));
    }
    problems.extend(check_table_keys(root)?);
    let calls = workflow_invocations(root)?;
    if calls.is_empty() {
        problems.push("no workflow calls the deployer".into());
    }
    if let Some(config) = &config {
        problems.extend(check_workflow_env(config, &calls));
        problems.extend(check_tf_output_files(
            root,
            config,
            &terraform_environments(root)?,
        ));
    }
    if let Some(cli) = cli {
        problems.extend(check_invocations(cli, &calls));
    }
    problems.sort();
    problems.dedup();
    Ok(problems)
}
