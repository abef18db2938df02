//! The one convention every exporter follows for its environment variables.
//!
//! - Blank values count as unset, as in the vendors' own SDKs.
//! - Code beats the environment, which beats defaults: a builder's
//!   `from_env()` fills only what code did not set.
//! - "Not configured" is not an error: none of an exporter's required
//!   variables set means the exporter is simply not wanted
//!   ([`Env::configured`] answers `false`). "Misconfigured" is: some set and
//!   some missing, or a value that cannot be used, is an error naming the
//!   variable ([`EnvError`]).

/// Reads environment variables through a lookup: the process environment
/// ([`process_env`]) or anything else (tests, a configuration file).
#[derive(Clone, Copy)]
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env(..)")
    }
}

/// The process environment, as a lookup for [`Env::new`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why the environment does not configure an exporter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// Some of the exporter's required variables are set, this one is not.
    #[error("{name} is not set, but {} {} — set {name} too, or unset them", set.join(" and "), if set.len() == 1 { "is" } else { "are" })]
    Missing {
        /// The missing variable.
        name: &'static str,
        /// The required variables that are set.
        set: Vec<&'static str>,
    },
    /// A variable holds a value that cannot be used. Only for settings that
    /// are not secrets: the value is quoted.
    #[error("{name}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl<'a> Env<'a> {
    /// Reads variables through `lookup` (use [`process_env`] for the process environment).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The variable's value, trimmed; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set.
    pub fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| self.get(n))
    }

    /// Parses a variable: `Ok(None)` when unset, the error naming it when set
    /// to something `parse` refuses.
    ///
    /// ```
    /// use aiobs_http::{Env, EnvError};
    ///
    /// let lookup = |name: &str| (name == "X_TIMEOUT").then(|| "soon".to_owned());
    /// let env = Env::new(&lookup);
    /// let err = env.parse("X_TIMEOUT", "a number of seconds", |v| v.parse::<f64>().ok()).unwrap_err();
    /// assert_eq!(err.to_string(), "X_TIMEOUT=\"soon\" is invalid: expected a number of seconds");
    /// assert_eq!(env.parse("X_OTHER", "a number", |v| v.parse::<f64>().ok()), Ok(None));
    /// ```
    pub fn parse<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, EnvError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        parse(&value).map(Some).ok_or(EnvError::Invalid {
            name,
            value,
            expected,
        })
    }

    /// Whether the environment configures an exporter whose required
    /// variables are `required`: none set → `Ok(false)` (not configured),
    /// all set → `Ok(true)`, some set → the error naming the first missing
    /// one (misconfigured).
    ///
    /// ```
    /// use aiobs_http::Env;
    ///
    /// let only_token = |name: &str| (name == "AIOBS_CLOUD_TOKEN").then(|| "t".to_owned());
    /// let required = ["AIOBS_CLOUD_ENDPOINT", "AIOBS_CLOUD_TOKEN"];
    /// assert_eq!(Env::new(&|_: &str| None).configured(&required), Ok(false));
    /// let err = Env::new(&only_token).configured(&required).unwrap_err();
    /// assert!(err.to_string().starts_with("AIOBS_CLOUD_ENDPOINT is not set"), "{err}");
    /// ```
    pub fn configured(&self, required: &[&'static str]) -> Result<bool, EnvError> {
        let set: Vec<&'static str> = required
            .iter()
            .copied()
            .filter(|n| self.get(n).is_some())
            .collect();
        if set.is_empty() {
            return Ok(false);
        }
        match required.iter().find(|n| !set.contains(n)) {
            None => Ok(true),
            Some(name) => Err(EnvError::Missing { name, set }),
        }
    }
}
