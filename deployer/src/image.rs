//! `build` and `push`: the production image through the Docker engine (bollard), and ECR.
//!
//! Push is idempotent: when the tag already exists in ECR and its manifest's config digest is
//! the local image's id, nothing is pushed. With a registry override (`registry = "host:port"` in
//! the environment) the layers go to that registry while auth and repository calls go to ECR; the
//! manifest is then recorded in ECR with PutImage so ECR-side checks (`verify`, releases) see it,
//! as they would after a real push to ECR.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::exit::{Code, Failure, OrExit};

/// Manifest media types we accept from registries.
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

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
            version: crate::vars::version(&cfg.root, git_sha),
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

async fn inspect_id(docker: &Docker, image: &str) -> Result<Option<String>, Failure> {
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
struct Progress {
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

// ------------------------------------------------------------------ ECR auth

/// An ECR registry login.
#[derive(Clone)]
pub struct EcrLogin {
    pub username: String,
    pub password: SecretString,
    /// `https://<account>.dkr.ecr.<region>.amazonaws.com`
    pub proxy_endpoint: String,
    pub expires_at: Option<SystemTime>,
}

/// GetAuthorizationToken results cached until shortly before they expire (12 h on AWS), so a
/// long-running process (a release, the deployment agent) asks once.
#[derive(Default)]
pub struct EcrAuthCache {
    entry: Mutex<Option<EcrLogin>>,
}

/// Refresh this long before the token expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

impl EcrAuthCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cached login still valid at `now`.
    pub fn cached(&self, now: SystemTime) -> Option<EcrLogin> {
        let guard = self.entry.lock().ok()?;
        let login = guard.as_ref()?;
        match login.expires_at {
            Some(t) if t > now + EXPIRY_MARGIN => Some(login.clone()),
            _ => None,
        }
    }

    pub fn store(&self, login: EcrLogin) {
        if let Ok(mut g) = self.entry.lock() {
            *g = Some(login);
        }
    }

    /// The cached login, or a fresh one from ECR. Returns whether ECR was asked.
    pub async fn get(&self, ecr: &aws_sdk_ecr::Client) -> Result<(EcrLogin, bool), Failure> {
        if let Some(l) = self.cached(SystemTime::now()) {
            return Ok((l, false));
        }
        let out = ecr
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| crate::aws::failure("ECR GetAuthorizationToken", e))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| Failure::msg(Code::Aws, "ECR returned no authorization data"))?;
        let token = data.authorization_token().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                Failure::msg(
                    Code::Aws,
                    "ECR returned an authorization token that is not base64 user:password",
                )
            })?;
        let (user, pass) = decoded.split_once(':').ok_or_else(|| {
            Failure::msg(Code::Aws, "ECR authorization token has no user:password")
        })?;
        let login = EcrLogin {
            username: user.to_string(),
            password: SecretString::from(pass.to_string()),
            proxy_endpoint: data.proxy_endpoint().unwrap_or_default().to_string(),
            expires_at: data
                .expires_at()
                .and_then(|t| SystemTime::try_from(*t).ok()),
        };
        self.store(login.clone());
        Ok((login, true))
    }
}

// ------------------------------------------------------------------ push

#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// `<repository uri>:<git sha>`
    pub image: String,
    /// `<repository uri>@<digest>`: what task definitions reference.
    pub image_with_digest: String,
    pub digest: String,
    /// Where the layers went (the ECR host, or the override).
    pub registry: String,
    /// True when ECR already had this exact image under the tag.
    pub skipped: bool,
}

pub struct PushOptions<'a> {
    pub repository: &'a str,
    pub git_sha: &'a str,
    /// `host:port` to push to instead of the ECR host.
    pub registry_override: Option<&'a str>,
}

/// Looks up an ECR repository's URI; a missing repository is an error that says so.
pub async fn repository_uri(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
) -> Result<String, Failure> {
    match ecr.describe_repositories().repository_names(repository).send().await {
        Ok(out) => out
            .repositories()
            .first()
            .and_then(|r| r.repository_uri())
            .map(str::to_string)
            .ok_or_else(|| Failure::msg(Code::Aws, format!("ECR repository {repository} has no URI"))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_not_found_exception()) => Err(
            Failure::msg(Code::Aws, format!("ECR repository `{repository}` does not exist in this account and region"))
                .with_hint("create it (terraform/ modules create it), or fix ecr_repository in deployer.toml / the region"),
        ),
        Err(e) => Err(crate::aws::failure("ECR DescribeRepositories", e)),
    }
}

/// The digest and config digest (image id) of `repository:tag` in ECR, if the tag exists.
pub async fn ecr_image(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &str,
) -> Result<Option<(String, Option<String>)>, Failure> {
    let out = ecr
        .batch_get_image()
        .repository_name(repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(tag)
                .build(),
        )
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .map_err(|e| crate::aws::failure("ECR BatchGetImage", e))?;
    let Some(img) = out.images().first() else {
        return Ok(None);
    };
    let digest = img
        .image_id()
        .and_then(|i| i.image_digest())
        .unwrap_or_default()
        .to_string();
    let config = img
        .image_manifest()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .and_then(|m| {
            m.pointer("/config/digest")
                .and_then(|d| d.as_str())
                .map(str::to_string)
        });
    Ok(Some((digest, config)))
}

pub async fn push(
    docker: &Docker,
    ecr: &aws_sdk_ecr::Client,
    auth: &EcrAuthCache,
    o: &PushOptions<'_>,
) -> Result<Pushed, Failure> {
    let local = format!("{}:{}", o.repository, o.git_sha);
    let Some(local_id) = inspect_id(docker, &local).await? else {
        return Err(
            Failure::msg(Code::Image, format!("local image {local} does not exist"))
                .with_hint("build it first: deployer build (with the same --git-sha)"),
        );
    };
    let uri = repository_uri(ecr, o.repository).await?;
    let ecr_host = uri.split('/').next().unwrap_or_default().to_string();
    let path = uri
        .split_once('/')
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| o.repository.to_string());
    let registry = o.registry_override.map(str::to_string).unwrap_or(ecr_host);

    if let Some((digest, Some(config))) = ecr_image(ecr, o.repository, o.git_sha).await?
        && config == local_id
    {
        return Ok(Pushed {
            image: format!("{uri}:{}", o.git_sha),
            image_with_digest: format!("{uri}@{digest}"),
            digest,
            registry,
            skipped: true,
        });
    }

    let (login, _) = auth.get(ecr).await?;
    let target = format!("{registry}/{path}");
    docker
        .tag_image(
            &local,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(&target)
                    .tag(o.git_sha)
                    .build(),
            ),
        )
        .await
        .or_exit(Code::Image)?;
    let creds = DockerCredentials {
        username: Some(login.username.clone()),
        password: Some(login.password.expose_secret().to_string()),
        serveraddress: Some(registry.clone()),
        ..Default::default()
    };
    let progress = Progress::new(&format!("pushing {target}:{}", o.git_sha));
    let mut stream = docker.push_image(
        &target,
        Some(PushImageOptionsBuilder::default().tag(o.git_sha).build()),
        Some(creds),
    );
    let mut digest = None;
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|e| {
            Failure::msg(
                Code::Image,
                format!("push of {target}:{} failed: {e}", o.git_sha),
            )
            .with_hint(format!(
                "check that the registry {registry} is reachable from the Docker engine"
            ))
        })?;
        if let Some(err) = msg.error_detail.and_then(|d| d.message) {
            progress.finish();
            return Err(Failure::msg(
                Code::Image,
                format!("push of {target}:{} failed: {err}", o.git_sha),
            )
            .with_hint(format!(
                "check that the registry {registry} is reachable and the credentials allow pushing"
            )));
        }
        if let Some(status) = &msg.status {
            if let Some(d) = status
                .split("digest: ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                digest = Some(d.to_string());
            }
            progress.line(status, false);
        }
    }
    progress.finish();
    let digest = digest.ok_or_else(|| {
        Failure::msg(
            Code::Image,
            "the registry did not report a digest for the push",
        )
    })?;

    if o.registry_override.is_some() {
        record_in_ecr(ecr, &registry, &path, o, &digest).await?;
    }
    Ok(Pushed {
        image: format!("{uri}:{}", o.git_sha),
        image_with_digest: format!("{uri}@{digest}"),
        digest,
        registry,
        skipped: false,
    })
}

/// After pushing to an override registry, record the manifest in ECR (PutImage).
async fn record_in_ecr(
    ecr: &aws_sdk_ecr::Client,
    registry: &str,
    path: &str,
    o: &PushOptions<'_>,
    digest: &str,
) -> Result<(), Failure> {
    let url = format!("http://{registry}/v2/{path}/manifests/{digest}");
    let resp = reqwest::Client::new()
        .get(&url)
        .header("Accept", MANIFEST_TYPES)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            Failure::msg(
                Code::Image,
                format!("cannot read back the pushed manifest from {url}: {e}"),
            )
        })?;
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let manifest = resp.text().await.or_exit(Code::Image)?;
    let put = ecr
        .put_image()
        .repository_name(o.repository)
        .image_manifest(manifest)
        .set_image_manifest_media_type(media)
        .image_tag(o.git_sha)
        .image_digest(digest)
        .send()
        .await;
    match put {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(crate::aws::failure("ECR PutImage", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(expires_in: i64) -> EcrLogin {
        let now = SystemTime::now();
        EcrLogin {
            username: "AWS".into(),
            password: SecretString::from("p".to_string()),
            proxy_endpoint: "https://x".into(),
            expires_at: Some(if expires_in >= 0 {
                now + Duration::from_secs(expires_in as u64)
            } else {
                now - Duration::from_secs((-expires_in) as u64)
            }),
        }
    }

    #[test]
    fn auth_cache_serves_until_shortly_before_expiry() {
        let c = EcrAuthCache::new();
        assert!(c.cached(SystemTime::now()).is_none());
        c.store(login(3600));
        assert!(c.cached(SystemTime::now()).is_some());
        c.store(login(60)); // inside the margin
        assert!(c.cached(SystemTime::now()).is_none());
        c.store(login(-10));
        assert!(c.cached(SystemTime::now()).is_none());
    }

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
