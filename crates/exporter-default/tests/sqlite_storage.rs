//! The storage suite on SQLite (a file, and memory), and what only SQLite
//! has: WAL files, read-only opens, locks held by other connections, a size
//! cap that behaves like a full disk, schema versions.

#![cfg(feature = "sqlite")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use aiobs_core::ErrorClass;
use aiobs_exporter_default::{
    SQLITE_SCHEMA_VERSION, SqliteConfig, SqliteStorage, Storage, StorageErrorKind,
};
use common::data::rich_trace;
use common::suite::put;
use common::{BoxFuture, TestStore};

async fn sqlite_file() -> Option<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suite.db");
    let opener = Arc::new(move || -> BoxFuture<Arc<dyn Storage>> {
        let p = path.clone();
        Box::pin(async move { Arc::new(SqliteStorage::open(&p).unwrap()) as Arc<dyn Storage> })
    });
    Some(TestStore::new(opener, None, Some(Box::new(dir))).await)
}

async fn sqlite_memory() -> Option<TestStore> {
    // Memory is private to one storage: every "other handle" is the same one.
    let shared: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory().unwrap());
    let opener = Arc::new(move || -> BoxFuture<Arc<dyn Storage>> {
        let s = shared.clone();
        Box::pin(async move { s })
    });
    Some(TestStore::new(opener, None, None).await)
}

storage_suite!(file: sqlite_file);
storage_suite!(memory: sqlite_memory);

fn sql(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn count_spans(path: &std::path::Path) -> i64 {
    sql(path)
        .query_row("SELECT COUNT(*) FROM aiobs_spans", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_file_survives_reopening_and_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let t = rich_trace(0, "u", "s", &["x"]);
    {
        let s = SqliteStorage::open(&path).unwrap();
        put(&s, t.batch()).await;
    }
    let mode: String = sql(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let s = SqliteStorage::open(&path).unwrap();
    let got = s
        .get_trace(t.trace_id)
        .await
        .unwrap()
        .expect("still there after reopening");
    assert_eq!(got.spans, t.spans);
    let version: i64 = sql(&path)
        .query_row("SELECT version FROM aiobs_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SQLITE_SCHEMA_VERSION);
}

#[tokio::test]
async fn a_schema_from_a_newer_aiobs_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    let s = SqliteStorage::open(&path).unwrap();
    put(&s, rich_trace(0, "u", "s", &[]).batch()).await;
    // A newer aiobs migrated the file while this one had it open.
    sql(&path)
        .execute("UPDATE aiobs_schema SET version = 99", [])
        .unwrap();
    let e = s.init().await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::SchemaTooNew);
    assert_eq!(e.kind().class(), ErrorClass::Disabled);
    drop(s);

    let e = SqliteStorage::open(&path).unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::SchemaTooNew);
    let msg = e.to_string();
    assert!(msg.contains("99") && msg.contains("upgrade aiobs"), "{msg}");
    assert_eq!(count_spans(&path), 5, "the refused open changed nothing");
    let version: i64 = sql(&path)
        .query_row("SELECT version FROM aiobs_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

#[tokio::test]
async fn a_read_only_store_answers_queries_and_refuses_writes_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    let t = rich_trace(0, "u", "s", &[]);
    put(&SqliteStorage::open(&path).unwrap(), t.batch()).await;
    let ro = SqliteStorage::open_with(SqliteConfig::file(&path).read_only()).unwrap();
    assert!(ro.get_trace(t.trace_id).await.unwrap().is_some());
    let e = ro
        .write(rich_trace(9, "u", "s", &[]).batch())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::ReadOnly, "{e}");
    assert_eq!(e.kind().class(), ErrorClass::Permanent);
    assert_eq!(count_spans(&path), 5);
}

#[tokio::test]
async fn a_locked_database_is_a_transient_error_until_the_lock_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let s =
        SqliteStorage::open_with(SqliteConfig::file(&path).busy_timeout(Duration::from_millis(50)))
            .unwrap();
    let other = sql(&path);
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let e = s
        .write(rich_trace(0, "u", "s", &[]).batch())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Busy, "{e}");
    assert!(e.is_transient());
    assert_eq!(e.kind().class(), ErrorClass::Transient);
    other.execute_batch("COMMIT").unwrap();
    put(&s, rich_trace(0, "u", "s", &[]).batch()).await;
    assert_eq!(
        count_spans(&path),
        5,
        "the failed attempt wrote nothing, the retry everything"
    );
}

#[tokio::test]
async fn a_full_database_is_a_transient_disk_full_error_and_keeps_what_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let s = SqliteStorage::open_with(SqliteConfig::file(&path).max_size_bytes(256 * 1024)).unwrap();
    let mut committed = Vec::new();
    let err = loop {
        let t = rich_trace(committed.len() as i64, "u", "s", &[]);
        match s.write(t.batch()).await {
            Ok(_) => committed.push(t.trace_id),
            Err(e) => break e,
        }
        assert!(committed.len() < 10_000, "the size cap never applied");
    };
    assert_eq!(err.kind(), StorageErrorKind::DiskFull, "{err}");
    assert_eq!(err.kind().class(), ErrorClass::Transient);
    assert!(err.to_string().contains("full"), "{err}");
    assert!(!committed.is_empty());
    for t in &committed {
        assert!(
            s.get_trace(*t).await.unwrap().is_some(),
            "an acknowledged write was lost"
        );
    }
    assert_eq!(count_spans(&path), committed.len() as i64 * 5);
}

#[test]
fn processes_opening_one_new_file_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || SqliteStorage::open(&p).map(|_| ()))
        })
        .collect();
    for o in opens {
        o.join().unwrap().unwrap();
    }
    let n: i64 = sql(&path)
        .query_row("SELECT COUNT(*) FROM aiobs_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_corrupt_file_is_a_clear_permanent_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let e = SqliteStorage::open(&path).unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("not-a-db.db"), "{e}");
}
