//! Mission Control in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver, plain HTTP with reqwest). A workflow created through the API appears and
//! completes on the page without a reload; a dead-lettered task is redriven by clicking; a
//! screenshot of each page is written to target/mission-control/.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use common::{Platform, TOKEN};
use serde_json::{Value, json};
use test_support::ChildGuard;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A WebDriver session on chromedriver (W3C protocol over HTTP).
struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: ChildGuard,
    _profile: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A directory removed on drop (the browser profile).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Browser {
    async fn start() -> anyhow::Result<Self> {
        for (bin, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !Path::new(bin).exists() {
                bail!("{bin} is missing: run scripts/env up (it installs Debian's {pkg})");
            }
        }
        let port = test_support::free_port();
        let mut cmd = std::process::Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let driver = ChildGuard::spawn("chromedriver", &mut cmd)?;
        let base = format!("http://127.0.0.1:{port}");
        test_support::wait_http_ok(&format!("{base}/status"), Duration::from_secs(20))
            .await
            .context("chromedriver did not answer /status")?;
        let profile = std::env::temp_dir().join(test_support::unique("mc-chromium-"));
        std::fs::create_dir_all(&profile)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--hide-scrollbars", "--no-first-run",
                         format!("--user-data-dir={}", profile.display())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = r["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("chromedriver did not start a session: {r}"))?;
        Ok(Self {
            http,
            base: format!("{base}/session/{session}"),
            _driver: driver,
            _profile: tempfile_dir::Dir(profile),
        })
    }

    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut rq = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r: Value = rq.send().await?.json().await?;
        if let Some(e) = r["value"]["error"].as_str() {
            bail!("WebDriver {path}: {e}: {}", r["value"]["message"]);
        }
        Ok(r["value"].clone())
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    async fn js(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The first element matching `css` (its WebDriver reference).
    async fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("no element reference for {css}: {v}"))
    }

    /// A real click (WebDriver element click: scrolls into view, checks it is clickable).
    async fn click(&self, css: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await?;
        Ok(())
    }

    async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().context("screenshot data")?)?;
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::create_dir_all(path.parent().context("screenshot dir")?)?;
        std::fs::write(path, png)?;
        eprintln!("screenshot: {}", path.display());
        Ok(())
    }

    /// The browser's console (errors, CSP violations), for failure messages.
    async fn console(&self) -> String {
        match self
            .cmd(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await
        {
            Ok(Value::Array(entries)) if entries.is_empty() => "(empty)".into(),
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["level"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Ok(other) => other.to_string(),
            Err(e) => format!("(console log unavailable: {e})"),
        }
    }

    /// Polls `script` (a function body returning a value; null/false means "not yet") until it
    /// returns something, or fails with what the page showed and the console said.
    async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        args: Value,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut last_err = String::new();
        loop {
            match self.js(script, args.clone()).await {
                Ok(v) if !v.is_null() && v != Value::Bool(false) => return Ok(v),
                Ok(_) => {}
                Err(e) => last_err = e.to_string(),
            }
            if Instant::now() >= deadline {
                let page = self
                    .js("return location.href + '\\n' + (document.body ? document.body.innerText : '')", json!([]))
                    .await
                    .map(|v| v.as_str().unwrap_or("").chars().take(2000).collect::<String>())
                    .unwrap_or_default();
                bail!(
                    "timed out after {timeout:?} waiting for {what}\n--- last error: {last_err}\n--- page:\n{page}\n--- browser console:\n{}",
                    self.console().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn shots() -> PathBuf {
    test_support::repo_root().join("target/mission-control")
}

/// A click on an element the page may re-render meanwhile: retried until it lands.
async fn click_when_ready(b: &Browser, css: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match b.click(css).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                eprintln!("click {css}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("{e}\n--- browser console:\n{}", b.console().await),
        }
    }
}

#[tokio::test]
async fn mission_control_shows_workflows_live_and_redrives_a_dead_letter_by_click()
-> anyhow::Result<()> {
    let mut p = Platform::new(&[
        ("PLATFORM_MAX_DELIVERIES", "2"),
        ("PLATFORM_VISIBILITY_TIMEOUT_MS", "300"),
    ])
    .await?;
    p.start_orchestrator().await?;

    // The shell is public and carries the security headers; its data is not.
    let page = p.http.get(p.url("/")).send().await?;
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    let csp = h["content-security-policy"].to_str()?;
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "CSP {csp:?} has {directive}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let html = page.text().await?;
    assert!(
        !html.contains("<script>") && html.contains("src=\"/ui/app.js\""),
        "no inline script: {html}"
    );
    for asset in ["/ui/app.js", "/ui/app.css"] {
        let r = p.http.get(p.url(asset)).send().await?;
        assert_eq!(r.status(), 200, "{asset}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    for data in [
        "/api/v1/workflows",
        "/api/v1/agents",
        "/api/v1/dlq",
        "/api/v1/events/stream",
    ] {
        let r = p.http.get(p.url(data)).send().await?;
        assert_eq!(r.status(), 401, "{data} without the token");
    }

    // A task no agent can read: dead-lettered, its workflow failed.
    let poisoned = p.create_poisoned("poisoned").await?;
    p.start_all_agents()?;
    p.wait_exactly(&poisoned, "failed", Duration::from_secs(30))
        .await?;

    let b = Browser::start().await?;
    b.goto(&p.url("/")).await?;
    b.wait_until(
        "the token input to be visible",
        Duration::from_secs(15),
        "const t = document.getElementById('token'); return !!t && t.offsetParent !== null;",
        json!([]),
    )
    .await?;
    b.screenshot(&shots().join("sign-in.png")).await?;
    b.type_into("#token", TOKEN).await?;
    b.click("#token-save").await?;
    b.wait_until(
        "the workflow list with the failed workflow",
        Duration::from_secs(15),
        "const r = document.querySelector(`tr[data-workflow-id='${arguments[0]}'] .state`); return r && r.textContent === 'failed';",
        json!([poisoned]),
    )
    .await?;
    b.wait_until(
        "the live indicator",
        Duration::from_secs(10),
        "return document.getElementById('live').textContent === 'live';",
        json!([]),
    )
    .await?;

    // Created through the API, it appears and completes on the page with no reload.
    b.js("window.__noReload = 'still-here'; return true;", json!([]))
        .await?;
    let created = p.create("live-demo", "static-web").await?;
    b.wait_until(
        "the new workflow to appear and complete on the page",
        Duration::from_secs(60),
        "const r = document.querySelector(`tr[data-workflow-id='${arguments[0]}'] .state`); return r && r.textContent === 'completed';",
        json!([created]),
    )
    .await?;
    let same = b
        .js("return window.__noReload === 'still-here';", json!([]))
        .await?;
    assert_eq!(same, json!(true), "the page was not reloaded");
    b.screenshot(&shots().join("workflows.png")).await?;

    // The state filter: only the failed one, then every workflow again.
    click_when_ready(
        &b,
        "#filter-status option[value='failed']",
        Duration::from_secs(10),
    )
    .await?;
    b.wait_until(
        "the failed filter to list only the failed workflow",
        Duration::from_secs(15),
        "const rows = [...document.querySelectorAll('#workflows tr[data-workflow-id]')].map(r => r.dataset.workflowId);
         return rows.length === 1 && rows[0] === arguments[0] && document.getElementById('filter-status').value === 'failed';",
        json!([poisoned]),
    )
    .await?;
    click_when_ready(
        &b,
        "#filter-status option[value='']",
        Duration::from_secs(10),
    )
    .await?;
    b.wait_until(
        "both workflows again",
        Duration::from_secs(15),
        "return document.querySelectorAll('#workflows tr[data-workflow-id]').length === 2;",
        json!([]),
    )
    .await?;

    // Its stage timeline: five stages, each with its attempt, and the events.
    // The list re-renders on every live update: the row's link can go stale under the click.
    click_when_ready(
        &b,
        &format!("tr[data-workflow-id='{created}'] a.name"),
        Duration::from_secs(10),
    )
    .await?;
    let stages = b
        .wait_until(
            "the stage timeline",
            Duration::from_secs(15),
            "const s = document.querySelectorAll('#timeline .stage.done'); const e = document.querySelectorAll('#events tbody tr');
             return s.length === 5 && e.length >= 7 && document.getElementById('workflow-state').textContent === 'completed' ? s.length : null;",
            json!([]),
        )
        .await?;
    assert_eq!(stages, json!(5));
    b.screenshot(&shots().join("workflow.png")).await?;

    // Agents with their heartbeats: one per kind.
    b.click("nav a[data-view='agents']").await?;
    b.wait_until(
        "five agents",
        Duration::from_secs(15),
        "return document.querySelectorAll('#agents tbody tr[data-agent-id]').length === 5;",
        json!([]),
    )
    .await?;
    b.screenshot(&shots().join("agents.png")).await?;

    // The failed workflow: its reason, the dead-lettered attempt, the retry button.
    b.goto(&p.url(&format!("/#/workflows/{poisoned}"))).await?;
    b.wait_until(
        "the failed workflow with its reason and retry button",
        Duration::from_secs(15),
        "const r = document.getElementById('failure-reason'); return !!r && r.textContent.includes('dead-lettered') && !!document.getElementById('retry') && !!document.querySelector(\"#timeline .stage.bad .status-dead_lettered\");",
        json!([]),
    )
    .await?;
    b.screenshot(&shots().join("workflow-failed.png")).await?;

    // The DLQ: the poisoned task, redriven by a click; the workflow then completes.
    b.click("nav a[data-view='dlq']").await?;
    b.wait_until(
        "the dead-lettered entry with its redrive button",
        Duration::from_secs(15),
        "const e = document.querySelector(\"tr[data-kind='scaffold'] button.redrive\"); return !!e && e.closest('tr').textContent.includes('schema version 99');",
        json!([]),
    )
    .await?;
    b.screenshot(&shots().join("dlq.png")).await?;
    click_when_ready(
        &b,
        "tr[data-kind='scaffold'] button.redrive",
        Duration::from_secs(10),
    )
    .await?;
    b.wait_until(
        "the DLQ to be empty after the redrive",
        Duration::from_secs(15),
        "return document.querySelectorAll('button.redrive').length === 0 && document.querySelector(\"div.dlq[data-kind='scaffold']\").textContent.includes('empty');",
        json!([]),
    )
    .await?;
    let w = p
        .wait_state(&poisoned, "completed", Duration::from_secs(60))
        .await?;
    assert!(
        w["events"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "dlq_redriven"),
        "the redrive is in the audit trail"
    );
    b.click("nav a[data-view='workflows']").await?;
    b.wait_until(
        "the redriven workflow to show completed",
        Duration::from_secs(30),
        "const r = document.querySelector(`tr[data-workflow-id='${arguments[0]}'] .state`); return r && r.textContent === 'completed';",
        json!([poisoned]),
    )
    .await?;
    // Paging: 20 more workflows push the first two to the second page (20 per page).
    for i in 0..20 {
        p.create(&format!("page-{i}"), "static-web").await?;
    }
    b.wait_until(
        "a full first page with a next button",
        Duration::from_secs(30),
        "return document.querySelectorAll('#workflows tr[data-workflow-id]').length === 20 && !document.getElementById('page-next').disabled;",
        json!([]),
    )
    .await?;
    click_when_ready(&b, "#page-next", Duration::from_secs(10)).await?;
    b.wait_until(
        "the second page with the two oldest workflows",
        Duration::from_secs(15),
        "const rows = [...document.querySelectorAll('#workflows tr[data-workflow-id]')].map(r => r.dataset.workflowId);
         return rows.length === 2 && rows.includes(arguments[0]) && rows.includes(arguments[1]) && document.getElementById('page-next').disabled;",
        json!([poisoned, created]),
    )
    .await?;
    click_when_ready(&b, "#page-prev", Duration::from_secs(10)).await?;
    b.wait_until(
        "the first page again",
        Duration::from_secs(15),
        "return document.querySelectorAll('#workflows tr[data-workflow-id]').length === 20 && document.getElementById('page-prev').disabled;",
        json!([]),
    )
    .await?;

    let console = b.console().await;
    assert!(
        !console.contains("Content Security Policy") && !console.contains("SEVERE"),
        "the page ran without errors or CSP violations:\n{console}"
    );
    Ok(())
}
