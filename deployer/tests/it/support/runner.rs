//! The one way every test runs the `deployer` CLI: in a scrubbed environment (no HOME, AWS
//! profile or credentials, `DEPLOYER_*`, `GITHUB_*` or `CI` of the machine running the tests),
//! with secrets in its environment, and a check after every run that none of them appears in
//! stdout, stderr or the GitHub summary/output files it wrote.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use test_support::TestAws;

/// The API token of the CLI tests' projects (`api_token_env = "PLATFORM_API_TOKEN"`).
pub const SECRET: &str = "s3cr3t-token-value-do-not-print";
/// The notification webhook (`webhook_url_env = "SLACK_WEBHOOK_URL"`).
pub const WEBHOOK: &str = "https://hooks.example.invalid/services/T000/B000/XXXXSECRET";
/// The release tests' API token (`api_token_env = "RELEASE_TEST_TOKEN"`), also the smoke
/// targets' `PLATFORM_API_TOKEN`.
pub const TOKEN: &str = "release-test-token-value";

/// Every run gets these variables, and must print none of their values.
const SECRETS: &[(&str, &str, &str)] = &[
    ("PLATFORM_API_TOKEN", SECRET, "the API token"),
    ("SLACK_WEBHOOK_URL", WEBHOOK, "the webhook URL"),
    ("RELEASE_TEST_TOKEN", TOKEN, "the release tests' API token"),
];

/// Variables of the machine running the tests that would change what the deployer does.
fn inherited_settings() -> impl Iterator<Item = OsString> {
    std::env::vars_os().map(|(k, _)| k).filter(|k| {
        let k = k.to_string_lossy();
        k.starts_with("AWS_")
            || k.starts_with("DEPLOYER_")
            || k.starts_with("GITHUB_")
            || k == "CI"
            || k == "HOME"
    })
}

/// A `deployer` invocation being set up: `Deployer::new(dir, args)`, then `.aws(…)`, `.env(…)`,
/// and `.output()` (blocking), `.run().await` (async) or `.spawn()` (in the background).
pub struct Deployer {
    cmd: Command,
    args: Vec<String>,
    /// Files the deployer writes (GITHUB_STEP_SUMMARY, GITHUB_OUTPUT), checked for secrets too.
    files: Vec<PathBuf>,
}

impl Deployer {
    /// `deployer <args>` in `dir` (also its HOME), with nothing of the caller's environment that
    /// configures AWS, the deployer or CI.
    pub fn new(dir: &Path, args: &[&str]) -> Self {
        // DEPLOYER_TEST_BINARY runs the tests against another build (e.g. an older one, to see
        // a test fail without the fix it was written for).
        let bin = std::env::var_os("DEPLOYER_TEST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_deployer").into());
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir).args(args);
        for k in inherited_settings() {
            cmd.env_remove(k);
        }
        cmd.env("HOME", dir)
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (name, value, _) in SECRETS {
            cmd.env(name, value);
        }
        Self {
            cmd,
            args: args.iter().map(|a| a.to_string()).collect(),
            files: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    /// Points the deployer at this test's moto account.
    pub fn aws(mut self, aws: &TestAws) -> Self {
        for (k, v) in aws.env() {
            self.cmd.env(k, v);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self.cmd.env(k, v);
        }
        self
    }

    /// Sets `key` to `path`, a file the deployer writes and that must not contain a secret
    /// either (GITHUB_STEP_SUMMARY, GITHUB_OUTPUT).
    pub fn report_file(mut self, key: &str, path: &Path) -> Self {
        self.cmd.env(key, path);
        self.files.push(path.to_owned());
        self
    }

    /// Runs to the end (blocking) and checks the output.
    pub fn output(mut self) -> Output {
        let out = self.cmd.output().expect("the deployer binary runs");
        check(&self.args, &self.files, &out);
        out
    }

    /// Runs to the end on the test's runtime and checks the output.
    pub async fn run(self) -> Output {
        let out = tokio::process::Command::from(self.cmd)
            .output()
            .await
            .expect("the deployer binary runs");
        check(&self.args, &self.files, &out);
        out
    }

    /// Starts it in the background; its output is read as it comes and checked when it ends.
    pub fn spawn(self) -> Background {
        use tokio::io::AsyncReadExt;
        let mut cmd = tokio::process::Command::from(self.cmd);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn the deployer binary");
        let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf).await;
                }
                buf
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        Background {
            child,
            stdout,
            stderr,
            args: self.args,
            files: self.files,
        }
    }
}

/// A `deployer` process running in the background (killed if dropped).
pub struct Background {
    child: tokio::process::Child,
    stdout: tokio::task::JoinHandle<Vec<u8>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    args: Vec<String>,
    files: Vec<PathBuf>,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the deployer is running")
    }

    /// SIGTERM, as CI does when a job is cancelled.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// SIGKILL, as a crashed runner would; returns what it printed until then.
    pub async fn kill(mut self) -> Output {
        self.child.start_kill().expect("SIGKILL the deployer");
        self.finish(Duration::from_secs(10)).await
    }

    /// Waits (at most `within`) for it to exit, and checks its output.
    pub async fn finish(mut self, within: Duration) -> Output {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("deployer {:?} still running after {within:?}", self.args))
            .expect("wait for the deployer");
        let out = Output {
            status,
            stdout: self.stdout.await.expect("stdout reader"),
            stderr: self.stderr.await.expect("stderr reader"),
        };
        check(&self.args, &self.files, &out);
        out
    }
}

/// Prints the run (for a failing test's log) and fails if a secret is in its output.
fn check(args: &[String], files: &[PathBuf], out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "--- deployer {args:?} exit {:?}\n{stdout}\n{stderr}",
        out.status.code()
    );
    let all = format!("{stdout}{stderr}");
    for (_, value, what) in SECRETS {
        assert!(
            !all.contains(value),
            "{what} leaked into the output of {args:?}:\n{all}"
        );
        for f in files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            assert!(
                !text.contains(value),
                "{what} leaked into {} written by {args:?}:\n{text}",
                f.display()
            );
        }
    }
}
