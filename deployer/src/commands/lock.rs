//! `deployer lock status|release`: who holds the environment's deploy lock; removing it.

use clap::Subcommand;

use super::{Global, engine_ctx, out};
use crate::exit::{CmdResult, Code, Failure};
use crate::state::lock::now_epoch;

pub const EXAMPLES: &str = "Examples:
  deployer lock status --env staging
  deployer lock release --env staging --force";

#[derive(Subcommand, Clone, Debug)]
pub enum LockCmd {
    /// Who holds the environment's deploy lock.
    Status,
    /// Remove the lock (only with --force: make sure its holder is gone).
    Release {
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(g: &Global, cmd: &LockCmd) -> CmdResult<Code> {
    let ctx = engine_ctx(g, true).await?;
    let env = &ctx.env_name;
    let lock = ctx.lock();
    match cmd {
        LockCmd::Status => {
            let info = lock
                .status()
                .await
                .map_err(|e| Failure::new(Code::Aws, e))?;
            if g.json() {
                out!("{}", serde_json::json!({ "env": env, "lock": info }));
            } else {
                match info {
                    Some(i) if !i.expired(now_epoch()) => {
                        out!("lock for {env}: {}", i.describe())
                    }
                    Some(i) => out!("lock for {env}: expired ({})", i.describe()),
                    None => out!("lock for {env}: free"),
                }
            }
        }
        LockCmd::Release { force: false } => {
            return Err(Failure::msg(
                Code::Config,
                "refusing to remove the deploy lock without --force",
            )
            .with_hint(format!(
                "check `deployer lock status --env {env}` first; the holder's release may still be running"
            )));
        }
        LockCmd::Release { force: true } => {
            match lock
                .force_release()
                .await
                .map_err(|e| Failure::new(Code::Aws, e))?
            {
                Some(i) => out!("removed the lock for {env} ({})", i.describe()),
                None => out!("the lock for {env} was already free"),
            }
        }
    }
    Ok(Code::Ok)
}
