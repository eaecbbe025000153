//! The sandbox's settings: which isolation to use, the uid commands run as, where the cgroups
//! live, what is hidden from commands, and the default limits of a command.
//!
//! These are plain data, deserialised by the server as the `[sandbox]` section of its settings;
//! [`SandboxSettings::validate`] checks them and names the offending key.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How commands are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// bubblewrap, seccomp, cgroups, rlimits and a non-root uid (the default).
    #[default]
    Bwrap,
    /// No isolation at all: only timeouts, output caps and the process-group kill. Refused in
    /// production.
    None,
}

/// Which cgroup hierarchy holds the limits of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    /// The unified (v2) hierarchy when it has the pids, memory and cpu controllers, else v1.
    #[default]
    Auto,
    /// The v1 controllers (`pids`, `memory`, `cpu`), plus the v2 mount for `cgroup.kill` when a
    /// hybrid machine has one.
    V1,
    /// The unified hierarchy only.
    V2,
}

impl std::fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bwrap => "bwrap",
            Self::None => "none",
        })
    }
}

/// Settings of the sandbox (the `[sandbox]` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// `bwrap` (default) or `none`.
    pub mode: SandboxMode,
    /// The bubblewrap executable: a name looked up in the system `PATH`, or an absolute path.
    pub bwrap_path: PathBuf,
    /// The shell that runs shell-command strings (`<shell> -c <command>`).
    pub shell: PathBuf,
    /// The uid commands run as when agentd runs as root. Never 0.
    pub uid: u32,
    /// The gid commands run as when agentd runs as root. Never 0.
    pub gid: u32,
    /// Where the cgroup hierarchies are mounted.
    pub cgroup_root: PathBuf,
    /// Which cgroup hierarchy to use.
    pub cgroup_version: CgroupVersion,
    /// The cgroup (under each hierarchy) that holds one child cgroup per command.
    pub cgroup_parent: String,
    /// Whether commands may use the network by default (a project may still turn it on).
    pub network: bool,
    /// Host paths replaced by an empty tmpfs inside the sandbox (agentd's data directory is
    /// always added). Relative paths are taken from agentd's working directory.
    pub hide_paths: Vec<PathBuf>,
    /// Paths inside each workspace that commands may read but not change, when they exist.
    pub protected_paths: Vec<PathBuf>,
    /// Variables copied from agentd's own environment into commands (never secrets).
    pub env_passthrough: Vec<String>,
    /// When agentd runs as root, give the workspace's files to the sandbox uid before each
    /// command so that the command can write them.
    pub adopt_workspace: bool,
    /// The default limits of one command.
    pub limits: LimitSettings,
}

/// The limits of one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// The wall-clock timeout.
    pub wall_timeout_seconds: u64,
    /// The no-output timeout: a command silent for this long is stopped.
    pub idle_timeout_seconds: u64,
    /// Output kept in memory and returned: half from the start, half from the end.
    pub output_max_bytes: u64,
    /// The largest full log written to the log file; the rest is counted, not stored.
    pub log_max_bytes: u64,
    /// The memory limit of the command's cgroup (no swap).
    pub memory_max_bytes: u64,
    /// The most processes and threads the command may have at once.
    pub pids_max: u64,
    /// The CPU quota in thousandths of a core (1000 = one core).
    pub cpu_millis: u64,
    /// `RLIMIT_FSIZE`: the largest file a command may write.
    pub file_size_max_bytes: u64,
    /// `RLIMIT_NOFILE`: open files per process.
    pub open_files_max: u64,
    /// `RLIMIT_CPU`: CPU seconds per process.
    pub cpu_seconds_max: u64,
}

/// The largest `pids_max` accepted.
pub const PIDS_MAX_LIMIT: u64 = 32_768;

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            mode: SandboxMode::Bwrap,
            bwrap_path: PathBuf::from("bwrap"),
            shell: PathBuf::from("/bin/bash"),
            uid: 65_534,
            gid: 65_534,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_version: CgroupVersion::Auto,
            cgroup_parent: "agentd".into(),
            network: false,
            hide_paths: ["/home", "/root", "/tmp", "/var/tmp", "/run", "/var/lib/agentd"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            protected_paths: vec![PathBuf::from(".git/hooks"), PathBuf::from(".git/config")],
            env_passthrough: vec!["LANG".into(), "LC_ALL".into(), "TZ".into()],
            adopt_workspace: true,
            limits: LimitSettings::default(),
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            wall_timeout_seconds: 60,
            idle_timeout_seconds: 30,
            output_max_bytes: 1 << 20,
            log_max_bytes: 4 << 30,
            memory_max_bytes: 2 << 30,
            pids_max: 256,
            cpu_millis: 1000,
            file_size_max_bytes: 1 << 30,
            open_files_max: 1024,
            cpu_seconds_max: 600,
        }
    }
}

/// A setting that fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    /// The dotted key inside the sandbox section, e.g. `limits.pids_max`.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> InvalidSetting {
    InvalidSetting { key, message: message.into() }
}

impl SandboxSettings {
    /// Checks every value, naming the first bad key.
    ///
    /// # Errors
    /// An [`InvalidSetting`] naming the key (relative to the sandbox section).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.mode == SandboxMode::Bwrap {
            if self.uid == 0 {
                return Err(invalid("uid", "must not be 0: commands never run as root"));
            }
            if self.gid == 0 {
                return Err(invalid("gid", "must not be 0: commands never run as root"));
            }
        }
        if self.bwrap_path.as_os_str().is_empty() {
            return Err(invalid("bwrap_path", "must not be empty"));
        }
        if !self.shell.is_absolute() {
            return Err(invalid("shell", "must be an absolute path"));
        }
        if !self.cgroup_root.is_absolute() {
            return Err(invalid("cgroup_root", "must be an absolute path"));
        }
        if !is_plain_relative(Path::new(&self.cgroup_parent)) {
            return Err(invalid("cgroup_parent", "must be a relative path without `..`"));
        }
        if let Some(p) = self.hide_paths.iter().find(|p| p.as_os_str().is_empty()) {
            return Err(invalid("hide_paths", format!("empty path in the list: {p:?}")));
        }
        if let Some(p) = self.protected_paths.iter().find(|p| !is_plain_relative(p)) {
            return Err(invalid(
                "protected_paths",
                format!("{} must be relative to the workspace, without `..`", p.display()),
            ));
        }
        if let Some(name) = self.env_passthrough.iter().find(|n| !is_passable_variable(n)) {
            return Err(invalid(
                "env_passthrough",
                format!(
                    "{name:?} cannot be passed to commands (not a variable name, an AGENTD_ \
                     variable, or a name that looks like a secret)"
                ),
            ));
        }
        self.limits.validate()
    }

    /// The limits, as [`crate::Limits`] a command starts from.
    #[must_use]
    pub fn default_limits(&self) -> crate::Limits {
        crate::Limits::from(&self.limits)
    }
}

impl LimitSettings {
    /// Checks every limit, naming the first bad key.
    ///
    /// # Errors
    /// An [`InvalidSetting`] naming the key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let positive: [(&'static str, u64); 8] = [
            ("limits.wall_timeout_seconds", self.wall_timeout_seconds),
            ("limits.idle_timeout_seconds", self.idle_timeout_seconds),
            ("limits.output_max_bytes", self.output_max_bytes),
            ("limits.pids_max", self.pids_max),
            ("limits.cpu_millis", self.cpu_millis),
            ("limits.file_size_max_bytes", self.file_size_max_bytes),
            ("limits.open_files_max", self.open_files_max),
            ("limits.cpu_seconds_max", self.cpu_seconds_max),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "must be greater than 0"));
        }
        if self.pids_max > PIDS_MAX_LIMIT {
            return Err(invalid("limits.pids_max", format!("must be at most {PIDS_MAX_LIMIT}")));
        }
        if self.memory_max_bytes < 16 << 20 {
            return Err(invalid("limits.memory_max_bytes", "must be at least 16 MiB (16777216)"));
        }
        if self.cpu_millis < 10 {
            return Err(invalid("limits.cpu_millis", "must be at least 10"));
        }
        if self.open_files_max < 16 {
            return Err(invalid("limits.open_files_max", "must be at least 16"));
        }
        if self.output_max_bytes < 1024 {
            return Err(invalid("limits.output_max_bytes", "must be at least 1024"));
        }
        Ok(())
    }
}

/// `a/b` yes; `/a`, `../a`, `a/../b` and `` no.
fn is_plain_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// A variable name that may be copied into commands.
fn is_passable_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let well_formed = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let secret_like = ["KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH"]
        .iter()
        .any(|w| upper.contains(w));
    well_formed && !secret_like && !upper.starts_with("AGENTD_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        SandboxSettings::default().validate().unwrap();
    }

    #[test]
    fn a_root_uid_is_refused() {
        let s = SandboxSettings { uid: 0, ..SandboxSettings::default() };
        assert_eq!(s.validate().unwrap_err().key, "uid");
    }

    #[test]
    fn secret_looking_variables_cannot_be_passed_through() {
        for name in ["OPENAI_API_KEY", "GITHUB_TOKEN", "AGENTD_SECRET_KEY", "DB_PASSWORD", "1X", ""]
        {
            let s = SandboxSettings {
                env_passthrough: vec![name.into()],
                ..SandboxSettings::default()
            };
            assert_eq!(s.validate().unwrap_err().key, "env_passthrough", "{name}");
        }
    }

    #[test]
    fn protected_paths_must_stay_inside_the_workspace() {
        for p in ["/etc", "../x", ".git/../../x", ""] {
            let s = SandboxSettings {
                protected_paths: vec![PathBuf::from(p)],
                ..SandboxSettings::default()
            };
            assert_eq!(s.validate().unwrap_err().key, "protected_paths", "{p}");
        }
    }

    #[test]
    fn limits_name_the_bad_key() {
        let mut s = SandboxSettings::default();
        s.limits.pids_max = PIDS_MAX_LIMIT + 1;
        assert_eq!(s.validate().unwrap_err().key, "limits.pids_max");
        s.limits.pids_max = 0;
        assert_eq!(s.validate().unwrap_err().key, "limits.pids_max");
        s.limits.pids_max = 64;
        s.limits.wall_timeout_seconds = 0;
        assert_eq!(s.validate().unwrap_err().key, "limits.wall_timeout_seconds");
    }
}
