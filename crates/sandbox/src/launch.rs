//! Starting a child process: the only place agentd forks, and the only `unsafe` in agentd.
//!
//! Between `fork` and `exec` the child runs [`ChildSetup::apply`], which only makes
//! async-signal-safe system calls on data prepared beforehand (no allocation, no locks):
//! 1. `setsid`: a new session and process group, no controlling terminal;
//! 2. join the command's cgroups (write `0` into each `cgroup.procs`), before anything else can
//!    fork, so the whole tree is accounted and killable;
//! 3. rlimits: `RLIMIT_FSIZE`, `RLIMIT_NOFILE`, `RLIMIT_CPU`, and no core dumps;
//! 4. mark every inherited descriptor from 3 up close-on-exec (`close_range`), except the
//!    seccomp program's, so no descriptor of agentd reaches the sandbox;
//! 5. drop to the sandbox uid and gid (real, effective and saved; supplementary groups
//!    cleared), when agentd runs as root;
//! 6. `PR_SET_NO_NEW_PRIVS`, so no setuid program can regain privileges.
//!
//! The environment is not touched here: the caller builds it from nothing (`env_clear`) so
//! that bubblewrap itself, and so `/proc/<pid>/environ` of every process in the sandbox, never
//! holds agentd's variables.
//!
//! Every fork happens on one long-lived thread ([`start`]). bubblewrap's `--die-with-parent`
//! is a parent-death signal, and Linux sends it when the *thread* that forked exits, not the
//! process: forking on a runtime thread that later ends (a blocking-pool thread, a worker
//! handed over by `block_in_place`) would kill commands in the middle of their run.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

/// An rlimit resource and its value (soft = hard).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rlimit {
    resource: libc::__rlimit_resource_t,
    value: u64,
}

/// What the child does before it execs, prepared in the parent.
#[derive(Debug, Clone)]
pub(crate) struct ChildSetup {
    pub cgroup_procs: Vec<CString>,
    pub rlimits: Vec<Rlimit>,
    /// `(uid, gid)` to switch to; `None` keeps agentd's (when it is not root).
    pub switch_to: Option<(u32, u32)>,
    /// A descriptor to keep open across exec (the seccomp program bubblewrap reads).
    pub keep_fd: Option<RawFd>,
    pub no_new_privs: bool,
}

impl ChildSetup {
    pub(crate) fn rlimits(file_size: u64, open_files: u64, cpu_seconds: u64) -> Vec<Rlimit> {
        vec![
            Rlimit { resource: libc::RLIMIT_FSIZE, value: file_size },
            Rlimit { resource: libc::RLIMIT_NOFILE, value: open_files },
            Rlimit { resource: libc::RLIMIT_CPU, value: cpu_seconds },
            Rlimit { resource: libc::RLIMIT_CORE, value: 0 },
        ]
    }

    /// Installs the setup on `command`.
    pub(crate) fn install(self, command: &mut tokio::process::Command) {
        // SAFETY: `apply` runs in the forked child before exec and only calls async-signal-safe
        // functions (setsid, open, write, close, setrlimit, getrlimit, syscall(close_range),
        // fcntl, setgroups, setresgid, setresuid, getuid, prctl) on data owned by the closure;
        // it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || self.apply());
        }
    }

    fn apply(&self) -> io::Result<()> {
        // SAFETY: plain system calls on valid arguments; see `install`.
        unsafe {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            for path in &self.cgroup_procs {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = io::Error::last_os_error();
                libc::close(fd);
                if written != 1 {
                    return Err(error);
                }
            }
            for limit in &self.rlimits {
                let wanted = libc::rlimit { rlim_cur: limit.value, rlim_max: limit.value };
                if libc::setrlimit(limit.resource, &wanted) != 0 {
                    // Not root: the hard limit cannot be raised; lower the soft one instead.
                    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                    if libc::getrlimit(limit.resource, &mut current) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let soft = libc::rlimit {
                        rlim_cur: limit.value.min(current.rlim_max),
                        rlim_max: current.rlim_max,
                    };
                    if libc::setrlimit(limit.resource, &soft) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            mark_inherited_fds_cloexec()?;
            if let Some(fd) = self.keep_fd
                && libc::fcntl(fd, libc::F_SETFD, 0) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if let Some((uid, gid)) = self.switch_to {
                let groups = [gid];
                if libc::setgroups(1, groups.as_ptr()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::getuid() != uid || libc::geteuid() != uid {
                    return Err(io::Error::from_raw_os_error(libc::EPERM));
                }
            }
            if self.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Marks every descriptor from 3 up close-on-exec.
///
/// # Safety
/// Called only in the forked child; async-signal-safe.
unsafe fn mark_inherited_fds_cloexec() -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags of this process.
    let done = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk the descriptor table up to the open-file limit.
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let top = limit.rlim_max.min(1 << 20) as i32;
    for fd in 3..top {
        // SAFETY: fcntl on a descriptor that may not exist fails harmlessly with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// A command to start, the runtime its child belongs to, and where the child goes.
struct Job {
    command: tokio::process::Command,
    runtime: tokio::runtime::Handle,
    reply: tokio::sync::oneshot::Sender<io::Result<tokio::process::Child>>,
}

static LAUNCHER: std::sync::OnceLock<io::Result<std::sync::mpsc::Sender<Job>>> =
    std::sync::OnceLock::new();

fn launcher() -> io::Result<&'static std::sync::mpsc::Sender<Job>> {
    let started = LAUNCHER.get_or_init(|| {
        let (sender, jobs) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new().name("agentd-launcher".into()).spawn(move || {
            for mut job in jobs {
                let child = {
                    let _runtime = job.runtime.enter();
                    job.command.spawn()
                };
                // Dropping the command closes agentd's copies of the output pipe's write end,
                // so the output ends when the last process of the command closes it.
                drop(job.command);
                // A caller that went away drops the child, which kills it (`kill_on_drop`).
                let _ = job.reply.send(child);
            }
        })?;
        Ok(sender)
    });
    started.as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))
}

/// Starts `command` on the launcher thread, registered with the current runtime.
pub(crate) async fn start(command: tokio::process::Command) -> io::Result<tokio::process::Child> {
    let (reply, child) = tokio::sync::oneshot::channel();
    let job = Job { command, runtime: tokio::runtime::Handle::current(), reply };
    launcher()?.send(job).map_err(|_| io::Error::other("the launcher thread is gone"))?;
    child.await.map_err(|_| io::Error::other("the launcher thread is gone"))?
}

/// An in-memory file holding `bytes`, close-on-exec, positioned at its start.
pub(crate) fn memory_file(name: &str, bytes: &[u8]) -> io::Result<std::os::fd::OwnedFd> {
    use std::io::{Seek, SeekFrom, Write};
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file.into())
}

/// A pipe whose both ends are close-on-exec and blocking (the child's end must block: a
/// non-blocking stdout breaks ordinary programs).
pub(crate) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // A larger pipe means fewer wake-ups under a flood of output; failure is harmless.
    let _ = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    Ok((read, write))
}
