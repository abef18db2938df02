//! The `aiobs` binary, run as a user would, against temporary SQLite files.

use std::path::Path;
use std::process::{Command, Output};

fn aiobs(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiobs"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("AIOBS_DATABASE_URL")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs the demo and returns its trace id (from the tree's first line).
fn demo(db: &Path) -> String {
    let o = aiobs(db, &["demo"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "demo failed:\n{out}\n{err}");
    out.lines()
        .find_map(|l| l.strip_prefix("trace "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the demo prints the trace tree")
        .to_owned()
}

#[test]
fn the_demo_traces_a_realistic_run_and_prints_its_tree_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    let o = aiobs(&db, &["demo"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    for want in [
        "support-agent [agent_run]",
        "├── chat gpt-4o-mini [model_generation]",
        "tokens 2500 in (2176 cached) / 160 out (32 reasoning)",
        "step 1 [model_step]",
        "lookup_order [tool_call]",
        "get_tracking [tool_call]",
        "ERROR  TimeoutError: carrier API timed out after 2.0 s",
        "refund-eligibility [workflow_run]",
        "decide [workflow_step]",
        "score helpfulness = 0.82",
        "user user-4821  session session-7f3a  tags demo, customer-support",
        "flush completed",
        "sqlite: delivered",
        "Every event was delivered",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(db.exists());
}

#[test]
fn list_show_and_prune_work_on_what_the_demo_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    let id = demo(&db);

    let (out, _) = text(&aiobs(&db, &["traces", "list"]));
    assert!(
        out.contains(&id) && out.contains("error") && out.contains("2176 cached"),
        "{out}"
    );
    let filtered = |args: &[&str]| {
        let mut a = vec!["traces", "list"];
        a.extend_from_slice(args);
        let o = aiobs(&db, &a);
        assert!(o.status.success(), "{args:?}: {:?}", text(&o));
        text(&o).0.contains(&id)
    };
    assert!(filtered(&["--status", "error"]));
    assert!(!filtered(&["--status", "ok"]));
    assert!(filtered(&[
        "--user",
        "user-4821",
        "--tag",
        "demo",
        "--tag",
        "customer-support"
    ]));
    assert!(!filtered(&["--user", "someone-else"]));
    assert!(filtered(&[
        "--type",
        "tool_call",
        "--search",
        "TRACKING",
        "--since",
        "1h"
    ]));
    assert!(!filtered(&["--type", "rag_embedding"]));
    assert!(!filtered(&["--until", "2020-01-01"]));
    assert!(filtered(&[
        "--entity-name",
        "Support Agent",
        "--session",
        "session-7f3a"
    ]));

    let (tree, _) = text(&aiobs(&db, &["traces", "show", &id]));
    assert!(
        tree.contains("│   │   └── get_tracking [tool_call]"),
        "{tree}"
    );

    let o = aiobs(&db, &["traces", "show", &id, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trace_id"], id.as_str());
    assert_eq!(v["status"], "error");
    assert_eq!(v["spans"].as_array().unwrap().len(), 10);
    assert_eq!(v["usage"]["cached_input_tokens"], 2176);
    assert_eq!(v["scores"][0]["name"], "helpfulness");
    assert_eq!(v["feedback"][0]["key"], "thumbs");
    assert_eq!(v["logs"][0]["level"], "warn");

    let o = aiobs(&db, &["traces", "show", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .1
            .contains("no trace 0123456789abcdef0123456789abcdef")
    );

    let (out, _) = text(&aiobs(&db, &["traces", "prune", "--older-than", "30d"]));
    assert!(out.starts_with("removed 0 trace(s)"), "{out}");
    let o = aiobs(&db, &["traces", "prune", "--older-than", "0s", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (r["traces"].as_u64(), r["spans"].as_u64()),
        (Some(1), Some(10)),
        "{r}"
    );
    assert_eq!(aiobs(&db, &["traces", "show", &id]).status.code(), Some(1));
}

#[test]
fn pages_continue_with_the_printed_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    let ids: Vec<String> = (0..3).map(|_| demo(&db)).collect();
    let (out, _) = text(&aiobs(&db, &["traces", "list", "--limit", "2"]));
    assert!(
        out.contains(&ids[2]) && out.contains(&ids[1]) && !out.contains(&ids[0]),
        "{out}"
    );
    let next = out
        .lines()
        .find_map(|l| l.strip_prefix("next page: "))
        .expect("a next-page line");
    let cursor = next.rsplit("--cursor ").next().unwrap();
    let (out, _) = text(&aiobs(
        &db,
        &["traces", "list", "--limit", "2", "--cursor", cursor],
    ));
    assert!(out.contains(&ids[0]) && !out.contains(&ids[1]), "{out}");
    assert!(!out.contains("next page"), "{out}");
}

#[test]
fn the_store_comes_from_aiobs_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-env.db");
    let o = Command::new(env!("CARGO_BIN_EXE_aiobs"))
        .arg("demo")
        .env("AIOBS_DATABASE_URL", format!("sqlite://{}", db.display()))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(db.exists());
    assert!(
        !dir.path().join("aiobs.db").exists(),
        "the default store was used instead"
    );
}

#[test]
fn malformed_input_is_a_usage_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aiobs.db");
    demo(&db);
    let cases: &[&[&str]] = &[
        &["traces", "list", "--status", "bogus"],
        &["traces", "list", "--type", "tool"],
        &["traces", "list", "--since", "yesterday-ish"],
        &["traces", "list", "--limit", "0"],
        &["traces", "list", "--limit", "many"],
        &["traces", "list", "--cursor", "not-a-cursor"],
        &["traces", "show", "xyz"],
        &["traces", "show", "00000000000000000000000000000000"],
        &["traces", "prune", "--older-than", "banana"],
        &["traces", "prune"],
        &["traces", "frobnicate"],
    ];
    for args in cases {
        let o = aiobs(&db, args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}\n{err}");
        assert!(err.contains("error:"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_aiobs"))
        .args(["--db", "mysql://db/x", "traces", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("unsupported database URL scheme"));
}

#[test]
fn store_problems_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let o = aiobs(&missing, &["traces", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("no aiobs database at"),
        "{:?}",
        text(&o)
    );
    assert!(!missing.exists(), "reading must not create a database");

    let newer = dir.path().join("newer.db");
    demo(&newer);
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute("UPDATE aiobs_schema SET version = 42", [])
        .unwrap();
    for args in [&["traces", "list"][..], &["demo"][..]] {
        let o = aiobs(&newer, args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {out}\n{err}");
        assert!(
            err.contains("schema version 42") && err.contains("upgrade aiobs"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_demo_whose_events_cannot_be_delivered_exits_non_zero_with_the_report() {
    // Nothing listens on port 1: every export fails (transiently) until the retries run out.
    let o = Command::new(env!("CARGO_BIN_EXE_aiobs"))
        .args(["--db", "postgres://aiobs@127.0.0.1:1/none", "demo"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("postgres: delivered 0 failed {retries_exhausted="),
        "{out}"
    );
    assert!(out.contains("cannot connect to PostgreSQL"), "{out}");
    assert!(err.contains("event(s) lost"), "{err}");
}
