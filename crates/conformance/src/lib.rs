//! # aiobs-conformance
//!
//! The test kit every aiobs exporter runs (under construction: the scripted
//! HTTP server is ready).
//!
//! ```
//! use aiobs_conformance::http::ScriptedHttpServer;
//!
//! let server = ScriptedHttpServer::start()?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Feature flags
//! None.

pub mod http;
