//! `agentd serve`: startup, readiness, database outages, graceful shutdown.

use std::time::{Duration, Instant};

use agentd_test_support::TestDatabase;
use agentd_test_support::postgres::TempCluster;
use nix::sys::signal::Signal;

use crate::{get, serve};

/// Polls `url` until it answers `status` or `within` passes; returns how long it took.
fn until_status(url: &str, status: u16, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if get(url).is_some_and(|(s, _)| s == status) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn serve_with_no_configuration_uses_the_defaults_and_is_ready_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let server = serve(dir.path(), &[]);
    let ready = until_status("http://127.0.0.1:8080/health/ready", 200, Duration::from_secs(5));
    let ready = ready.map(|_| started.elapsed());
    assert!(ready.is_some(), "not ready; log:\n{}", server.stderr_text());
    assert!(ready.unwrap() < Duration::from_secs(1), "ready after {ready:?}");
    assert!(dir.path().join("agentd-data/agentd.db").exists());
    let addr = server.wait_listening(Duration::from_secs(1));
    assert_eq!(addr.to_string(), "127.0.0.1:8080");
}

#[test]
fn serve_on_postgres_is_ready_within_a_second() {
    let Some(db) = TestDatabase::postgres().rt() else { return };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let server =
        serve(dir.path(), &[("AGENTD_DATABASE_URL", &db.url), ("AGENTD_BIND", "127.0.0.1:0")]);
    let addr = server.wait_listening(Duration::from_secs(5));
    let ready = until_status(&format!("http://{addr}/health/ready"), 200, Duration::from_secs(5))
        .map(|_| started.elapsed());
    eprintln!("ready after {ready:?}");
    assert!(ready.is_some_and(|t| t < Duration::from_secs(1)), "ready after {ready:?}");
    assert!(!dir.path().join("agentd-data").exists(), "no SQLite file when on PostgreSQL");
}

/// Runs an async constructor to completion on a throwaway runtime (these tests are blocking).
trait Blocking: std::future::Future + Sized {
    fn rt(self) -> Self::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(self)
    }
}

impl<F: std::future::Future> Blocking for F {}

#[test]
fn readiness_follows_the_database_and_the_process_survives_an_outage() {
    if agentd_test_support::postgres_url().is_none() && TempCluster::bindir().is_none() {
        eprintln!("PostgreSQL is not installed: outage test skipped");
        return;
    }
    let cluster = TempCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        dir.path(),
        &[
            ("AGENTD_DATABASE_URL", &cluster.url()),
            ("AGENTD_BIND", "127.0.0.1:0"),
            ("AGENTD_DATABASE_CONNECT_TIMEOUT_SECONDS", "1"),
        ],
    );
    let addr = server.wait_listening(Duration::from_secs(10));
    let ready = format!("http://{addr}/health/ready");
    let live = format!("http://{addr}/health");
    assert!(until_status(&ready, 200, Duration::from_secs(5)).is_some());

    cluster.stop();
    let down = until_status(&ready, 503, Duration::from_secs(10));
    assert!(down.is_some_and(|t| t < Duration::from_secs(5)), "503 after {down:?}");
    let (status, body) = get(&ready).unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("\"service_unavailable\"") && body.contains("database"), "{body}");
    for _ in 0..5 {
        assert_eq!(get(&live).unwrap().0, 200, "liveness must not depend on the database");
    }

    cluster.start_again();
    let back = until_status(&ready, 200, Duration::from_secs(15));
    assert!(back.is_some(), "readiness did not recover; log:\n{}", server.stderr_text());
    assert!(server.is_running(), "the process exited during the outage");
}

#[test]
fn sigterm_lets_the_in_flight_request_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        serve(dir.path(), &[("AGENTD_BIND", "127.0.0.1:0"), ("AGENTD_DEBUG_ROUTES", "true")]);
    let addr = server.wait_listening(Duration::from_secs(10));
    let slow = std::thread::spawn(move || get(&format!("http://{addr}/debug/sleep?ms=1500")));
    server
        .wait_for_log(Duration::from_secs(10), |l| l.contains("debug sleep started"))
        .expect("the slow request reached its handler");
    server.signal(Signal::SIGTERM);
    let (status, body) = slow.join().unwrap().expect("the in-flight request was answered");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"slept_ms\":1500"), "{body}");
    let exit = server.wait_exit(Duration::from_secs(10)).expect("the process exited");
    assert_eq!(exit.code(), Some(0), "log:\n{}", server.stderr_text());
    assert!(get(&format!("http://{addr}/health")).is_none(), "still accepting after exit");
}

#[test]
fn sigint_also_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[("AGENTD_BIND", "127.0.0.1:0")]);
    server.wait_listening(Duration::from_secs(10));
    server.signal(Signal::SIGINT);
    let exit = server.wait_exit(Duration::from_secs(10)).expect("the process exited");
    assert_eq!(exit.code(), Some(0));
}
