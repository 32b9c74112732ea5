//! `deployer config show`: the resolved configuration of an environment, secrets redacted.

use clap::Subcommand;
use serde_json::json;

use super::{Global, Output, env_of, load_env, out, print_json};
use crate::config::{Environment, Project};
use crate::exit::{CmdResult, Code, Failure};

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Print the resolved configuration of an environment (file < DEPLOYER_* < flags), secrets redacted.
    #[command(after_help = "Examples:
  deployer config show --env staging
  DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER=other deployer config show --env staging -o json")]
    Show,
}

pub fn run(g: &Global, cmd: &ConfigCmd) -> CmdResult<Code> {
    let ConfigCmd::Show = cmd;
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    match g.output {
        Output::Json => print_json(&json!({
            "source": cfg.source,
            "project": cfg.project,
            "environment": name,
            "settings": env,
        })),
        Output::Text => {
            #[derive(serde::Serialize)]
            struct View<'a> {
                project: &'a Project,
                environments: std::collections::BTreeMap<&'a str, &'a Environment>,
            }
            let v = View {
                project: &cfg.project,
                environments: [(name.as_str(), env)].into_iter().collect(),
            };
            let text = toml::to_string_pretty(&v).map_err(|e| {
                Failure::msg(
                    Code::Internal,
                    format!("cannot print the config as TOML: {e}"),
                )
            })?;
            out!(
                "# resolved from {} (file < DEPLOYER_* < flags; secrets redacted)\n{text}",
                cfg.source.display()
            );
        }
    }
    Ok(Code::Ok)
}
