//! A locked run: take the environment's deploy lock, write the audit record, run the body, then
//! always: final audit record, lock release, summary and GitHub outputs, notification.

use std::time::Duration;

use super::report;
use super::{Ctx, Outcome, Step, Stop, median};
use crate::config;
use crate::state::audit::{self, RecordOutcome, ReleaseRecord};
use crate::state::lock::{self, LockError, LockRequest};

/// The body of a locked run: `Ok` carries the reason to record on success (may be empty).
pub(crate) type Body<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Step<String>> + Send + 'a>>;

/// Runs `body` under the lock. `take_over` lets `--resume` take a lock its release held.
pub(crate) async fn run_locked<F>(
    ctx: &Ctx,
    rec: &mut ReleaseRecord,
    wait_lock: Option<Duration>,
    take_over: Option<&str>,
    body: F,
) -> Step<()>
where
    F: for<'a> FnOnce(&'a Ctx, &'a mut ReleaseRecord) -> Body<'a>,
{
    let lock = ctx.lock();
    let req = LockRequest {
        owner: rec.actor.clone(),
        git_sha: rec.git_sha.clone(),
        release_id: rec.release_id.clone(),
        ci_url: rec.ci_url.clone(),
    };
    let wait = wait_lock.unwrap_or(ctx.env.timeouts.lock_wait);
    let held = match lock.acquire_waiting(&req, take_over, wait).await {
        Ok(h) => h,
        Err(e @ LockError::Held { .. }) => return Err(Stop::new(Outcome::LockHeld, e.to_string())),
        Err(e) => return Err(Stop::failed(format!("taking the deploy lock: {e:#}"))),
    };
    ctx.report.line(&format!(
        "deploy lock for {} taken ({})",
        ctx.env_name, ctx.env.lock_table
    ));
    let heartbeat = lock::Heartbeat::start(lock.clone(), held.clone());
    let audit = ctx.audit();
    if let Err(e) = async {
        audit.ensure_table().await?;
        audit.put(rec).await
    }
    .await
    {
        drop(heartbeat);
        let _ = lock.release(&held).await;
        return Err(Stop::failed(format!("writing the audit record: {e:#}")));
    }
    *ctx.open_record.lock().expect("open record") = Some(rec.clone());
    let ended = body(ctx, rec).await;
    *ctx.open_record.lock().expect("open record") = None;
    let (outcome, reason) = match &ended {
        Ok(note) => (Outcome::Succeeded, note.clone()),
        Err(stop) => (stop.outcome, stop.reason.clone()),
    };
    rec.outcome = RecordOutcome::Ended(outcome);
    rec.reason = reason;
    rec.finished_at = audit::now_rfc3339();
    ctx.report.end_group();
    if let Err(e) = audit.put(rec).await {
        ctx.report
            .line(&format!("warning: writing the final audit record: {e:#}"));
    }
    drop(heartbeat);
    match lock.release(&held).await {
        Ok(true) => ctx.report.line("deploy lock released"),
        Ok(false) => ctx
            .report
            .line("deploy lock was no longer ours (taken over)"),
        Err(e) => ctx.report.line(&format!(
            "warning: releasing the deploy lock: {e:#}; run `deployer lock release --env {} --force`",
            ctx.env_name
        )),
    }
    finish(ctx, rec, outcome).await;
    ended
        .map(|_| ())
        .map_err(|stop| ended_message(ctx, rec, stop))
}

/// The one line that says how a recorded run ended, then why.
pub(crate) fn ended_message(ctx: &Ctx, rec: &ReleaseRecord, stop: Stop) -> Stop {
    let reason = format!(
        "{} {} to {}: {} (exit {})\n{}",
        rec.kind.as_str(),
        rec.release_id,
        ctx.env_name,
        stop.outcome.describe(),
        stop.outcome.exit_code(),
        stop.reason
    );
    Stop::new(stop.outcome, reason)
}

/// Summary, GitHub outputs, webhook and, on success, the final line.
pub(crate) async fn finish(ctx: &Ctx, rec: &ReleaseRecord, outcome: Outcome) {
    let stats = ctx.stats.lock().expect("stats").clone();
    let seen = report::Seen {
        smoke: &stats.smoke,
        analysis: &stats.analysis,
        timeline: &stats.timeline,
    };
    let md = report::summary_markdown(rec, outcome, &seen, ctx.report.elapsed_s());
    let outputs = [
        ("release_id", rec.release_id.clone()),
        ("outcome", outcome.as_str().to_owned()),
        ("git_sha", rec.git_sha.clone()),
        ("exit_code", outcome.exit_code().to_string()),
    ];
    if let Err(e) = report::write_github_files(&md, &outputs) {
        ctx.report.line(&format!(
            "warning: could not write the GitHub summary/outputs: {e}"
        ));
    }
    // Each post is bounded by its client's timeout.
    let pauses: Vec<_> =
        std::mem::take(&mut *ctx.pause_notifications.lock().expect("pause notifications"));
    for sending in pauses {
        let _ = sending.await;
    }
    if let Some(url) = &ctx.env.notifications.webhook_url {
        let timings = format!(
            "{:.1} s{}",
            ctx.report.elapsed_s(),
            median(&stats.hook_to_action_ms)
                .map(|p| format!(", hook-to-action p50 {p:.0} ms"))
                .unwrap_or_default()
        );
        match report::notify(config::expose(url), rec, outcome, &timings).await {
            Ok(()) => ctx.report.line("notification sent"),
            Err(e) => ctx
                .report
                .line(&format!("warning: notification not sent: {e}")),
        }
    }
    if let Some(p) = median(&stats.hook_to_action_ms) {
        ctx.report.line(&format!(
            "hook-to-action p50 {p:.0} ms over {} hook(s); {} polls",
            stats.hook_to_action_ms.len(),
            stats.polls
        ));
    }
    if outcome == Outcome::Succeeded {
        eprintln!(
            "{} {} of {} to {}: succeeded in {:.1} s",
            rec.kind.as_str(),
            rec.release_id,
            rec.git_sha,
            rec.env,
            ctx.report.elapsed_s()
        );
    }
}
