//! `aiobs serve`: a local, read-only web viewer over the store.
//!
//! The data flow, by file: [`store`] opens the store read-only; [`router`]
//! maps requests to the JSON API ([`api`], which reads its query strings
//! through [`params`] and lays a trace out as a waterfall in [`tree`]) and to
//! the page itself ([`assets`], embedded in the binary); [`headers`] checks
//! the `Host` of every request and puts the security headers (a strict
//! Content-Security-Policy with Trusted Types) on every response.
//!
//! Nothing here writes: every route is a `GET`, and SQLite files are opened
//! read-only.

mod api;
mod assets;
mod headers;
mod params;
mod router;
mod store;
mod tree;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use aiobs_exporter_default::{DatabaseUrl, Storage};

use crate::Error;

/// `aiobs serve` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Where to listen, `host:port` (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "HOST:PORT")]
    addr: String,
    /// Allow an address other than loopback. The viewer has no login: anyone
    /// who can reach the address can read every trace in the store.
    #[arg(long)]
    allow_remote: bool,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The store, opened read-only.
    pub(crate) store: Arc<dyn Storage>,
    /// The store as shown to users (a PostgreSQL password is never shown).
    pub(crate) store_name: String,
}

/// Serves until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ServeArgs, url: &DatabaseUrl) -> Result<ExitCode, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&args.addr)
        .await
        .map_err(|e| format!("--addr {:?}: expected host:port ({e})", args.addr))?
        .collect();
    let loopback = !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback());
    if !loopback && !args.allow_remote {
        return Err(format!(
            "--addr {} is not a loopback address. The viewer has no login: anyone who can \
             reach it can read every trace. Pass --allow-remote to serve there anyway",
            args.addr
        )
        .into());
    }
    let store = store::open_read_only(url).await?;
    let listener = tokio::net::TcpListener::bind(addrs.as_slice())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let local = listener.local_addr()?;
    // Printing must not stop the server: its stdout or stderr may be closed
    // once the URL is read (`aiobs serve | head -1`).
    if !loopback {
        writeln!(
            std::io::stderr(),
            "warning: listening on {local}, which is not a loopback address. There is no \
             login: anyone who can reach it can read every trace in {url}."
        )
        .ok();
    }
    let hosts = if loopback {
        headers::HostPolicy::Loopback
    } else {
        headers::HostPolicy::Any
    };
    let app = router::router(
        Arc::new(AppState {
            store,
            store_name: url.to_string(),
        }),
        hosts,
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "aiobs viewer: http://{local}/")
        .and_then(|()| writeln!(out, "store {url} (read-only); Ctrl-C to stop"))
        .and_then(|()| out.flush())
        .ok();
    drop(out);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
