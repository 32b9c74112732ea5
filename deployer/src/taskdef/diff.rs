//! Rendered vs live task definitions, compared after normalising what AWS adds or reorders, so
//! an unchanged definition shows no diff.
//!
//! What the normalisation removes or rewrites (on both sides):
//! - read-only fields of a registered definition: taskDefinitionArn, revision, status,
//!   registeredAt/By, deregisteredAt, requiresAttributes, compatibilities; and tags (the deployer
//!   tags every revision with its release);
//! - nulls, empty lists and empty objects; container `cpu: 0`;
//! - defaults AWS fills in: `essential: true`, port protocol `tcp`, `hostPort` = `containerPort`
//!   under awsvpc/host networking, health-check interval 30 / timeout 5 / retries 3 /
//!   startPeriod 0, networkMode `bridge`, `enableFaultInjection: false`,
//!   `versionConsistency: "enabled"`;
//! - ARNs vs names: IAM roles compare by role name; cpu/memory compare by units ("1 vCPU" = "1024");
//! - order: containers by name, environment and secrets by name, requiresCompatibilities sorted,
//!   object keys sorted.

use serde_json::{Map, Value};
use similar::TextDiff;

use deployer_taskdef::{parse_cpu_units, parse_memory_mib};

/// Read-only fields of a registered task definition.
const READ_ONLY: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "requiresAttributes",
    "compatibilities",
    "tags",
];

/// The task definition object from a DescribeTaskDefinition response (or the object itself).
pub fn live_definition(response: &Value) -> &Value {
    response.get("taskDefinition").unwrap_or(response)
}

/// Normalises a task definition (rendered or live) for comparison.
pub fn normalise(td: &Value) -> Value {
    let mut v = td.clone();
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    for k in READ_ONLY {
        obj.remove(*k);
    }
    if !obj.contains_key("networkMode") {
        obj.insert("networkMode".into(), "bridge".into());
    }
    let network_mode = obj
        .get("networkMode")
        .and_then(Value::as_str)
        .unwrap_or("bridge")
        .to_string();
    for role in ["taskRoleArn", "executionRoleArn"] {
        if let Some(Value::String(s)) = obj.get_mut(role) {
            *s = role_name(s);
        }
    }
    if let Some(Value::String(s)) = obj.get_mut("cpu")
        && let Some(u) = parse_cpu_units(s)
    {
        *s = u.to_string();
    }
    if let Some(Value::String(s)) = obj.get_mut("memory")
        && let Some(m) = parse_memory_mib(s)
    {
        *s = m.to_string();
    }
    if obj.get("enableFaultInjection") == Some(&Value::Bool(false)) {
        obj.remove("enableFaultInjection");
    }
    if let Some(Value::Array(a)) = obj.get_mut("requiresCompatibilities") {
        a.sort_by_key(|x| x.as_str().unwrap_or_default().to_string());
    }
    if let Some(Value::Array(containers)) = obj.get_mut("containerDefinitions") {
        for c in containers.iter_mut() {
            normalise_container(c, &network_mode);
        }
        containers.sort_by_key(|c| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        });
    }
    canonical(&v).unwrap_or(Value::Object(Map::new()))
}

fn role_name(s: &str) -> String {
    if s.starts_with("arn:") {
        s.rsplit('/').next().unwrap_or(s).to_string()
    } else {
        s.to_string()
    }
}

fn normalise_container(c: &mut Value, network_mode: &str) {
    let Some(c) = c.as_object_mut() else {
        return;
    };
    if c.get("cpu") == Some(&Value::from(0)) {
        c.remove("cpu");
    }
    if !c.contains_key("essential") {
        c.insert("essential".into(), Value::Bool(true));
    }
    if c.get("versionConsistency").and_then(Value::as_str) == Some("enabled") {
        c.remove("versionConsistency");
    }
    if let Some(Value::Array(ports)) = c.get_mut("portMappings") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if !p.contains_key("protocol") {
                p.insert("protocol".into(), "tcp".into());
            }
            if matches!(network_mode, "awsvpc" | "host")
                && !p.contains_key("hostPort")
                && let Some(cp) = p.get("containerPort").cloned()
            {
                p.insert("hostPort".into(), cp);
            }
        }
    }
    for list in ["environment", "secrets"] {
        if let Some(Value::Array(a)) = c.get_mut(list) {
            a.sort_by_key(|e| {
                e.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            });
        }
    }
    if let Some(Value::Object(h)) = c.get_mut("healthCheck") {
        for (k, d) in [
            ("interval", 30),
            ("timeout", 5),
            ("retries", 3),
            ("startPeriod", 0),
        ] {
            if !h.contains_key(k) {
                h.insert(k.into(), Value::from(d));
            }
        }
    }
}

/// Drops nulls and empty containers recursively and sorts object keys (whatever map type
/// serde_json was built with). None when the value itself is empty.
fn canonical(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) => {
            let items: Vec<Value> = a.iter().filter_map(canonical).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(o) => {
            let mut entries: Vec<(&String, Value)> = o
                .iter()
                .filter_map(|(k, v)| canonical(v).map(|v| (k, v)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let mut m = Map::new();
            for (k, v) in entries {
                m.insert(k.clone(), v);
            }
            (!m.is_empty()).then_some(Value::Object(m))
        }
        other => Some(other.clone()),
    }
}

/// A unified diff of two normalised definitions; empty when equal.
pub fn unified(live: &Value, rendered: &Value, live_label: &str, rendered_label: &str) -> String {
    let a = serde_json::to_string_pretty(live).expect("json") + "\n";
    let b = serde_json::to_string_pretty(rendered).expect("json") + "\n";
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(live_label, rendered_label)
        .to_string()
}

/// Colours a unified diff for a terminal.
pub fn colorize(diff: &str) -> String {
    diff.lines()
        .map(|l| {
            let styled = if l.starts_with("+++") || l.starts_with("---") {
                console::style(l).bold().to_string()
            } else if l.starts_with('+') {
                console::style(l).green().to_string()
            } else if l.starts_with('-') {
                console::style(l).red().to_string()
            } else if l.starts_with("@@") {
                console::style(l).cyan().to_string()
            } else {
                l.to_string()
            };
            styled + "\n"
        })
        .collect()
}

/// Top-level and per-container field paths that differ (for the summary line).
pub fn changed_fields(live: &Value, rendered: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", live, rendered, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let label = p
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|n| format!("{path}[{n}]"))
                    .unwrap_or_else(|| format!("{path}[{i}]"));
                walk(&label, p, q, out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_order_and_arns_do_not_count() {
        let rendered = json!({
            "family": "f", "networkMode": "awsvpc", "cpu": "1 vCPU", "memory": "2 GB",
            "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
            "containerDefinitions": [{"name": "a", "image": "i",
                "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                "portMappings": [{"containerPort": 3000}],
                "healthCheck": {"command": ["CMD", "x"]}}]
        });
        let live = json!({"taskDefinition": {
            "family": "f", "networkMode": "awsvpc", "cpu": "1024", "memory": "2048",
            "revision": 3, "status": "ACTIVE", "taskDefinitionArn": "arn:...:task-definition/f:3",
            "executionRoleArn": "exec", "volumes": [], "placementConstraints": [],
            "compatibilities": ["EC2", "FARGATE"], "requiresAttributes": [{"name": "x"}],
            "registeredAt": 1.0,
            "containerDefinitions": [{"name": "a", "image": "i", "cpu": 0, "essential": true,
                "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "portMappings": [{"containerPort": 3000, "hostPort": 3000, "protocol": "tcp"}],
                "mountPoints": [], "volumesFrom": [], "systemControls": [],
                "healthCheck": {"command": ["CMD", "x"], "interval": 30, "timeout": 5, "retries": 3}}]
        }});
        let a = normalise(live_definition(&live));
        let b = normalise(&rendered);
        assert_eq!(unified(&a, &b, "live", "rendered"), "");
    }

    #[test]
    fn one_field_change_shows_that_field() {
        let a = normalise(
            &json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "i:1"}]}),
        );
        let b = normalise(
            &json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "i:2"}]}),
        );
        let d = unified(&a, &b, "live", "rendered");
        let changed: Vec<&str> = d
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .collect();
        assert_eq!(
            changed,
            vec!["-      \"image\": \"i:1\",", "+      \"image\": \"i:2\","]
        );
        assert_eq!(
            changed_fields(&a, &b),
            vec!["containerDefinitions[a].image"]
        );
    }
}
