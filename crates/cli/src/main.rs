//! `aiobs`: trace a demo agent run into a store, then list, show and prune
//! the stored traces.
//!
//! ```text
//! aiobs demo                                   # ./aiobs.db, or --db / AIOBS_DATABASE_URL
//! aiobs traces list --status error --since 1d
//! aiobs traces show <trace-id> [--json]
//! aiobs traces prune --older-than 30d
//! ```
//!
//! Exit codes: 0 success; 1 a failure (the store, or a demo whose flush
//! report shows lost events); 2 a usage error.

mod args;
mod demo;
mod exporters;
mod render;

use std::process::ExitCode;
use std::sync::Arc;

use aiobs_core::Observability;
use aiobs_exporter_default::{
    DatabaseUrl, DefaultExporter, PageRequest, Storage, TraceFilter, TraceRecord, TraceStatus,
    UsageTotals,
};
use clap::Parser;
use serde::Serialize;

use args::{Cli, Command, DemoArgs, ListArgs, PruneArgs, ShowArgs, TracesCommand};

/// A failure to report on stderr, exit code 1.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

type Outcome = Result<ExitCode, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Demo(a) => demo(&cli.db, a).await,
        Command::Traces(TracesCommand::List(a)) => {
            list(&existing_store(&cli.db)?, &cli.db, a).await
        }
        Command::Traces(TracesCommand::Show(a)) => {
            show(&existing_store(&cli.db)?, &cli.db, a).await
        }
        Command::Traces(TracesCommand::Prune(a)) => prune(&existing_store(&cli.db)?, a).await,
    }
}

/// Opens a store that must already exist (reading must not create a file by mistake).
fn existing_store(db: &DatabaseUrl) -> Result<Arc<dyn Storage>, Failure> {
    if let DatabaseUrl::SqliteFile(p) = db
        && !p.exists()
    {
        return Err(Failure(format!(
            "no aiobs database at {} (run `aiobs demo` first, or pass --db / set AIOBS_DATABASE_URL)",
            p.display()
        )));
    }
    Ok(db.open()?)
}

async fn demo(db: &DatabaseUrl, a: DemoArgs) -> Outcome {
    let storage = db.open()?;
    let mut builder = Observability::builder()
        .service_name("aiobs-demo")
        .exporter(DefaultExporter::builder_shared(storage.clone()).build()?);
    for (exporter, why) in exporters::from_env().map_err(Failure)? {
        println!("also exporting to {} ({why})", exporter.name());
        builder = builder.exporter_arc(exporter);
    }
    let obs = builder.build()?;
    let trace_id = demo::simulate(&obs).await;
    let report = obs.shutdown(a.flush_timeout).await;

    println!("Traced a simulated support-agent run into {db}\n");
    match storage.get_trace(trace_id).await {
        Ok(Some(t)) => print!("{}", render::trace(&t)),
        Ok(None) => println!("(the trace {trace_id} is not in the store: see the flush report)"),
        Err(e) => println!("(could not read the trace back: {e})"),
    }
    println!("\n{report}");
    if report.is_success() {
        println!(
            "Every event was delivered. Next: aiobs traces show {trace_id}   (or: aiobs traces list)"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} event(s) lost and {} still pending; see the flush report above",
            report.lost(),
            report.pending()
        );
        Ok(ExitCode::FAILURE)
    }
}

async fn list(storage: &Arc<dyn Storage>, db: &DatabaseUrl, a: ListArgs) -> Outcome {
    let mut f = TraceFilter::new();
    f.started_after = a.since;
    f.started_before = a.until;
    f.root_name = a.name.clone();
    f.span_type = a.span_type;
    f.entity_id = a.entity_id.clone();
    f.entity_name = a.entity_name.clone();
    f.user_id = a.user.clone();
    f.session_id = a.session.clone();
    f.tags = a.tags.clone();
    f.status = a.status;
    f.name_contains = a.search.clone();
    let mut page = PageRequest::first(a.limit.into());
    page.cursor = a.cursor;
    let result = storage.list_traces(&f, &page).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        let args: Vec<String> = std::env::args().skip(1).collect();
        print!(
            "{}",
            render::page(&result, |cursor| next_page_command(&args, db, cursor))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The command line that prints the next page: this one with `--cursor` replaced.
fn next_page_command(args: &[String], _db: &DatabaseUrl, cursor: &str) -> String {
    let mut out = vec!["aiobs".to_string()];
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--cursor" {
            skip = true;
            continue;
        }
        if a.starts_with("--cursor=") {
            continue;
        }
        out.push(if a.contains(' ') {
            format!("'{a}'")
        } else {
            a.clone()
        });
    }
    out.push(format!("--cursor {cursor}"));
    out.join(" ")
}

#[derive(Serialize)]
struct ShowJson<'a> {
    status: TraceStatus,
    usage: UsageTotals,
    #[serde(flatten)]
    trace: &'a TraceRecord,
}

async fn show(storage: &Arc<dyn Storage>, db: &DatabaseUrl, a: ShowArgs) -> Outcome {
    let Some(t) = storage.get_trace(a.trace_id).await? else {
        return Err(Failure(format!("no trace {} in {db}", a.trace_id)));
    };
    if a.json {
        let out = ShowJson {
            status: t.status(),
            usage: t.usage_totals(),
            trace: &t,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render::trace(&t));
    }
    Ok(ExitCode::SUCCESS)
}

async fn prune(storage: &Arc<dyn Storage>, a: PruneArgs) -> Outcome {
    let age = chrono::Duration::from_std(a.older_than)
        .map_err(|_| Failure("--older-than is too large".into()))?;
    let cutoff = chrono::Utc::now()
        .checked_sub_signed(age)
        .ok_or_else(|| Failure("--older-than reaches back too far".into()))?;
    let r = storage.delete_older_than(cutoff).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "removed {} trace(s) ({} spans), {} log(s), {} metric(s), {} score(s), {} feedback record(s) older than {}",
            r.traces,
            r.spans,
            r.logs,
            r.metrics,
            r.scores,
            r.feedback,
            cutoff.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    Ok(ExitCode::SUCCESS)
}
