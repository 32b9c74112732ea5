//! Loading: the file, then `DEPLOYER_*` variables, then secrets from the environment, then
//! Terraform outputs, then validation. Errors name file, line and column, with a hint.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::tf::resolve_tf_outputs;
use super::*;

// ------------------------------------------------------------------ loading

/// Values from CLI flags; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Finds the config file: the given path, else `./deployer.toml`, else the nearest one upwards.
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for dir in cwd.ancestors() {
        let candidate = dir.join(DEFAULT_FILE);
        if candidate.is_file() {
            return candidate;
        }
    }
    cwd.join(DEFAULT_FILE)
}

/// Loads the file and applies `DEPLOYER_*` variables from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, &vars)
}

/// Like [`load`], with the environment given (tests).
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        hint: if source.kind() == std::io::ErrorKind::NotFound {
            "create deployer.toml at the repository root, or pass --config <file> (or DEPLOYER_CONFIG)".into()
        } else {
            "check the file's permissions".into()
        },
        source,
    })?;
    let mut config = parse_str(path, &text, env)?;
    config.source = path.to_path_buf();
    config.root = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    resolve_secrets(&mut config, env)?;
    resolve_tf_outputs(&mut config)?;
    check(&config)?;
    Ok(config)
}

pub(super) fn parse_str(
    path: &Path,
    text: &str,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    // First the file alone, so its errors carry a line and column.
    let file_only: Result<Config, toml::de::Error> = toml::from_str(text);
    let file_only = file_only.map_err(|e| parse_error(path, text, &e))?;
    let overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !FLAG_VARS.contains(&k.as_str()))
        .collect();
    if overrides.is_empty() {
        return Ok(file_only);
    }
    let mut tree: toml::Value = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
    let mut applied = Vec::new();
    let mut applied_values: Vec<(String, String)> = Vec::new();
    for (var, value) in overrides {
        let keys: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|k| k.to_ascii_lowercase())
            .collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: "empty key in the variable name".into(),
                hint: Some("separate levels with a double underscore, e.g. DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER".into()),
            });
        }
        set_path(&mut tree, &keys, value).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message,
            hint: Some("the variable names a key path of deployer.toml; list items by index (…__SERVICES__0__…)".into()),
        })?;
        applied.push((keys.join("."), var.clone()));
        applied_values.push((var.clone(), value.clone()));
    }
    serde_path_to_error::deserialize::<_, Config>(tree).map_err(|e| {
        let key = e.path().to_string();
        // serde quotes the offending value; it may be a secret (a header, a token).
        let mut message = e.inner().to_string();
        for (_, value) in &applied_values {
            if value.len() >= 4 {
                message = message.replace(value.as_str(), "[redacted]");
            }
        }
        let var = applied
            .iter()
            .filter(|(k, _)| key.starts_with(k.as_str()) || k.starts_with(key.as_str()))
            .map(|(_, v)| v.clone())
            .next()
            .unwrap_or_else(|| {
                applied
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        ConfigError::Env {
            hint: hint_for(&message),
            var,
            message: format!("{key}: {message}"),
        }
    })
}

fn set_path(tree: &mut toml::Value, keys: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = keys.split_last().expect("non-empty key path");
    let mut cur = tree;
    for k in parents {
        cur = match cur {
            toml::Value::Table(t) => t
                .entry(k.clone())
                .or_insert_with(|| toml::Value::Table(Default::default())),
            toml::Value::Array(a) => {
                let i: usize = k
                    .parse()
                    .map_err(|_| format!("`{k}` is not a list index"))?;
                let len = a.len();
                a.get_mut(i).ok_or_else(|| {
                    format!("index {i} is out of range (the list has {len} items)")
                })?
            }
            _ => return Err(format!("`{k}` is inside a value that is not a table")),
        };
    }
    let existing_is_string = match &*cur {
        toml::Value::Table(t) => matches!(t.get(last), Some(toml::Value::String(_))),
        _ => false,
    };
    let value = if existing_is_string {
        toml::Value::String(raw.to_string())
    } else {
        parse_scalar(raw)
    };
    match cur {
        toml::Value::Table(t) => {
            t.insert(last.clone(), value);
            Ok(())
        }
        toml::Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("`{last}` is not a list index"))?;
            let len = a.len();
            *a.get_mut(i)
                .ok_or_else(|| format!("index {i} is out of range (the list has {len} items)"))? =
                value;
            Ok(())
        }
        _ => Err(format!("`{last}` is inside a value that is not a table")),
    }
}

fn parse_scalar(raw: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct W {
        v: toml::Value,
    }
    toml::from_str::<W>(&format!("v = {raw}"))
        .map(|w| w.v)
        .unwrap_or_else(|_| toml::Value::String(raw.to_string()))
}

fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let (line, column, snippet) = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let snippet = text.lines().nth(line - 1).map(|l| l.to_string());
            let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            (Some(n(line)), Some(n(column)), snippet)
        }
        None => (None, None, None),
    };
    ConfigError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        hint: hint_for(&message),
        message,
        snippet,
    }
}

/// A hint for serde's messages: the closest expected key, or what the type should look like.
fn hint_for(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = message
            .split_once("expected")
            .map(|(_, e)| e.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let best = expected
            .iter()
            .map(|k| (strsim::jaro_winkler(field, k), *k))
            .filter(|(s, _)| *s > 0.75)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        return Some(match best {
            Some((_, k)) => format!("did you mean `{k}`? (keys are listed in docs/deployer.md)"),
            None => "remove it; the keys are listed in docs/deployer.md".into(),
        });
    }
    if message.starts_with("unknown variant") {
        return Some("use one of the values listed".into());
    }
    if message.starts_with("missing field") {
        let field = message.split('`').nth(1).unwrap_or("it");
        return Some(format!("add `{field} = …` to this table"));
    }
    if message.starts_with("invalid type: string") {
        if message.contains("expected u") || message.contains("expected i") {
            return Some("write the number without quotes".into());
        }
        if message.contains("expected a boolean") {
            return Some("write true or false without quotes".into());
        }
        if message.contains("sequence") {
            return Some("write a list, e.g. [\"a\", \"b\"]".into());
        }
    }
    if message.starts_with("invalid type") && message.contains("expected a string") {
        return Some("quote the value".into());
    }
    if message.contains("duration") || message.contains("time unit") || message.contains("unit") {
        return Some("durations are strings like \"30s\", \"5m\", \"1h 30m\"".into());
    }
    None
}

pub(super) fn resolve_secrets(
    config: &mut Config,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    for e in config.environments.values_mut() {
        if let Some(var) = &e.api_token_env {
            e.api_token = get(var).map(SecretString::from);
        }
        if let Some(var) = &e.notifications.webhook_url_env {
            e.notifications.webhook_url = get(var).map(SecretString::from);
        }
    }
    Ok(())
}

/// Rules serde cannot express.
pub(super) fn check(config: &Config) -> Result<(), ConfigError> {
    let invalid = |message: String, hint: &str| ConfigError::Invalid {
        path: config.source.clone(),
        message,
        hint: Some(hint.to_string()),
    };
    // ECS rejects PAUSE hooks at the stages where traffic shifts (the pause-lifecycle-hooks page
    // of the ECS developer guide; the emulator enforces the same, docs/moto-plugin.md).
    const PAUSE_NOT_ALLOWED: [&str; 2] = ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"];
    for (env_name, e) in &config.environments {
        let mut names = std::collections::HashSet::new();
        for (i, s) in e.services.iter().enumerate() {
            let at = format!("environments.{env_name}.services[{i}]");
            if !names.insert(s.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name: service `{}` is listed twice", s.name),
                    "each service appears once per environment",
                ));
            }
            for (j, h) in s.hooks.iter().enumerate() {
                // The stages the ECS API model defines (the SDK's enum), not a copy of them.
                let stages = aws_sdk_ecs::types::DeploymentLifecycleHookStage::values();
                let pausable: Vec<&str> = stages
                    .iter()
                    .copied()
                    .filter(|s| !PAUSE_NOT_ALLOWED.contains(s))
                    .collect();
                if !stages.contains(&h.stage.as_str()) {
                    return Err(invalid(
                        format!(
                            "{at}.hooks[{j}].stage: `{}` is not a lifecycle stage",
                            h.stage
                        ),
                        &format!("use one of {}", pausable.join(", ")),
                    ));
                }
                if PAUSE_NOT_ALLOWED.contains(&h.stage.as_str()) {
                    return Err(invalid(
                        format!(
                            "{at}.hooks[{j}].stage: ECS does not allow a PAUSE hook at `{}` (traffic is moving during that stage)",
                            h.stage
                        ),
                        &format!(
                            "pause after the shift instead, at one of {}",
                            pausable.join(", ")
                        ),
                    ));
                }
                if h.target_arn.is_some() || h.role_arn.is_some() {
                    return Err(invalid(
                        format!(
                            "{at}.hooks[{j}]: target_arn/role_arn describe a Lambda hook; the deployer's hooks are PAUSE hooks it gates itself"
                        ),
                        "configure Lambda hooks on the service (Terraform's deployment_configuration); the deployer keeps them on every release. Remove target_arn and role_arn here",
                    ));
                }
            }
            if s.strategy == Strategy::Rolling && !s.hooks.is_empty() {
                return Err(invalid(
                    format!(
                        "{at}.hooks: lifecycle hooks need strategy = \"blue_green\", \"linear\" or \"canary\""
                    ),
                    "remove the hooks or switch the strategy",
                ));
            }
            check_steps(s).map_err(|(message, hint)| invalid(format!("{at}.{message}"), hint))?;
            if let Some(lb) = &s.load_balancer
                && s.strategy.shifts_traffic()
                && lb.alternate_target_group_arn.is_none()
            {
                return Err(invalid(
                    format!(
                        "{at}.load_balancer: strategy {} with a load balancer needs alternate_target_group_arn",
                        s.strategy.ecs_name()
                    ),
                    "add alternate_target_group_arn, production_listener_rule, test_listener_rule and role_arn",
                ));
            }
            for name in s.smoke_checks.iter().flatten() {
                if !e.smoke_checks.iter().any(|c| &c.name == name) {
                    return Err(invalid(
                        format!(
                            "{at}.smoke_checks: `{name}` is not a smoke check of this environment"
                        ),
                        "define it under [[environments.<env>.smoke_checks]]",
                    ));
                }
            }
        }
        for (i, a) in e.analysis.iter().enumerate() {
            let at = format!("environments.{env_name}.analysis[{i}]");
            check_analysis(a, e)
                .map_err(|(message, hint)| invalid(format!("{at}.{message}"), &hint))?;
        }
        for (i, c) in e.smoke_checks.iter().enumerate() {
            let at = format!("environments.{env_name}.smoke_checks[{i}]");
            if !c.path.starts_with('/') {
                return Err(invalid(
                    format!("{at}.path: `{}` must start with /", c.path),
                    "e.g. path = \"/api/v1/health\"",
                ));
            }
            for (j, a) in c.assertions.iter().enumerate() {
                if !a.pointer.is_empty() && !a.pointer.starts_with('/') {
                    return Err(invalid(
                        format!(
                            "{at}.assertions[{j}].pointer: `{}` is not a JSON pointer",
                            a.pointer
                        ),
                        "JSON pointers start with /, e.g. \"/git_sha\"",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// LINEAR/CANARY settings: only with their strategy, within what ECS accepts (the ranges of
/// `LinearConfiguration` / `CanaryConfiguration` in the ECS API model). Errors are
/// (field and problem, hint).
fn check_steps(s: &super::Service) -> Result<(), (String, &'static str)> {
    use std::time::Duration;
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let percent = |field: &str, v: f64, min: f64| -> Result<(), (String, &'static str)> {
        let tenths = v * 10.0;
        if !(min..=100.0).contains(&v) || (tenths - tenths.round()).abs() > 1e-6 {
            return Err((
                format!("{field}: {v} is not a percentage ECS accepts"),
                if min >= 3.0 {
                    "use a multiple of 0.1 from 3.0 to 100.0"
                } else {
                    "use a multiple of 0.1 from 0.1 to 100.0"
                },
            ));
        }
        Ok(())
    };
    let bake = |field: &str, d: Duration| -> Result<(), (String, &'static str)> {
        if d > DAY || !d.as_secs().is_multiple_of(60) {
            return Err((
                format!(
                    "{field}: {} is not a bake time ECS accepts",
                    humantime::format_duration(d)
                ),
                "use whole minutes from 0m to 24h (ECS counts bake time in minutes)",
            ));
        }
        Ok(())
    };
    let linear = s.strategy == Strategy::Linear;
    let canary = s.strategy == Strategy::Canary;
    for (field, set, ok) in [
        ("step_percent", s.step_percent.is_some(), linear),
        ("step_bake_time", s.step_bake_time.is_some(), linear),
        ("canary_percent", s.canary_percent.is_some(), canary),
        ("canary_bake_time", s.canary_bake_time.is_some(), canary),
    ] {
        if set && !ok {
            return Err((
                format!(
                    "{field}: set, but the strategy is {}",
                    s.strategy.ecs_name()
                ),
                "step_* keys belong to strategy = \"linear\", canary_* keys to strategy = \"canary\"",
            ));
        }
    }
    if let Some(v) = s.step_percent {
        percent("step_percent", v, 3.0)?;
    }
    if let Some(v) = s.canary_percent {
        percent("canary_percent", v, 0.1)?;
    }
    if let Some(d) = s.step_bake_time {
        bake("step_bake_time", d)?;
    }
    if let Some(d) = s.canary_bake_time {
        bake("canary_bake_time", d)?;
    }
    if s.strategy.steps_traffic() && s.load_balancer.is_none() {
        return Err((
            format!(
                "strategy: {} shifts production traffic through a load balancer, and the service has none",
                s.strategy.ecs_name()
            ),
            "add [load_balancer] with both target groups and listener rules, or use strategy = \"blue_green\"",
        ));
    }
    Ok(())
}

/// An analysis entry CloudWatch can answer and the deployer can judge.
fn check_analysis(a: &super::Analysis, e: &super::Environment) -> Result<(), (String, String)> {
    if a.max.is_none() && a.max_relative.is_none() {
        return Err((
            "max: an analysis needs a limit".into(),
            "set `max` (absolute) or `max_relative` (times the old target group's value), or both"
                .into(),
        ));
    }
    if a.failing_intervals == 0 {
        return Err((
            "failing_intervals: 0 would fail before any data".into(),
            "use 1 or more consecutive failing periods".into(),
        ));
    }
    let secs = a.period.as_secs();
    if a.period.subsec_nanos() != 0
        || !(matches!(secs, 1 | 5 | 10 | 30) || (secs > 0 && secs.is_multiple_of(60)))
    {
        return Err((
            format!(
                "period: {} is not a CloudWatch period",
                humantime::format_duration(a.period)
            ),
            "use 1s, 5s, 10s or 30s (high-resolution metrics) or a multiple of 60s".into(),
        ));
    }
    let stat_ok = matches!(
        a.stat.as_str(),
        "Sum" | "Average" | "Maximum" | "Minimum" | "SampleCount"
    ) || a
        .stat
        .strip_prefix('p')
        .and_then(|p| p.parse::<f64>().ok())
        .is_some_and(|p| p > 0.0 && p < 100.0);
    if !stat_ok {
        return Err((
            format!("stat: `{}` is not a CloudWatch statistic", a.stat),
            "use Sum, Average, Maximum, Minimum, SampleCount or a percentile such as p99".into(),
        ));
    }
    for name in a.services.iter().flatten() {
        let Some(svc) = e.services.iter().find(|s| &s.name == name) else {
            return Err((
                format!("services: `{name}` is not a service of this environment"),
                "name services listed under [[environments.<env>.services]]".into(),
            ));
        };
        if svc.load_balancer.is_none() || !svc.strategy.shifts_traffic() {
            return Err((
                format!("services: `{name}` has no load balancer whose traffic ECS shifts"),
                "analysis compares the new target group with the old one: it applies to blue_green, linear and canary services with a load balancer".into(),
            ));
        }
    }
    Ok(())
}
