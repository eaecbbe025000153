//! Resource limits: a fork bomb held at `pids.max` while agentd stays responsive, a memory bomb
//! ending as `oom`, a CPU loop and a silent command stopped by their timeouts, and the rlimits.

use std::time::{Duration, Instant};

use agentd_sandbox::{CommandSpec, Limits, Status, TimeoutKind};

use crate::support::{Fixture, marker, processes_with, resident_bytes};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_held_at_pids_max_while_health_stays_fast() {
    let fx = Fixture::production().await;
    fx.require_available();
    assert!(fx.limits().pids_max <= 256);
    let app = agentd_test_support::spawn_app().await;
    let mark = marker("bomb");
    let limits = Limits { wall_timeout: Duration::from_secs(8), ..fx.limits() };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    // The bomb runs beside a PID 1 that stays: when PID 1 ends, the kernel ends the whole PID
    // namespace, which would stop a bare bomb at once.
    let spec =
        CommandSpec::shell(format!(": {mark}; echo started; :(){{ :|:& }};:; sleep 600"), &fx.ws)
            .with_limits(limits)
            .with_live_output(tx);
    let sandbox = fx.sandbox.clone();
    let run = tokio::spawn(async move { sandbox.run(spec).await });
    let first = rx.recv().await.unwrap();
    assert!(String::from_utf8_lossy(&first).contains("started"));
    // Let the bomb fill its cgroup before measuring.
    crate::support::eventually("the bomb to spread", Duration::from_secs(5), || {
        processes_with(&mark).len() >= 100
    })
    .await;

    let mut latencies = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        let response = app.client.get(app.url("/health")).send().await.unwrap();
        assert!(response.status().is_success());
        latencies.push(started.elapsed());
    }
    let during = processes_with(&mark).len();
    assert!(!run.is_finished(), "the bomb ended before the measurement did");
    latencies.sort();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    eprintln!(
        "fork bomb: {during} bomb processes; /health p50 {p50:?}, p99 {p99:?} over {} requests",
        latencies.len()
    );

    let out = run.await.unwrap().unwrap();
    assert_eq!(out.status, Status::TimedOut { timeout: TimeoutKind::Wall });
    assert!(out.pids_limit_reached, "the bomb never reached pids.max");
    assert!(during <= 256, "{during} processes exceeded pids.max");
    assert!(p99 < Duration::from_millis(100), "/health p99 {p99:?} while the bomb ran");
    let left = processes_with(&mark);
    assert!(
        left.is_empty(),
        "{} bomb processes survived: {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_ends_as_oom_without_touching_agentds_memory() {
    let fx = Fixture::production().await;
    let before = resident_bytes();
    // `tail` keeps the whole current line, and /dev/zero never ends one.
    let out = fx.sh("tail /dev/zero").await;
    let after = resident_bytes();
    assert_eq!(out.status, Status::Oom, "{:?}: {}", out.status, out.output.text());
    let grown = after.saturating_sub(before);
    assert!(grown < before / 10 + (16 << 20), "agentd grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_loop_is_killed_at_its_timeout() {
    let fx = Fixture::production().await;
    let limits = Limits { wall_timeout: Duration::from_secs(2), ..fx.limits() };
    let out = fx.run(CommandSpec::shell("while :; do :; done", &fx.ws).with_limits(limits)).await;
    assert_eq!(out.status, Status::TimedOut { timeout: TimeoutKind::Wall });
    assert!(out.duration() >= Duration::from_secs(2), "{:?}", out.duration());
    assert!(out.duration() <= Duration::from_secs(4), "killed late: {:?}", out.duration());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_command_hits_the_no_output_timeout() {
    let fx = Fixture::production().await;
    let limits = Limits { idle_timeout: Duration::from_secs(1), ..fx.limits() };
    let spec = CommandSpec::shell("echo working; sleep 600", &fx.ws).with_limits(limits);
    let out = fx.run(spec).await;
    assert_eq!(out.status, Status::TimedOut { timeout: TimeoutKind::Idle });
    assert!(out.duration() < Duration::from_secs(3), "{:?}", out.duration());
    assert_eq!(out.output.text(), "working\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlimits_cap_file_size_open_files_and_cpu_time() {
    let fx = Fixture::production().await;
    let limits = Limits { file_size_max_bytes: 1 << 20, ..fx.limits() };
    let spec = CommandSpec::shell(
        "echo nofile=$(ulimit -n) cpu=$(ulimit -t) core=$(ulimit -c); head -c 2M /dev/zero > big; echo head=$?",
        &fx.ws,
    )
    .with_limits(limits);
    let out = fx.run(spec).await;
    let text = out.output.text();
    assert!(text.contains("nofile=1024 cpu=600 core=0"), "{text}");
    assert!(text.contains("head=153"), "expected SIGXFSZ: {text}");
    assert_eq!(std::fs::metadata(fx.ws.join("big")).unwrap().len(), 1 << 20);
}
