//! The per-address limit under concurrent load, its exemptions and its key.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use agentd_test_support::{TestApp, TestDatabase, spawn_app_with};

const LIMIT: u32 = 30;

/// Sends `total` requests to `path` from `clients` concurrent connections bound to `from`;
/// returns (admitted, refused, refusals lacking Retry-After, elapsed).
async fn flood(
    app: &TestApp,
    path: &str,
    from: IpAddr,
    clients: usize,
    total: usize,
    xff: Option<&str>,
) -> (usize, usize, usize, Duration) {
    let started = Instant::now();
    let per_client = total / clients;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = reqwest::Client::builder().local_address(from).build().unwrap();
        let url = app.url(path);
        let xff = xff.map(str::to_owned);
        tasks.push(tokio::spawn(async move {
            let mut counts = (0, 0, 0);
            for _ in 0..per_client {
                let mut req = client.get(&url);
                if let Some(xff) = &xff {
                    req = req.header("x-forwarded-for", xff);
                }
                let res = req.send().await.unwrap();
                if res.status() == 429 {
                    counts.1 += 1;
                    let ok = res
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|s| s >= 1);
                    if !ok {
                        counts.2 += 1;
                    }
                } else {
                    counts.0 += 1;
                }
            }
            counts
        }));
    }
    let mut totals = (0, 0, 0);
    for task in tasks {
        let (a, r, m) = task.await.unwrap();
        totals = (totals.0 + a, totals.1 + r, totals.2 + m);
    }
    (totals.0, totals.1, totals.2, started.elapsed())
}

/// The most a bucket of `limit` per minute may admit over `elapsed`: the burst plus the refill.
fn ceiling(limit: u32, elapsed: Duration) -> usize {
    limit as usize + (elapsed.as_secs_f64() * f64::from(limit) / 60.0).ceil() as usize
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_admitted_at_most_the_limit_and_other_clients_are_unaffected() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.rate_limit.per_minute = LIMIT).await;
    let total = 5 * LIMIT as usize;
    let (admitted, refused, missing_retry_after, elapsed) =
        flood(&app, "/v1/auth/csrf", ip("127.0.0.1"), 50, total, None).await;
    assert_eq!(admitted + refused, total);
    assert!(admitted <= ceiling(LIMIT, elapsed), "admitted {admitted} of {total} in {elapsed:?}");
    assert!(admitted >= LIMIT as usize, "the burst was not honoured: {admitted}");
    assert_eq!(missing_retry_after, 0);
    // Another client address has its own bucket.
    let (admitted, refused, _, _) =
        flood(&app, "/v1/auth/csrf", ip("127.0.0.2"), 5, 20, None).await;
    assert_eq!((admitted, refused), (20, 0));
    // Health probes are never limited.
    let client = reqwest::Client::builder().local_address(ip("127.0.0.1")).build().unwrap();
    for _ in 0..5 {
        assert_eq!(client.get(app.url("/health")).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn forwarded_for_does_not_escape_the_limit_unless_the_proxy_is_trusted() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.rate_limit.per_minute = 5).await;
    flood(&app, "/v1/auth/csrf", ip("127.0.0.1"), 1, 10, None).await;
    let (admitted, _, _, _) =
        flood(&app, "/v1/auth/csrf", ip("127.0.0.1"), 1, 5, Some("203.0.113.7")).await;
    assert_eq!(admitted, 0, "a spoofed X-Forwarded-For escaped the limit");

    let app = spawn_app_with(TestDatabase::sqlite(), |s| {
        s.rate_limit.per_minute = 5;
        s.http.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let (admitted, _, _, _) =
        flood(&app, "/v1/auth/csrf", ip("127.0.0.1"), 1, 10, Some("203.0.113.7")).await;
    assert_eq!(admitted, 5);
    let (admitted, _, _, _) =
        flood(&app, "/v1/auth/csrf", ip("127.0.0.1"), 1, 5, Some("203.0.113.8")).await;
    assert_eq!(admitted, 5, "a different client behind the trusted proxy shares a bucket");
}

#[tokio::test]
async fn limits_are_shared_through_redis_by_two_servers() {
    let Some(redis) = agentd_test_support::redis_url() else {
        eprintln!("AGENTD_TEST_REDIS_URL is not set: shared-limit test skipped");
        return;
    };
    let prefix = format!("agentd-test-{}:", uuid::Uuid::now_v7().simple());
    let configure = |s: &mut agentd_server::Settings| {
        s.rate_limit.per_minute = LIMIT;
        s.rate_limit.redis_url = Some(secrecy::SecretString::from(redis.clone()));
        s.rate_limit.redis_key_prefix = prefix.clone();
    };
    let a = spawn_app_with(TestDatabase::sqlite(), configure).await;
    let b = spawn_app_with(TestDatabase::sqlite(), configure).await;
    let total = 5 * LIMIT as usize;
    let (fa, fb) = tokio::join!(
        flood(&a, "/v1/auth/csrf", ip("127.0.0.1"), 25, total / 2, None),
        flood(&b, "/v1/auth/csrf", ip("127.0.0.1"), 25, total / 2, None),
    );
    let admitted = fa.0 + fb.0;
    let elapsed = fa.3.max(fb.3);
    assert!(admitted <= ceiling(LIMIT, elapsed), "two nodes admitted {admitted} in {elapsed:?}");
    assert_eq!(fa.2 + fb.2, 0, "a 429 lacked Retry-After");
}
