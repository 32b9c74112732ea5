//! What a release tells people: progress lines on stderr (with `::group::`/`::error::` in
//! GitHub Actions), a markdown summary for `$GITHUB_STEP_SUMMARY`, outputs for `$GITHUB_OUTPUT`,
//! and an optional Slack-compatible webhook message. Nothing here ever prints a secret: callers
//! pass only redacted text.

use std::io::Write as _;
use std::time::Instant;

use super::Outcome;
use super::smoke::CheckResult;
use crate::aws::ecs::short_td;
use crate::state::audit::{ReleaseKind, ReleaseRecord};

pub struct Reporter {
    started: Instant,
    pub github: bool,
    quiet: bool,
    group_open: std::sync::Mutex<bool>,
}

impl Reporter {
    pub fn new(quiet: bool) -> Self {
        Self {
            started: Instant::now(),
            github: std::env::var("GITHUB_ACTIONS").ok().as_deref() == Some("true"),
            quiet,
            group_open: std::sync::Mutex::new(false),
        }
    }

    /// A reporter for a background task (a notification being sent): same clock and verbosity.
    pub fn clone_handle(&self) -> Self {
        Self {
            started: self.started,
            github: self.github,
            quiet: self.quiet,
            group_open: std::sync::Mutex::new(false),
        }
    }

    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A new stage of the release (a `::group::` in Actions).
    pub fn stage(&self, title: &str) {
        let mut open = self.group_open.lock().expect("reporter lock");
        if self.github {
            if *open {
                eprintln!("::endgroup::");
            }
            eprintln!("::group::{title}");
            *open = true;
        } else if !self.quiet {
            eprintln!("==> {title}");
        }
    }

    pub fn end_group(&self) {
        let mut open = self.group_open.lock().expect("reporter lock");
        if self.github && *open {
            eprintln!("::endgroup::");
            *open = false;
        }
    }

    pub fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("[{:>7.2}s] {text}", self.elapsed_s());
        }
    }
}

/// What the release saw, for its summary: smoke checks, analysis verdicts (service, where,
/// verdict) and the timeline (service, what, epoch seconds).
pub struct Seen<'a> {
    pub smoke: &'a [(String, CheckResult)],
    pub analysis: &'a [(String, String, String)],
    pub timeline: &'a [(String, String, f64)],
}

/// The markdown summary of a finished release.
pub fn summary_markdown(
    rec: &ReleaseRecord,
    outcome: Outcome,
    seen: &Seen<'_>,
    duration_s: f64,
) -> String {
    let smoke: &[(String, CheckResult)] = seen.smoke;
    let mut md = String::new();
    let icon = if outcome == Outcome::Succeeded {
        "✅"
    } else {
        "❌"
    };
    md.push_str(&format!(
        "## {icon} {} `{}` to **{}**: {}\n\n",
        if rec.kind == ReleaseKind::Rollback {
            "Rollback"
        } else {
            "Release"
        },
        rec.release_id,
        rec.env,
        outcome.describe()
    ));
    md.push_str(&format!(
        "- git sha: `{}`\n- image: `{}`\n- actor: {}\n- duration: {duration_s:.1} s\n",
        rec.git_sha, rec.image, rec.actor
    ));
    // The reason's first line, then what the failure showed (target health, stopped tasks,
    // service events) one item each, not run together into one line.
    let mut reason = rec.reason.lines().map(str::trim).filter(|l| !l.is_empty());
    if let Some(first) = reason.next() {
        md.push_str(&format!("- reason: {first}\n"));
        for line in reason {
            md.push_str(&format!("  - {line}\n"));
        }
    }
    md.push_str("\n| service | revision | previous | status |\n| --- | --- | --- | --- |\n");
    for s in &rec.services {
        md.push_str(&format!(
            "| {} | `{}` | `{}` | {} |\n",
            s.service,
            short_td(&s.task_definition),
            short_td(&s.previous_task_definition),
            s.status
        ));
    }
    if !smoke.is_empty() {
        md.push_str("\n| smoke check | where | result | attempts |\n| --- | --- | --- | --- |\n");
        for (place, r) in smoke {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.name,
                place,
                if r.passed {
                    "pass".to_owned()
                } else {
                    format!("FAIL: {}", r.failure.clone().unwrap_or_default())
                },
                r.attempts
            ));
        }
    }
    if !seen.analysis.is_empty() {
        md.push_str("\n| analysis | service | where | verdict |\n| --- | --- | --- | --- |\n");
        for (service, place, verdict) in seen.analysis {
            let name = verdict.split('`').nth(1).unwrap_or("analysis").to_owned();
            md.push_str(&format!(
                "| {name} | {service} | {place} | {} |\n",
                verdict.replace('|', "\\|")
            ));
        }
    }
    md.push_str(&timeline_gantt(&rec.release_id, seen.timeline));
    md
}

/// A mermaid gantt (GitHub renders mermaid in step summaries) of each service's lifecycle
/// stages, traffic steps and pauses, from what the deployer saw: each entry lasts until the
/// service's next one.
pub fn timeline_gantt(release_id: &str, timeline: &[(String, String, f64)]) -> String {
    if timeline.is_empty() {
        return String::new();
    }
    let mut services: Vec<&str> = Vec::new();
    for (s, _, _) in timeline {
        if !services.contains(&s.as_str()) {
            services.push(s);
        }
    }
    let mut md = format!(
        "\n```mermaid\ngantt\n    title Release {release_id}\n    dateFormat X\n    axisFormat %H:%M:%S\n"
    );
    for svc in services {
        md.push_str(&format!("    section {}\n", mermaid_text(svc)));
        let entries: Vec<&(String, String, f64)> =
            timeline.iter().filter(|(s, _, _)| s == svc).collect();
        for (i, (_, what, at)) in entries.iter().enumerate() {
            let start = at.floor() as i64;
            // The last entry (how it ended) is a milestone-like one-second bar.
            let end = entries
                .get(i + 1)
                .map(|(_, _, next)| next.floor() as i64)
                .unwrap_or(start)
                .max(start + 1);
            let tag = if what == "paused" {
                "active, "
            } else if what.starts_with("ROLLBACK") || what == "STOPPED" {
                "crit, "
            } else {
                ""
            };
            md.push_str(&format!(
                "    {} :{tag}{start}, {end}\n",
                mermaid_text(what)
            ));
        }
    }
    md.push_str("```\n");
    md
}

/// Text mermaid takes as a section or task name (`:` and `#` end or break them).
fn mermaid_text(s: &str) -> String {
    s.replace([':', '#', ';'], " ")
}

/// Appends to `$GITHUB_STEP_SUMMARY` and `$GITHUB_OUTPUT` when they are set (in Actions, or in
/// tests that point them at files).
pub fn write_github_files(md: &str, outputs: &[(&str, String)]) -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(f, "{md}")?;
    }
    if let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        for (k, v) in outputs {
            // Values are single-line by construction; keep it so.
            writeln!(f, "{k}={}", v.replace('\n', " "))?;
        }
    }
    Ok(())
}

/// Posts the release's outcome to a Slack-compatible incoming webhook, with the reason and the
/// timings. Failures are warnings: a notification must never change a release's outcome. The
/// URL is a secret and never printed.
pub async fn notify(
    webhook: &str,
    rec: &ReleaseRecord,
    outcome: Outcome,
    timings: &str,
) -> Result<(), String> {
    let text = format!(
        "{} {} {} to {} ({}): {}{} ({timings})",
        if outcome == Outcome::Succeeded {
            ":white_check_mark:"
        } else {
            ":rotating_light:"
        },
        rec.kind.as_str(),
        rec.release_id,
        rec.env,
        &rec.git_sha.chars().take(12).collect::<String>(),
        outcome.describe(),
        if rec.reason.is_empty() {
            String::new()
        } else {
            format!(" — {}", rec.reason.lines().next().unwrap_or_default())
        }
    );
    post(webhook, &text).await
}

/// A deployment paused at a hook the deployer gates: which service and step, until when, what
/// ECS does then, and the commands that take over if this deployer is gone.
pub struct Pause<'a> {
    pub env: &'a str,
    pub release_id: &'a str,
    pub service: &'a str,
    /// e.g. `PRE_PRODUCTION_TRAFFIC_SHIFT (new revision at 25% of production)`.
    pub at: &'a str,
    pub expires_at: Option<&'a str>,
    pub timeout_action: &'a str,
}

pub async fn notify_pause(webhook: &str, p: &Pause<'_>) -> Result<(), String> {
    let text = format!(
        ":pause_button: release {rid} to {env}: {svc} paused at {at}, until {until} (then ECS will {action}). \
         The deployer is running its gate; if it is gone, `deployer release --env {env} --resume` takes over, \
         `deployer rollback --env {env}` rolls back.",
        rid = p.release_id,
        env = p.env,
        svc = p.service,
        at = p.at,
        until = p.expires_at.unwrap_or("its timeout"),
        action = p.timeout_action,
    );
    post(webhook, &text).await
}

async fn post(webhook: &str, text: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    match client
        .post(webhook)
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the webhook answered HTTP {}", r.status())),
        // Never include the URL (reqwest errors do): say what kind of failure it was.
        Err(e) if e.is_timeout() => Err("the webhook did not answer within 5 s".into()),
        Err(e) if e.is_connect() => Err("could not connect to the webhook".into()),
        Err(_) => Err("the webhook request failed".into()),
    }
}
