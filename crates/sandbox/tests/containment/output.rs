//! Output: capped in memory at head + tail with a marker, stored whole in the log, and never a
//! reason for agentd's memory to grow or for a run to hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use agentd_sandbox::{CommandSpec, Limits, Status};

use crate::support::{Fixture, resident_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gibibytes_of_output_are_capped_logged_whole_and_cost_no_memory() {
    let fx = Fixture::production().await;
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("command.log");
    let total: u64 = 2 << 30;

    // Sample agentd's resident memory while the flood runs.
    let baseline = resident_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let spec = CommandSpec::shell(
        format!("echo first; head -c {total} /dev/zero; echo; echo last"),
        &fx.ws,
    )
    .with_log(&log);
    let out = fx.run(spec).await;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    assert_eq!(out.status, Status::Exited { code: 0 }, "{:?}", out.duration());
    let expected = total + "first\n".len() as u64 + "\nlast\n".len() as u64;
    assert_eq!(out.output.total_bytes, expected);
    let cap = fx.limits().output_max_bytes;
    assert_eq!(out.output.head.len() + out.output.tail.len(), cap);
    assert!(out.output.head.starts_with(b"first\n"));
    assert!(out.output.tail.ends_with(b"\nlast\n"));
    assert!(out.output.text().contains(&format!("bytes of output omitted ({expected} in all)")));
    let summary = out.log.clone().unwrap();
    assert_eq!((summary.bytes, summary.truncated), (expected, false));
    assert_eq!(std::fs::metadata(&log).unwrap().len(), expected);
    let grown = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!("2 GiB of output: {:?}, agentd grew by at most {} KiB", out.duration(), grown / 1024);
    assert!(grown < 64 << 20, "agentd's memory grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_output_keeps_its_start_and_end_with_a_marker() {
    let fx = Fixture::production().await;
    let limits = Limits { output_max_bytes: 2048, ..fx.limits() };
    let out =
        fx.run(CommandSpec::shell("seq 1 100000; echo oops >&2", &fx.ws).with_limits(limits)).await;
    let text = out.output.text();
    assert!(text.starts_with("1\n2\n3\n"), "{text}");
    assert!(text.ends_with("99999\n100000\noops\n"), "stderr is interleaved at its place: {text}");
    assert!(out.output.truncated());
    assert!(text.contains("bytes of output omitted"), "{text}");
    assert_eq!(out.output.head.len() + out.output.tail.len(), 2048);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_empty_so_a_reader_does_not_hang() {
    let fx = Fixture::production().await;
    let out = fx.sh("cat; read line; echo read=$?; tty || true").await;
    assert_eq!(out.status, Status::Exited { code: 0 });
    assert_eq!(out.output.text(), "read=1\nnot a tty\n");
}
