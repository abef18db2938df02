//! `aiobs serve` in a real browser: Debian's Chromium, headless, over the
//! DevTools protocol. The tests FAIL when Chromium is missing and `CI` is set
//! (`.ci/run` installs it), and are skipped with a notice elsewhere.
//!
//! A screenshot of the trace page is written to `target/tmp/viewer-trace.png`
//! on every run; with `AIOBS_UPDATE_DOCS_SCREENSHOT=1` it also replaces the
//! one in `docs/`.

mod viewer;

use std::collections::HashMap;

use serde_json::Value;
use viewer::browser::{self, Chrome, assert_no_problems, click, eval, text_of, wait_for};
use viewer::{Viewer, XSS_NAME, XSS_OUTPUT};

/// `(name, depth)` of every span, depth first, siblings by start time: the
/// nesting the stored parent links give, worked out here independently of
/// the viewer's own layout.
fn expected_tree(trace: &Value) -> Vec<(String, u64)> {
    let spans = trace["spans"].as_array().expect("spans");
    let mut children: HashMap<Option<String>, Vec<&Value>> = HashMap::new();
    for s in spans {
        let parent = s["parent_span_id"].as_str().map(str::to_owned);
        children.entry(parent).or_default().push(s);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s["start_time"].as_str().unwrap_or("").to_owned());
    }
    fn walk(
        parent: Option<String>,
        depth: u64,
        children: &HashMap<Option<String>, Vec<&Value>>,
        out: &mut Vec<(String, u64)>,
    ) {
        for s in children.get(&parent).into_iter().flatten() {
            out.push((s["name"].as_str().unwrap().to_owned(), depth));
            let id = s["span_id"].as_str().map(str::to_owned);
            walk(id, depth + 1, children, out);
        }
    }
    let mut out = Vec::new();
    walk(None, 0, &children, &mut out);
    out
}

const ROWS: &str = "[...document.querySelectorAll('.rows .row')].map((r) => ({
    id: r.dataset.spanId, depth: Number(r.dataset.depth), hidden: r.hidden,
    name: r.querySelector('.name').textContent,
    duration: r.querySelector('.dur').textContent,
    tokens: (r.querySelector('.tokens') || {}).textContent || '' }))";

fn selector_for_row(span_id: &str) -> String {
    format!(".rows .row[data-span-id=\"{span_id}\"]")
}

/// The text of each cell of the list's row for `trace_id`, once it is shown.
async fn list_row(page: &chromiumoxide::Page, trace_id: &str) -> Value {
    let row = format!("tr[data-trace-id=\"{trace_id}\"]");
    wait_for(
        page,
        "the trace's row",
        &format!("!!document.querySelector('{row}')"),
    )
    .await;
    eval(
        page,
        &format!("[...document.querySelector('{row}').cells].map((c) => c.textContent)"),
    )
    .await
}

/// Clicks a span's row and waits for its details.
async fn select_span(page: &chromiumoxide::Page, span_id: &str) {
    click(page, &selector_for_row(span_id)).await;
    wait_for(
        page,
        "the span's details",
        &format!(
            "(document.querySelector('.detail-body') || {{dataset: {{}}}}).dataset.spanId === '{span_id}'"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_trace_in_a_browser() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    let db = db.to_str().unwrap().to_owned();
    let demo = viewer::demo(&db);
    let stored: Value =
        serde_json::from_slice(&viewer::aiobs(&db, &["traces", "show", &demo, "--json"]).stdout)
            .expect("traces show --json");
    let v = Viewer::start(&db);
    let chrome = Chrome::launch(chromium).await;

    // The list shows the demo trace.
    let page = chrome.open(&format!("{}/", v.url)).await;
    wait_for(&page, "the list", "document.body.dataset.ready === 'list'").await;
    let row = format!("tr[data-trace-id=\"{demo}\"]");
    let cells = list_row(&page, &demo).await;
    assert_eq!(cells[1], "weather-agent", "{cells}");
    assert_eq!(cells[2], "error", "{cells}");
    assert_eq!(cells[4], "10", "span count: {cells}");
    assert_eq!(cells[5], "1", "error count: {cells}");
    assert_eq!(
        (&cells[6], &cells[7], &cells[8]),
        (&"420".into(), &"356".into(), &"110".into()),
        "tokens in / cached / out: {cells}"
    );
    assert_eq!(cells[9], "$0.000036", "cost: {cells}");

    // Live: a new trace appears without a reload.
    eval(&page, "window.__same_page = true").await;
    let db2 = db.clone();
    let second = tokio::task::spawn_blocking(move || viewer::demo(&db2))
        .await
        .unwrap();
    wait_for(
        &page,
        "the new trace to appear",
        &format!("!!document.querySelector('tr[data-trace-id=\"{second}\"]')"),
    )
    .await;
    assert_eq!(
        eval(&page, "window.__same_page === true").await,
        true,
        "the page was not reloaded"
    );
    let order = eval(
        &page,
        "[...document.querySelectorAll('tr[data-trace-id]')].map((r) => r.dataset.traceId)",
    )
    .await;
    assert_eq!(order[0], second.as_str(), "newest first: {order}");
    assert_no_problems(&page).await;

    // The trace page: every span, nested as stored, with durations and tokens.
    click(&page, &format!("{row} td:nth-child(2) a")).await;
    wait_for(
        &page,
        "the trace page",
        "document.body.dataset.ready === 'trace'",
    )
    .await;
    assert_eq!(
        eval(&page, "location.pathname").await,
        format!("/traces/{demo}").as_str()
    );
    let rows = eval(&page, ROWS).await;
    let rows = rows.as_array().unwrap();
    let shown: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown, expected_tree(&stored));
    assert_eq!(shown.len(), 10);
    let by_id: HashMap<&str, &Value> = stored["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap(), s))
        .collect();
    for r in rows {
        let span = by_id[r["id"].as_str().unwrap()];
        let duration = r["duration"].as_str().unwrap();
        assert!(
            ["µs", "ms", " s"].iter().any(|u| duration.ends_with(u)),
            "{}: duration {duration:?}",
            r["name"]
        );
        let usage = &span["attributes"]["usage"];
        if usage.is_object() {
            let tokens = r["tokens"].as_str().unwrap();
            let want = format!(
                "{} ({} cached) → {} tok",
                usage["input_tokens"], usage["input_details"]["cache_read"], usage["output_tokens"]
            );
            assert_eq!(tokens, want, "{}", r["name"]);
        }
    }

    // Selecting a span shows its input and output.
    let generation = rows
        .iter()
        .find(|r| r["name"] == "chat gpt-4o-mini")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    select_span(&page, &generation).await;
    let input = text_of(&page, "#detail-input").await;
    assert!(
        input.contains("user") && input.contains("What is the weather in Paris tomorrow"),
        "{input}"
    );
    assert_eq!(
        eval(
            &page,
            "document.querySelectorAll('#detail-input .message.role-user').length"
        )
        .await,
        1,
        "chat messages shown as messages"
    );
    let output = text_of(&page, "#detail-output").await;
    assert!(
        output.contains("get_weather") && output.contains("assistant"),
        "{output}"
    );
    let model = text_of(&page, "#detail-model").await;
    assert!(
        model.contains("gpt-4o-mini")
            && model.contains("temperature")
            && model.contains("cache read"),
        "{model}"
    );
    assert!(
        eval(&page, "location.search")
            .await
            .as_str()
            .unwrap()
            .contains(&generation),
        "the selection is in the URL"
    );

    // Folding the root hides every other row; unfolding shows them again.
    let root = rows[0]["id"].as_str().unwrap().to_owned();
    click(&page, &format!("{} .toggle", selector_for_row(&root))).await;
    let hidden = "[...document.querySelectorAll('.rows .row')].filter((r) => r.hidden).length";
    assert_eq!(eval(&page, hidden).await, 9);
    click(&page, &format!("{} .toggle", selector_for_row(&root))).await;
    assert_eq!(eval(&page, hidden).await, 0);

    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer-trace.png");
    browser::screenshot(&page, &artifact).await;
    eprintln!("screenshot of the trace page: {}", artifact.display());
    if std::env::var_os("AIOBS_UPDATE_DOCS_SCREENSHOT").is_some() {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/viewer-trace.png");
        std::fs::copy(&artifact, &docs).expect("the docs screenshot");
    }
    assert!(std::fs::metadata(&artifact).unwrap().len() > 10_000);

    // The session view lists the session's traces in order.
    click(&page, "a[href=\"/sessions/session-abc\"]").await;
    wait_for(
        &page,
        "the session page",
        "document.body.dataset.ready === 'session'",
    )
    .await;
    let sessions = eval(
        &page,
        "[...document.querySelectorAll('.srow')].map((r) => r.dataset.traceId)",
    )
    .await;
    assert_eq!(sessions, serde_json::json!([demo, second]), "oldest first");
    assert_no_problems(&page).await;
    chrome.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_render_as_text_and_no_script_runs() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, _demo, f) = viewer::sqlite_store(dir.path()).await;
    let v = Viewer::start(&db);
    let chrome = Chrome::launch(chromium).await;
    let trace = f.trace_id.to_string();
    let markup = "document.querySelectorAll('#app img, #app script, #app svg, #app b, #app i, #app h1 h1').length";

    let page = chrome.open(&format!("{}/", v.url)).await;
    let cells = list_row(&page, &trace).await;
    assert_eq!(cells[10], "user-<i>1</i>", "{cells}");
    assert_eq!(cells[11], "sess-<b>42</b>", "{cells}");
    assert_eq!(cells[12], "<script>tag</script>", "{cells}");
    assert_eq!(eval(&page, markup).await, 0);

    let page = chrome.open(&format!("{}/traces/{trace}", v.url)).await;
    wait_for(
        &page,
        "the trace page",
        "document.body.dataset.ready === 'trace'",
    )
    .await;
    assert_eq!(
        text_of(
            &page,
            &format!("{} .name", selector_for_row(&f.tool.to_string()))
        )
        .await,
        XSS_NAME
    );
    // The continued span sits under its external parent, the tool span.
    let rows = eval(&page, ROWS).await;
    let depth_of = |id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["depth"].as_u64().unwrap())
    };
    assert_eq!(depth_of(&f.tool.to_string()), Some(1));
    assert_eq!(depth_of(&f.continued.to_string()), Some(2));
    assert_eq!(depth_of(&f.continued_child.to_string()), Some(3));
    assert!(
        text_of(&page, &selector_for_row(&f.continued.to_string()))
            .await
            .contains("continued")
    );
    wait_for(
        &page,
        "the root's details",
        &format!(
            "(document.querySelector('.detail-body') || {{dataset: {{}}}}).dataset.spanId === '{}'",
            f.root
        ),
    )
    .await;
    let metadata = text_of(&page, "#detail-metadata").await;
    assert!(
        metadata.contains("<svg onload=\\\"window.__xss = 'meta'\\\">"),
        "{metadata}"
    );
    assert!(
        text_of(&page, "#trace-scores")
            .await
            .contains("<b>accuracy</b>")
    );

    select_span(&page, &f.generation.to_string()).await;
    assert!(text_of(&page, "#detail-output").await.contains(XSS_OUTPUT));
    assert!(
        text_of(&page, "#detail-input")
            .await
            .contains("<script>window.__xss = 'input'</script>")
    );
    assert!(text_of(&page, "#detail-model").await.contains("reasoning"));

    select_span(&page, &f.tool.to_string()).await;
    let error = text_of(&page, "#detail-error").await;
    assert!(
        error.contains("upstream said <b>no</b>") && error.contains("at <anonymous>"),
        "{error}"
    );
    assert!(
        text_of(&page, "#detail-input")
            .await
            .contains("</pre><h1>big</h1>")
    );

    // Nothing was parsed as markup, and nothing ran.
    assert_eq!(eval(&page, markup).await, 0);
    assert_eq!(eval(&page, "typeof window.__xss").await, "undefined");
    assert_no_problems(&page).await;
    // And the page could not have done otherwise: Trusted Types refuse HTML.
    let refused = eval(
        &page,
        "(() => { try { document.createElement('div').innerHTML = '<b>x</b>'; return 'assigned'; } \
         catch (e) { return e.name; } })()",
    )
    .await;
    assert_eq!(refused, "TypeError", "the CSP's Trusted Types are enforced");
    chrome.close().await;
}
