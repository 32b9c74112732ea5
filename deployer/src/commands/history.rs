//! `deployer history`: past releases from the audit table, newest first.

use clap::Args;

use super::{Global, engine_ctx, out};
use crate::exit::{CmdResult, Code, Failure};
use crate::state::history::render_table;

pub const EXAMPLES: &str = "Examples:
  deployer history --env production --limit 5
  deployer history --env staging -o json";

#[derive(Args, Clone, Debug)]
pub struct HistoryCmd {
    /// How many releases to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub async fn run(g: &Global, cmd: &HistoryCmd) -> CmdResult<Code> {
    let ctx = engine_ctx(g, true).await?;
    let records = ctx
        .audit()
        .list(&ctx.env_name, cmd.limit)
        .await
        .map_err(|e| {
            Failure::new(
                Code::Aws,
                e.context(format!("reading the audit table {}", ctx.env.audit_table)),
            )
        })?;
    if g.json() {
        out!(
            "{}",
            serde_json::to_string_pretty(&records).unwrap_or_default()
        );
    } else {
        print!("{}", render_table(&ctx.env_name, &records));
    }
    Ok(Code::Ok)
}
