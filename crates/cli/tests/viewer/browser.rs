//! Debian's Chromium, headless, driven over the DevTools protocol.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures_util::StreamExt;
use serde_json::Value;

/// Installed before any page script: records uncaught errors and CSP
/// violations (an inline script or handler the policy blocked means markup
/// from the store was parsed somewhere) in `window.__problems`.
const WATCH: &str = "window.__problems = [];
addEventListener('error', (e) => window.__problems.push('error: ' + e.message));
addEventListener('unhandledrejection', (e) => window.__problems.push('rejection: ' + e.reason));
addEventListener('securitypolicyviolation', (e) =>
  window.__problems.push('CSP violation: ' + e.violatedDirective + ' ' + (e.sample || '')));";

/// The Chromium to run: `AIOBS_CHROMIUM`, else Debian's `/usr/bin/chromium`.
/// Missing, the tests fail under CI (`.ci/run` installs it) and are skipped
/// with a notice elsewhere.
pub(crate) fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("AIOBS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing, and CI is set: the browser tests must run in CI \
             (.ci/run installs Debian's chromium; AIOBS_CHROMIUM names another)",
            path.display()
        );
    }
    // Written past the test harness's capture, so the skip is seen.
    use std::io::Write as _;
    writeln!(
        std::io::stderr(),
        "SKIPPED: no Chromium at {}, so the browser tests did not run \
         (apt-get install chromium, or set AIOBS_CHROMIUM)",
        path.display()
    )
    .ok();
    None
}

/// A headless Chromium with a fresh profile, closed on [`Chrome::close`].
pub(crate) struct Chrome {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub(crate) async fn launch(executable: PathBuf) -> Self {
        let profile = tempfile::tempdir().expect("a profile directory");
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .no_sandbox() // root in CI
            .user_data_dir(profile.path())
            .window_size(1400, 900)
            .viewport(Viewport {
                width: 1400,
                height: 900,
                ..Viewport::default()
            })
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            // What works on a machine without a network or a GPU.
            .args([
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .build()
            .expect("a browser config");
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if event.is_err() {
                    // A message the protocol crate does not know: harmless.
                    continue;
                }
            }
        });
        Self {
            browser,
            handler,
            _profile: profile,
        }
    }

    /// A new tab, watched (see [`WATCH`]), at `url`.
    pub(crate) async fn open(&self, url: &str) -> Page {
        let page = self
            .browser
            .new_page("about:blank")
            .await
            .expect("a new tab");
        page.evaluate_on_new_document(WATCH)
            .await
            .expect("the watch script");
        page.goto(url).await.expect("the page loads");
        page
    }

    pub(crate) async fn close(mut self) {
        self.browser.close().await.ok();
        self.browser.wait().await.ok();
        self.handler.abort();
    }
}

/// Evaluates `js` in `page`.
pub(crate) async fn eval(page: &Page, js: &str) -> Value {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
        .into_value()
        .unwrap_or(Value::Null)
}

/// Waits up to 20 s for `js` to be truthy; returns its value.
pub(crate) async fn wait_for(page: &Page, what: &str, js: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = page
            .evaluate(js)
            .await
            .ok()
            .and_then(|r| r.into_value::<Value>().ok())
            .unwrap_or(Value::Null);
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            let problems = eval(page, "JSON.stringify(window.__problems)").await;
            panic!("timed out waiting for {what} ({js}); page problems: {problems}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the element `selector` (scrolled into view, at its centre).
pub(crate) async fn click(page: &Page, selector: &str) {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("no {selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
}

/// Text content of `selector` ("" when absent).
pub(crate) async fn text_of(page: &Page, selector: &str) -> String {
    let js = format!(
        "(document.querySelector({}) || {{}}).textContent || ''",
        Value::String(selector.into())
    );
    eval(page, &js).await.as_str().unwrap_or("").to_owned()
}

/// A full-page PNG of `page` at `path`.
pub(crate) async fn screenshot(page: &Page, path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the screenshot directory");
    }
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
        .await
        .expect("a screenshot");
}

/// Nothing went wrong in the page: no uncaught error, no CSP violation.
pub(crate) async fn assert_no_problems(page: &Page) {
    let problems = eval(page, "window.__problems").await;
    assert_eq!(problems, serde_json::json!([]), "problems in the page");
}
