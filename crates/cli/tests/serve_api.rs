//! `aiobs serve` over HTTP, without a browser: the JSON API's shapes and
//! status codes, the security headers, read-only routes, the address and
//! store checks; on SQLite and PostgreSQL (which must run in CI).

mod viewer;

use reqwest::Method;
use serde_json::Value;
use viewer::{Fixture, Viewer, XSS_OUTPUT, aiobs, text};

fn ids(list: &Value) -> Vec<String> {
    list["traces"]
        .as_array()
        .expect("a traces array")
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Everything the API says about the store's traces.
async fn snapshot(v: &Viewer, traces: &[String]) -> Vec<String> {
    let mut out = vec![v.get("/api/traces?limit=1000").await.text()];
    for id in traces {
        out.push(v.get(&format!("/api/traces/{id}")).await.text());
    }
    out
}

async fn exercise(db: &str, demo: &str, f: &Fixture, backend: &str) {
    let v = Viewer::start(db);
    let fixture = f.trace_id.to_string();

    // The page and its assets, under a strict CSP.
    let page = v.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    let csp = page.header("content-security-policy").to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("x-frame-options"), "DENY");
    for path in [
        "/assets/app.js",
        "/assets/app.css",
        "/assets/favicon.svg",
        "/traces/x",
        "/sessions/y",
    ] {
        let r = v.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-security-policy"), csp, "{path}");
    }
    let js = v.get("/assets/app.js").await.text();
    assert!(
        !js.contains("innerHTML") && !js.contains("insertAdjacentHTML") && !js.contains("eval("),
        "the page builds its DOM from text only"
    );

    let info = v.get("/api/info").await.json();
    assert_eq!(info["read_only"], true);
    assert_eq!(info["backend"], backend);
    assert!(info["span_types"].as_array().unwrap().len() >= 20);

    // The listing: newest first, with counts, tokens and cost.
    let list = v.get("/api/traces").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("cache-control"), "no-store");
    let list = list.json();
    let all = ids(&list);
    assert!(all.contains(&demo.to_owned()), "{all:?}");
    assert!(all.contains(&fixture), "{all:?}");
    let starts: Vec<&str> = list["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["start_time"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted, "newest first");
    let hostile = list["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trace_id"] == fixture.as_str() && t["root_span_id"] == f.root.to_string())
        .expect("the fixture's root line");
    assert_eq!(hostile["name"], "hostile-agent");
    assert_eq!(hostile["status"], "error", "{hostile:#}");
    assert_eq!(hostile["span_count"], 5);
    assert_eq!(hostile["error_count"], 1);
    assert_eq!(hostile["usage"]["input_tokens"], 1500);
    assert_eq!(hostile["usage"]["cached_input_tokens"], 1200);
    assert_eq!(hostile["usage"]["output_tokens"], 200);
    let cost = hostile["usage"]["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.005).abs() < 1e-12, "{cost}");
    assert_eq!(hostile["user_id"], "user-<i>1</i>");
    let demo_line =
        &list["traces"].as_array().unwrap()[all.iter().position(|i| i == demo).unwrap()];
    assert_eq!(demo_line["span_count"], 10);
    assert_eq!(demo_line["usage"]["input_tokens"], 420);

    // Filters the store supports, as query parameters.
    let q = |query: &str| {
        let v = &v;
        let query = query.to_owned();
        async move { v.get(&format!("/api/traces?{query}")).await }
    };
    let fixture = fixture.as_str();
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        ("status=error".to_owned(), vec![demo, fixture], vec![]),
        ("user_id=user-123".to_owned(), vec![demo], vec![fixture]),
        (
            "user_id=user-%3Ci%3E1%3C%2Fi%3E".to_owned(),
            vec![fixture],
            vec![demo],
        ),
        ("tag=demo&tag=prod".to_owned(), vec![demo], vec![fixture]),
        (
            "name_contains=GPT-4O".to_owned(),
            vec![demo, fixture],
            vec![],
        ),
        (
            "span_type=tool_call&root_name=weather-agent".to_owned(),
            vec![demo],
            vec![fixture],
        ),
        (format!("trace_id={fixture}"), vec![fixture], vec![demo]),
        (
            "session_id=session-abc".to_owned(),
            vec![demo],
            vec![fixture],
        ),
        (
            "started_after=2999-01-01T00:00:00Z".to_owned(),
            vec![],
            vec![demo, fixture],
        ),
        ("status=running".to_owned(), vec![], vec![demo, fixture]),
    ];
    for (query, must, must_not) in cases {
        let query = query.as_str();
        let r = q(query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let got = ids(&r.json());
        for id in must {
            assert!(got.contains(&id.to_string()), "{query}: {got:?}");
        }
        for id in must_not {
            assert!(!got.contains(&id.to_string()), "{query}: {got:?}");
        }
    }
    // Bad filters: 400 with a message naming the parameter.
    for (query, says) in [
        ("status=broken", "status=\"broken\""),
        ("limit=0", "limit"),
        ("cursor=nope", "cursor"),
        ("started_after=last+tuesday", "RFC 3339"),
        ("span_type=llm", "span_type"),
        ("trace_id=123", "trace_id"),
        ("colour=red", "unknown query parameter \"colour\""),
    ] {
        let r = q(query).await;
        assert_eq!(r.status, 400, "{query}");
        assert!(r.header("content-type").starts_with("application/json"));
        let msg = r.json()["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(says), "{query}: {msg}");
    }

    // Cursor paging covers everything once.
    let first = q("limit=1").await.json();
    assert_eq!(first["traces"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    let mut seen = ids(&first);
    let mut next = Some(cursor);
    while let Some(c) = next {
        let page = q(&format!("limit=1&cursor={c}")).await.json();
        seen.extend(ids(&page));
        next = page["next_cursor"].as_str().map(str::to_owned);
    }
    let mut everything = all.clone();
    everything.sort();
    seen.sort();
    assert_eq!(seen, everything);

    // The trace as a waterfall: tree order, depths, the continued span
    // under its external parent, totals, scores and feedback.
    let t = v.get(&format!("/api/traces/{fixture}")).await.json();
    assert_eq!(t["name"], "hostile-agent");
    assert_eq!(t["status"], "error");
    assert_eq!(t["span_count"], 5);
    assert_eq!(t["usage"]["cached_input_tokens"], 1200);
    let rows: Vec<(String, u64, String)> = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["span_id"].as_str().unwrap().to_owned(),
                r["depth"].as_u64().unwrap(),
                r["placement"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        (f.root, 0, "root"),
        (f.generation, 1, "child"),
        (f.tool, 1, "child"),
        (f.continued, 2, "continued"),
        (f.continued_child, 3, "child"),
    ];
    let want: Vec<(String, u64, String)> = want
        .iter()
        .map(|(id, d, p)| (id.to_string(), *d, (*p).to_owned()))
        .collect();
    assert_eq!(rows, want);
    let generation = &t["spans"][1];
    assert_eq!(generation["model"], "gpt-4o");
    assert_eq!(generation["usage"]["output_details"]["reasoning"], 64);
    assert!(generation["duration_ms"].as_f64().unwrap() >= 5.0);
    assert!(generation.get("output").is_none(), "rows carry no payloads");
    assert_eq!(t["spans"][2]["error"], "upstream said <b>no</b>");
    assert_eq!(t["scores"][0]["name"], "<b>accuracy</b>");
    assert_eq!(t["feedback"][0]["key"], "thumbs");

    // One span whole.
    let s = v
        .get(&format!("/api/traces/{fixture}/spans/{}", f.generation))
        .await
        .json();
    assert_eq!(s["span"]["output"], XSS_OUTPUT);
    assert_eq!(s["span"]["input"][1]["role"], "user");
    assert_eq!(
        s["span"]["attributes"]["usage"]["input_details"]["cache_read"],
        1200
    );
    let tool = v
        .get(&format!("/api/traces/{fixture}/spans/{}", f.tool))
        .await
        .json();
    assert!(
        tool["span"]["error"]["stack"]
            .as_str()
            .unwrap()
            .contains("tools.rs:10")
    );

    // The session, in the order its traces ran.
    let session = v
        .get(&format!(
            "/api/sessions/{}",
            f.session
                .replace('<', "%3C")
                .replace('>', "%3E")
                .replace('/', "%2F")
        ))
        .await;
    assert_eq!(session.status, 200, "{}", session.text());
    let session = session.json();
    let names: Vec<&str> = session["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hostile-agent", "follow-up"]);
    assert_eq!(session["earlier_cursor"], Value::Null);

    // Not found, bad ids, other paths.
    for (path, status, says) in [
        (
            "/api/traces/0af7651916cd43dd8448eb211c80319c",
            404,
            "no trace",
        ),
        ("/api/traces/not-an-id", 400, "not a trace id"),
        (
            &format!("/api/traces/{fixture}/spans/00f067aa0ba902b7"),
            404,
            "no span",
        ),
        (
            &format!("/api/traces/{fixture}/spans/xyz"),
            400,
            "not a span id",
        ),
        ("/api/sessions/nobody", 404, "no trace of session"),
        ("/api/sessions/nobody?limit=9999", 400, "limit"),
        ("/api/nothing-here", 404, "no such API endpoint"),
    ] {
        let r = v.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(says), "{path}: {msg}");
        assert!(!r.header("content-security-policy").is_empty());
    }
    let r = v.get("/no/such/page").await;
    assert_eq!(r.status, 404);

    // Read-only: no route takes anything but GET (and HEAD).
    let before = snapshot(&v, &all).await;
    for path in [
        "/api/traces",
        &format!("/api/traces/{fixture}"),
        "/api/info",
        "/",
    ] {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let r = v.request(method.clone(), path).await;
            assert_eq!(r.status, 405, "{method} {path}");
            assert!(r.header("allow").contains("GET"), "{method} {path}");
        }
    }
    assert_eq!(v.request(Method::HEAD, "/api/traces").await.status, 200);
    assert!(
        snapshot(&v, &all).await == before,
        "nothing changed the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (db, demo, fixture) = viewer::sqlite_store(dir.path()).await;
    exercise(&db, &demo, &fixture, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_postgres() {
    let Some((db, demo, fixture, schema)) = viewer::postgres_store().await else {
        return;
    };
    exercise(&db, &demo, &fixture, "postgres").await;
    viewer::drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    let db = db.to_str().unwrap();
    viewer::demo(db);
    let v = Viewer::start(db);
    let port = v.url.rsplit(':').next().unwrap().to_owned();
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("attacker.example:{port}"), 403),
        (format!("localhost.attacker.example:{port}"), 403),
    ] {
        let r = viewer::client()
            .get(format!("{}/api/traces", v.url))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "Host: {host}");
    }
}

#[test]
fn address_and_store_are_checked_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let o = aiobs(
        missing.to_str().unwrap(),
        &["serve", "--addr", "127.0.0.1:0"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("no store at {}", missing.display())),
        "{}",
        text(&o)
    );
    assert!(!missing.exists(), "a missing store is not created");
    let o = aiobs("sqlite::memory:", &["serve", "--addr", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("in-memory"), "{}", text(&o));

    let db = dir.path().join("aiobs.db");
    let db = db.to_str().unwrap();
    viewer::demo(db);
    let o = aiobs(db, &["serve", "--addr", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("not a loopback address") && text(&o).contains("--allow-remote"),
        "{}",
        text(&o)
    );
    let o = aiobs(db, &["serve", "--addr", "nonsense"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--addr"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_address_needs_the_flag_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    let db = db.to_str().unwrap();
    viewer::demo(db);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aiobs"))
        .args(["--db", db, "serve", "--addr", "0.0.0.0:0", "--allow-remote"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{BufRead, BufReader};
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut warning = String::new();
    err.read_line(&mut warning).unwrap();
    let mut url = String::new();
    out.read_line(&mut url).unwrap();
    assert!(
        warning.starts_with("warning:") && warning.contains("not a loopback address"),
        "{warning}"
    );
    let port = url.trim().trim_end_matches('/').rsplit(':').next().unwrap();
    // Any Host name is answered when serving remotely on purpose.
    let r = viewer::client()
        .get(format!("http://127.0.0.1:{port}/api/info"))
        .header("host", "viewer.internal.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_goes_on_when_stdout_is_closed() {
    // `aiobs serve | head -0`: the pipe is closed before anything is printed.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    let db = db.to_str().unwrap();
    viewer::demo(db);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aiobs"))
        .args(["--db", db, "serve", "--addr", &addr])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(r) = viewer::client()
            .get(format!("http://{addr}/api/traces"))
            .send()
            .await
        {
            answered = Some(r.status().as_u16());
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server stopped when its stdout closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(200));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().unwrap();
    child.wait().unwrap();
}
