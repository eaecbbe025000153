use std::time::{Duration, Instant};

use agentd_test_support::{TestDatabase, spawn_app, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::expect_envelope;

const TWO_MIB: usize = 2 * 1024 * 1024;

#[tokio::test]
async fn a_body_over_the_limit_gets_the_413_envelope() {
    let app = spawn_app().await;
    let body = format!("{{\"name\": \"{}\", \"count\": 1}}", "x".repeat(TWO_MIB));
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 413, "payload_too_large").await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_the_413_envelope() {
    let app = spawn_app().await;
    // A stream body has no Content-Length: it is sent chunked, so the limit can only be found
    // while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..32).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util_stream(chunks));
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 413, "payload_too_large").await;
}

fn futures_util_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn a_request_over_the_deadline_gets_the_504_timeout_envelope() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.http.request_timeout_seconds = 1).await;
    let started = Instant::now();
    let res = app.client.get(app.url("/debug/sleep?ms=5000")).send().await.unwrap();
    expect_envelope(res, 504, "timeout").await;
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

/// Reads until the server closes the connection; returns how long that took, or `None` if it
/// is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_elapsed) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_sending_headers_slowly_is_disconnected() {
    let app =
        spawn_app_with(TestDatabase::sqlite(), |s| s.http.header_read_timeout_seconds = 1).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Keep trickling header bytes; the deadline is for the whole header, not between bytes.
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), trickle).await;
    let closed = closed_within(&mut slow, Duration::from_secs(4)).await;
    assert!(closed.is_some(), "a slowloris connection stayed open");
}

#[tokio::test]
async fn a_client_sending_nothing_is_disconnected() {
    let app =
        spawn_app_with(TestDatabase::sqlite(), |s| s.http.header_read_timeout_seconds = 1).await;
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    let closed = closed_within(&mut idle, Duration::from_secs(4)).await;
    assert!(closed.is_some(), "a silent connection stayed open");
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.http.max_connections = 2).await;
    // Two keep-alive connections that each served a request hold both permits.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(app.addr).await.unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let waiting =
        tokio::time::timeout(Duration::from_millis(700), client.get(app.url("/health")).send())
            .await;
    assert!(waiting.is_err(), "a third connection was served while two held the cap");
    drop(held.pop());
    let res = tokio::time::timeout(Duration::from_secs(5), client.get(app.url("/health")).send())
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn readiness_turns_503_while_draining_and_liveness_stays_200() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.shutdown_delay_seconds = 3).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert_eq!(client.get(app.url("/health/ready")).send().await.unwrap().status(), 200);
    let url = app.url("");
    let stopping = tokio::spawn(app.stop());
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut saw_503 = false;
    while Instant::now() < deadline {
        let Ok(res) = client.get(format!("{url}/health/ready")).send().await else { break };
        if res.status() == 503 {
            let body = expect_envelope(res, 503, "service_unavailable").await;
            assert_eq!(body["error"]["details"][0]["field"], "server");
            let live = client.get(format!("{url}/health")).send().await.unwrap();
            assert_eq!(live.status(), 200);
            saw_503 = true;
            break;
        }
    }
    assert!(saw_503, "readiness never reported draining");
    stopping.await.unwrap().unwrap();
}
