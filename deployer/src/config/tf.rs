//! Terraform outputs: `{{tf_output "name"}}` references in settings, resolved from the
//! environment's `terraform output -json` file, which is read once, at load time.

use std::path::{Path, PathBuf};

use super::*;

/// The `{{tf_output "name"}}` references in a string: (byte range, output name).
pub fn tf_output_refs(s: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = s[from..].find("{{").map(|i| i + from) {
        let Some(end) = s[start..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        let inner = s[start + 2..end - 2].trim();
        if let Some(arg) = inner.strip_prefix("tf_output") {
            let name = arg
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string();
            if !name.is_empty() {
                out.push((start..end, name));
            }
        }
        from = end;
    }
    out
}

/// The environment's `terraform output -json` file as read at load time.
#[derive(Debug, Clone, Default)]
pub enum TfOutputs {
    /// The environment sets no `tf_output` file.
    #[default]
    NotConfigured,
    Loaded {
        path: PathBuf,
        outputs: serde_json::Value,
    },
    /// Set but unusable; an error only where the outputs are needed (templates, references).
    Unreadable { path: PathBuf, why: String },
}

impl TfOutputs {
    fn read(path: PathBuf) -> Self {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| {
                format!(
                    "cannot read the terraform outputs file {}: {e}",
                    path.display()
                )
            })
            .and_then(|t| {
                serde_json::from_str::<serde_json::Value>(&t)
                    .map_err(|e| format!("{} is not JSON: {e}", path.display()))
            })
            .and_then(|v| {
                if v.is_object() {
                    Ok(v)
                } else {
                    Err(format!(
                        "{} is not a JSON object of outputs",
                        path.display()
                    ))
                }
            });
        match parsed {
            Ok(outputs) => TfOutputs::Loaded { path, outputs },
            Err(why) => TfOutputs::Unreadable { path, why },
        }
    }

    /// The outputs for templates: none when not configured, an error when unreadable.
    pub fn get(
        &self,
        config_file: &Path,
    ) -> Result<Option<(&Path, &serde_json::Value)>, ConfigError> {
        match self {
            TfOutputs::NotConfigured => Ok(None),
            TfOutputs::Loaded { path, outputs } => Ok(Some((path, outputs))),
            TfOutputs::Unreadable { why, .. } => Err(ConfigError::Invalid {
                path: config_file.to_path_buf(),
                message: why.clone(),
                hint: Some("write it with `terraform output -json > <file>` in the environment's terraform directory, or fix `tf_output` in deployer.toml".into()),
            }),
        }
    }
}

/// Reads each environment's `tf_output` file (once), then replaces `{{tf_output "name"}}` in
/// every string setting with the value from it. A list element that is exactly one reference
/// to a list output expands to that list (e.g. subnets).
pub(super) fn resolve_tf_outputs(config: &mut Config) -> Result<(), ConfigError> {
    for (name, env) in config.environments.iter_mut() {
        let outputs = match &env.tf_output {
            Some(file) => TfOutputs::read(if file.is_absolute() {
                file.clone()
            } else {
                config.root.join(file)
            }),
            None => TfOutputs::NotConfigured,
        };
        env.tf_outputs = outputs.clone();
        let mut settings = serde_json::to_value(&*env).expect("environment serialises");
        let mut strings = Vec::new();
        collect_strings(&settings, &mut strings);
        if !strings.iter().any(|s| !tf_output_refs(s).is_empty()) {
            continue;
        }
        let (path, outputs) = match &outputs {
            TfOutputs::NotConfigured => {
                return Err(ConfigError::Invalid {
                    path: config.source.clone(),
                    message: format!("environments.{name} uses tf_output references but sets no `tf_output` file"),
                    hint: Some("add tf_output = \"<file written by terraform output -json>\" to the environment".into()),
                });
            }
            TfOutputs::Unreadable { path, why } => {
                env.unresolved_tf_outputs = Some(format!(
                    "environment `{name}` takes settings from {} ({why}); write it with `terraform output -json > {}`",
                    path.display(),
                    path.display()
                ));
                continue;
            }
            TfOutputs::Loaded { path, outputs } => (path, outputs),
        };
        substitute(&mut settings, outputs, path).map_err(|message| ConfigError::Invalid {
            path: config.source.clone(),
            message: format!("environments.{name}: {message}"),
            hint: Some(format!(
                "add the output to terraform or fix the reference; outputs are read from {}",
                path.display()
            )),
        })?;
        if let Some(o) = settings.as_object_mut() {
            o.remove("api_token");
            if let Some(n) = o.get_mut("notifications").and_then(|n| n.as_object_mut()) {
                n.remove("webhook_url");
            }
        }
        let mut resolved: Environment =
            serde_json::from_value(settings).map_err(|e| ConfigError::Invalid {
                path: config.source.clone(),
                message: format!("environments.{name}: after substituting terraform outputs: {e}"),
                hint: Some("a tf_output value has the wrong type for its setting".into()),
            })?;
        resolved.api_token = env.api_token.take();
        resolved.notifications.webhook_url = env.notifications.webhook_url.take();
        resolved.tf_outputs = std::mem::take(&mut env.tf_outputs);
        *env = resolved;
    }
    Ok(())
}

fn collect_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

fn output_value<'a>(
    outputs: &'a serde_json::Value,
    name: &str,
    path: &Path,
) -> Result<&'a serde_json::Value, String> {
    let o = outputs
        .get(name)
        .ok_or_else(|| format!("terraform output `{name}` is not in {}", path.display()))?;
    if o.get("sensitive").and_then(serde_json::Value::as_bool) == Some(true) {
        return Err(format!(
            "terraform output `{name}` is sensitive and cannot be a setting"
        ));
    }
    Ok(o.get("value").unwrap_or(o))
}

fn substitute(
    v: &mut serde_json::Value,
    outputs: &serde_json::Value,
    path: &Path,
) -> Result<(), String> {
    use serde_json::Value as J;
    match v {
        J::String(s) => {
            let refs = tf_output_refs(s);
            if refs.is_empty() {
                return Ok(());
            }
            if refs.len() == 1 && refs[0].0 == (0..s.len()) {
                let val = output_value(outputs, &refs[0].1, path)?;
                *v = match val {
                    J::String(x) => J::String(x.clone()),
                    J::Number(n) => J::String(n.to_string()),
                    other => other.clone(),
                };
                return Ok(());
            }
            let mut out = String::new();
            let mut last = 0;
            for (range, name) in refs {
                out.push_str(&s[last..range.start]);
                match output_value(outputs, &name, path)? {
                    J::String(x) => out.push_str(x),
                    other => out.push_str(&other.to_string()),
                }
                last = range.end;
            }
            out.push_str(&s[last..]);
            *s = out;
        }
        J::Array(items) => {
            let mut expanded = Vec::new();
            for mut item in std::mem::take(items) {
                let whole_ref = item.as_str().is_some_and(
                    |s| matches!(tf_output_refs(s).as_slice(), [(r, _)] if *r == (0..s.len())),
                );
                substitute(&mut item, outputs, path)?;
                match item {
                    J::Array(inner) if whole_ref => expanded.extend(inner),
                    other => expanded.push(other),
                }
            }
            *items = expanded;
        }
        J::Object(o) => {
            for (k, x) in o.iter_mut() {
                // Template variables keep their references: templates resolve them at render time.
                if k == "vars" {
                    continue;
                }
                substitute(x, outputs, path)?;
            }
        }
        _ => {}
    }
    Ok(())
}
