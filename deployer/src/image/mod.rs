//! `build` and `push`: the production image through the Docker engine (bollard), and ECR.
//!
//! Push is idempotent: when the tag already exists in ECR and its manifest's config digest is
//! the local image's id, nothing is pushed. With a registry override (`registry = "host:port"` in
//! the environment) the layers go to that registry while auth and repository calls go to ECR; the
//! manifest is then recorded in ECR with PutImage so ECR-side checks (`verify`, releases) see it,
//! as they would after a real push to ECR.

mod push;

pub use push::{EcrAuthCache, EcrLogin, PushOptions, Pushed, push};

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;
use serde::Serialize;

use crate::exit::{Code, Failure};

/// Manifest media types we accept from registries.
pub(crate) const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

/// Connects to the local Docker engine, negotiating the API version (engines may be older).
pub async fn docker() -> Result<Docker, Failure> {
    let d = Docker::connect_with_local_defaults()
        .map_err(|e| {
            Failure::msg(
                Code::Image,
                format!("cannot connect to the Docker engine: {e}"),
            )
        })
        .map_err(|f| f.with_hint("start Docker, or set DOCKER_HOST to its socket"))?;
    d.negotiate_version().await.map_err(|e| {
        Failure::msg(
            Code::Image,
            format!("the Docker engine does not answer: {e}"),
        )
        .with_hint("start Docker, or set DOCKER_HOST to its socket")
    })
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: std::path::PathBuf,
    /// Dockerfile path relative to the context.
    pub dockerfile: String,
    /// Local repository name; the tag is the git sha.
    pub repository: String,
    pub git_sha: String,
    pub version: String,
    pub platform: String,
    pub build_args: std::collections::BTreeMap<String, String>,
    pub source_url: Option<String>,
    pub title: String,
    /// Stream the build log (false: only errors and the result).
    pub verbose: bool,
}

impl BuildOptions {
    /// Options for building `<repository>:<git sha>` from the project's settings
    /// (`project.context`, `project.dockerfile`, `project.platform`, `project.build_args`), each
    /// overridable; checks that the Dockerfile exists inside the context. Shared by
    /// `deployer build` and the build stage of `deployer release`.
    pub fn for_project(
        cfg: &crate::config::Config,
        repository: &str,
        git_sha: &str,
        platform: Option<String>,
        context: Option<std::path::PathBuf>,
        dockerfile: Option<std::path::PathBuf>,
        verbose: bool,
    ) -> Result<Self, Failure> {
        let context = context.unwrap_or_else(|| cfg.path(&cfg.project.context));
        let dockerfile = dockerfile.unwrap_or_else(|| cfg.path(&cfg.project.dockerfile));
        let ctx_abs = context.canonicalize().map_err(|e| {
            Failure::msg(
                Code::Image,
                format!(
                    "build context {} is not a directory: {e}",
                    context.display()
                ),
            )
        })?;
        let df_abs = dockerfile
            .canonicalize()
            .or_else(|_| ctx_abs.join(&dockerfile).canonicalize())
            .map_err(|e| {
                Failure::msg(
                    Code::Image,
                    format!("Dockerfile {} not found: {e}", dockerfile.display()),
                )
                .with_hint("set project.dockerfile in deployer.toml or pass --dockerfile")
            })?;
        let rel = df_abs.strip_prefix(&ctx_abs).map_err(|_| {
            Failure::msg(
                Code::Image,
                format!(
                    "the Dockerfile {} is outside the build context {}",
                    df_abs.display(),
                    ctx_abs.display()
                ),
            )
        })?;
        Ok(Self {
            dockerfile: rel.to_string_lossy().into_owned(),
            context: ctx_abs,
            repository: repository.to_owned(),
            git_sha: git_sha.to_owned(),
            version: crate::config::git::version(&cfg.root, git_sha),
            platform: platform.unwrap_or_else(|| cfg.project.platform.clone()),
            build_args: cfg.project.build_args.clone(),
            source_url: std::env::var("GITHUB_SERVER_URL")
                .ok()
                .zip(std::env::var("GITHUB_REPOSITORY").ok())
                .map(|(s, r)| format!("{s}/{r}")),
            title: cfg.project.name.clone(),
            verbose,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// `<repository>:<git sha>`
    pub image: String,
    /// The image id (config digest).
    pub id: String,
}

/// Builds the context with the Dockerfile, tags `<repository>:<git sha>`.
pub async fn build(docker: &Docker, o: &BuildOptions) -> Result<Built, Failure> {
    let dockerfile_path = o.context.join(&o.dockerfile);
    if !dockerfile_path.is_file() {
        return Err(Failure::msg(
            Code::Image,
            format!("Dockerfile not found: {}", dockerfile_path.display()),
        )
        .with_hint("set project.dockerfile / project.context in deployer.toml, or pass --dockerfile/--context"));
    }
    let tar = context_tar(&o.context).map_err(|e| {
        Failure::msg(
            Code::Image,
            format!(
                "cannot pack the build context {}: {e:#}",
                o.context.display()
            ),
        )
    })?;
    let tag = format!("{}:{}", o.repository, o.git_sha);
    let mut args: HashMap<String, String> = o
        .build_args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    args.insert("GIT_SHA".into(), o.git_sha.clone());
    args.insert("VERSION".into(), o.version.clone());
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut labels: HashMap<String, String> = HashMap::from([
        (
            "org.opencontainers.image.revision".into(),
            o.git_sha.clone(),
        ),
        ("org.opencontainers.image.version".into(), o.version.clone()),
        ("org.opencontainers.image.created".into(), created),
        ("org.opencontainers.image.title".into(), o.title.clone()),
    ]);
    if let Some(s) = &o.source_url {
        labels.insert("org.opencontainers.image.source".into(), s.clone());
    }
    let opts = BuildImageOptionsBuilder::default()
        .t(&tag)
        .dockerfile(&o.dockerfile)
        .buildargs(&args)
        .labels(&labels)
        .platform(&o.platform)
        .rm(true)
        .forcerm(true)
        .build();
    let progress = Progress::new(&format!("building {tag}"));
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
    let mut id = None;
    let mut tail: Vec<String> = Vec::new();
    while let Some(msg) = stream.next().await {
        let msg = msg
            .map_err(|e| Failure::msg(Code::Image, format!("docker build of {tag} failed: {e}")))?;
        if let Some(err) = msg.error_detail.and_then(|d| d.message) {
            progress.finish();
            let context = if tail.is_empty() {
                String::new()
            } else {
                format!("\nlast output:\n{}", tail.join("\n"))
            };
            return Err(Failure::msg(
                Code::Image,
                format!("docker build of {tag} failed: {err}{context}"),
            )
            .with_hint(
                "fix the Dockerfile or the build context; run with -v for the whole build log",
            ));
        }
        if let Some(line) = msg
            .stream
            .as_deref()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
        {
            tail.push(line.to_string());
            if tail.len() > 10 {
                tail.remove(0);
            }
            progress.line(line, o.verbose);
        }
        if let Some(aux) = msg.aux
            && let Some(i) = aux.id
        {
            id = Some(i);
        }
    }
    progress.finish();
    let id = match id {
        Some(i) => i,
        None => inspect_id(docker, &tag).await?.ok_or_else(|| {
            Failure::msg(
                Code::Image,
                format!("docker build finished but {tag} does not exist"),
            )
        })?,
    };
    Ok(Built { image: tag, id })
}

pub(crate) async fn inspect_id(docker: &Docker, image: &str) -> Result<Option<String>, Failure> {
    match docker.inspect_image(image).await {
        Ok(i) => Ok(i.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(Failure::msg(
            Code::Image,
            format!("cannot inspect image {image}: {e}"),
        )),
    }
}

/// The build context as a tar, honouring simple `.dockerignore` patterns (exact names and
/// `dir/` prefixes, `*` globs in the last path segment).
fn context_tar(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let ignore: Vec<String> = std::fs::read_to_string(dir.join(".dockerignore"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
            if ignored(&rel, &ignore) && rel != "Dockerfile" {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else {
                tar.append_path_with_name(&path, &rel)?;
            }
        }
    }
    Ok(tar.into_inner()?)
}

fn ignored(rel: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        if rel == p || rel.starts_with(&format!("{p}/")) {
            return true;
        }
        if let Some((prefix, suffix)) = p.split_once('*') {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            let target = if p.contains('/') { rel } else { name };
            return target.starts_with(prefix) && target.ends_with(suffix);
        }
        false
    })
}

/// Progress: a spinner with the current step on a terminal (outside CI), plain lines otherwise.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(what: &str) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        if tty {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message(what.to_string());
            Self { bar: Some(bar) }
        } else {
            eprintln!("{what}");
            Self { bar: None }
        }
    }

    fn line(&self, line: &str, verbose: bool) {
        match &self.bar {
            Some(bar) if verbose => bar.println(line),
            Some(bar) => bar.set_message(line.chars().take(100).collect::<String>()),
            None if verbose || line.starts_with("Step ") => eprintln!("{line}"),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns() {
        let p = vec![
            "target".to_string(),
            ".git".to_string(),
            "*.log".to_string(),
        ];
        assert!(ignored("target/debug/x", &p));
        assert!(ignored(".git", &p));
        assert!(ignored("a/b.log", &p));
        assert!(!ignored("src/main.rs", &p));
    }
}
