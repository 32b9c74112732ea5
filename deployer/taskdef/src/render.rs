//! Task-definition templates: handlebars in strict mode, rendered to JSON and validated against
//! the RegisterTaskDefinition input shape before anything is sent.
//!
//! Layout of a templates directory (`templates/task-definitions` in this repository):
//! - `<name>.json.hbs`: one task definition each (`orchestrator`, `agent-scaffold`, `migration` …);
//! - `partials/<name>.hbs`: shared fragments (`{{> logging}}`, `{{> secrets}}`, `{{> health_check}}`).
//!
//! Values written with `{{…}}` are escaped for a JSON string, so templates write them between
//! quotes; `{{json value}}` writes any value as JSON (lists, numbers, objects).
//!
//! Helpers:
//! - `env "NAME" ["default"]`: a process environment variable, the default (or "") when unset;
//! - `must_env "NAME"`: the same, but an unset or empty variable is an error naming it; both
//!   refuse variables listed in `vars.secret_env` (the config's secret-bearing variables);
//! - `tf_output "name"`: `vars.tf_outputs.<name>.value` (a `terraform output -json` document that
//!   the CLI loads from the environment's `tf_output` file into the variables);
//! - `image`: the release's image URI (`vars.image`), an error when there is none;
//! - `secret_arn "name"`: `vars.secrets.<name>`, an error naming the unknown secret;
//! - `json value`: the value as JSON;
//! - `concat a b …`: the values joined into one string (for partial parameters).

use std::path::{Path, PathBuf};

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use crate::{self as taskdef, TaskDefinition};

/// Suffix of a task-definition template file.
pub const TEMPLATE_SUFFIX: &str = ".json.hbs";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read templates in {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template `{template}` not found in {}; available: {}", dir.display(), if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    NotFound {
        template: String,
        dir: PathBuf,
        available: Vec<String>,
    },
    #[error("syntax error in template `{template}`{}: {message}", at_line(*line, *column))]
    Syntax {
        template: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error("cannot render template `{template}`{}: {message}", at_line(*line, *column))]
    Render {
        template: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error(
        "template `{template}` did not render to valid JSON (rendered line {line}, column {column}): {message}\n  {snippet}"
    )]
    Json {
        template: String,
        line: usize,
        column: usize,
        message: String,
        snippet: String,
    },
    #[error("template `{template}` renders an invalid task definition:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        template: String,
        problems: Vec<String>,
    },
}

fn at_line(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

/// Renders one task-definition template in strict mode and validates it. The stable entry point
/// the platform's deployment agent uses (see docs/contracts.md).
pub fn render_task_definition(
    templates_dir: &Path,
    template: &str,
    vars: &Value,
) -> Result<Value, RenderError> {
    Renderer::new(templates_dir)?.render(template, vars)
}

/// A templates directory loaded once (partials and every template), rendering many times.
pub struct Renderer {
    hb: Handlebars<'static>,
    dir: PathBuf,
    templates: Vec<String>,
}

impl Renderer {
    pub fn new(templates_dir: &Path) -> Result<Self, RenderError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(escape_json_string);
        hb.register_helper("env", Box::new(ValueHelper(env)));
        hb.register_helper("must_env", Box::new(ValueHelper(must_env)));
        hb.register_helper("tf_output", Box::new(ValueHelper(tf_output)));
        hb.register_helper("image", Box::new(ValueHelper(image)));
        hb.register_helper("secret_arn", Box::new(ValueHelper(secret_arn)));
        hb.register_helper("json", Box::new(JsonHelper));
        hb.register_helper("concat", Box::new(ValueHelper(concat)));

        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RenderError::Io { path, source }
        };
        let partials = templates_dir.join("partials");
        if partials.is_dir() {
            for (name, path) in list(&partials, ".hbs").map_err(io(&partials))? {
                let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                hb.register_partial(&name, text)
                    .map_err(|e| syntax(format!("partials/{name}"), e))?;
            }
        }
        let mut templates = Vec::new();
        for (name, path) in list(templates_dir, TEMPLATE_SUFFIX).map_err(io(templates_dir))? {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            hb.register_template_string(&name, text)
                .map_err(|e| syntax(name.clone(), e))?;
            templates.push(name);
        }
        templates.sort();
        Ok(Self {
            hb,
            dir: templates_dir.to_path_buf(),
            templates,
        })
    }

    /// Names of the task-definition templates (file names without `.json.hbs`).
    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// Renders `template` with `vars`, parses the JSON and validates the task definition.
    /// Returns the definition exactly as it would be registered.
    pub fn render(&self, template: &str, vars: &Value) -> Result<Value, RenderError> {
        Ok(serde_json::to_value(self.render_typed(template, vars)?)
            .expect("a task definition serialises"))
    }

    /// Like [`render`](Self::render) but returns the typed model (for registering it).
    pub fn render_typed(
        &self,
        template: &str,
        vars: &Value,
    ) -> Result<TaskDefinition, RenderError> {
        let name = template.strip_suffix(TEMPLATE_SUFFIX).unwrap_or(template);
        if !self.templates.iter().any(|t| t == name) {
            return Err(RenderError::NotFound {
                template: name.to_string(),
                dir: self.dir.clone(),
                available: self.templates.clone(),
            });
        }
        let text = self
            .hb
            .render(name, vars)
            .map_err(|e| RenderError::Render {
                template: e.template_name.clone().unwrap_or_else(|| name.to_string()),
                line: e.line_no,
                column: e.column_no,
                message: render_reason(&e),
            })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            let line = e.line();
            let snippet = text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or_default()
                .trim()
                .to_string();
            RenderError::Json {
                template: name.to_string(),
                line,
                column: e.column(),
                message: e.to_string(),
                snippet,
            }
        })?;
        let td = taskdef::from_json(&value).map_err(|p| RenderError::Invalid {
            template: name.to_string(),
            problems: vec![p],
        })?;
        let problems = td.validate();
        if !problems.is_empty() {
            return Err(RenderError::Invalid {
                template: name.to_string(),
                problems,
            });
        }
        Ok(td)
    }
}

fn list(dir: &Path, suffix: &str) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if let Some(stem) = file.strip_suffix(suffix) {
            let stem = stem.strip_suffix(".json").unwrap_or(stem).to_string();
            out.push((stem, path));
        }
    }
    Ok(out)
}

fn syntax(template: String, e: handlebars::TemplateError) -> RenderError {
    let (line, column) = e.pos().map(|(l, c)| (Some(l), Some(c))).unwrap_or_default();
    RenderError::Syntax {
        template,
        line,
        column,
        message: e.reason().to_string(),
    }
}

fn render_reason(e: &handlebars::RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!(
            "variable `{path}` is not defined (strict mode); pass it in the template variables or in `vars` of deployer.toml"
        ),
        RenderErrorReason::MissingVariable(None) => {
            "a variable is not defined (strict mode)".to_string()
        }
        RenderErrorReason::PartialNotFound(p) => {
            format!("partial `{p}` not found (partials live in partials/<name>.hbs)")
        }
        RenderErrorReason::HelperNotFound(h) => format!(
            "helper `{h}` does not exist (helpers: env, must_env, tf_output, image, secret_arn, json, concat)"
        ),
        other => other.to_string(),
    }
}

/// Escapes text for the inside of a JSON string literal.
fn escape_json_string(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("strings serialise");
    quoted[1..quoted.len() - 1].to_string()
}

fn fail(msg: String) -> handlebars::RenderError {
    RenderErrorReason::Other(msg).into()
}

/// A helper that computes a JSON value from its parameters and the template's data, so it also
/// works as a subexpression (`{{json (concat "a" b)}}`): one `HelperDef` for all of them.
struct ValueHelper<F>(F);

impl<F> HelperDef for ValueHelper<F>
where
    F: Fn(&Helper<'_>, &Value) -> Result<Value, handlebars::RenderError> + Send + Sync,
{
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        (self.0)(h, ctx.data()).map(ScopedJson::Derived)
    }
}

fn str_param<'a>(
    h: &'a Helper<'_>,
    idx: usize,
    helper: &str,
    what: &str,
) -> Result<&'a str, handlebars::RenderError> {
    h.param(idx)
        .and_then(|p| p.value().as_str())
        .ok_or_else(|| {
            fail(format!(
                "`{helper}` needs {what} as a quoted string, e.g. {{{{{helper} \"NAME\"}}}}"
            ))
        })
}

fn env(h: &Helper<'_>, data: &Value) -> Result<Value, handlebars::RenderError> {
    env_var(h, data, false)
}

fn must_env(h: &Helper<'_>, data: &Value) -> Result<Value, handlebars::RenderError> {
    env_var(h, data, true)
}

fn env_var(h: &Helper<'_>, data: &Value, required: bool) -> Result<Value, handlebars::RenderError> {
    let helper = if required { "must_env" } else { "env" };
    let name = str_param(h, 0, helper, "the variable name")?;
    // Variables the config declares as holding secrets never go into a task definition
    // (it is printed by `render` and stored in plain text by ECS).
    let secret = data
        .get("secret_env")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(name)));
    if secret {
        return Err(fail(format!(
            "environment variable `{name}` holds a secret; a task definition must not contain it (reference the secret with secret_arn)"
        )));
    }
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Value::String(v)),
        _ if required => Err(fail(format!(
            "environment variable `{name}` is required by this template but is not set; export it before running the deployer"
        ))),
        _ => Ok(h
            .param(1)
            .map(|p| p.value().clone())
            .unwrap_or(Value::String(String::new()))),
    }
}

fn tf_output(h: &Helper<'_>, data: &Value) -> Result<Value, handlebars::RenderError> {
    let name = str_param(h, 0, "tf_output", "the output name")?;
    let file = data
        .get("tf_output_file")
        .and_then(Value::as_str)
        .unwrap_or("the terraform outputs");
    let Some(outputs) = data.get("tf_outputs").and_then(Value::as_object) else {
        return Err(fail(format!(
            "`tf_output \"{name}\"`: no terraform outputs are loaded; set `tf_output = \"<file from terraform output -json>\"` for this environment in deployer.toml"
        )));
    };
    let Some(out) = outputs.get(name) else {
        let mut names: Vec<&str> = outputs.keys().map(String::as_str).collect();
        names.sort();
        return Err(fail(format!(
            "terraform output `{name}` is not in {file}; it has: {}",
            names.join(", ")
        )));
    };
    if out.get("sensitive").and_then(Value::as_bool) == Some(true) {
        return Err(fail(format!(
            "terraform output `{name}` is sensitive; a task definition must not contain it (store it in a secret and use secret_arn)"
        )));
    }
    // `terraform output -json` wraps each output as {value, type, sensitive}; a plain map works too.
    Ok(out.get("value").cloned().unwrap_or_else(|| out.clone()))
}

fn image(_: &Helper<'_>, data: &Value) -> Result<Value, handlebars::RenderError> {
    match data.get("image").and_then(Value::as_str) {
        Some(i) if !i.is_empty() => Ok(Value::String(i.to_string())),
        _ => Err(fail(
            "no image for this release: pass --image <uri> or --git-sha of a pushed image (deployer push)".into(),
        )),
    }
}

fn secret_arn(h: &Helper<'_>, data: &Value) -> Result<Value, handlebars::RenderError> {
    let name = str_param(h, 0, "secret_arn", "the secret name")?;
    let secrets = data.get("secrets").and_then(Value::as_object);
    match secrets.and_then(|s| s.get(name)).and_then(Value::as_str) {
        Some(arn) if !arn.is_empty() => Ok(Value::String(arn.to_string())),
        _ => {
            let mut known: Vec<&str> = secrets
                .map(|s| s.keys().map(String::as_str).collect())
                .unwrap_or_default();
            known.sort();
            Err(fail(format!(
                "secret `{name}` has no ARN; add it under [environments.<env>.secrets] in deployer.toml (known: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )))
        }
    }
}

fn concat(h: &Helper<'_>, _: &Value) -> Result<Value, handlebars::RenderError> {
    let mut out = String::new();
    for p in h.params() {
        if p.is_value_missing() {
            return Err(handlebars::RenderError::strict_error(p.relative_path()));
        }
        match p.value() {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(Value::String(out))
}

struct JsonHelper;

impl HelperDef for JsonHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn handlebars::Output,
    ) -> handlebars::HelperResult {
        let v = h
            .param(0)
            .ok_or_else(|| fail("`json` needs a value, e.g. {{json command}}".into()))?;
        if v.is_value_missing() {
            return Err(handlebars::RenderError::strict_error(v.relative_path()));
        }
        out.write(&serde_json::to_string(v.value()).map_err(|e| fail(e.to_string()))?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        d
    }

    const OK: &str = r#"{"family": "{{family}}", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
"cpu": "256", "memory": "512",
"containerDefinitions": [{"name": "app", "image": "{{image}}", "command": {{json command}},
  "environment": [{"name": "A", "value": "{{a}}"}]}]}"#;

    #[test]
    fn renders_escapes_and_validates() {
        let d = dir(&[("svc.json.hbs", OK)]);
        let v = render_task_definition(
            d.path(),
            "svc",
            &json!({"family": "f", "image": "img:1", "command": ["a", "b"], "a": "quote\" and \\"}),
        )
        .unwrap();
        assert_eq!(
            v["containerDefinitions"][0]["environment"][0]["value"],
            "quote\" and \\"
        );
        assert_eq!(v["containerDefinitions"][0]["command"], json!(["a", "b"]));
    }

    #[test]
    fn a_missing_variable_names_template_and_line() {
        let d = dir(&[("svc.json.hbs", OK)]);
        let e = render_task_definition(
            d.path(),
            "svc",
            &json!({"family": "f", "image": "i", "command": []}),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`svc` at line 4"), "{msg}");
        assert!(msg.contains("`a`"), "{msg}");
    }

    #[test]
    fn missing_partial_variable_names_the_partial() {
        let d = dir(&[
            ("svc.json.hbs", "{{> p}}"),
            ("partials/p.hbs", "{\n\"family\": \"{{nope}}\"}"),
        ]);
        let msg = render_task_definition(d.path(), "svc", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`p` at line 2") || msg.contains("`partials/p`"),
            "{msg}"
        );
    }

    #[test]
    fn every_repository_template_renders_a_valid_fargate_definition() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/task-definitions");
        let r = Renderer::new(&dir).unwrap();
        let out = |name: &str| json!({"value": format!("arn:aws:iam::123456789012:role/{name}")});
        let vars = json!({
            "project": "agentic", "environment": "staging", "region": "eu-west-1",
            "service": "x", "git_sha": "abc1234", "version": "1.0.0", "image": "repo@sha256:00",
            "log_level": "info", "redis_prefix": "",
            "orchestrator_cpu": "1024", "orchestrator_memory": "2048", "agent_cpu": "512",
            "agent_memory": "1024", "e2e_agent_memory": "2048", "migration_cpu": "512",
            "migration_memory": "1024",
            "secrets": {"database_url": "arn:db", "redis_url": "arn:redis", "api_token": "arn:token"},
            "tf_outputs": {
                "task_execution_role_arn": out("exec"), "orchestrator_task_role_arn": out("o"),
                "agent_task_role_arn": out("a"), "migrate_task_role_arn": out("m"),
                "log_group_name": {"value": "/ecs/agentic-staging"}
            }
        });
        let mut families = Vec::new();
        for t in r.templates() {
            let td = r.render(t, &vars).unwrap_or_else(|e| panic!("{t}: {e}"));
            families.push(td["family"].as_str().unwrap().to_string());
            assert_eq!(td["requiresCompatibilities"], json!(["FARGATE"]));
        }
        families.sort();
        let want: Vec<String> = [
            "agent-deployment",
            "agent-e2e",
            "agent-integration",
            "agent-scaffold",
            "agent-validation",
            "migrate",
            "orchestrator",
        ]
        .iter()
        .map(|s| format!("agentic-staging-{s}"))
        .collect();
        assert_eq!(families, want);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let d = dir(&[("svc.json.hbs", "{\n\n {{#if x}} \n")]);
        let msg = render_task_definition(d.path(), "svc", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("syntax error in template `svc`"), "{msg}");
    }
}
