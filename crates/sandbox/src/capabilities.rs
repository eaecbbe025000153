//! What the sandbox found on this machine at start-up, as shown by readiness and
//! `GET /v1/system/capabilities`.

use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupReport;
use crate::settings::SandboxMode;

/// bubblewrap as found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BwrapReport {
    /// The executable used.
    pub path: Option<String>,
    /// Its version (`0.8.0`).
    pub version: Option<String>,
    /// Whether it supports `--disable-userns` (0.8.0 and later).
    pub disable_userns: bool,
}

/// What a trial command saw inside the sandbox at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialReport {
    /// Whether the trial command ran and every check passed.
    pub passed: bool,
    /// The uid it ran as.
    pub uid: Option<u32>,
    /// Its effective capabilities (`0000000000000000` when none).
    pub cap_eff: Option<String>,
    /// `1` when no-new-privileges was set.
    pub no_new_privs: Option<u8>,
    /// `2` when a seccomp filter was installed.
    pub seccomp_mode: Option<u8>,
    /// How long the trial took, in milliseconds.
    pub duration_ms: u64,
    /// Why the trial command did not run to its end, if it did not.
    pub failure: Option<String>,
}

/// The sandbox's capabilities on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `bwrap` or `none`.
    pub mode: SandboxMode,
    /// Whether commands can run. When `false`, command tools answer `sandbox_unavailable`.
    pub available: bool,
    /// Why not available, and warnings (always one with `mode = none`).
    pub reasons: Vec<String>,
    /// bubblewrap.
    pub bwrap: BwrapReport,
    /// Whether unprivileged user namespaces can be created.
    pub user_namespaces: bool,
    /// Whether this build has a seccomp filter for this machine and the kernel supports it.
    pub seccomp: bool,
    /// The cgroup layout in use.
    pub cgroup: CgroupReport,
    /// The Landlock ABI version the kernel offers, if any (reported; agentd does not use it).
    pub landlock_abi: Option<u32>,
    /// The uid commands run as.
    pub uid: u32,
    /// The gid commands run as.
    pub gid: u32,
    /// Whether commands get the network unless a project says otherwise.
    pub network_default: bool,
    /// The trial command's findings.
    pub trial: TrialReport,
    /// How long the probe took, in milliseconds.
    pub probe_duration_ms: u64,
}

impl TrialReport {
    /// Reads the interesting lines of `/proc/self/status`, as printed by the trial command.
    pub(crate) fn from_status(text: &str) -> Self {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
                .map(str::trim)
        };
        Self {
            passed: false,
            uid: field("Uid").and_then(|v| v.split_whitespace().next()?.parse().ok()),
            cap_eff: field("CapEff").map(str::to_owned),
            no_new_privs: field("NoNewPrivs").and_then(|v| v.parse().ok()),
            seccomp_mode: field("Seccomp").and_then(|v| v.parse().ok()),
            duration_ms: 0,
            failure: None,
        }
    }

    /// What is wrong with the trial, if anything, given the expected uid.
    pub(crate) fn problems(&self, expected_uid: u32) -> Vec<String> {
        if let Some(failure) = &self.failure {
            return vec![format!("the trial command failed: {failure}")];
        }
        let mut problems = Vec::new();
        if self.uid != Some(expected_uid) {
            problems
                .push(format!("trial command ran as uid {:?}, expected {expected_uid}", self.uid));
        }
        if self.uid == Some(0) {
            problems.push("trial command ran as root".into());
        }
        if self.cap_eff.as_deref().is_none_or(|c| !c.trim_start_matches('0').is_empty()) {
            problems.push(format!("trial command kept capabilities: {:?}", self.cap_eff));
        }
        if self.no_new_privs != Some(1) {
            problems.push("trial command lacks no-new-privileges".into());
        }
        if self.seccomp_mode != Some(2) {
            problems.push("trial command has no seccomp filter".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tcat\nUid:\t65534\t65534\t65534\t65534\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";

    #[test]
    fn a_confined_trial_has_no_problems() {
        let trial = TrialReport::from_status(STATUS);
        assert_eq!(trial.uid, Some(65_534));
        assert_eq!(trial.seccomp_mode, Some(2));
        assert!(trial.problems(65_534).is_empty(), "{:?}", trial.problems(65_534));
    }

    #[test]
    fn each_missing_layer_is_named() {
        let root = STATUS
            .replace("65534", "0")
            .replace("CapEff:\t0000000000000000", "CapEff:\t000001ffffffffff")
            .replace("NoNewPrivs:\t1", "NoNewPrivs:\t0")
            .replace("Seccomp:\t2", "Seccomp:\t0");
        let problems = TrialReport::from_status(&root).problems(65_534).join("; ");
        for word in ["uid", "root", "capabilities", "no-new-privileges", "seccomp"] {
            assert!(problems.contains(word), "{word}: {problems}");
        }
    }
}
