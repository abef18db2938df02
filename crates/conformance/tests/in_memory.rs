//! The reference: core's InMemoryExporter passes every scenario.

fn harness() -> aiobs_conformance::Harness {
    aiobs_conformance::Harness::in_memory()
}

aiobs_conformance::conformance_tests!(harness);
