//! What can be wrong with a configuration: the one error type of the config layer.

use std::path::PathBuf;

// ------------------------------------------------------------------ errors

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: String,
    },
    #[error("{}{}: {message}", path.display(), at(*line, *column))]
    Parse {
        path: PathBuf,
        line: Option<u32>,
        column: Option<u32>,
        message: String,
        /// The offending source line.
        snippet: Option<String>,
        hint: Option<String>,
    },
    #[error("{var}: {message}")]
    Env {
        var: String,
        message: String,
        hint: Option<String>,
    },
    #[error("{}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        message: String,
        hint: Option<String>,
    },
    /// The release's identity (git sha) could not be found.
    #[error("{message}")]
    Release {
        message: String,
        hint: Option<String>,
    },
    #[error("unknown environment `{name}` in {}; it defines: {}", path.display(), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownEnvironment {
        name: String,
        path: PathBuf,
        known: Vec<String>,
        hint: Option<String>,
    },
}

impl ConfigError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ConfigError::Read { hint, .. } => Some(hint),
            ConfigError::Parse { hint, .. }
            | ConfigError::Env { hint, .. }
            | ConfigError::Invalid { hint, .. }
            | ConfigError::Release { hint, .. }
            | ConfigError::UnknownEnvironment { hint, .. } => hint.as_deref(),
        }
    }

    pub fn snippet(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { snippet, .. } => snippet.as_deref(),
            _ => None,
        }
    }
}

fn at(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}
