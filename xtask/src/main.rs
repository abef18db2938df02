//! Project automation. `cargo xtask <command>`:
//!
//! - `test`  — the whole test suite; starts a throwaway PostgreSQL for it
//!   (unless `AIOBS_TEST_POSTGRES_URL` is set) and stops it afterwards.
//! - `ci`    — what CI runs: fmt check, clippy `-D warnings`, `cargo deny`, docs, then `test`.
//! - `bench` — the benchmarks, printing figures and a JSON line each.
//! - `demo`  — the main job: trace a simulated agent run into SQLite and show it.
//! - `conformance` — the conformance kit's own tests and every exporter's run of it.
//! - `with-postgres -- <command…>` — runs a command with a throwaway PostgreSQL
//!   (its URL in `AIOBS_TEST_POSTGRES_URL`), e.g. one crate's tests.

mod postgres;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r.to_vec()),
        None => ("help", Vec::new()),
    };
    let result = match cmd {
        "test" => test(&rest),
        "ci" => ci(),
        "bench" => bench(&rest),
        "demo" => run(
            "cargo",
            &["run", "--quiet", "-p", "aiobs-cli", "--", "demo"],
        ),
        "with-postgres" => with_postgres(&rest),
        "conformance" => {
            let pg = postgres::Throwaway::start();
            let url = pg.as_ref().map(|p| p.url().to_owned()).unwrap_or_default();
            run_env(
                "cargo",
                &[
                    "test",
                    "-p",
                    "aiobs-conformance",
                    "-p",
                    "aiobs-exporter-default",
                    "-p",
                    "aiobs-exporter-cloud",
                    "-p",
                    "aiobs-exporter-langfuse",
                    "-p",
                    "aiobs-otel-bridge",
                    "-p",
                    "aiobs-exporter-sentry",
                    "--test",
                    "conformance",
                    "--test",
                    "in_memory",
                    "--test",
                    "kit_catches_broken_exporters",
                ],
                &[("AIOBS_TEST_POSTGRES_URL", &url)],
            )
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <test|ci|bench|demo|conformance|with-postgres -- command…> [args]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn run(program: &str, args: &[&str]) -> Result {
    run_env(program, args, &[])
}

fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("could not run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed: {status}", args.join(" ")))
    }
}

/// The whole test suite, with a PostgreSQL brought up for it when none is given.
fn test(extra: &[String]) -> Result {
    // Libraries, binaries, integration tests, examples (built) and doc tests;
    // not the benchmarks, which measure release builds (`cargo xtask bench`).
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    match std::env::var("AIOBS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!("using AIOBS_TEST_POSTGRES_URL={url}");
            run("cargo", &args)
        }
        _ => {
            let pg = postgres::Throwaway::start()?;
            eprintln!("started a throwaway PostgreSQL at {}", pg.url());
            let env = [("AIOBS_TEST_POSTGRES_URL", pg.url())];
            let result = run_env("cargo", &args, &env);
            drop(pg);
            result
        }
    }
}

fn with_postgres(args: &[String]) -> Result {
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "--")
        .collect();
    let Some((program, rest)) = args.split_first() else {
        return Err("usage: cargo xtask with-postgres -- <command…>".into());
    };
    let pg = postgres::Throwaway::start()?;
    eprintln!("started a throwaway PostgreSQL at {}", pg.url());
    let result = run_env(program, rest, &[("AIOBS_TEST_POSTGRES_URL", pg.url())]);
    drop(pg);
    result
}

fn ci() -> Result {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    deny()?;
    run_env(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    test(&[])
}

/// `cargo deny`: licenses, bans and sources. The advisory database lives on a
/// host this workplace cannot reach, so advisories are checked only where it
/// can be fetched (`AIOBS_DENY_ADVISORIES=1`).
fn deny() -> Result {
    let mut checks = vec!["deny", "check", "bans", "licenses", "sources"];
    if std::env::var("AIOBS_DENY_ADVISORIES").is_ok_and(|v| v == "1") {
        checks.push("advisories");
    }
    run("cargo", &checks)
}

fn bench(extra: &[String]) -> Result {
    let mut args = vec!["run", "--release", "-p", "aiobs-bench", "--"];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)
}
