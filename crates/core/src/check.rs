//! Checks: a project's lint, test and build commands, as its settings configure them.
//!
//! A project's `settings.checks` may name, per kind, the command to run and its timeout:
//! `{"checks": {"test": {"command": "cargo test", "timeout_seconds": 300}}}`. A kind that is not
//! configured falls back to what `agentd-checks` detects from the project's files. This module
//! owns the kinds, the configured profiles and their validation (a project `PATCH` with a bad
//! `checks` setting is refused); running the commands and reading their output belong to
//! `agentd-checks`, which goes through the sandbox.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The key of project settings that holds the check profiles.
pub const SETTINGS_KEY: &str = "checks";
/// The agent type of a run that executes a project's checks instead of a model's tool loop.
pub const CHECKS_AGENT: &str = "checks";
/// The longest timeout a check may be given, in seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// The longest check command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;

/// What a check verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Static analysis: clippy, eslint, ruff, `go vet`.
    Lint,
    /// The test suite.
    Test,
    /// Compilation or bundling.
    Build,
}

impl CheckKind {
    /// Every kind, in the order checks run.
    pub const ALL: [Self; 3] = [Self::Lint, Self::Test, Self::Build];

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lint => "lint",
            Self::Test => "test",
            Self::Build => "build",
        }
    }

    /// The timeout of a configured check that names none, in seconds.
    #[must_use]
    pub const fn default_timeout_seconds(self) -> u64 {
        match self {
            Self::Lint => 180,
            Self::Test | Self::Build => 300,
        }
    }

    /// The settings path of this kind's profile, for error messages.
    const fn path(self) -> &'static str {
        match self {
            Self::Lint => "settings.checks.lint",
            Self::Test => "settings.checks.test",
            Self::Build => "settings.checks.build",
        }
    }

    const fn command_path(self) -> &'static str {
        match self {
            Self::Lint => "settings.checks.lint.command",
            Self::Test => "settings.checks.test.command",
            Self::Build => "settings.checks.build.command",
        }
    }

    const fn timeout_path(self) -> &'static str {
        match self {
            Self::Lint => "settings.checks.lint.timeout_seconds",
            Self::Test => "settings.checks.test.timeout_seconds",
            Self::Build => "settings.checks.build.timeout_seconds",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `lint`, `test` or `build`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check kind {0:?}: expected lint, test or build")]
pub struct UnknownCheckKind(pub String);

impl FromStr for CheckKind {
    type Err = UnknownCheckKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownCheckKind(s.into()))
    }
}

/// A configured check: the shell command line and how long it may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckProfile {
    /// A shell command line, run in the project's directory.
    pub command: String,
    /// The wall-clock limit.
    pub timeout_seconds: u64,
}

/// The check profiles a project's settings configure; a kind left out is detected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChecksSettings {
    profiles: Vec<(CheckKind, CheckProfile)>,
}

/// One problem with a project's `checks` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InvalidChecks {
    /// Where: `settings.checks`, `settings.checks.test.timeout_seconds`, ...
    pub path: &'static str,
    /// What is wrong.
    pub message: String,
}

impl InvalidChecks {
    fn new(path: &'static str, message: impl Into<String>) -> Self {
        Self { path, message: message.into() }
    }
}

impl ChecksSettings {
    /// The profiles of a project's settings (none when there is no `checks` key).
    ///
    /// # Errors
    /// Every problem found: not an object, an unknown kind or field, a missing, blank or
    /// oversized command, a timeout that is not a whole number of seconds from 1 to
    /// [`MAX_TIMEOUT_SECONDS`].
    pub fn from_project_settings(
        settings: &Map<String, Value>,
    ) -> Result<Self, Vec<InvalidChecks>> {
        let Some(value) = settings.get(SETTINGS_KEY) else { return Ok(Self::default()) };
        let mut problems = Vec::new();
        let mut profiles = Vec::new();
        let Some(object) = value.as_object() else {
            return Err(vec![InvalidChecks::new(
                "settings.checks",
                "must be an object such as {\"test\": {\"command\": \"cargo test\"}}",
            )]);
        };
        for (name, profile) in object {
            match name.parse::<CheckKind>() {
                Ok(kind) => match parse_profile(kind, profile) {
                    Ok(p) => profiles.push((kind, p)),
                    Err(mut errs) => problems.append(&mut errs),
                },
                Err(e) => problems.push(InvalidChecks::new("settings.checks", e.to_string())),
            }
        }
        if problems.is_empty() {
            profiles.sort_by_key(|(k, _)| *k);
            Ok(Self { profiles })
        } else {
            Err(problems)
        }
    }

    /// The configured profile of `kind`.
    #[must_use]
    pub fn get(&self, kind: CheckKind) -> Option<&CheckProfile> {
        self.profiles.iter().find(|(k, _)| *k == kind).map(|(_, p)| p)
    }
}

fn parse_profile(kind: CheckKind, value: &Value) -> Result<CheckProfile, Vec<InvalidChecks>> {
    let Some(object) = value.as_object() else {
        return Err(vec![InvalidChecks::new(
            kind.path(),
            "must be an object with `command` and optionally `timeout_seconds`",
        )]);
    };
    let mut problems = Vec::new();
    for field in object.keys() {
        if field != "command" && field != "timeout_seconds" {
            problems.push(InvalidChecks::new(
                kind.path(),
                format!("unknown field {field:?}: expected command or timeout_seconds"),
            ));
        }
    }
    let command = match object.get("command") {
        None => {
            problems.push(InvalidChecks::new(kind.command_path(), "is required"));
            None
        }
        Some(Value::String(c)) if c.trim().is_empty() => {
            problems.push(InvalidChecks::new(kind.command_path(), "must not be blank"));
            None
        }
        Some(Value::String(c)) if c.len() > MAX_COMMAND_BYTES => {
            problems.push(InvalidChecks::new(
                kind.command_path(),
                format!("must be at most {MAX_COMMAND_BYTES} bytes"),
            ));
            None
        }
        Some(Value::String(c)) if c.contains('\0') => {
            problems.push(InvalidChecks::new(kind.command_path(), "must not contain NUL"));
            None
        }
        Some(Value::String(c)) => Some(c.clone()),
        Some(_) => {
            problems.push(InvalidChecks::new(kind.command_path(), "must be a string"));
            None
        }
    };
    let timeout_seconds = match object.get("timeout_seconds") {
        None => Some(kind.default_timeout_seconds()),
        Some(v) => match v.as_u64() {
            Some(t) if (1..=MAX_TIMEOUT_SECONDS).contains(&t) => Some(t),
            _ => {
                problems.push(InvalidChecks::new(
                    kind.timeout_path(),
                    format!("must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}"),
                ));
                None
            }
        },
    };
    match (command, timeout_seconds) {
        (Some(command), Some(timeout_seconds)) if problems.is_empty() => {
            Ok(CheckProfile { command, timeout_seconds })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(value: Value) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(SETTINGS_KEY.into(), value);
        map
    }

    #[test]
    fn kinds_parse_and_print_by_their_wire_names() {
        for kind in CheckKind::ALL {
            assert_eq!(kind.as_str().parse::<CheckKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert!("deploy".parse::<CheckKind>().is_err());
    }

    #[test]
    fn configured_profiles_take_their_kinds_default_timeouts() {
        let s = ChecksSettings::from_project_settings(&settings(json!({
            "lint": {"command": "cargo clippy"},
            "test": {"command": "cargo test", "timeout_seconds": 42},
        })))
        .unwrap();
        assert_eq!(s.get(CheckKind::Lint).unwrap().timeout_seconds, 180);
        assert_eq!(
            s.get(CheckKind::Test),
            Some(&CheckProfile { command: "cargo test".into(), timeout_seconds: 42 })
        );
        assert_eq!(s.get(CheckKind::Build), None);
        assert_eq!(
            ChecksSettings::from_project_settings(&Map::new()),
            Ok(ChecksSettings::default())
        );
    }

    #[test]
    fn every_problem_of_a_bad_setting_is_named_by_its_path() {
        let problems = ChecksSettings::from_project_settings(&settings(json!({
            "deploy": {"command": "make deploy"},
            "lint": {"command": "  "},
            "test": {"command": "t", "timeout_seconds": 0, "retries": 2},
            "build": "make",
        })))
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path).collect();
        assert!(paths.contains(&"settings.checks"), "{problems:?}");
        assert!(paths.contains(&"settings.checks.lint.command"), "{problems:?}");
        assert!(paths.contains(&"settings.checks.test.timeout_seconds"), "{problems:?}");
        assert!(paths.contains(&"settings.checks.test"), "{problems:?}");
        assert!(paths.contains(&"settings.checks.build"), "{problems:?}");
        let whole = ChecksSettings::from_project_settings(&settings(json!("cargo test")));
        assert_eq!(whole.unwrap_err()[0].path, "settings.checks");
        let long = "x".repeat(MAX_COMMAND_BYTES + 1);
        let big =
            ChecksSettings::from_project_settings(&settings(json!({"test": {"command": long}})));
        assert!(big.unwrap_err()[0].message.contains("4096"));
        let timeout = json!({"test": {"command": "t", "timeout_seconds": 3601}});
        assert!(ChecksSettings::from_project_settings(&settings(timeout)).is_err());
        let fractional = json!({"test": {"command": "t", "timeout_seconds": 1.5}});
        assert!(ChecksSettings::from_project_settings(&settings(fractional)).is_err());
        let missing = json!({"test": {"timeout_seconds": 10}});
        assert!(ChecksSettings::from_project_settings(&settings(missing)).is_err());
    }
}
