//! The conformance kit: the kit's scripted server plays Sentry's envelope
//! endpoint; the decoder reads transactions back into spans.

mod common;

aiobs_conformance::conformance_tests!(common::harness);
