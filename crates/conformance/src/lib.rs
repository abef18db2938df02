//! # aiobs-conformance
//!
//! The test kit every aiobs exporter runs. Three lines in an exporter crate's
//! tests get one test per scenario:
//!
//! ```no_run
//! use aiobs_conformance::Harness;
//!
//! fn harness() -> Harness {
//!     Harness::in_memory() // or Harness::local(..) / Harness::http(..) for your exporter
//! }
//! aiobs_conformance::conformance_tests!(harness);
//! ```
//!
//! Or run the scenarios from your own test:
//!
//! ```
//! use aiobs_conformance::{Harness, Scenario, run_scenario};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let report = run_scenario(Scenario::AlwaysSucceed, &Harness::in_memory()).await;
//! report.assert_passed();
//! # }
//! ```
//!
//! What is here:
//! - [`Harness`]: how the kit makes the exporter under test for a scenario's
//!   [`Destination`] and reads back what arrived ([`DeliveredItem`]).
//! - [`Scenario`]: always-succeed, transient, permanent and throttled errors,
//!   partial acceptance, queue full, flush drains (also through `Arc` and
//!   `Box<dyn Exporter>`), hung destination, lifecycle, out-of-order, durable
//!   replay, concurrency, hostile payloads, a neighbour that blocks its
//!   thread, concurrent flushers. Each ends by checking
//!   `accepted == delivered + failed + dropped + pending` and that nothing is
//!   pending after flush; failures read "scenario X: expected … but observed …".
//! - [`http::ScriptedHttpServer`]: the scripted loopback server HTTP
//!   exporters are tested against (the only fake allowed for remote vendors).
//! - [`fakes`]: [`fakes::InMemoryExporter`], [`fakes::FaultyExporter`] and
//!   [`fakes::BlockingExporter`].
//!
//! The kit wraps every exporter to impose short timings
//! ([`kit_retry_policy`], a 20 ms batch wait), so the exporter's own
//! `retry_policy()` and `max_wait` are not used; its `max_events` and
//! `max_bytes` are. See `docs/conformance.md`.
//!
//! ## Feature flags
//! None.

pub mod fakes;
mod harness;
pub mod http;
mod instrument;
mod macros;
mod report;
mod scenarios;

pub use harness::{
    BoxFuture, DeliveredItem, Destination, DestinationKind, Harness, HarnessError, IntoHarness,
    ItemKind, ItemRejectionPlan, in_memory_items,
};
pub use instrument::kit_retry_policy;
pub use report::{ConformanceReport, Outcome, ScenarioReport};
pub use scenarios::{Scenario, run_all, run_scenario, run_scenario_blocking};
