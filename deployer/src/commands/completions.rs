//! `deployer completions`: shell completion scripts.

use clap::{Args, CommandFactory};

use super::Cli;
use crate::exit::{CmdResult, Code};

pub const EXAMPLES: &str = "Examples:
  deployer completions bash > ~/.local/share/bash-completion/completions/deployer
  deployer completions zsh > ~/.zfunc/_deployer";

#[derive(Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn run(args: &CompletionsArgs) -> CmdResult<Code> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "deployer",
        &mut std::io::stdout(),
    );
    Ok(Code::Ok)
}
