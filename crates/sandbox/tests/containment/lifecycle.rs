//! The whole process tree ends with the command: after a timeout, a cancellation, or the main
//! process exiting, including processes that left the session with `setsid`.

use std::path::Path;
use std::time::{Duration, Instant};

use agentd_sandbox::{CommandSpec, Limits, SandboxMode, SandboxSettings, Status, TimeoutKind};
use tokio_util::sync::CancellationToken;

use crate::support::{Fixture, eventually, marker, open_dir, processes_with, production_settings};

/// Starts three escapees (a `setsid` child, a double-forked `setsid nohup` child, a plain
/// background child) and a main process, all named `$MARK` so they can be found from outside.
const ESCAPEES: &str = "setsid bash -c 'exec -a \"$MARK\" sleep 600' & \
    (setsid nohup bash -c 'exec -a \"$MARK\" sleep 600' >/dev/null 2>&1 &); \
    bash -c 'exec -a \"$MARK\" sleep 600' & \
    echo started; exec -a \"$MARK\" sleep 600";

async fn escapees_outlive_nothing(fx: &Fixture, stop: Stop) {
    let mark = marker("escapee");
    let cancel = CancellationToken::new();
    let limits = Limits { wall_timeout: Duration::from_secs(3), ..fx.limits() };
    let spec = CommandSpec::shell(ESCAPEES, &fx.ws)
        .with_env("MARK", &mark)
        .with_limits(limits)
        .with_cancel(cancel.clone());
    let sandbox = fx.sandbox.clone();
    let started = Instant::now();
    let run = tokio::spawn(async move { sandbox.run(spec).await });
    eventually("the four processes to start", Duration::from_secs(5), || {
        processes_with(&mark).len() >= 4
    })
    .await;
    let stopped_at = match stop {
        Stop::Cancel => {
            cancel.cancel();
            Instant::now()
        }
        Stop::Timeout => started + Duration::from_secs(3),
    };
    let out = run.await.unwrap().unwrap();
    let ended = Instant::now();
    let expected = match stop {
        Stop::Cancel => Status::Killed,
        Stop::Timeout => Status::TimedOut { timeout: TimeoutKind::Wall },
    };
    assert_eq!(out.status, expected);
    assert!(
        ended.saturating_duration_since(stopped_at) <= Duration::from_secs(2),
        "took {:?}",
        ended - stopped_at
    );
    let left = processes_with(&mark);
    assert!(left.is_empty(), "survivors: {left:?}");
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancel,
    Timeout,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setsid_grandchildren_do_not_outlive_a_timeout() {
    let fx = Fixture::production().await;
    fx.require_available();
    escapees_outlive_nothing(&fx, Stop::Timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_kills_the_whole_tree_within_two_seconds() {
    let fx = Fixture::production().await;
    fx.require_available();
    escapees_outlive_nothing(&fx, Stop::Cancel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroup_kill_the_freezer_leaves_no_survivors_either() {
    // A cgroup root offering only the v1 controllers (as on a machine with no v2 mount), so
    // the tree is killed by freezing the cgroup and signalling every member.
    let cgroups = tempfile::tempdir().unwrap();
    open_dir(cgroups.path());
    for controller in ["pids", "memory", "cpu", "freezer"] {
        std::os::unix::fs::symlink(
            Path::new("/sys/fs/cgroup").join(controller),
            cgroups.path().join(controller),
        )
        .unwrap();
    }
    let root = cgroups.path().to_path_buf();
    let fx = Fixture::with_settings(move |data| SandboxSettings {
        cgroup_root: root,
        ..production_settings(data)
    })
    .await;
    fx.require_available();
    assert_eq!(fx.sandbox.capabilities().cgroup.kill, "freezer");
    escapees_outlive_nothing(&fx, Stop::Timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_processes_end_with_the_main_process() {
    let fx = Fixture::production().await;
    let mark = marker("background");
    let spec = CommandSpec::shell(
        "(setsid bash -c 'exec -a \"$MARK\" sleep 600' &); echo finished",
        &fx.ws,
    )
    .with_env("MARK", &mark);
    let out = fx.run(spec).await;
    assert_eq!(out.status, Status::Exited { code: 0 });
    assert_eq!(out.output.text(), "finished\n");
    assert!(out.duration() < Duration::from_secs(5), "{:?}", out.duration());
    assert!(processes_with(&mark).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsandboxed_mode_still_times_out_and_kills_its_process_group() {
    let fx = Fixture::with_settings(|data| SandboxSettings {
        mode: SandboxMode::None,
        ..production_settings(data)
    })
    .await;
    let mark = marker("group");
    let limits = Limits { wall_timeout: Duration::from_secs(1), ..fx.limits() };
    let spec = CommandSpec::shell(
        "bash -c 'exec -a \"$MARK\" sleep 600' & exec -a \"$MARK\" sleep 600",
        &fx.ws,
    )
    .with_env("MARK", &mark)
    .with_limits(limits);
    let out = fx.run(spec).await;
    assert_eq!(out.status, Status::TimedOut { timeout: TimeoutKind::Wall });
    assert!(!out.isolated);
    assert!(out.duration() < Duration::from_secs(3));
    assert!(processes_with(&mark).is_empty(), "{:?}", processes_with(&mark));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_again_while_commands_start_disturbs_none_of_them() {
    // A probe clears cgroups left by dead agentd processes; a command's fresh cgroup is empty
    // for a moment before the command joins it, and must not be taken for one.
    let fx = Fixture::production().await;
    fx.require_available();
    let settings = fx.sandbox.settings().clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut probes = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(agentd_sandbox::probe(&settings).await.available);
                probes += 1;
            }
            probes
        })
    };
    for i in 0..40 {
        let out = fx.run(CommandSpec::argv(["true"], &fx.ws)).await;
        assert_eq!(out.status, Status::Exited { code: 0 }, "run {i}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(prober.await.unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_outlives_the_thread_that_started_it() {
    // bubblewrap dies with the *thread* that forked it (`--die-with-parent`): the run below
    // starts on a thread that then ends, as a blocking-pool thread does, and finishes elsewhere.
    let fx = Fixture::production().await;
    fx.require_available();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let spec = CommandSpec::shell("echo started; sleep 1; echo alive", &fx.ws).with_live_output(tx);
    let sandbox = fx.sandbox.clone();
    let run: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
        Box::pin(async move { sandbox.run(spec).await });
    let handle = tokio::runtime::Handle::current();
    let thread = std::thread::spawn(move || {
        let mut run = run;
        handle.block_on(async {
            tokio::select! {
                _ = &mut run => panic!("the command ended before it printed"),
                chunk = rx.recv() => assert_eq!(chunk.unwrap(), b"started\n"),
            }
        });
        run
    });
    let run = tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
    let out = run.await.unwrap();
    assert_eq!(out.status, Status::Exited { code: 0 }, "{}", out.output.text());
    assert_eq!(out.output.text(), "started\nalive\n");
}
