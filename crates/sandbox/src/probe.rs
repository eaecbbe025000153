//! The start-up probe: finds bubblewrap, the cgroup layout and the uid, builds the seccomp
//! programs, then runs a trial command through the full sandbox and checks from inside what it
//! got (uid, capabilities, no-new-privileges, seccomp). Any failure makes the sandbox
//! unavailable, with the reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::capabilities::{BwrapReport, Capabilities, TrialReport};
use crate::cgroup::{self, CgroupReport};
use crate::command::{CommandSpec, Limits, Status};
use crate::settings::{SandboxMode, SandboxSettings};
use crate::{Isolation, run, seccomp};

/// Where a bare `bwrap_path` is looked up (agentd's own `PATH` is not trusted for this).
const SYSTEM_PATH: &[&str] =
    &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The first version of bubblewrap with `--disable-userns`.
const DISABLE_USERNS_SINCE: (u32, u32, u32) = (0, 8, 0);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) async fn probe(settings: &SandboxSettings) -> (Capabilities, Option<Isolation>) {
    let started = Instant::now();
    let euid = nix::unistd::geteuid();
    let egid = nix::unistd::getegid();
    let mut caps = Capabilities {
        mode: settings.mode,
        available: false,
        reasons: Vec::new(),
        bwrap: BwrapReport::default(),
        user_namespaces: user_namespaces(),
        seccomp: seccomp::SUPPORTED && Path::new("/proc/sys/kernel/seccomp/actions_avail").exists(),
        cgroup: CgroupReport::none(),
        landlock_abi: landlock_abi(),
        uid: euid.as_raw(),
        gid: egid.as_raw(),
        network_default: settings.network,
        trial: TrialReport::default(),
        probe_duration_ms: 0,
    };
    if let Err(e) = settings.validate() {
        caps.reasons.push(format!("invalid sandbox settings: {e}"));
        caps.probe_duration_ms = millis(started.elapsed());
        return (caps, None);
    }
    if settings.mode == SandboxMode::None {
        caps.available = true;
        caps.network_default = true;
        caps.reasons.push(
            "AGENTD_SANDBOX=none: commands run without any isolation, as agentd's own user".into(),
        );
        caps.probe_duration_ms = millis(started.elapsed());
        return (caps, None);
    }

    let switch_to = euid.is_root().then_some((settings.uid, settings.gid));
    if let Some((uid, gid)) = switch_to {
        caps.uid = uid;
        caps.gid = gid;
    }
    if !caps.user_namespaces {
        caps.reasons.push("user namespaces are disabled (user.max_user_namespaces = 0)".into());
    }
    if !caps.seccomp {
        caps.reasons.push("seccomp filters are not available on this machine".into());
    }
    let bwrap = resolve_bwrap(&settings.bwrap_path);
    let mut disable_userns = false;
    match &bwrap {
        None => caps.reasons.push(format!(
            "bubblewrap not found ({}); install it, e.g. `apt-get install bubblewrap`",
            settings.bwrap_path.display()
        )),
        Some(path) => {
            caps.bwrap.path = Some(path.display().to_string());
            match bwrap_version(settings, path).await {
                Ok(version) => {
                    disable_userns =
                        parse_version(&version).is_some_and(|v| v >= DISABLE_USERNS_SINCE);
                    caps.bwrap.version = Some(version);
                    caps.bwrap.disable_userns = disable_userns;
                }
                Err(reason) => caps.reasons.push(reason),
            }
        }
    }
    let layout = match cgroup::detect(settings) {
        Ok(layout) => {
            layout.remove_stale();
            caps.cgroup = layout.report();
            Some(layout)
        }
        Err(reason) => {
            caps.reasons.push(reason);
            None
        }
    };
    let hide = hide_paths(settings);

    let (Some(bwrap), Some(layout), true) = (bwrap, layout, caps.reasons.is_empty()) else {
        caps.probe_duration_ms = millis(started.elapsed());
        return (caps, None);
    };
    let filters = [false, true].map(|network| {
        seccomp::compile(seccomp::FilterOptions { network, bwrap_disables_userns: disable_userns })
    });
    let isolation = Isolation {
        bwrap,
        layout,
        hide,
        switch_to,
        disable_userns,
        filters,
        adopted: std::sync::Mutex::default(),
    };
    caps.trial = trial(settings, &isolation).await;
    let problems =
        if caps.trial.passed { Vec::new() } else { trial_problems(&caps.trial, caps.uid) };
    caps.reasons.extend(problems);
    caps.available = caps.reasons.is_empty();
    caps.probe_duration_ms = millis(started.elapsed());
    let available = caps.available;
    (caps, available.then_some(isolation))
}

fn trial_problems(trial: &TrialReport, uid: u32) -> Vec<String> {
    let problems = trial.problems(uid);
    if problems.is_empty() { vec!["the trial command did not pass".into()] } else { problems }
}

/// The hidden paths, absolute and without duplicates.
fn hide_paths(settings: &SandboxSettings) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for path in &settings.hide_paths {
        if let Ok(abs) = std::path::absolute(path)
            && !out.contains(&abs)
        {
            out.push(abs);
        }
    }
    out
}

fn user_namespaces() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, this system call only
    // returns the ABI version (or an error); it touches no memory.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).ok().filter(|v| *v > 0)
}

fn resolve_bwrap(configured: &Path) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if configured.components().count() > 1 || configured.is_absolute() {
        return executable(configured).then(|| configured.to_path_buf());
    }
    SYSTEM_PATH.iter().map(|dir| Path::new(dir).join(configured)).find(|p| executable(p))
}

async fn bwrap_version(settings: &SandboxSettings, bwrap: &Path) -> Result<String, String> {
    let spec = CommandSpec::argv([bwrap.display().to_string(), "--version".into()], "/")
        .with_limits(short_limits(settings));
    let outcome = run::unisolated(settings, spec, Path::new("/"))
        .await
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    let text = outcome.output.text();
    match outcome.status {
        Status::Exited { code: 0 } => {
            Ok(text.trim().strip_prefix("bubblewrap ").unwrap_or(text.trim()).to_owned())
        }
        other => Err(format!("{} --version failed: {other:?}: {}", bwrap.display(), text.trim())),
    }
}

fn short_limits(settings: &SandboxSettings) -> Limits {
    Limits {
        wall_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        output_max_bytes: 64 * 1024,
        ..settings.default_limits()
    }
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

/// Runs `cat /proc/self/status` through the full sandbox in a scratch workspace.
async fn trial(settings: &SandboxSettings, isolation: &Isolation) -> TrialReport {
    let started = Instant::now();
    let ws = std::env::temp_dir().join(format!("agentd-probe-{}", uuid::Uuid::new_v4().simple()));
    let mut report = TrialReport::default();
    if let Err(e) = std::fs::create_dir(&ws) {
        tracing::error!(path = %ws.display(), error = %e, "cannot create the probe workspace");
        return report;
    }
    let spec = CommandSpec::argv(["cat", "/proc/self/status"], ws.clone())
        .with_limits(short_limits(settings));
    let outcome = run::isolated(settings, isolation, spec).await;
    let _ = std::fs::remove_dir_all(&ws);
    match outcome {
        Ok(outcome) => {
            report = TrialReport::from_status(&outcome.output.text());
            let expected =
                isolation.switch_to.map_or_else(|| nix::unistd::geteuid().as_raw(), |(u, _)| u);
            if outcome.status != (Status::Exited { code: 0 }) {
                let first_line = outcome.output.text().lines().next().unwrap_or("").to_owned();
                report.failure = Some(match outcome.status {
                    Status::SandboxDenied { reason } => reason,
                    other => format!("{other:?}: {first_line}"),
                });
            }
            report.passed = report.problems(expected).is_empty();
        }
        Err(e) => report.failure = Some(e.to_string()),
    }
    report.duration_ms = millis(started.elapsed());
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_numerically() {
        assert_eq!(parse_version("0.8.0"), Some((0, 8, 0)));
        assert_eq!(parse_version("0.11"), Some((0, 11, 0)));
        assert!(parse_version("0.11").unwrap() >= DISABLE_USERNS_SINCE);
        assert!(parse_version("0.7.9").unwrap() < DISABLE_USERNS_SINCE);
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn a_bare_name_is_looked_up_in_the_system_path_only() {
        assert!(resolve_bwrap(Path::new("sh")).is_some_and(|p| p.is_absolute()));
        assert_eq!(resolve_bwrap(Path::new("/nonexistent/bwrap")), None);
        assert_eq!(resolve_bwrap(Path::new("agentd-no-such-program")), None);
    }
}
