//! What running a scenario found.

use std::fmt;
use std::time::Duration;

use crate::scenarios::Scenario;

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every check held. `notes` say what could not be verified (e.g. no probe).
    Passed {
        /// Checks skipped and why.
        notes: Vec<String>,
    },
    /// The scenario does not apply to this exporter, and why.
    NotApplicable(String),
    /// A check failed: "scenario X: expected … but observed …".
    Failed(String),
}

/// One scenario's result.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScenarioReport {
    /// Which scenario.
    pub scenario: Scenario,
    /// The harness's name.
    pub harness: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

impl ScenarioReport {
    /// Whether it passed (not applicable does not count as passed).
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Passed { .. })
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }

    /// The failure message, if it failed.
    pub fn failure(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Failed(m) => Some(m),
            _ => None,
        }
    }

    /// Panics with the failure message if the scenario failed; prints notes
    /// and "not applicable" reasons to stderr (shown by `cargo test` for
    /// failing tests and with `--nocapture`).
    #[track_caller]
    pub fn assert_passed(&self) {
        match &self.outcome {
            Outcome::Failed(m) => panic!("{m}"),
            Outcome::NotApplicable(_) => eprintln!("{self}"),
            Outcome::Passed { notes } if !notes.is_empty() => eprintln!("{self}"),
            Outcome::Passed { .. } => {}
        }
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.scenario.name();
        match &self.outcome {
            Outcome::Passed { notes } => {
                write!(f, "scenario {name}: passed in {:?}", self.elapsed)?;
                for n in notes {
                    write!(f, "\n  note: {n}")?;
                }
                Ok(())
            }
            Outcome::NotApplicable(why) => {
                write!(
                    f,
                    "scenario {name}: NOT APPLICABLE to {}: {why}",
                    self.harness
                )
            }
            Outcome::Failed(m) => write!(f, "{m}"),
        }
    }
}

/// The results of [`run_all`](crate::run_all).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConformanceReport {
    /// One per scenario, in [`Scenario::ALL`] order.
    pub scenarios: Vec<ScenarioReport>,
}

impl ConformanceReport {
    /// The reports of failed scenarios.
    pub fn failures(&self) -> Vec<&ScenarioReport> {
        self.scenarios.iter().filter(|r| r.failed()).collect()
    }

    /// The report of one scenario.
    pub fn get(&self, scenario: Scenario) -> Option<&ScenarioReport> {
        self.scenarios.iter().find(|r| r.scenario == scenario)
    }

    /// Panics listing every failed scenario.
    #[track_caller]
    pub fn assert_all_passed(&self) {
        let failures = self.failures();
        if !failures.is_empty() {
            let lines: Vec<String> = failures.iter().map(|r| r.to_string()).collect();
            panic!(
                "{} of {} conformance scenarios failed:\n{}",
                failures.len(),
                self.scenarios.len(),
                lines.join("\n")
            );
        }
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.scenarios {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}
