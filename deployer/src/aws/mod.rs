//! Shared AWS plumbing: one `SdkConfig` from flags/config/environment, the retry and timeout
//! policy, a credentials preflight, readable explanations of SDK errors, and a way to read an
//! operation's raw JSON response (the live task definition exactly as AWS returned it).
//!
//! Resolution order for each setting: CLI flag > the environment's value in deployer.toml
//! (after `DEPLOYER_*` overrides) > the SDK's default chain (AWS_PROFILE, AWS_REGION,
//! AWS_ENDPOINT_URL, ~/.aws, instance/container credentials).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::config::Environment;
use crate::exit::{Code, Failure};

pub mod cloudwatch;
pub mod dynamo;
pub mod ecr;
pub mod ecs;
pub mod elb;
pub mod follow;

/// Where and as whom to call AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

impl AwsOptions {
    /// The environment's settings (CLI flags were already applied to it by `Config::apply_overrides`).
    pub fn for_environment(env: &Environment) -> Self {
        Self {
            profile: env.profile.clone(),
            region: env.region.clone(),
            endpoint_url: env.endpoint_url.clone(),
        }
    }
}

/// Loads the SDK config. Retries: standard mode with backoff (throttling and 5xx are retried by
/// the SDK), 4 attempts unless AWS_MAX_ATTEMPTS says otherwise.
pub async fn load(opts: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build(),
    );
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
        loader = loader.retry_config(
            RetryConfig::standard()
                .with_max_attempts(4)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        );
    }
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &opts.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// Fails fast and clearly when no region or no credentials can be found, before any API call.
pub async fn preflight(config: &SdkConfig) -> Result<(), Failure> {
    if config.region().is_none() {
        return Err(Failure::msg(Code::Aws, "no AWS region configured").with_hint(
            "set `region` for the environment in deployer.toml, pass --region, or export AWS_REGION",
        ));
    }
    let Some(provider) = config.credentials_provider() else {
        return Err(no_credentials("no credentials provider"));
    };
    match tokio::time::timeout(Duration::from_secs(20), provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(no_credentials(&short_chain(&e))),
        Err(_) => Err(no_credentials("resolving credentials took more than 20 s")),
    }
}

/// An error and its first causes, each cut short: SDK errors nest raw responses in their Debug.
fn short_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        if parts.len() >= 3 {
            break;
        }
        let text: String = s.to_string().chars().take(160).collect();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn no_credentials(why: &str) -> Failure {
    Failure::msg(Code::Aws, format!("no AWS credentials found: {why}")).with_hint(
        "pass --profile (or set `profile` in deployer.toml), export AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where a role is available",
    )
}

/// Turns an SDK error into a failure that says which call failed, why, and what to do.
pub fn failure<E, R>(what: &str, err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (message, hint) = explain(&err);
    Failure::msg(Code::Aws, format!("{what} failed: {message}")).with_hint(hint)
}

/// A one-line reason and a hint for an SDK error.
pub fn explain<E, R>(err: &SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::DispatchFailure(d) => {
            let why = d
                .as_connector_error()
                .map(|c| aws_smithy_types::error::display::DisplayErrorContext(c).to_string())
                .unwrap_or_else(|| "the request could not be sent".into());
            let hint = if d.is_timeout() {
                "the endpoint did not answer in time; check --endpoint-url / AWS_ENDPOINT_URL and the network"
            } else if d.is_io() {
                "the endpoint is unreachable; check --endpoint-url / AWS_ENDPOINT_URL, the region and the network"
            } else {
                "check credentials (--profile) and the endpoint"
            };
            (format!("cannot reach AWS: {why}"), hint.into())
        }
        SdkError::TimeoutError(_) => (
            "the call timed out".into(),
            "check the endpoint and the network; retry".into(),
        ),
        SdkError::ResponseError(_) => (
            "AWS answered with a response that is not the API's (is the endpoint an AWS API?)"
                .into(),
            "check --endpoint-url / AWS_ENDPOINT_URL".into(),
        ),
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or("Unknown");
            let msg = e.message().unwrap_or("no message");
            let hint = match code {
                "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
                    "the credentials lack this permission; check the IAM policy of the role/profile"
                }
                "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "InvalidSignatureException" => {
                    "the credentials are invalid or expired; refresh them (aws sso login, new keys)"
                }
                "ThrottlingException" | "TooManyRequestsException" => {
                    "AWS throttled the calls even after retries; try again later"
                }
                _ => "see the message above",
            };
            (format!("{code}: {msg}"), hint.into())
        }
        other => (
            aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
            "check credentials, region and endpoint".into(),
        ),
    }
}

/// Whether the endpoint does not implement the operation (emulators): an unknown-operation error
/// or a non-JSON error body where JSON was expected.
pub fn is_unsupported<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or_default();
            let msg = e.message().unwrap_or_default();
            matches!(
                code,
                "UnknownOperationException" | "InvalidAction" | "NotImplemented"
            ) || msg.contains("not yet implemented")
                || msg.contains("not implemented")
        }
        SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => false,
        other => {
            let s = aws_smithy_types::error::display::DisplayErrorContext(other).to_string();
            s.contains("malformed") || s.contains("not implemented")
        }
    }
}

/// Keeps the raw body of the response it sees (use once per call through `.customize()`).
#[derive(Debug, Clone, Default)]
pub struct RawResponse(Arc<Mutex<Option<Vec<u8>>>>);

impl RawResponse {
    pub fn json(&self) -> Option<serde_json::Value> {
        let guard = self.0.lock().ok()?;
        serde_json::from_slice(guard.as_deref()?).ok()
    }
}

impl Intercept for RawResponse {
    fn name(&self) -> &'static str {
        "RawResponse"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes()
            && let Ok(mut slot) = self.0.lock()
        {
            *slot = Some(bytes.to_vec());
        }
        Ok(())
    }
}

/// The account id of the credentials (STS is not a dependency: read it from an ARN the caller
/// already has, e.g. an ECR repository or a cluster).
pub fn account_from_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// An error and all its causes on one line (SDK errors keep the service's message in a source).
pub fn error_chain<E: std::error::Error + 'static>(e: &E) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}
