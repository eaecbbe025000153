//! One cgroup per command: pids, memory and CPU limits, the whole-tree kill, and the OOM and
//! pids-limit counters the outcome reports.
//!
//! Two layouts are supported, detected at start-up:
//! - **v2** (unified): `<root>/<parent>/<run>` with `pids.max`, `memory.max`,
//!   `memory.swap.max`, `memory.oom.group`, `cpu.max`; killed with `cgroup.kill`.
//! - **v1** (legacy or hybrid): one `<run>` directory under `<parent>` in each of the `pids`,
//!   `memory` and `cpu` hierarchies, plus `freezer` when mounted and the v2 mount of a hybrid
//!   machine when it offers `cgroup.kill`; killed with `cgroup.kill` when there is one, else by
//!   freezing the group and signalling every member.
//!
//! The command joins its cgroups before bubblewrap starts (the child writes `0`, meaning
//! itself, into each `cgroup.procs`), so no process of the command ever runs outside them.
//! This module only touches the cgroup file system; it never starts processes.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::command::Limits;
use crate::settings::{CgroupVersion, SandboxSettings};

const CONTROLLERS: [&str; 3] = ["pids", "memory", "cpu"];
const CPU_PERIOD_US: u64 = 100_000;
/// The CPU weight of all commands together against agentd's own threads: a quarter of the
/// default, so that a busy command never slows agentd down (v1 `cpu.shares`, default 1024;
/// v2 `cpu.weight`, default 100).
const COMMANDS_CPU_SHARES: &str = "256";
const COMMANDS_CPU_WEIGHT: &str = "25";

/// How the command cgroups are laid out on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The unified hierarchy; `parent` is `<mount>/<cgroup_parent>`.
    V2 { parent: PathBuf },
    /// The v1 hierarchies, each path being `<mount>/<cgroup_parent>`.
    V1 {
        pids: PathBuf,
        memory: PathBuf,
        cpu: PathBuf,
        freezer: Option<PathBuf>,
        unified: Option<PathBuf>,
    },
}

/// What the probe reports about cgroups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupReport {
    /// `v1` or `v2`; `none` when no usable layout was found.
    pub version: String,
    /// Controllers agentd can write (`pids`, `memory`, `cpu`).
    pub writable_controllers: Vec<String>,
    /// How a command's process tree is killed: `cgroup.kill`, `freezer` or `signal`.
    pub kill: String,
    /// The cgroup holding the command cgroups, in each hierarchy used.
    pub parents: Vec<PathBuf>,
}

impl CgroupReport {
    pub(crate) fn none() -> Self {
        Self {
            version: "none".into(),
            writable_controllers: Vec::new(),
            kill: "signal".into(),
            parents: Vec::new(),
        }
    }
}

fn v2_mount(root: &Path) -> Option<PathBuf> {
    [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|p| p.join("cgroup.controllers").is_file())
}

fn v2_controllers(mount: &Path) -> Vec<String> {
    fs::read_to_string(mount.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn v1_mount(root: &Path, controller: &str) -> Option<PathBuf> {
    let path = root.join(controller);
    path.join("tasks").is_file().then_some(path)
}

/// Finds a usable layout and creates the parent cgroups.
pub(crate) fn detect(settings: &SandboxSettings) -> Result<Layout, String> {
    let root = &settings.cgroup_root;
    if !root.is_dir() {
        return Err(format!("the cgroup root {} does not exist", root.display()));
    }
    let unified = v2_mount(root);
    let v2_ready = unified.as_ref().is_some_and(|m| {
        let have = v2_controllers(m);
        CONTROLLERS.iter().all(|c| have.iter().any(|h| h == c))
    });
    let v1_ready = CONTROLLERS.iter().all(|c| v1_mount(root, c).is_some());
    let use_v2 = match settings.cgroup_version {
        CgroupVersion::Auto => v2_ready || !v1_ready,
        CgroupVersion::V2 => true,
        CgroupVersion::V1 => false,
    };
    let parent = Path::new(&settings.cgroup_parent);
    let missing_v1 = || -> Vec<&str> {
        CONTROLLERS.iter().copied().filter(|c| v1_mount(root, c).is_none()).collect()
    };
    if settings.cgroup_version == CgroupVersion::Auto && !v2_ready && !v1_ready {
        return Err(format!(
            "no usable cgroups under {}: no v2 hierarchy with the pids, memory and cpu \
             controllers, and cgroup v1 controllers missing: {}",
            root.display(),
            missing_v1().join(", ")
        ));
    }
    if use_v2 {
        let Some(mount) = unified.filter(|_| v2_ready) else {
            return Err(format!(
                "no cgroup v2 hierarchy with the pids, memory and cpu controllers under {}",
                root.display()
            ));
        };
        let dir = mount.join(parent);
        create_v2_parent(&mount, parent)
            .and_then(|()| fs::write(dir.join("cpu.weight"), COMMANDS_CPU_WEIGHT))
            .map_err(|e| format!("cannot prepare the cgroup {}: {e}", dir.display()))?;
        return Ok(Layout::V2 { parent: dir });
    }
    if !v1_ready {
        return Err(format!(
            "cgroup v1 controllers missing under {}: {}",
            root.display(),
            missing_v1().join(", ")
        ));
    }
    let prepared = |controller: &str| -> Result<Option<PathBuf>, String> {
        let Some(mount) = v1_mount(root, controller) else { return Ok(None) };
        let dir = mount.join(parent);
        fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the cgroup {}: {e}", dir.display()))?;
        Ok(Some(dir))
    };
    let missing = || "a cgroup v1 controller vanished".to_owned();
    let pids = prepared("pids")?.ok_or_else(missing)?;
    let memory = prepared("memory")?.ok_or_else(missing)?;
    let cpu = prepared("cpu")?.ok_or_else(missing)?;
    fs::write(cpu.join("cpu.shares"), COMMANDS_CPU_SHARES)
        .map_err(|e| format!("cannot set the CPU weight of {}: {e}", cpu.display()))?;
    let freezer = prepared("freezer").ok().flatten();
    let unified = unified.and_then(|mount| {
        let dir = mount.join(parent);
        fs::create_dir_all(&dir).ok()?;
        // Leaf cgroups of a v2 mount offer cgroup.kill (Linux 5.14+); check on a child.
        let probe = dir.join(owned_name("probe"));
        fs::create_dir(&probe).ok()?;
        let has_kill = probe.join("cgroup.kill").is_file();
        let _ = fs::remove_dir(&probe);
        has_kill.then_some(dir)
    });
    Ok(Layout::V1 { pids, memory, cpu, freezer, unified })
}

fn create_v2_parent(mount: &Path, parent: &Path) -> io::Result<()> {
    let enable = CONTROLLERS.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
    let mut dir = mount.to_path_buf();
    for part in parent.components() {
        enable_controllers(&dir, &enable)?;
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    enable_controllers(&dir, &enable)
}

fn enable_controllers(dir: &Path, enable: &str) -> io::Result<()> {
    let file = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&file)?;
    if CONTROLLERS.iter().all(|c| current.split_whitespace().any(|h| h == *c)) {
        return Ok(());
    }
    fs::write(&file, enable)
}

impl Layout {
    pub(crate) fn report(&self) -> CgroupReport {
        match self {
            Self::V2 { parent } => CgroupReport {
                version: "v2".into(),
                writable_controllers: CONTROLLERS.iter().map(|c| (*c).to_owned()).collect(),
                kill: "cgroup.kill".into(),
                parents: vec![parent.clone()],
            },
            Self::V1 { pids, memory, cpu, freezer, unified } => {
                let mut parents = vec![pids.clone(), memory.clone(), cpu.clone()];
                parents.extend(freezer.iter().cloned());
                parents.extend(unified.iter().cloned());
                CgroupReport {
                    version: "v1".into(),
                    writable_controllers: CONTROLLERS.iter().map(|c| (*c).to_owned()).collect(),
                    kill: if unified.is_some() {
                        "cgroup.kill".into()
                    } else if freezer.is_some() {
                        "freezer".into()
                    } else {
                        "signal".into()
                    },
                    parents,
                }
            }
        }
    }

    /// Removes the cgroups left by agentd processes that died (their names carry the pid of
    /// their creator). Those of live processes, this one included, are never touched: a fresh
    /// command cgroup is empty until its command joins it.
    pub(crate) fn remove_stale(&self) {
        let parents: Vec<&PathBuf> = match self {
            Self::V2 { parent } => vec![parent],
            Self::V1 { pids, memory, cpu, freezer, unified } => {
                let mut v = vec![pids, memory, cpu];
                v.extend(freezer.iter());
                v.extend(unified.iter());
                v
            }
        };
        for parent in parents {
            let Ok(entries) = fs::read_dir(parent) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if creator(&name.to_string_lossy()).is_some_and(|pid| !is_alive(pid)) {
                    let _ = fs::remove_dir(entry.path());
                }
            }
        }
    }
}

/// `<kind>-<pid>-<uuid>`: a cgroup name that says which process created it.
fn owned_name(kind: &str) -> String {
    format!("{kind}-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())
}

/// The pid in a name made by [`owned_name`].
fn creator(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("run-").or_else(|| name.strip_prefix("probe-"))?;
    rest.split('-').next()?.parse().ok()
}

fn is_alive(pid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The cgroups of one command.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    /// Every directory created, in creation order.
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, as C strings for the child to write into.
    procs: Vec<CString>,
    /// The file listing the members (pids of the whole tree).
    members: PathBuf,
    /// `cgroup.kill`, when available.
    kill_file: Option<PathBuf>,
    /// `freezer.state` (v1) or `cgroup.freeze` (v2 without `cgroup.kill`), when available.
    freeze: Option<(PathBuf, &'static str, &'static str)>,
    /// Where the OOM-kill counter is read, and its file format.
    oom_file: PathBuf,
    pids_events: PathBuf,
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot write {}: {e}", dir.join(file).display()))
    })
}

fn procs_path(dir: &Path) -> io::Result<CString> {
    CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cgroup path contains NUL"))
}

impl RunCgroup {
    /// Creates the cgroups of one command with its limits.
    pub(crate) fn create(layout: &Layout, limits: &Limits) -> io::Result<Self> {
        let name = owned_name("run");
        let quota = (limits.cpu_millis * CPU_PERIOD_US / 1000).max(1000);
        let mut group = Self {
            dirs: Vec::new(),
            procs: Vec::new(),
            members: PathBuf::new(),
            kill_file: None,
            freeze: None,
            oom_file: PathBuf::new(),
            pids_events: PathBuf::new(),
        };
        let result = group.populate(layout, &name, limits, quota);
        match result {
            Ok(()) => Ok(group),
            Err(e) => {
                group.remove();
                Err(e)
            }
        }
    }

    fn mkdir(&mut self, parent: &Path, name: &str) -> io::Result<PathBuf> {
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create the cgroup {}: {e}", dir.display()))
        })?;
        self.dirs.push(dir.clone());
        self.procs.push(procs_path(&dir)?);
        Ok(dir)
    }

    fn populate(
        &mut self,
        layout: &Layout,
        name: &str,
        limits: &Limits,
        quota: u64,
    ) -> io::Result<()> {
        match layout {
            Layout::V2 { parent } => {
                let dir = self.mkdir(parent, name)?;
                write(&dir, "pids.max", &limits.pids_max.to_string())?;
                write(&dir, "memory.max", &limits.memory_max_bytes.to_string())?;
                if dir.join("memory.swap.max").is_file() {
                    write(&dir, "memory.swap.max", "0")?;
                }
                if dir.join("memory.oom.group").is_file() {
                    write(&dir, "memory.oom.group", "1")?;
                }
                write(&dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
                self.members = dir.join("cgroup.procs");
                self.kill_file = Some(dir.join("cgroup.kill")).filter(|p| p.is_file());
                self.freeze = Some((dir.join("cgroup.freeze"), "1", "0"));
                self.oom_file = dir.join("memory.events");
                self.pids_events = dir.join("pids.events");
            }
            Layout::V1 { pids, memory, cpu, freezer, unified } => {
                let pids_dir = self.mkdir(pids, name)?;
                write(&pids_dir, "pids.max", &limits.pids_max.to_string())?;
                let memory_dir = self.mkdir(memory, name)?;
                write(&memory_dir, "memory.limit_in_bytes", &limits.memory_max_bytes.to_string())?;
                if memory_dir.join("memory.memsw.limit_in_bytes").is_file() {
                    write(
                        &memory_dir,
                        "memory.memsw.limit_in_bytes",
                        &limits.memory_max_bytes.to_string(),
                    )?;
                }
                let cpu_dir = self.mkdir(cpu, name)?;
                write(&cpu_dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                write(&cpu_dir, "cpu.cfs_quota_us", &quota.to_string())?;
                if let Some(freezer) = freezer {
                    let dir = self.mkdir(freezer, name)?;
                    self.freeze = Some((dir.join("freezer.state"), "FROZEN", "THAWED"));
                }
                if let Some(unified) = unified {
                    let dir = self.mkdir(unified, name)?;
                    self.kill_file = Some(dir.join("cgroup.kill"));
                }
                self.members = pids_dir.join("cgroup.procs");
                self.oom_file = memory_dir.join("memory.oom_control");
                self.pids_events = pids_dir.join("pids.events");
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files the child joins before it execs.
    pub(crate) fn procs_files(&self) -> Vec<CString> {
        self.procs.clone()
    }

    /// The pids of every process in the command's tree.
    pub(crate) fn members(&self) -> Vec<i32> {
        fs::read_to_string(&self.members)
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills every process in the command's tree (one step; call until [`Self::members`] is
    /// empty).
    pub(crate) fn kill(&self) {
        if let Some(kill) = &self.kill_file
            && fs::write(kill, "1").is_ok()
        {
            return;
        }
        let frozen = self.freeze.as_ref().is_some_and(|(file, on, _)| fs::write(file, on).is_ok());
        for pid in self.members() {
            if pid > 0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if frozen && let Some((file, _, off)) = &self.freeze {
            let _ = fs::write(file, off);
        }
    }

    /// How many processes the kernel killed at the memory limit.
    pub(crate) fn oom_kills(&self) -> u64 {
        counter(&self.oom_file, "oom_kill")
    }

    /// Whether a fork failed at `pids.max`.
    pub(crate) fn pids_limit_reached(&self) -> bool {
        counter(&self.pids_events, "max") > 0
    }

    /// Removes the cgroups; those still busy are kept (for another try) and returned.
    pub(crate) fn remove(&mut self) -> Vec<PathBuf> {
        let mut busy = Vec::new();
        for dir in self.dirs.drain(..).rev() {
            if let Err(e) = fs::remove_dir(&dir)
                && e.kind() != io::ErrorKind::NotFound
            {
                busy.push(dir);
            }
        }
        busy.reverse();
        self.dirs.clone_from(&busy);
        busy
    }
}

/// Reads `name N` from a flat-keyed cgroup file.
fn counter(file: &Path, name: &str) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut parts = line.split_whitespace();
                (parts.next() == Some(name)).then(|| parts.next()?.parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_flat_keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        fs::write(&file, "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n").unwrap();
        assert_eq!(counter(&file, "oom_kill"), 2);
        assert_eq!(counter(&file, "max"), 4);
        assert_eq!(counter(&file, "absent"), 0);
        assert_eq!(counter(&dir.path().join("missing"), "max"), 0);
    }

    #[test]
    fn only_cgroups_of_dead_creators_are_stale() {
        let mine = owned_name("run");
        assert_eq!(creator(&mine), Some(std::process::id() as i32));
        assert!(is_alive(std::process::id() as i32));
        assert_eq!(creator("run-abc"), None);
        assert_eq!(creator("other-12-x"), None);
        // Pids above the kernel's maximum never exist.
        assert!(!is_alive(creator("probe-99999999-0f").unwrap()));
    }

    #[test]
    fn a_missing_cgroup_root_is_reported_by_path() {
        let settings = SandboxSettings {
            cgroup_root: PathBuf::from("/nonexistent/cgroup"),
            ..SandboxSettings::default()
        };
        let err = detect(&settings).unwrap_err();
        assert!(err.contains("/nonexistent/cgroup"), "{err}");
    }
}
