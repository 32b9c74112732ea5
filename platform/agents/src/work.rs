//! The stage work of each agent kind. Everything is bounded: artifact sizes, command run times,
//! captured output. Artifacts travel through Postgres, never a shared disk.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use handlebars::Handlebars;
use platform_core::{Stage, TaskEnvelope};
use platform_store::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WorkConfig {
    pub templates_dir: PathBuf,
    pub artifact_max_bytes: usize,
    /// Path (created as a bare repository when missing) or URL of the integration repository.
    pub git_repo: String,
    /// Upper bound on any command a template declares (lint, tests).
    pub command_timeout: Duration,
    /// Programs a template's lint command may start.
    pub lint_allow: Vec<String>,
    /// Registry host the deployment's image reference points at.
    pub image_registry: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The work failed on its merits; the workflow fails with this reason.
    #[error("{0}")]
    Failed(String),
    /// Infrastructure trouble (database, disk); the task is redelivered.
    #[error("{0:#}")]
    Transient(anyhow::Error),
}

type WResult<T> = Result<T, WorkError>;

fn failed(msg: impl Into<String>) -> WorkError {
    WorkError::Failed(msg.into())
}

fn transient(e: impl Into<anyhow::Error>) -> WorkError {
    WorkError::Transient(e.into())
}

/// `template.toml` of a scaffold template (copied into the artifact as `.platform/template.toml`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required_files: Vec<String>,
    /// Defaults for template parameters; the workflow's params override them.
    #[serde(default)]
    pub defaults: serde_json::Map<String, Value>,
    #[serde(default)]
    pub lint: Option<CommandSpec>,
    #[serde(default)]
    pub test: Option<CommandSpec>,
    /// Container port of the generated app (for the task definition).
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub command: Vec<String>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

pub async fn run(cfg: &WorkConfig, store: &Store, env: &TaskEnvelope) -> WResult<Value> {
    match env.stage {
        Stage::Scaffold => scaffold(cfg, store, env).await,
        Stage::Validation => validation(cfg, store, env).await,
        Stage::E2e => e2e(cfg, store, env).await,
        Stage::Integration => integration(cfg, store, env).await,
        Stage::Deployment => deployment(cfg, store, env).await,
    }
}

fn payload_str<'a>(env: &'a TaskEnvelope, key: &str) -> WResult<&'a str> {
    env.payload[key]
        .as_str()
        .ok_or_else(|| failed(format!("task payload has no string {key:?}")))
}

// ---------------------------------------------------------------- scaffold

async fn scaffold(cfg: &WorkConfig, store: &Store, env: &TaskEnvelope) -> WResult<Value> {
    let template = payload_str(env, "template")?.to_owned();
    if template.is_empty()
        || !template
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(failed(format!(
            "template name {template:?} is not a plain directory name"
        )));
    }
    let dir = cfg.templates_dir.join(&template);
    let payload = env.payload.clone();
    let workflow_id = env.workflow_id;
    let (bytes, files) =
        tokio::task::spawn_blocking(move || render_template(&dir, &payload, workflow_id))
            .await
            .map_err(transient)??;
    let id = store
        .put_artifact(
            env.workflow_id,
            env.task_id,
            "source.tar.gz",
            "application/gzip",
            &bytes,
            cfg.artifact_max_bytes,
        )
        .await
        .map_err(|e| match e {
            platform_store::StoreError::TooLarge { .. } => failed(format!("scaffold output: {e}")),
            other => transient(other),
        })?;
    Ok(json!({"artifact_id": id, "template": template, "files": files, "bytes": bytes.len()}))
}

fn render_template(dir: &Path, payload: &Value, workflow_id: Uuid) -> WResult<(Vec<u8>, usize)> {
    let manifest_path = dir.join("template.toml");
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| failed(format!("template {} is not readable: {e}", dir.display())))?;
    let manifest: Manifest = toml::from_str(&manifest_text)
        .map_err(|e| failed(format!("{}: {e}", manifest_path.display())))?;
    let mut params = manifest.defaults.clone();
    if let Value::Object(p) = &payload["params"] {
        for (k, v) in p {
            params.insert(k.clone(), v.clone());
        }
    }
    let vars = json!({
        "name": payload["name"],
        "description": payload["description"],
        "type": payload["type"],
        "workflow_id": workflow_id,
        "params": params,
    });
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    let files_dir = dir.join("files");
    let mut entries = Vec::new();
    collect_files(&files_dir, &files_dir, &mut entries)
        .map_err(|e| failed(format!("reading {}: {e}", files_dir.display())))?;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |path: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, data)
    };
    for rel in &entries {
        let src = files_dir.join(rel);
        let raw =
            std::fs::read(&src).map_err(|e| failed(format!("reading {}: {e}", src.display())))?;
        let mode = file_mode(&src);
        let (out_path, data) = match rel.strip_suffix(".hbs") {
            Some(stripped) => {
                let text =
                    String::from_utf8(raw).map_err(|_| failed(format!("{rel} is not UTF-8")))?;
                let rendered = hb
                    .render_template(&text, &vars)
                    .map_err(|e| failed(format!("rendering {rel}: {e}")))?;
                (stripped.to_owned(), rendered.into_bytes())
            }
            None => (rel.clone(), raw),
        };
        add(&out_path, &data, mode).map_err(transient)?;
    }
    add(".platform/template.toml", manifest_text.as_bytes(), 0o644).map_err(transient)?;
    // The app's task-definition template travels verbatim for the deployment agent.
    let deploy_dir = dir.join("deploy");
    if deploy_dir.is_dir() {
        let mut deploy = Vec::new();
        collect_files(&deploy_dir, &deploy_dir, &mut deploy)
            .map_err(|e| failed(format!("reading {}: {e}", deploy_dir.display())))?;
        for rel in deploy {
            let data = std::fs::read(deploy_dir.join(&rel)).map_err(transient)?;
            add(&format!(".platform/deploy/{rel}"), &data, 0o644).map_err(transient)?;
        }
    }
    let gz = tar.into_inner().map_err(transient)?;
    let bytes = gz.finish().map_err(transient)?;
    Ok((bytes, entries.len()))
}

#[cfg(unix)]
fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644)
}
#[cfg(not(unix))]
fn file_mode(_: &Path) -> u32 {
    0o644
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut items: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    items.sort_by_key(|e| e.file_name());
    for e in items {
        let p = e.path();
        if e.file_type()?.is_dir() {
            collect_files(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- unpacking

/// The source artifact of the workflow, unpacked into a fresh temporary directory.
async fn checkout(
    cfg: &WorkConfig,
    store: &Store,
    env: &TaskEnvelope,
) -> WResult<(tempfile::TempDir, Manifest)> {
    let id = env.workflow_context["scaffold"]["artifact_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| failed("workflow context has no scaffold artifact id"))?;
    let art = store
        .get_artifact(id)
        .await
        .map_err(transient)?
        .ok_or_else(|| failed(format!("artifact {id} does not exist")))?;
    let limit = cfg.artifact_max_bytes;
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().map_err(transient)?;
        // Bound the unpacked size too (a small archive can inflate hugely).
        let gz = flate2::read::GzDecoder::new(&art.data[..]).take(limit as u64 * 10);
        let mut ar = tar::Archive::new(gz);
        ar.set_preserve_permissions(true);
        ar.unpack(dir.path())
            .map_err(|e| failed(format!("unpacking artifact {id}: {e}")))?;
        let manifest_text =
            std::fs::read_to_string(dir.path().join(".platform/template.toml")).unwrap_or_default();
        let manifest: Manifest = toml::from_str(&manifest_text)
            .map_err(|e| failed(format!("artifact manifest: {e}")))?;
        Ok((dir, manifest))
    })
    .await
    .map_err(transient)?
}

// ---------------------------------------------------------------- validation

async fn validation(cfg: &WorkConfig, store: &Store, env: &TaskEnvelope) -> WResult<Value> {
    let (dir, manifest) = checkout(cfg, store, env).await?;
    let root = dir.path().to_owned();
    let missing: Vec<&String> = manifest
        .required_files
        .iter()
        .filter(|f| !root.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(failed(format!("required files missing: {missing:?}")));
    }
    let mut files = Vec::new();
    collect_files(&root, &root, &mut files).map_err(transient)?;
    let mut parsed = 0;
    for rel in &files {
        let ext = rel.rsplit('.').next().unwrap_or("");
        if !["json", "toml", "yaml", "yml"].contains(&ext) {
            continue;
        }
        let text =
            std::fs::read_to_string(root.join(rel)).map_err(|e| failed(format!("{rel}: {e}")))?;
        let err = match ext {
            "json" => serde_json::from_str::<Value>(&text)
                .err()
                .map(|e| e.to_string()),
            "toml" => toml::from_str::<toml::Value>(&text)
                .err()
                .map(|e| e.to_string()),
            _ => serde_norway::from_str::<serde_norway::Value>(&text)
                .err()
                .map(|e| e.to_string()),
        };
        if let Some(e) = err {
            return Err(failed(format!("{rel} does not parse as {ext}: {e}")));
        }
        parsed += 1;
    }
    let lint = match &manifest.lint {
        None => json!("not configured"),
        Some(spec) => {
            let program = spec.command.first().cloned().unwrap_or_default();
            if !cfg.lint_allow.contains(&program) {
                return Err(failed(format!(
                    "lint program {program:?} is not allowed (PLATFORM_LINT_ALLOW={:?})",
                    cfg.lint_allow.join(",")
                )));
            }
            let out = run_command(&root, spec, cfg.command_timeout).await?;
            if out.code != Some(0) {
                return Err(failed(format!(
                    "lint failed (exit {:?}): {}",
                    out.code, out.tail
                )));
            }
            json!({"command": spec.command, "exit_code": 0})
        }
    };
    Ok(
        json!({"files": files.len(), "parsed": parsed, "required_files": manifest.required_files, "lint": lint}),
    )
}

// ---------------------------------------------------------------- e2e

async fn e2e(cfg: &WorkConfig, store: &Store, env: &TaskEnvelope) -> WResult<Value> {
    let (dir, manifest) = checkout(cfg, store, env).await?;
    let Some(spec) = manifest.test.clone() else {
        return Err(failed(
            "the template declares no test command ([test] in template.toml)",
        ));
    };
    let out = run_command(dir.path(), &spec, cfg.command_timeout).await?;
    if out.timed_out {
        return Err(failed(format!(
            "tests timed out after {} ms: {}",
            out.millis, out.tail
        )));
    }
    if out.code != Some(0) {
        return Err(failed(format!(
            "tests failed (exit {:?}): {}",
            out.code, out.tail
        )));
    }
    Ok(
        json!({"command": spec.command, "exit_code": 0, "duration_ms": out.millis, "output_tail": out.tail}),
    )
}

struct CommandOutput {
    code: Option<i32>,
    timed_out: bool,
    millis: u128,
    tail: String,
}

const TAIL_BYTES: usize = 2048;

/// Runs a declared command (argv, no shell) in `dir` with a timeout; keeps the output's tail.
async fn run_command(dir: &Path, spec: &CommandSpec, cap: Duration) -> WResult<CommandOutput> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(failed("empty command"));
    };
    let timeout = spec
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(cap)
        .min(cap);
    let started = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("PLATFORM_API_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("starting {program:?}: {e}")))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut a = Vec::new();
        let mut b = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut a).await;
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut b).await;
        }
        a.extend_from_slice(&b);
        a
    };
    let res = tokio::time::timeout(timeout, async {
        let (out, status) = tokio::join!(read, child.wait());
        (out, status)
    })
    .await;
    let (code, timed_out, out) = match res {
        Ok((out, status)) => (status.map_err(transient)?.code(), false, out),
        Err(_) => {
            let _ = child.kill().await;
            (None, true, Vec::new())
        }
    };
    let text = String::from_utf8_lossy(&out);
    let tail: String = if text.len() > TAIL_BYTES {
        let mut start = text.len() - TAIL_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    } else {
        text.into_owned()
    };
    Ok(CommandOutput {
        code,
        timed_out,
        millis: started.elapsed().as_millis(),
        tail,
    })
}

// ---------------------------------------------------------------- integration

async fn integration(cfg: &WorkConfig, store: &Store, env: &TaskEnvelope) -> WResult<Value> {
    let (dir, _) = checkout(cfg, store, env).await?;
    let repo = cfg.git_repo.clone();
    let name = payload_str(env, "name")?.to_owned();
    let wf = env.workflow_id;
    tokio::task::spawn_blocking(move || integrate(&repo, dir.path(), &name, wf))
        .await
        .map_err(transient)?
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=platform",
            "-c",
            "user.email=platform@localhost",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running git (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_url(repo: &str) -> bool {
    repo.contains("://") || repo.starts_with("git@")
}

/// Creates a local bare repository with an initial commit on `main` when it does not exist.
fn ensure_repo(repo: &str, scratch: &Path) -> Result<(), String> {
    if is_url(repo) || Path::new(repo).join("HEAD").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(repo).map_err(|e| format!("creating {repo}: {e}"))?;
    git(
        Path::new(repo),
        &["init", "--bare", "--quiet", "-b", "main"],
    )?;
    let seed = scratch.join("seed");
    git(scratch, &["clone", "--quiet", repo, "seed"])?;
    std::fs::write(
        seed.join("README.md"),
        "# Generated applications\n\nEach workflow merges its app under `apps/`.\n",
    )
    .map_err(|e| e.to_string())?;
    git(&seed, &["checkout", "--quiet", "-B", "main"])?;
    git(&seed, &["add", "README.md"])?;
    git(&seed, &["commit", "--quiet", "-m", "Initial commit"])?;
    // Another agent may have seeded it first; that is fine.
    let _ = git(&seed, &["push", "--quiet", "origin", "main"]);
    Ok(())
}

/// Copies the generated app into the clone. The test crates share `test_support::copy_tree`;
/// this product crate keeps its own rather than depend on a test crate (or make the tests depend
/// on the agents) for a dozen lines of `std::fs`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

fn integrate(repo: &str, source: &Path, name: &str, wf: Uuid) -> WResult<Value> {
    let scratch = tempfile::tempdir().map_err(transient)?;
    let g = |dir: &Path, args: &[&str]| git(dir, args).map_err(|e| transient(anyhow::anyhow!(e)));
    ensure_repo(repo, scratch.path()).map_err(|e| transient(anyhow::anyhow!(e)))?;
    let branch = format!("workflow/{wf}");
    let app_dir = format!("apps/{name}-{}", &wf.simple().to_string()[..8]);
    g(scratch.path(), &["clone", "--quiet", repo, "w"])?;
    let w = scratch.path().join("w");
    // A redelivered task finds its branch already pushed: reuse it (idempotent).
    let existing = git(
        &w,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("origin/{branch}"),
        ],
    )
    .ok();
    let commit = match existing {
        Some(c) if !c.is_empty() => c,
        _ => {
            g(&w, &["checkout", "--quiet", "-B", &branch, "origin/main"])?;
            copy_tree(source, &w.join(&app_dir)).map_err(transient)?;
            g(&w, &["add", "--all", &app_dir])?;
            g(
                &w,
                &[
                    "commit",
                    "--quiet",
                    "-m",
                    &format!("{name}: scaffold from workflow {wf}"),
                ],
            )?;
            g(&w, &["push", "--quiet", "origin", &branch])?;
            g(&w, &["rev-parse", "HEAD"])?
        }
    };
    // Merge into main; retry when another agent pushed main in between.
    let mut last = String::new();
    for _ in 0..8 {
        g(&w, &["fetch", "--quiet", "origin"])?;
        if git(&w, &["merge-base", "--is-ancestor", &commit, "origin/main"]).is_ok() {
            let head = g(&w, &["rev-parse", "origin/main"])?;
            return Ok(
                json!({"repository": redact_repo(repo), "branch": branch, "commit": commit, "main": head, "path": app_dir}),
            );
        }
        g(&w, &["checkout", "--quiet", "-B", "main", "origin/main"])?;
        g(
            &w,
            &[
                "merge",
                "--quiet",
                "--no-ff",
                "-m",
                &format!("Merge {branch}"),
                &commit,
            ],
        )?;
        match git(&w, &["push", "--quiet", "origin", "main"]) {
            Ok(_) => {
                let merge = g(&w, &["rev-parse", "HEAD"])?;
                return Ok(
                    json!({"repository": redact_repo(repo), "branch": branch, "commit": commit, "merge_commit": merge, "main": merge, "path": app_dir}),
                );
            }
            Err(e) => last = e,
        }
    }
    Err(transient(anyhow::anyhow!(
        "could not push main after 8 tries: {last}"
    )))
}

fn redact_repo(repo: &str) -> String {
    match (repo.find("://"), repo.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &repo[..s], &repo[at + 1..]),
        _ => repo.to_owned(),
    }
}

// ---------------------------------------------------------------- deployment

/// The task definition of a generated app. Rendered in strict mode and checked for the fields
/// ECS requires; registering it needs an environment, which this agent leaves to the deployer.
const TASK_DEFINITION: &str = r#"{
  "family": "{{family}}",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [
    {
      "name": "{{name}}",
      "image": "{{image}}",
      "essential": true,
      "portMappings": [{"containerPort": {{port}}, "protocol": "tcp"}],
      "environment": [
        {"name": "GIT_SHA", "value": "{{commit}}"},
        {"name": "WORKFLOW_ID", "value": "{{workflow_id}}"}
      ],
      "logConfiguration": {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/apps/{{name}}", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "app"}
      }
    }
  ]
}"#;

async fn deployment(cfg: &WorkConfig, store: &Store, env: &TaskEnvelope) -> WResult<Value> {
    let (dir, manifest) = checkout(cfg, store, env).await?;
    let name = payload_str(env, "name")?;
    let commit = env.workflow_context["integration"]["commit"]
        .as_str()
        .unwrap_or("unknown");
    let short = &commit[..commit.len().min(12)];
    let vars = json!({
        "family": format!("app-{name}"),
        "name": name,
        "image": format!("{}/{name}:{short}", cfg.image_registry),
        "port": manifest.port.unwrap_or(8080),
        "commit": commit,
        "workflow_id": env.workflow_id,
    });
    let deploy_dir = dir.path().join(".platform/deploy");
    let (td, rendered_by) = if deploy_dir.join("app.json.hbs").is_file() {
        // The deployer's task-definition crate renders and validates against the RegisterTaskDefinition shape.
        let td = deployer_taskdef::render::render_task_definition(&deploy_dir, "app", &vars)
            .map_err(|e| failed(format!("rendering the task definition: {e}")))?;
        (td, "deployer")
    } else {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        let text = hb
            .render_template(TASK_DEFINITION, &vars)
            .map_err(|e| failed(format!("rendering the task definition: {e}")))?;
        let td: Value = serde_json::from_str(&text)
            .map_err(|e| failed(format!("rendered task definition is not JSON: {e}")))?;
        (td, "builtin")
    };
    let text = td.to_string();
    for field in ["family", "containerDefinitions"] {
        if td.get(field).is_none() {
            return Err(failed(format!("rendered task definition lacks {field}")));
        }
    }
    let id = store
        .put_artifact(
            env.workflow_id,
            env.task_id,
            "task-definition.json",
            "application/json",
            text.as_bytes(),
            cfg.artifact_max_bytes,
        )
        .await
        .map_err(transient)?;
    Ok(
        json!({"mode": "render-only", "rendered_by": rendered_by, "artifact_id": id, "task_definition": td}),
    )
}
