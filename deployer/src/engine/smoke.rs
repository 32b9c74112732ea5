//! HTTP smoke checks: the gate between "deployed" and "serving". Each check is config (method,
//! path, expected status, JSON-pointer assertions templated with the release's values, headers,
//! timeout, retries with backoff, N consecutive successes). Results carry the failing request and
//! response with secrets redacted, so a rollback can say exactly why.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

/// One smoke check, resolved from the environment's config (`[[environments.X.smoke_checks]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeCheck {
    pub name: String,
    pub method: String,
    pub path: String,
    pub expect_status: u16,
    /// JSON pointer → expected value (`None`: must exist). String values are templates:
    /// `{{git_sha}}`, `{{release_id}}`, `{{version}}`, `{{env}}`.
    pub assertions: Vec<(String, Option<serde_json::Value>)>,
    /// Extra headers; their values are treated as secrets (never printed).
    pub headers: Vec<(String, String)>,
    /// `Authorization: Bearer` token (a secret).
    pub bearer: Option<String>,
    pub timeout: Duration,
    /// Failed attempts tolerated before the check fails.
    pub retries: u32,
    /// First wait between attempts; doubles up to 2 s.
    pub backoff: Duration,
    /// Successes in a row needed to pass.
    pub consecutive_successes: u32,
}

impl SmokeCheck {
    /// From the config model; `token` is the environment's API token (for `auth = true`).
    pub fn from_config(c: &crate::config::SmokeCheck, token: Option<&str>) -> Self {
        Self {
            name: c.name.clone(),
            method: c.method.clone(),
            path: c.path.clone(),
            expect_status: c.expect_status,
            assertions: c
                .assertions
                .iter()
                .map(|a| {
                    (
                        a.pointer.clone(),
                        a.equals.as_ref().map(crate::config::toml_to_json),
                    )
                })
                .collect(),
            headers: c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            bearer: if c.auth {
                token.map(str::to_owned)
            } else {
                None
            },
            timeout: c.timeout,
            retries: c.retries,
            backoff: c.backoff,
            consecutive_successes: c.consecutive_successes,
        }
    }
}

/// The release's values the templates can use.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub values: BTreeMap<String, String>,
}

impl Vars {
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        Self {
            values: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// Expands `{{name}}` and `{{secret:VAR}}`; unknown names are errors. Secret values are pushed
/// to `secrets` so they can be redacted from anything printed.
pub fn expand(template: &str, vars: &Vars, secrets: &mut Vec<String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unclosed '{{{{' in smoke-check template '{template}'");
        };
        let name = after[..end].trim();
        if let Some(var) = name.strip_prefix("secret:") {
            let value = std::env::var(var).map_err(|_| {
                anyhow::anyhow!(
                    "smoke check needs the secret environment variable {var}, which is not set; \
                     export it (in CI: from a repository secret)"
                )
            })?;
            if !value.is_empty() {
                secrets.push(value.clone());
            }
            out.push_str(&value);
        } else if let Some(v) = vars.values.get(name) {
            out.push_str(v);
        } else {
            let known: Vec<&str> = vars.values.keys().map(String::as_str).collect();
            bail!(
                "unknown variable '{name}' in smoke-check template '{template}'; known: {}",
                known.join(", ")
            );
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 3 {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
    }
    out
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub attempts: u32,
    pub duration_ms: u64,
    /// `GET http://…/api/v1/health` (headers not shown; secrets never).
    pub request: String,
    pub last_status: Option<u16>,
    /// First 500 bytes of the last response body, secrets redacted.
    pub last_body: String,
    /// Why the last failed attempt failed.
    pub failure: Option<String>,
}

impl CheckResult {
    pub fn explain(&self) -> String {
        if self.passed {
            format!(
                "smoke check '{}' passed ({} attempt(s), {} ms)",
                self.name, self.attempts, self.duration_ms
            )
        } else {
            format!(
                "smoke check '{}' failed after {} attempt(s): {}\n    request:  {}\n    response: {} {}",
                self.name,
                self.attempts,
                self.failure.as_deref().unwrap_or("unknown"),
                self.request,
                self.last_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "(none)".into()),
                self.last_body
            )
        }
    }
}

/// Outcome of all checks against one base URL.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SmokeReport {
    pub base_url: String,
    pub results: Vec<CheckResult>,
}

impl SmokeReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    pub fn first_failure(&self) -> Option<&CheckResult> {
        self.results.iter().find(|r| !r.passed)
    }
}

/// Checks `body` and `status` against the check; `Err(reason)` on mismatch.
fn evaluate(
    check: &SmokeCheck,
    status: u16,
    body: &str,
    vars: &Vars,
    secrets: &mut Vec<String>,
) -> std::result::Result<(), String> {
    if status != check.expect_status {
        return Err(format!(
            "expected HTTP {}, got {status}",
            check.expect_status
        ));
    }
    if check.assertions.is_empty() {
        return Ok(());
    }
    let doc: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("response is not JSON: {e}"))?;
    for (pointer, expected) in &check.assertions {
        let expected = match expected {
            Some(serde_json::Value::String(t)) => Some(serde_json::Value::String(
                expand(t, vars, secrets).map_err(|e| e.to_string())?,
            )),
            other => other.clone(),
        };
        match (doc.pointer(pointer), expected) {
            (Some(_), None) => {}
            (Some(actual), Some(expected)) if *actual == expected => {}
            (Some(actual), Some(expected)) => {
                return Err(format!("{pointer} is {actual}, expected {expected}"));
            }
            (None, _) => return Err(format!("{pointer} is missing from the response")),
        }
    }
    Ok(())
}

/// Runs one check until it passes (N successes in a row) or runs out of retries.
pub async fn run_check(
    client: &reqwest::Client,
    base_url: &str,
    check: &SmokeCheck,
    vars: &Vars,
) -> Result<CheckResult> {
    let mut secrets = Vec::new();
    let path = expand(&check.path, vars, &mut secrets)?;
    let url = format!("{}{}", base_url.trim_end_matches('/'), path);
    let method =
        reqwest::Method::from_bytes(check.method.to_uppercase().as_bytes()).map_err(|_| {
            anyhow::anyhow!("smoke check '{}': bad method {}", check.name, check.method)
        })?;
    let mut headers = Vec::new();
    for (k, v) in &check.headers {
        let v = expand(v, vars, &mut secrets)?;
        secrets.push(v.clone());
        headers.push((k.clone(), v));
    }
    if let Some(token) = &check.bearer {
        secrets.push(token.clone());
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    let started = Instant::now();
    let mut attempts = 0;
    let mut failures = 0;
    let mut successes = 0;
    let mut backoff = check.backoff;
    let mut last_status;
    let mut last_body;
    let mut failure;
    loop {
        attempts += 1;
        let mut req = client.request(method.clone(), &url).timeout(check.timeout);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                last_status = Some(status);
                last_body = redact(&body.chars().take(500).collect::<String>(), &secrets);
                evaluate(check, status, &body, vars, &mut secrets)
            }
            Err(e) => {
                last_status = None;
                last_body = String::new();
                Err(if e.is_timeout() {
                    format!("no response within {:?}", check.timeout)
                } else {
                    format!("request failed: {}", redact(&e.to_string(), &secrets))
                })
            }
        };
        match outcome {
            Ok(()) => {
                successes += 1;
                failure = None;
                if successes >= check.consecutive_successes.max(1) {
                    break;
                }
                tokio::time::sleep(check.backoff.min(Duration::from_millis(200))).await;
            }
            Err(reason) => {
                successes = 0;
                failures += 1;
                failure = Some(redact(&reason, &secrets));
                if failures > check.retries {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    Ok(CheckResult {
        name: check.name.clone(),
        passed: failure.is_none() && successes >= check.consecutive_successes.max(1),
        attempts,
        duration_ms: started.elapsed().as_millis() as u64,
        request: format!("{} {}", method, redact(&url, &secrets)),
        last_status,
        last_body,
        failure,
    })
}

/// Runs all checks in order; stops at the first failure (its neighbours would only add noise).
pub async fn run_all(
    client: &reqwest::Client,
    base_url: &str,
    checks: &[SmokeCheck],
    vars: &Vars,
) -> Result<SmokeReport> {
    let mut results = Vec::new();
    for check in checks {
        let r = run_check(client, base_url, check, vars).await?;
        let failed = !r.passed;
        results.push(r);
        if failed {
            break;
        }
    }
    Ok(SmokeReport {
        base_url: base_url.to_owned(),
        results,
    })
}

/// The default gate: `/api/v1/health` is healthy and reports the release's git sha.
pub fn default_checks() -> Vec<SmokeCheck> {
    vec![SmokeCheck {
        name: "health reports the new git sha".into(),
        method: "GET".into(),
        path: "/api/v1/health".into(),
        expect_status: 200,
        assertions: vec![
            ("/status".to_owned(), Some(serde_json::json!("healthy"))),
            (
                "/git_sha".to_owned(),
                Some(serde_json::json!("{{git_sha}}")),
            ),
        ],
        headers: vec![],
        bearer: None,
        timeout: Duration::from_secs(3),
        retries: 5,
        backoff: Duration::from_millis(200),
        consecutive_successes: 2,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_reject_unknown_names() {
        let vars = Vars::new(&[("git_sha", "abc123")]);
        let mut secrets = vec![];
        assert_eq!(
            expand("sha={{ git_sha }}", &vars, &mut secrets).unwrap(),
            "sha=abc123"
        );
        let err = expand("{{nope}}", &vars, &mut secrets)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variable 'nope'"), "{err}");
        assert!(expand("{{git_sha", &vars, &mut secrets).is_err());
    }

    #[test]
    fn secrets_from_env_are_redacted() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("SMOKE_TEST_SECRET_XYZ", "s3cr3t-value") };
        let mut secrets = vec![];
        let v = expand(
            "Bearer {{secret:SMOKE_TEST_SECRET_XYZ}}",
            &Vars::default(),
            &mut secrets,
        )
        .unwrap();
        assert_eq!(v, "Bearer s3cr3t-value");
        assert_eq!(
            redact("token s3cr3t-value here", &secrets),
            "token [REDACTED] here"
        );
        let err = expand(
            "{{secret:SMOKE_TEST_UNSET_VAR}}",
            &Vars::default(),
            &mut secrets,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SMOKE_TEST_UNSET_VAR"));
    }

    #[test]
    fn evaluation_names_the_mismatch() {
        let check = &default_checks()[0];
        let vars = Vars::new(&[("git_sha", "new")]);
        let mut s = vec![];
        assert!(
            evaluate(
                check,
                200,
                r#"{"status":"healthy","git_sha":"new"}"#,
                &vars,
                &mut s
            )
            .is_ok()
        );
        let e = evaluate(
            check,
            200,
            r#"{"status":"healthy","git_sha":"old"}"#,
            &vars,
            &mut s,
        )
        .unwrap_err();
        assert!(e.contains("/git_sha") && e.contains("old"), "{e}");
        assert!(
            evaluate(check, 503, "{}", &vars, &mut s)
                .unwrap_err()
                .contains("503")
        );
        assert!(
            evaluate(check, 200, "<html>", &vars, &mut s)
                .unwrap_err()
                .contains("not JSON")
        );
    }
}
