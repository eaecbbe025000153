//! Running one command: checks, start, supervision (timeouts, cancellation, output) and the
//! whole-tree kill and clean-up, for both modes.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::time::sleep_until;

use crate::capture::Capture;
use crate::cgroup::RunCgroup;
use crate::command::{CommandOutcome, CommandSpec, Limits, Output, Program, Status, TimeoutKind};
use crate::error::{Result, SandboxError};
use crate::launch::{self, ChildSetup};
use crate::settings::{SandboxMode, SandboxSettings};
use crate::{Isolation, Sandbox, bwrap, workspace};

/// The `PATH` of every command.
const COMMAND_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How long the tree kill may take before the run gives up waiting for stragglers.
const KILL_DEADLINE: Duration = Duration::from_secs(2);
const READ_BUFFER: usize = 256 * 1024;

impl Sandbox {
    /// Runs one command and reports how it ended.
    ///
    /// # Errors
    /// [`SandboxError::Unavailable`] when the sandbox cannot be set up (nothing ran),
    /// [`SandboxError::InvalidCommand`] for an unusable request, [`SandboxError::Log`] when the
    /// log file cannot be created. A command that started always gives an `Ok` outcome.
    pub async fn run(&self, spec: CommandSpec) -> Result<CommandOutcome> {
        let settings = &self.inner.settings;
        if !self.inner.capabilities.available {
            return Err(SandboxError::unavailable(self.inner.capabilities.reasons.join("; ")));
        }
        check_request(&spec)?;
        let started = Instant::now();
        if let Some(reason) = workspace::refusal(&spec.workspace) {
            return Ok(denied(reason, started, settings.mode == SandboxMode::Bwrap));
        }
        match (settings.mode, &self.inner.isolation) {
            (SandboxMode::None, _) => {
                let cwd = spec.workspace.clone();
                unisolated(settings, spec, &cwd).await
            }
            (SandboxMode::Bwrap, Some(isolation)) => isolated(settings, isolation, spec).await,
            (SandboxMode::Bwrap, None) => {
                Err(SandboxError::unavailable("the sandbox was not set up"))
            }
        }
    }
}

fn denied(reason: String, started: Instant, isolated: bool) -> CommandOutcome {
    CommandOutcome {
        status: Status::SandboxDenied { reason },
        duration_ms: millis(started.elapsed()),
        output: Output::default(),
        log: None,
        pids_limit_reached: false,
        isolated,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn check_request(spec: &CommandSpec) -> Result<()> {
    match &spec.program {
        Program::Argv(argv) if argv.is_empty() || argv[0].is_empty() => {
            return Err(SandboxError::invalid("the argv is empty"));
        }
        Program::Shell(line) if line.trim().is_empty() => {
            return Err(SandboxError::invalid("the command line is empty"));
        }
        Program::Argv(_) | Program::Shell(_) => {}
    }
    let strings: Vec<&str> = match &spec.program {
        Program::Argv(argv) => argv.iter().map(String::as_str).collect(),
        Program::Shell(line) => vec![line.as_str()],
    };
    if strings.iter().any(|s| s.contains('\0')) {
        return Err(SandboxError::invalid("the command contains a NUL byte"));
    }
    for (name, value) in &spec.env {
        let well_formed = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed || value.contains('\0') {
            return Err(SandboxError::invalid(format!("invalid environment variable {name:?}")));
        }
    }
    Ok(())
}

/// The command's environment, built from nothing.
fn environment(
    settings: &SandboxSettings,
    spec: &CommandSpec,
    home: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), COMMAND_PATH.into()),
        ("HOME".into(), home.display().to_string()),
        ("TMPDIR".into(), "/tmp".into()),
        ("TERM".into(), "dumb".into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    let mut set = |name: &str, value: String| {
        env.retain(|(n, _)| n != name);
        env.push((name.to_owned(), value));
    };
    for name in &settings.env_passthrough {
        if let Ok(value) = std::env::var(name) {
            set(name, value);
        }
    }
    for (name, value) in &spec.env {
        set(name, value.clone());
    }
    env
}

fn argv(settings: &SandboxSettings, program: &Program) -> Vec<String> {
    match program {
        Program::Argv(argv) => argv.clone(),
        Program::Shell(line) => {
            vec![settings.shell.display().to_string(), "-c".into(), line.clone()]
        }
    }
}

async fn open_log(spec: &CommandSpec) -> Result<Option<(PathBuf, tokio::fs::File)>> {
    match &spec.log_path {
        Some(path) => match tokio::fs::File::create(path).await {
            Ok(file) => Ok(Some((path.clone(), file))),
            Err(source) => Err(SandboxError::Log { path: path.clone(), source }),
        },
        None => Ok(None),
    }
}

/// Why the supervisor stopped a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout(TimeoutKind),
    Cancelled,
}

/// How to kill a command's whole tree.
enum Tree<'a> {
    Cgroup(&'a RunCgroup),
    /// The process group (and session) led by this pid.
    Group(i32),
}

impl Tree<'_> {
    fn kill(&self) {
        match self {
            Self::Cgroup(group) => group.kill(),
            Self::Group(pgid) => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(*pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Kills until the tree is empty or the deadline passes; whether it is empty.
    async fn kill_all(&self, deadline: Instant) -> bool {
        loop {
            self.kill();
            let empty = match self {
                Self::Cgroup(group) => group.members().is_empty(),
                // A process group has no member list; the group leader was reaped and the
                // signal reached every member still in the group.
                Self::Group(_) => true,
            };
            if empty || Instant::now() >= deadline {
                return empty;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Supervised {
    exit: Option<ExitStatus>,
    stop: Option<Stop>,
    output: Output,
    log: Option<crate::LogSummary>,
}

/// Waits for the command, feeding its output to `capture`, and kills its tree on timeout,
/// cancellation, or when the main process ends while others still hold the output open.
async fn supervise(
    mut child: tokio::process::Child,
    output: std::os::fd::OwnedFd,
    mut capture: Capture,
    limits: &Limits,
    cancel: &tokio_util::sync::CancellationToken,
    tree: &Tree<'_>,
    started: Instant,
) -> Supervised {
    let mut reader = match tokio::net::unix::pipe::Receiver::from_owned_fd(output) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the command's output");
            tree.kill();
            None
        }
    };
    let wall = tokio::time::Instant::from_std(started + limits.wall_timeout);
    let mut idle = tokio::time::Instant::now() + limits.idle_timeout;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut exit: Option<ExitStatus> = None;
    let mut stop: Option<Stop> = None;
    // Set once the tree was killed after the main process ended: a bound on draining.
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if exit.is_some() && reader.is_none() {
            break;
        }
        if exit.is_some() && drain_until.is_none() {
            // The main process is gone; whatever still holds the output open is killed.
            tree.kill();
            drain_until = Some(tokio::time::Instant::now() + KILL_DEADLINE);
        }
        let draining = drain_until.unwrap_or_else(|| wall + Duration::from_secs(3600));
        tokio::select! {
            biased;
            () = cancel.cancelled(), if stop.is_none() && exit.is_none() => {
                stop = Some(Stop::Cancelled);
                tree.kill();
            }
            () = sleep_until(wall), if stop.is_none() && exit.is_none() => {
                stop = Some(Stop::Timeout(TimeoutKind::Wall));
                tree.kill();
            }
            () = sleep_until(idle), if stop.is_none() && exit.is_none() => {
                stop = Some(Stop::Timeout(TimeoutKind::Idle));
                tree.kill();
            }
            status = child.wait(), if exit.is_none() => {
                match status {
                    Ok(status) => exit = Some(status),
                    Err(e) => {
                        tracing::error!(error = %e, "waiting for the command failed");
                        tree.kill();
                        exit = Some(std::os::unix::process::ExitStatusExt::from_raw(9));
                    }
                }
            }
            () = sleep_until(draining), if drain_until.is_some() => {
                tracing::warn!("the command's output stayed open after its tree was killed");
                reader = None;
            }
            read = async {
                match reader.as_mut() {
                    Some(r) => r.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            }, if reader.is_some() => {
                match read {
                    Ok(0) | Err(_) => reader = None,
                    Ok(n) => {
                        capture.push(&buf[..n]).await;
                        idle = tokio::time::Instant::now() + limits.idle_timeout;
                    }
                }
            }
        }
    }
    let (output, log) = capture.finish().await;
    Supervised { exit, stop, output, log }
}

fn exit_code(status: Option<ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => s.code().or_else(|| s.signal().map(|n| 128 + n)).unwrap_or(-1),
        None => -1,
    }
}

/// Runs `spec` in bubblewrap with every layer.
pub(crate) async fn isolated(
    settings: &SandboxSettings,
    iso: &Isolation,
    spec: CommandSpec,
) -> Result<CommandOutcome> {
    let started = Instant::now();
    let limits = spec.limits.clone().unwrap_or_else(|| settings.default_limits());
    let network = spec.network.unwrap_or(settings.network);
    let ws = spec.workspace.clone();

    let protected = workspace::protected_paths(&ws, &settings.protected_paths);
    if let Some((uid, gid)) = iso.switch_to {
        if let Some(reason) = unreachable_ancestor(&ws, uid, gid) {
            return Ok(denied(reason, started, true));
        }
        if settings.adopt_workspace {
            let (path, keep) = (ws.clone(), protected.clone());
            let since = iso.adopted(&ws);
            let walk_from = workspace::walk_started();
            let adopted = tokio::task::spawn_blocking(move || {
                workspace::adopt(&path, uid, gid, &keep, since)
            })
            .await;
            match adopted {
                Ok(Ok(done)) => {
                    iso.set_adopted(&ws, walk_from);
                    tracing::debug!(
                        changed = done.changed,
                        skipped = done.skipped,
                        "workspace adopted"
                    );
                }
                Ok(Err(e)) => {
                    return Ok(denied(
                        format!("cannot give the workspace to uid {uid}: {e}"),
                        started,
                        true,
                    ));
                }
                Err(e) => {
                    return Err(SandboxError::unavailable(format!(
                        "workspace adoption failed: {e}"
                    )));
                }
            }
        }
    }
    let log = open_log(&spec).await?;

    let mut group = CgroupGuard(Some(RunCgroup::create(&iso.layout, &limits).map_err(|e| {
        SandboxError::unavailable(format!("cannot create the command's cgroup: {e}"))
    })?));
    let filter = &iso.filters[usize::from(network)];
    let seccomp = launch::memory_file("agentd-seccomp", filter).map_err(|e| {
        SandboxError::unavailable(format!("cannot prepare the seccomp filter: {e}"))
    })?;
    let (read_end, write_end) = launch::pipe()
        .map_err(|e| SandboxError::unavailable(format!("cannot create the output pipe: {e}")))?;

    let command_argv = argv(settings, &spec.program);
    let args = bwrap::arguments(&bwrap::Plan {
        workspace: &ws,
        hide: &iso.hide,
        protected: &protected,
        network,
        disable_userns: iso.disable_userns,
        seccomp_fd: seccomp.as_raw_fd(),
        argv: &command_argv,
    });
    let cgroup = group.get()?;
    let setup = ChildSetup {
        cgroup_procs: cgroup.procs_files(),
        rlimits: ChildSetup::rlimits(
            limits.file_size_max_bytes,
            limits.open_files_max,
            limits.cpu_seconds_max,
        ),
        switch_to: iso.switch_to,
        keep_fd: Some(seccomp.as_raw_fd()),
        no_new_privs: true,
    };
    let env = environment(settings, &spec, Path::new("/tmp"));
    let child =
        spawn(&iso.bwrap, &args, &env, Path::new("/"), write_end, setup).await.map_err(|e| {
            SandboxError::unavailable(format!(
                "cannot start {} (after joining the command's cgroup and dropping privileges): {e}",
                iso.bwrap.display()
            ))
        })?;
    drop(seccomp);

    let capture =
        Capture::new(limits.output_max_bytes, log, limits.log_max_bytes, spec.live_output.clone());
    let tree = Tree::Cgroup(cgroup);
    let done = supervise(child, read_end, capture, &limits, &spec.cancel, &tree, started).await;
    if !tree.kill_all(Instant::now() + KILL_DEADLINE).await {
        tracing::error!(members = ?cgroup.members(), "processes of a command survived the kill");
    }
    let oom_kills = cgroup.oom_kills();
    let pids_limit_reached = cgroup.pids_limit_reached();
    group.remove().await;

    let code = exit_code(done.exit);
    let setup_failed = code == 1 && done.output.head.starts_with(b"bwrap: ");
    let status = match done.stop {
        Some(Stop::Cancelled) => Status::Killed,
        _ if oom_kills > 0 && code != 0 => Status::Oom,
        Some(Stop::Timeout(timeout)) => Status::TimedOut { timeout },
        None if setup_failed => Status::SandboxDenied {
            reason: String::from_utf8_lossy(&done.output.head)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        },
        None => Status::Exited { code },
    };
    Ok(CommandOutcome {
        status,
        duration_ms: millis(started.elapsed()),
        output: done.output,
        log: done.log,
        pids_limit_reached,
        isolated: true,
    })
}

/// Runs `spec` with no isolation (`AGENTD_SANDBOX=none`, and the probe's own helpers): a
/// cleared environment, closed descriptors, its own session, rlimits, the same supervision,
/// and a process-group kill.
pub(crate) async fn unisolated(
    settings: &SandboxSettings,
    spec: CommandSpec,
    cwd: &Path,
) -> Result<CommandOutcome> {
    let started = Instant::now();
    let limits = spec.limits.clone().unwrap_or_else(|| settings.default_limits());
    let log = open_log(&spec).await?;
    let (read_end, write_end) = launch::pipe()
        .map_err(|e| SandboxError::unavailable(format!("cannot create the output pipe: {e}")))?;
    let argv = argv(settings, &spec.program);
    let setup = ChildSetup {
        cgroup_procs: Vec::new(),
        rlimits: ChildSetup::rlimits(
            limits.file_size_max_bytes,
            limits.open_files_max,
            limits.cpu_seconds_max,
        ),
        switch_to: None,
        keep_fd: None,
        no_new_privs: false,
    };
    let env = environment(settings, &spec, cwd);
    let child = spawn(Path::new(&argv[0]), &argv[1..], &env, cwd, write_end, setup)
        .await
        .map_err(|e| SandboxError::unavailable(format!("cannot start {}: {e}", argv[0])))?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
    let capture =
        Capture::new(limits.output_max_bytes, log, limits.log_max_bytes, spec.live_output.clone());
    let tree = Tree::Group(pgid);
    let done = supervise(child, read_end, capture, &limits, &spec.cancel, &tree, started).await;
    if pgid > 0 {
        tree.kill();
    }
    let status = match done.stop {
        Some(Stop::Cancelled) => Status::Killed,
        Some(Stop::Timeout(timeout)) => Status::TimedOut { timeout },
        None => Status::Exited { code: exit_code(done.exit) },
    };
    Ok(CommandOutcome {
        status,
        duration_ms: millis(started.elapsed()),
        output: done.output,
        log: done.log,
        pids_limit_reached: false,
        isolated: false,
    })
}

/// Starts `program` with exactly `env`, stdin from `/dev/null`, stdout and stderr into
/// `output`, after `setup`.
#[allow(
    clippy::disallowed_methods,
    reason = "agentd-sandbox is the one place that starts processes"
)]
async fn spawn<A: AsRef<std::ffi::OsStr>>(
    program: &Path,
    args: &[A],
    env: &[(String, String)],
    cwd: &Path,
    output: std::os::fd::OwnedFd,
    setup: ChildSetup,
) -> std::io::Result<tokio::process::Child> {
    let stderr = output.try_clone()?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    setup.install(&mut command);
    launch::start(command).await
}

/// An ancestor of `ws` that `uid:gid` cannot traverse (bubblewrap resolves the workspace as
/// that uid), with a hint.
fn unreachable_ancestor(ws: &Path, uid: u32, gid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    for dir in ws.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else { continue };
        let mode = meta.mode();
        let searchable = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Some(format!(
                "{} is not searchable by the sandbox uid {uid}; give it mode o+x (0711 keeps it \
                 unlistable) or move the workspaces elsewhere",
                dir.display()
            ));
        }
    }
    None
}

/// Kills and removes the command's cgroups even when the run is abandoned half-way.
struct CgroupGuard(Option<RunCgroup>);

impl CgroupGuard {
    fn get(&self) -> Result<&RunCgroup> {
        self.0.as_ref().ok_or_else(|| SandboxError::unavailable("the command's cgroup is gone"))
    }

    async fn remove(&mut self) {
        let Some(mut group) = self.0.take() else { return };
        let deadline = Instant::now() + KILL_DEADLINE;
        loop {
            let busy = group.remove();
            if busy.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    ?busy,
                    "command cgroups left behind; they are removed at the next start"
                );
                return;
            }
            group.kill();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(group) = &mut self.0 {
            group.kill();
            let _ = group.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_built_from_nothing() {
        let settings = SandboxSettings::default();
        let spec =
            CommandSpec::shell("true", "/ws").with_env("PROJECT", "demo").with_env("TERM", "xterm");
        let env = environment(&settings, &spec, Path::new("/tmp"));
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        let allowed = ["PATH", "HOME", "TMPDIR", "TERM", "LANG", "LC_ALL", "TZ", "PROJECT"];
        assert!(names.iter().all(|n| allowed.contains(n)), "{names:?}");
        let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(value("PATH"), Some(COMMAND_PATH));
        assert_eq!(value("HOME"), Some("/tmp"));
        assert_eq!(value("TERM"), Some("xterm"), "the caller's value wins");
        assert_eq!(value("PROJECT"), Some("demo"));
        assert_eq!(names.iter().filter(|n| **n == "TERM").count(), 1);
    }

    #[test]
    fn malformed_requests_are_refused_before_anything_runs() {
        let cases = [
            CommandSpec::argv(Vec::<String>::new(), "/ws"),
            CommandSpec::shell("  ", "/ws"),
            CommandSpec::shell("echo a\0b", "/ws"),
            CommandSpec::shell("true", "/ws").with_env("A=B", "x"),
            CommandSpec::shell("true", "/ws").with_env("", "x"),
            CommandSpec::shell("true", "/ws").with_env("OK", "nul\0"),
        ];
        for spec in cases {
            assert!(
                matches!(check_request(&spec), Err(SandboxError::InvalidCommand { .. })),
                "{spec:?}"
            );
        }
        assert!(check_request(&CommandSpec::argv(["ls", "-la"], "/ws")).is_ok());
    }
}
