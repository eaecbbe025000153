//! Rate limits: token buckets (GCRA) per client address for every request, and per principal for
//! the expensive endpoints.
//!
//! A limit of `L` per minute is a bucket of capacity `L` refilled at `L` per minute: a client may
//! spend a full minute's allowance at once (the burst), then one request every `60/L` seconds.
//! Buckets live in this process, or in Redis when `AGENTD_REDIS_URL` is set, so that every node
//! shares them; the Redis check is one atomic Lua script using the server's clock. If Redis
//! fails, the check falls back to the in-process buckets (limits still hold per node) and says so
//! in the log.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};

use crate::client::ClientAddr;
use crate::error::ApiError;

/// Which limit a check is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Every request, per client address.
    Address,
    /// Expensive endpoints (runs, chat, checks), per principal.
    Expensive,
}

impl Bucket {
    const fn name(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Expensive => "expensive",
        }
    }
}

/// The configured limits; `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute per client address.
    pub per_address_per_minute: u32,
    /// Expensive requests per minute per principal.
    pub expensive_per_minute: u32,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused; a retry may succeed after this long.
    Deny {
        /// The wait.
        retry_after: Duration,
    },
}

struct Memory {
    address: Option<DefaultKeyedRateLimiter<String>>,
    expensive: Option<DefaultKeyedRateLimiter<String>>,
}

impl Memory {
    fn new(limits: Limits) -> Self {
        let keyed = |per_minute: u32| {
            NonZeroU32::new(per_minute).map(|n| Governor::keyed(Quota::per_minute(n)))
        };
        Self {
            address: keyed(limits.per_address_per_minute),
            expensive: keyed(limits.expensive_per_minute),
        }
    }

    fn limiter(&self, bucket: Bucket) -> Option<&DefaultKeyedRateLimiter<String>> {
        match bucket {
            Bucket::Address => self.address.as_ref(),
            Bucket::Expensive => self.expensive.as_ref(),
        }
    }

    fn check(&self, bucket: Bucket, key: &str) -> Decision {
        let Some(limiter) = self.limiter(bucket) else { return Decision::Allow };
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Decision::Allow,
            Err(not_until) => Decision::Deny {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    /// Drops buckets that are full again (their keys have been idle long enough).
    fn prune(&self) {
        for limiter in [&self.address, &self.expensive].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        [&self.address, &self.expensive].into_iter().flatten().map(|l| l.len()).sum()
    }
}

/// GCRA in one atomic step. KEYS[1]: the bucket key. ARGV[1]: emission interval (ms).
/// ARGV[2]: capacity. Returns {1, 0} when allowed, {0, wait_ms} when not.
const GCRA_SCRIPT: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local tolerance = interval * (capacity - 1)
if now < tat - tolerance then
  return {0, tat - tolerance - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {1, 0}
";

struct Shared {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
}

/// The rate limiter every request goes through.
pub struct RateLimiter {
    limits: Limits,
    memory: Memory,
    redis: Option<Shared>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limits", &self.limits)
            .field("shared", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

/// Redis could not be reached at startup.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis: {0}")]
pub struct RedisUnavailable(#[source] redis::RedisError);

impl RateLimiter {
    /// In-process buckets only.
    #[must_use]
    pub fn in_memory(limits: Limits) -> Arc<Self> {
        Self::start(Self { limits, memory: Memory::new(limits), redis: None })
    }

    /// Buckets shared through the Redis server at `url`, with keys under `prefix`.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn with_redis(
        limits: Limits,
        url: &str,
        prefix: &str,
    ) -> Result<Arc<Self>, RedisUnavailable> {
        let client = redis::Client::open(url).map_err(RedisUnavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let connection = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(RedisUnavailable)?;
        let redis = Shared {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: prefix.to_owned(),
        };
        Ok(Self::start(Self { limits, memory: Memory::new(limits), redis: Some(redis) }))
    }

    /// Wraps the limiter and starts its pruning task, which ends when the limiter is dropped.
    fn start(limiter: Self) -> Arc<Self> {
        let limiter = Arc::new(limiter);
        let weak: Weak<Self> = Arc::downgrade(&limiter);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(limiter) = weak.upgrade() else { break };
                    limiter.memory.prune();
                }
            });
        }
        limiter
    }

    /// The limits.
    #[must_use]
    pub const fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes one token from `key`'s bucket.
    pub async fn check(&self, bucket: Bucket, key: &str) -> Decision {
        let per_minute = match bucket {
            Bucket::Address => self.limits.per_address_per_minute,
            Bucket::Expensive => self.limits.expensive_per_minute,
        };
        if per_minute == 0 {
            return Decision::Allow;
        }
        if let Some(shared) = &self.redis {
            match shared.check(bucket, key, per_minute).await {
                Ok(decision) => return decision,
                Err(err) => tracing::warn!(
                    error = %err,
                    "Redis rate-limit check failed; using this node's buckets"
                ),
            }
        }
        self.memory.check(bucket, key)
    }

    /// Drops idle buckets now (they are also dropped every minute).
    pub fn prune(&self) {
        self.memory.prune();
    }

    /// How many in-process buckets exist.
    #[must_use]
    pub fn bucket_count(&self) -> usize {
        self.memory.len()
    }
}

impl Shared {
    async fn check(
        &self,
        bucket: Bucket,
        key: &str,
        per_minute: u32,
    ) -> redis::RedisResult<Decision> {
        let interval_ms = 60_000.0 / f64::from(per_minute);
        let mut connection = self.connection.clone();
        let (allowed, wait_ms): (i64, f64) = self
            .script
            .key(format!("{}ratelimit:{}:{key}", self.prefix, bucket.name()))
            .arg(interval_ms)
            .arg(per_minute)
            .invoke_async(&mut connection)
            .await?;
        Ok(if allowed == 1 {
            Decision::Allow
        } else {
            Decision::Deny { retry_after: Duration::from_secs_f64(wait_ms.max(0.0) / 1000.0) }
        })
    }
}

fn deny(decision: Decision) -> Option<Response> {
    match decision {
        Decision::Allow => None,
        Decision::Deny { retry_after } => {
            Some(ApiError::RateLimited { retry_after }.into_response())
        }
    }
}

/// Middleware: the per-address limit. Health endpoints are exempt, so that probes never fail
/// because of traffic.
pub(crate) async fn limit_addresses(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/health") {
        return next.run(request).await;
    }
    let Some(ClientAddr(client)) = request.extensions().get::<ClientAddr>().copied() else {
        return next.run(request).await;
    };
    match deny(limiter.check(Bucket::Address, &client.to_string()).await) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_allows_its_capacity_then_refuses_with_a_wait() {
        let limiter =
            RateLimiter::in_memory(Limits { per_address_per_minute: 5, expensive_per_minute: 0 });
        for _ in 0..5 {
            assert_eq!(limiter.check(Bucket::Address, "a").await, Decision::Allow);
        }
        let Decision::Deny { retry_after } = limiter.check(Bucket::Address, "a").await else {
            panic!("the sixth request was allowed");
        };
        assert!(retry_after > Duration::from_secs(5) && retry_after <= Duration::from_secs(12));
        assert_eq!(limiter.check(Bucket::Address, "b").await, Decision::Allow);
        // A zero limit is no limit.
        for _ in 0..100 {
            assert_eq!(limiter.check(Bucket::Expensive, "a").await, Decision::Allow);
        }
    }

    #[tokio::test]
    async fn full_buckets_are_pruned() {
        let limiter = RateLimiter::in_memory(Limits {
            per_address_per_minute: 6000,
            expensive_per_minute: 0,
        });
        for i in 0..50 {
            limiter.check(Bucket::Address, &format!("k{i}")).await;
        }
        assert_eq!(limiter.bucket_count(), 50);
        // At 100 per second a single request is refilled in 10 ms.
        tokio::time::sleep(Duration::from_millis(50)).await;
        limiter.prune();
        assert_eq!(limiter.bucket_count(), 0);
    }
}
