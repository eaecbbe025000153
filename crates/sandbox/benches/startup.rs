//! The sandbox's start-up overhead: `true` run through the full sandbox (workspace adoption,
//! a cgroup per run, seccomp, bubblewrap with every namespace, the uid switch, clean-up), many
//! times, in an empty workspace and in one of 10,000 files, with the unsandboxed launcher
//! (`AGENTD_SANDBOX=none`) as the baseline.
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
use std::time::{Duration, Instant};

use agentd_sandbox::{CommandSpec, Sandbox, SandboxMode, SandboxSettings, Status};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn measure(sandbox: &Sandbox, ws: &std::path::Path, iterations: usize) -> Vec<Duration> {
    for _ in 0..10 {
        sandbox.run(CommandSpec::argv(["true"], ws)).await.unwrap();
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let out = sandbox.run(CommandSpec::argv(["true"], ws)).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(out.status, Status::Exited { code: 0 });
    }
    times.sort();
    times
}

fn report(name: &str, times: &[Duration]) {
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

        let sandbox = Sandbox::new(SandboxSettings::default()).await;
        let caps = sandbox.capabilities();
        assert!(caps.available, "the sandbox is unavailable: {}", caps.reasons.join("; "));
        println!(
            "# bubblewrap {}, cgroup {} (kill: {}), {} cores, probe {} ms",
            caps.bwrap.version.as_deref().unwrap_or("?"),
            caps.cgroup.version,
            caps.cgroup.kill,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            caps.probe_duration_ms
        );
        println!("| `true` through | runs | p50 ms | p90 ms | p99 ms | mean ms |");
        println!("|---|---|---|---|---|---|");
        report("the full sandbox", &measure(&sandbox, &ws, iterations).await);
        // Adoption walks the workspace before each command: its cost grows with the tree.
        let big = dir.path().join("big");
        for d in 0..100 {
            let sub = big.join(format!("dir{d}"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..100 {
                std::fs::write(sub.join(format!("file{f}.txt")), "x").unwrap();
            }
        }
        report(
            "the full sandbox, 10,000-file workspace",
            &measure(&sandbox, &big, iterations).await,
        );
        let bare =
            Sandbox::new(SandboxSettings { mode: SandboxMode::None, ..SandboxSettings::default() })
                .await;
        report("no isolation (`AGENTD_SANDBOX=none`)", &measure(&bare, &ws, iterations).await);
    });
}
