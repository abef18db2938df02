//! aiobs facade.
pub use aiobs_core::*;
