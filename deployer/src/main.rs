//! `deployer`: parse, dispatch, and the one place that prints an error (text or JSON) and exits.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use deployer::commands::{self, Cli, Global};
use deployer::exit::{Code, Failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Code::Usage.as_u8()
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.global.no_color || std::env::var_os("NO_COLOR").is_some() {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    init_logging(&cli.global);
    let json = cli.global.json();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let f = Failure::msg(
                Code::Internal,
                format!("cannot start the async runtime: {e}"),
            );
            return print_failure(&f, json);
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code.as_u8()),
        Err(f) => print_failure(&f, json),
    }
}

/// What went wrong, why and what to do, on stderr (a GitHub Actions annotation too); with
/// `-o json` also the error object on stdout.
fn print_failure(f: &Failure, json: bool) -> ExitCode {
    let msg = format!("{:#}", f.error);
    if std::env::var("GITHUB_ACTIONS").ok().as_deref() == Some("true") {
        // Annotations are one line; the details follow as plain lines.
        eprintln!(
            "::error title=deployer::{}",
            msg.lines().next().unwrap_or_default()
        );
    }
    eprintln!(
        "{} {msg}",
        console::style("error:").red().bold().for_stderr()
    );
    if let Some(h) = &f.hint {
        eprintln!("{} {h}", console::style("hint:").yellow().for_stderr());
    }
    if json {
        let _ = writeln!(std::io::stdout().lock(), "{}", f.to_json());
    }
    ExitCode::from(f.code.as_u8())
}

fn init_logging(g: &Global) {
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEPLOYER_LOG").unwrap_or_else(|_| {
        // The SDK's own warnings (e.g. each credential provider that came up empty) repeat
        // what the deployer reports as an error; show them from -vv on.
        let others = if g.verbose >= 2 { "debug" } else { "error" };
        tracing_subscriber::EnvFilter::new(format!("deployer={level},{others}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(console::colors_enabled_stderr())
        .with_target(false)
        .try_init();
}
