//! `conformance_tests!`: one test per scenario.

/// Expands to a module of tests, one per [`Scenario`](crate::Scenario),
/// each running on a runtime of its own (so your crate needs no tokio macros).
///
/// The argument is a [`Harness`](crate::Harness) expression or the path of a
/// function returning one. Name the module when invoking it twice in one file:
/// `conformance_tests!(sqlite_conformance: sqlite_harness)`.
///
/// A scenario that does not apply to the exporter passes and prints
/// "NOT APPLICABLE" with the reason (visible with `--nocapture`).
///
/// ```no_run
/// fn harness() -> aiobs_conformance::Harness {
///     aiobs_conformance::Harness::in_memory()
/// }
/// aiobs_conformance::conformance_tests!(harness);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr $(,)?) => {
        $crate::conformance_tests!(conformance: $harness);
    };
    ($module:ident : $harness:expr $(,)?) => {
        #[cfg(test)]
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            fn run(scenario: $crate::Scenario) {
                $crate::run_scenario_blocking(scenario, $harness).assert_passed();
            }

            #[test]
            fn always_succeed() {
                run($crate::Scenario::AlwaysSucceed);
            }
            #[test]
            fn transient_errors() {
                run($crate::Scenario::TransientErrors);
            }
            #[test]
            fn permanent_errors() {
                run($crate::Scenario::PermanentErrors);
            }
            #[test]
            fn throttled() {
                run($crate::Scenario::Throttled);
            }
            #[test]
            fn partial_acceptance() {
                run($crate::Scenario::PartialAcceptance);
            }
            #[test]
            fn queue_full() {
                run($crate::Scenario::QueueFull);
            }
            #[test]
            fn flush_drains() {
                run($crate::Scenario::FlushDrains);
            }
            #[test]
            fn hung_destination() {
                run($crate::Scenario::HungDestination);
            }
            #[test]
            fn lifecycle() {
                run($crate::Scenario::Lifecycle);
            }
            #[test]
            fn out_of_order() {
                run($crate::Scenario::OutOfOrder);
            }
            #[test]
            fn durable_replay() {
                run($crate::Scenario::DurableReplay);
            }
            #[test]
            fn concurrency() {
                run($crate::Scenario::Concurrency);
            }
            #[test]
            fn hostile_payloads() {
                run($crate::Scenario::HostilePayloads);
            }
            #[test]
            fn neighbour_blocks() {
                run($crate::Scenario::NeighbourBlocks);
            }
            #[test]
            fn concurrent_flushers() {
                run($crate::Scenario::ConcurrentFlushers);
            }
        }
    };
}
