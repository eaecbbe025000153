//! Retry decisions: backoff with full jitter, and the delay hints upstreams send.
//!
//! Delay hints, first match wins: `retry-after-ms` (milliseconds), then `retry-after` as whole
//! seconds or as an HTTP date (converted to a delay from now, never negative), then Gemini's
//! `retryDelay` in the error body (read by the Gemini adapter with [`parse_duration_seconds`]).
//! `x-should-retry` overrides the status-based decision, except that 400, 401, 403, 404 and a
//! context overflow are never retried.

use std::time::Duration;

use http::HeaderMap;
use time::OffsetDateTime;

/// How backoff delays are drawn below their ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Uniformly between zero and the ceiling ("full jitter").
    Full,
    /// Always this fraction (0..=1) of the ceiling; for tests that assert exact delays.
    Fixed(f64),
}

/// Exponential backoff: the ceiling of retry `n` (0-based) is `base × 2ⁿ`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// The ceiling of any delay.
    pub max: Duration,
    /// How the delay is drawn below its ceiling.
    pub jitter: Jitter,
}

impl Backoff {
    /// The ceiling of retry `n`.
    #[must_use]
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `n`.
    #[must_use]
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let fraction = match self.jitter {
            Jitter::Full => rand::random::<f64>(),
            Jitter::Fixed(f) => f.clamp(0.0, 1.0),
        };
        ceiling.mul_f64(fraction)
    }
}

/// The delay a response's headers ask for: `retry-after-ms`, else `retry-after` in seconds or as
/// an HTTP date relative to `now`.
#[must_use]
pub fn retry_after_from_headers(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let date = OffsetDateTime::from(date);
    let delta = date - now;
    Some(if delta.is_negative() { Duration::ZERO } else { delta.unsigned_abs() })
}

/// `x-should-retry: true|false`, when present.
#[must_use]
pub fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A protobuf JSON duration such as `"37s"` or `"1.500s"`.
#[must_use]
pub fn parse_duration_seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use time::macros::datetime;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

    #[test]
    fn milliseconds_win_over_seconds() {
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(retry_after_from_headers(&h, NOW), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn seconds_and_http_dates_are_both_understood() {
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(retry_after_from_headers(&h, NOW), Some(Duration::from_secs(7)));
        let h = headers(&[("retry-after", "Sun, 22 Nov 2026 10:00:12 GMT")]);
        assert_eq!(retry_after_from_headers(&h, NOW), Some(Duration::from_secs(12)));
    }

    #[test]
    fn a_date_in_the_past_means_no_wait_and_garbage_means_no_hint() {
        let h = headers(&[("retry-after", "Sun, 22 Nov 2026 09:00:00 GMT")]);
        assert_eq!(retry_after_from_headers(&h, NOW), Some(Duration::ZERO));
        let h = headers(&[("retry-after", "soon")]);
        assert_eq!(retry_after_from_headers(&h, NOW), None);
    }

    #[test]
    fn protobuf_durations_parse() {
        assert_eq!(parse_duration_seconds("37s"), Some(Duration::from_secs(37)));
        assert_eq!(parse_duration_seconds("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration_seconds("37"), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_full_jitter_stays_below_the_ceiling() {
        let b = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
            jitter: Jitter::Full,
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(500));
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(10), Duration::from_secs(8));
        let draws: Vec<Duration> = (0..200).map(|_| b.delay(2)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(draws.iter().any(|d| *d != draws[0]), "full jitter must vary");
        let fixed = Backoff { jitter: Jitter::Fixed(0.5), ..b };
        assert_eq!(fixed.delay(1), Duration::from_millis(500));
    }

    #[test]
    fn x_should_retry_is_read() {
        assert_eq!(should_retry_header(&headers(&[("x-should-retry", "false")])), Some(false));
        assert_eq!(should_retry_header(&headers(&[])), None);
    }
}
