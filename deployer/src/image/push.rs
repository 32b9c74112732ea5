//! `push`: the built image to the environment's ECR repository (or a registry override), with
//! ECR logins cached until shortly before they expire.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{MANIFEST_TYPES, Progress, inspect_id};
use crate::aws::ecr::{ecr_image, repository_uri};
use crate::exit::{Code, Failure, OrExit};

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
}
