//! The release's identity from the repository: its git sha and version.

use std::path::Path;
use std::process::Command;

use super::ConfigError;

/// The git sha of the release: the given one, else `GITHUB_SHA`, else `git rev-parse HEAD` in `dir`.
pub fn git_sha(explicit: Option<&str>, dir: &Path) -> Result<String, ConfigError> {
    if let Some(s) = explicit.filter(|s| !s.is_empty()) {
        return check_sha(s);
    }
    if let Ok(s) = std::env::var("GITHUB_SHA")
        && !s.is_empty()
    {
        return check_sha(&s);
    }
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .map_err(|e| ConfigError::Release {
            message: format!("cannot run git to find the release's sha: {e}"),
            hint: Some("pass --git-sha <sha> (or DEPLOYER_GIT_SHA)".into()),
        })?;
    if !out.status.success() {
        return Err(ConfigError::Release {
            message: format!(
                "`git rev-parse HEAD` failed in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            hint: Some("run inside the repository or pass --git-sha <sha>".into()),
        });
    }
    check_sha(String::from_utf8_lossy(&out.stdout).trim())
}

fn check_sha(s: &str) -> Result<String, ConfigError> {
    let ok = (4..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(ConfigError::Release {
            message: format!("`{s}` is not a git sha"),
            hint: Some("a git sha is 4-64 hexadecimal characters".into()),
        })
    }
}

/// The release version: `VERSION` from the environment, else `git describe`, else the short sha.
pub fn version(dir: &Path, sha: &str) -> String {
    if let Ok(v) = std::env::var("VERSION")
        && !v.is_empty()
    {
        return v;
    }
    Command::new("git")
        .args(["describe", "--tags", "--always"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| sha.chars().take(12).collect())
}
