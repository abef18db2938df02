//! `aiobs`: trace a simulated agent run into the store, and read traces back.
//!
//! ```text
//! aiobs demo                         trace a simulated agent run and show it
//! aiobs traces list [filters]        newest traces first
//! aiobs traces show <trace-id>       one trace as a tree (--json for machines)
//! aiobs traces prune --older-than 30d
//! aiobs serve [--addr 127.0.0.1:7878]   a local web viewer over the store
//! ```
//!
//! The store is `--db <path or URL>`, else `AIOBS_DATABASE_URL`, else `./aiobs.db`
//! (`sqlite://…`, `sqlite::memory:` or `postgres://…`).

mod demo;
mod render;
mod serve;
mod time_arg;

use std::process::ExitCode;
use std::sync::Arc;

use aiobs_core::{SpanType, TraceId};
use aiobs_exporter_default::{
    DATABASE_URL_ENV, DEFAULT_DATABASE, DatabaseUrl, PageRequest, Storage, StorageError,
    TraceFilter, TraceStatus,
};
use clap::{Parser, Subcommand, ValueEnum};

/// Observability for AI agents: the embedded store's command line.
#[derive(Debug, Parser)]
#[command(name = "aiobs", version, about)]
struct Cli {
    /// The store: a SQLite file path, `sqlite://…`, `sqlite::memory:` or `postgres://…`.
    /// Default: $AIOBS_DATABASE_URL, else ./aiobs.db.
    #[arg(long, global = true, value_name = "PATH_OR_URL")]
    db: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Trace a simulated agent run into the store (and into any exporter
    /// configured by environment: LANGFUSE_*, AIOBS_CLOUD_*), then show it.
    Demo {
        /// Print the trace as JSON instead of a tree.
        #[arg(long)]
        json: bool,
    },
    /// Read traces.
    #[command(subcommand)]
    Traces(Box<TracesCommand>),
    /// Serve a local web viewer over the store (read-only): trace list,
    /// waterfall, span details, sessions. Prints the URL to open.
    Serve(serve::ServeArgs),
}

#[derive(Debug, Subcommand)]
enum TracesCommand {
    /// List traces, newest first.
    List(Box<ListArgs>),
    /// Show one trace as an indented tree.
    Show {
        /// The trace id (32 hex digits).
        trace_id: String,
        /// Print JSON instead of a tree.
        #[arg(long)]
        json: bool,
    },
    /// Delete traces (and their logs, scores, feedback) older than a duration.
    Prune {
        /// How old, e.g. `30d`, `12h`, `2w`.
        #[arg(long, value_name = "DURATION", value_parser = time_arg::parse_duration)]
        older_than: chrono::Duration,
    },
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only traces that started within this long ago, e.g. `1h`, `7d`.
    #[arg(long, value_parser = time_arg::parse_duration)]
    since: Option<chrono::Duration>,
    /// Only traces that started before this long ago.
    #[arg(long, value_parser = time_arg::parse_duration)]
    until: Option<chrono::Duration>,
    /// Root span name.
    #[arg(long)]
    name: Option<String>,
    /// Text contained in the root span name.
    #[arg(long)]
    search: Option<String>,
    /// Traces containing a span of this type (e.g. `tool_call`).
    #[arg(long, value_parser = parse_span_type)]
    span_type: Option<SpanType>,
    /// Entity id.
    #[arg(long)]
    entity_id: Option<String>,
    /// Entity name.
    #[arg(long)]
    entity_name: Option<String>,
    /// User id.
    #[arg(long)]
    user: Option<String>,
    /// Session id.
    #[arg(long)]
    session: Option<String>,
    /// Tag (repeat for several: all must match).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Trace status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Most traces to show (1..=1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// Continue after this cursor (printed under the previous page).
    #[arg(long)]
    cursor: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Ok,
    Error,
    Running,
}

fn parse_span_type(s: &str) -> Result<SpanType, String> {
    SpanType::parse(s).ok_or_else(|| {
        let all: Vec<&str> = SpanType::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown span type {s:?}; one of: {}", all.join(", "))
    })
}

/// Which store the command uses.
fn database_url(flag: Option<&str>) -> Result<DatabaseUrl, StorageError> {
    let text = match flag {
        Some(f) => f.to_owned(),
        None => std::env::var(DATABASE_URL_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
    };
    if text.contains("://") || text.starts_with("sqlite:") {
        text.parse()
    } else {
        Ok(DatabaseUrl::SqliteFile(text.into()))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // aiobs reports lost events through `tracing`: show warnings on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let url = database_url(cli.db.as_deref())?;
    let command = match cli.command {
        // The viewer opens the store itself, read-only.
        Command::Serve(args) => return serve::run(args, &url).await,
        other => other,
    };
    let store: Arc<dyn Storage> = url.open()?;
    store.init().await?;
    match command {
        Command::Traces(t) => traces(*t, &*store, &url).await,
        Command::Demo { json } => demo::run(store, &url, json).await,
        Command::Serve(_) => Ok(ExitCode::SUCCESS), // returned above
    }
}

async fn traces(
    command: TracesCommand,
    store: &dyn Storage,
    url: &DatabaseUrl,
) -> Result<ExitCode, Error> {
    match command {
        TracesCommand::Show { trace_id, json } => {
            let id: TraceId = trace_id
                .parse()
                .map_err(|e| format!("invalid trace id {trace_id:?}: {e}"))?;
            match store.get_trace(id).await? {
                Some(trace) if json => println!("{}", serde_json::to_string_pretty(&trace)?),
                Some(trace) => print!("{}", render::trace_tree(&trace)),
                None => {
                    eprintln!("no trace {id} in {url}");
                    return Ok(ExitCode::FAILURE);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TracesCommand::List(args) => {
            let (filter, page) = list_query(&args)?;
            let result = store.list_traces(&filter, &page).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", render::trace_table(&result));
            }
            Ok(ExitCode::SUCCESS)
        }
        TracesCommand::Prune { older_than } => {
            let cutoff = chrono::Utc::now() - older_than;
            let removed = store.delete_older_than(cutoff).await?;
            println!(
                "removed {} trace(s), {} span(s), {} log(s), {} metric(s), {} score(s), {} feedback record(s) older than {}",
                removed.traces,
                removed.spans,
                removed.logs,
                removed.metrics,
                removed.scores,
                removed.feedback,
                cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list_query(args: &ListArgs) -> Result<(TraceFilter, PageRequest), Error> {
    let now = chrono::Utc::now();
    let mut f = TraceFilter::new();
    if let Some(d) = args.since {
        f = f.started_after(now - d);
    }
    if let Some(d) = args.until {
        f = f.started_before(now - d);
    }
    if let Some(n) = &args.name {
        f = f.root_name(n.clone());
    }
    if let Some(t) = &args.search {
        f = f.name_contains(t.clone());
    }
    if let Some(t) = args.span_type {
        f = f.span_type(t);
    }
    if let Some(id) = &args.entity_id {
        f = f.entity_id(id.clone());
    }
    if let Some(n) = &args.entity_name {
        f = f.entity_name(n.clone());
    }
    if let Some(u) = &args.user {
        f = f.user_id(u.clone());
    }
    if let Some(s) = &args.session {
        f = f.session_id(s.clone());
    }
    for t in &args.tags {
        f = f.tag(t.clone());
    }
    if let Some(s) = args.status {
        f = f.status(match s {
            StatusArg::Ok => TraceStatus::Ok,
            StatusArg::Error => TraceStatus::Error,
            StatusArg::Running => TraceStatus::Running,
        });
    }
    let mut page = PageRequest::first(usize::from(args.limit));
    if let Some(c) = &args.cursor {
        page = page.after(c.parse().map_err(|e| format!("invalid --cursor: {e}"))?);
    }
    Ok((f, page))
}
