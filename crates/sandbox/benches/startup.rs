//! The sandbox's start-up overhead: `true` run through the full sandbox (workspace adoption,
//! a cgroup per run, seccomp, bubblewrap with every namespace, the uid switch, clean-up), in an
//! empty workspace and in one of 10,000 files, beside two baselines: bubblewrap alone with the
//! same namespaces (the peer: what any bubblewrap-based sandbox pays), and the unsandboxed
//! launcher (`AGENTD_SANDBOX=none`). The four are interleaved, run after run, so that a busy
//! machine slows them alike.
//!
//! ```sh
//! cargo bench -p agentd-sandbox --bench startup            # 300 runs each
//! ITERATIONS=1000 cargo bench -p agentd-sandbox --bench startup
//! ```
//!
//! Needs root and bubblewrap, like the containment suite. Figures go to docs/benchmarks.md.

// A benchmark's job is to print its figures.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use agentd_sandbox::{CommandSpec, Sandbox, SandboxMode, SandboxSettings, Status};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn once(sandbox: &Sandbox, spec: CommandSpec) -> Duration {
    let started = Instant::now();
    let out = sandbox.run(spec).await.unwrap();
    let took = started.elapsed();
    assert_eq!(out.status, Status::Exited { code: 0 }, "{}", out.output.text());
    took
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    println!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        times.len(),
        percentile(times, 0.50).as_secs_f64() * 1e3,
        percentile(times, 0.90).as_secs_f64() * 1e3,
        percentile(times, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
    );
}

/// bubblewrap alone, with the namespaces and mounts of the full sandbox but none of agentd's
/// other layers, started through the unsandboxed launcher.
fn bare_bwrap(bwrap: &str, ws: &Path) -> CommandSpec {
    let ws = ws.display().to_string();
    let args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--bind",
        &ws,
        &ws,
        "--",
        "true",
    ];
    CommandSpec::argv(args, ws.clone())
}

fn main() {
    let iterations: usize =
        std::env::var("ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        // Adoption walks the workspace before each command: its cost grows with the tree.
        let big = dir.path().join("big");
        for d in 0..100 {
            let sub = big.join(format!("dir{d}"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..100 {
                std::fs::write(sub.join(format!("file{f}.txt")), "x").unwrap();
            }
        }

        let sandbox = Sandbox::new(SandboxSettings::default()).await;
        let caps = sandbox.capabilities().clone();
        assert!(caps.available, "the sandbox is unavailable: {}", caps.reasons.join("; "));
        let bare =
            Sandbox::new(SandboxSettings { mode: SandboxMode::None, ..SandboxSettings::default() })
                .await;
        let bwrap = caps.bwrap.path.clone().unwrap();
        println!(
            "# bubblewrap {}, cgroup {} (kill: {}), {} cores, probe {} ms",
            caps.bwrap.version.as_deref().unwrap_or("?"),
            caps.cgroup.version,
            caps.cgroup.kill,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            caps.probe_duration_ms
        );
        let mut times: [Vec<Duration>; 4] = Default::default();
        for i in 0..iterations + 10 {
            let round = [
                once(&sandbox, CommandSpec::argv(["true"], &ws)).await,
                once(&sandbox, CommandSpec::argv(["true"], &big)).await,
                once(&bare, bare_bwrap(&bwrap, &ws)).await,
                once(&bare, CommandSpec::argv(["true"], &ws)).await,
            ];
            if i >= 10 {
                for (all, t) in times.iter_mut().zip(round) {
                    all.push(t);
                }
            }
        }
        println!("| `true` through | runs | p50 ms | p90 ms | p99 ms | mean ms |");
        println!("|---|---|---|---|---|---|");
        let [full, big_ws, peer, none] = &mut times;
        report("the full sandbox", full);
        report("the full sandbox, 10,000-file workspace", big_ws);
        report("bubblewrap alone, same namespaces (peer)", peer);
        report("no isolation (`AGENTD_SANDBOX=none`)", none);
    });
}
