//! Circuit breakers, one per provider and model: closed, open, half-open.
//!
//! Hand-written rather than taken from a crate because the policy needs three things in one
//! place: a cooldown until a 429's `Retry-After` that is not a failure, the soonest time any
//! candidate admits a call again (the `Retry-After` of `llm_unavailable`), and a state the status
//! view can show. Only transient failures count; a breaker trips on a run of consecutive
//! failures or on the failure rate over a window of recent calls, stays open for a time that
//! doubles on each re-trip, then admits one probe (half-open) whose outcome closes or re-opens
//! it. Time is `tokio::time::Instant`, so tests drive it with a paused clock.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::BreakerSettings;

/// A breaker's state as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the open time passes.
    Open,
    /// One probe call decides whether to close or re-open.
    HalfOpen,
}

impl BreakerState {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    #[must_use]
    pub const fn gauge(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Yes; `probe` when it is the half-open probe.
    Allowed { probe: bool },
    /// No; calls are admitted again from `until`.
    Refused { until: Instant },
}

/// How one call ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The upstream answered (also with a non-transient error: it is up).
    Answered,
    /// A transient failure.
    Failed,
    /// A 429: cool down for this long (when the upstream said), without counting a failure.
    RateLimited(Option<Duration>),
    /// The call was dropped before it ended.
    Abandoned,
}

/// One breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    settings: BreakerSettings,
    state: State,
    /// Recent calls, `true` for a failure.
    window: VecDeque<bool>,
    consecutive: u32,
    trips: u32,
    cooldown_until: Option<Instant>,
}

impl Breaker {
    pub(crate) fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: State::Closed,
            window: VecDeque::new(),
            consecutive: 0,
            trips: 0,
            cooldown_until: None,
        }
    }

    /// Asks to make a call at `now`.
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        if let Some(until) = self.cooldown_until {
            if now < until {
                return Admission::Refused { until };
            }
            self.cooldown_until = None;
        }
        match self.state {
            State::Closed => Admission::Allowed { probe: false },
            State::Open { until } if now < until => Admission::Refused { until },
            State::Open { .. } | State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admission::Allowed { probe: true }
            }
            // The probe's answer is due soon; ask again in a second.
            State::HalfOpen { probing: true } => {
                Admission::Refused { until: now + Duration::from_secs(1) }
            }
        }
    }

    /// Records how an admitted call ended.
    pub(crate) fn record(&mut self, now: Instant, probe: bool, outcome: Outcome) {
        match outcome {
            Outcome::Answered => {
                if probe || matches!(self.state, State::HalfOpen { .. }) {
                    self.state = State::Closed;
                    self.trips = 0;
                    self.window.clear();
                }
                self.consecutive = 0;
                self.push(false);
            }
            Outcome::Failed => {
                if probe || matches!(self.state, State::HalfOpen { .. }) {
                    self.trip(now);
                    return;
                }
                self.consecutive += 1;
                self.push(true);
                if self.should_trip() {
                    self.trip(now);
                }
            }
            Outcome::RateLimited(delay) => {
                if let Some(delay) = delay {
                    let until = now + delay;
                    self.cooldown_until = Some(self.cooldown_until.map_or(until, |c| c.max(until)));
                }
                self.release_probe(probe);
            }
            Outcome::Abandoned => self.release_probe(probe),
        }
    }

    fn release_probe(&mut self, probe: bool) {
        if probe && matches!(self.state, State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }

    fn push(&mut self, failed: bool) {
        self.window.push_back(failed);
        while self.window.len() > self.settings.window as usize {
            self.window.pop_front();
        }
    }

    fn should_trip(&self) -> bool {
        if self.consecutive >= self.settings.consecutive_failures {
            return true;
        }
        let calls = self.window.len() as u64;
        let failures = self.window.iter().filter(|f| **f).count() as u64;
        calls >= u64::from(self.settings.min_calls)
            && failures * 100 >= u64::from(self.settings.failure_rate_percent) * calls
    }

    fn trip(&mut self, now: Instant) {
        let open = Duration::from_secs(self.settings.open_seconds)
            .saturating_mul(2u32.saturating_pow(self.trips.min(20)))
            .min(Duration::from_secs(self.settings.max_open_seconds));
        self.trips += 1;
        self.state = State::Open { until: now + open };
        self.window.clear();
        self.consecutive = 0;
    }

    /// The state as reported at `now` (an open breaker whose time has passed is half-open).
    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When an open breaker turns half-open.
    pub(crate) const fn half_open_at(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            State::Closed | State::HalfOpen { .. } => None,
        }
    }

    /// When a 429 cooldown ends, if one is running at `now`.
    pub(crate) fn cooldown_until(&self, now: Instant) -> Option<Instant> {
        self.cooldown_until.filter(|c| *c > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings::default())
    }

    #[test]
    fn consecutive_failures_open_it_and_the_open_time_doubles_on_each_trip() {
        let now = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            assert_eq!(b.admit(now), Admission::Allowed { probe: false });
            b.record(now, false, Outcome::Failed);
        }
        assert_eq!(b.state(now), BreakerState::Open);
        assert_eq!(b.admit(now), Admission::Refused { until: now + Duration::from_secs(30) });
        let later = now + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admission::Allowed { probe: true });
        assert_eq!(b.admit(later), Admission::Refused { until: later + Duration::from_secs(1) });
        b.record(later, true, Outcome::Failed);
        assert_eq!(b.admit(later), Admission::Refused { until: later + Duration::from_secs(60) });
    }

    #[test]
    fn a_successful_probe_closes_it() {
        let now = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record(now, false, Outcome::Failed);
        }
        let later = now + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admission::Allowed { probe: true });
        b.record(later, true, Outcome::Answered);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(b.admit(later), Admission::Allowed { probe: false });
    }

    #[test]
    fn the_failure_rate_trips_it_without_a_run_of_failures() {
        let now = Instant::now();
        let mut b = breaker();
        for i in 0..6 {
            b.record(now, false, if i % 2 == 0 { Outcome::Failed } else { Outcome::Answered });
        }
        assert_eq!(b.state(now), BreakerState::Open, "3 of 6 failed: 50 %");
    }

    #[test]
    fn a_rate_limit_cools_down_without_counting_as_a_failure() {
        let now = Instant::now();
        let mut b = breaker();
        for _ in 0..5 {
            b.record(now, false, Outcome::RateLimited(Some(Duration::from_secs(7))));
        }
        assert_eq!(b.state(now), BreakerState::Closed);
        assert_eq!(b.admit(now), Admission::Refused { until: now + Duration::from_secs(7) });
        assert_eq!(b.admit(now + Duration::from_secs(7)), Admission::Allowed { probe: false });
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let now = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record(now, false, Outcome::Failed);
        }
        let later = now + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admission::Allowed { probe: true });
        b.record(later, true, Outcome::Abandoned);
        assert_eq!(b.admit(later), Admission::Allowed { probe: true });
    }
}
