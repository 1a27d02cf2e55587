use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How an actor is restarted after failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    /// Delay before the first restart; doubles (times `factor`) with each consecutive one.
    pub base: Duration,
    pub factor: f64,
    pub max_backoff: Duration,
    /// Restart intensity: more than `max_restarts` failures within `within` quarantine
    /// the actor.
    pub max_restarts: u32,
    pub within: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            factor: 2.0,
            max_backoff: Duration::from_secs(10),
            max_restarts: 5,
            within: Duration::from_secs(10),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Restart after this delay.
    Restart { after: Duration },
    /// Too many failures too fast: stop taking work until an operator releases it.
    Quarantine,
}

/// Counts an actor's failures and decides on restarts: exponential back-off, and
/// quarantine past the restart intensity. Time is an argument, so it is tested without
/// waiting.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    consecutive: u32,
    total: u64,
    quarantined: bool,
    last_error: Option<String>,
}

/// The observable part of a tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestartState {
    pub restarts: u64,
    pub quarantined: bool,
    pub last_error: Option<String>,
}

impl RestartTracker {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            consecutive: 0,
            total: 0,
            quarantined: false,
            last_error: None,
        }
    }

    /// Records a failure at `now` and decides what happens next.
    pub fn record_failure(&mut self, now: Instant, error: &str) -> Decision {
        self.last_error = Some(error.to_owned());
        if self.quarantined {
            return Decision::Quarantine;
        }
        while self
            .recent
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > self.policy.within)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.total += 1;
        if self.recent.len() > self.policy.max_restarts as usize {
            self.quarantined = true;
            return Decision::Quarantine;
        }
        let exponent = i32::try_from(self.consecutive).unwrap_or(i32::MAX);
        self.consecutive = self.consecutive.saturating_add(1);
        let delay = self.policy.base.as_secs_f64() * self.policy.factor.powi(exponent);
        let after = Duration::from_secs_f64(delay.min(self.policy.max_backoff.as_secs_f64()));
        Decision::Restart { after }
    }

    /// A success ends the streak: the next failure backs off from `base` again.
    pub fn record_success(&mut self) {
        self.consecutive = 0;
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// Lifts a quarantine (an operator's decision); the failure window starts afresh.
    pub fn release(&mut self) {
        self.quarantined = false;
        self.recent.clear();
        self.consecutive = 0;
    }

    pub fn state(&self) -> RestartState {
        RestartState {
            restarts: self.total,
            quarantined: self.quarantined,
            last_error: self.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            base: Duration::from_millis(100),
            factor: 2.0,
            max_backoff: Duration::from_millis(500),
            max_restarts: 5,
            within: Duration::from_secs(10),
        }
    }

    #[test]
    fn restarts_back_off_exponentially_up_to_the_cap() {
        let mut tracker = RestartTracker::new(policy());
        let t0 = Instant::now();
        let delays: Vec<_> = (0..4)
            .map(|i| tracker.record_failure(t0 + Duration::from_secs(3 * i), "boom"))
            .collect();
        let ms = |d: &Decision| match d {
            Decision::Restart { after } => after.as_millis(),
            Decision::Quarantine => panic!("quarantined too early"),
        };
        assert_eq!(
            delays.iter().map(ms).collect::<Vec<_>>(),
            [100, 200, 400, 500]
        );
        tracker.record_success();
        assert_eq!(
            tracker.record_failure(t0 + Duration::from_secs(30), "boom"),
            Decision::Restart {
                after: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn more_than_five_failures_in_ten_seconds_quarantine() {
        let mut tracker = RestartTracker::new(policy());
        let t0 = Instant::now();
        for i in 0..5 {
            let decision = tracker.record_failure(t0 + Duration::from_secs(i), "boom");
            assert!(matches!(decision, Decision::Restart { .. }), "failure {i}");
        }
        assert_eq!(
            tracker.record_failure(t0 + Duration::from_secs(5), "last straw"),
            Decision::Quarantine
        );
        assert!(tracker.is_quarantined());
        let state = tracker.state();
        assert_eq!(state.restarts, 6);
        assert_eq!(state.last_error.as_deref(), Some("last straw"));
        // Stays quarantined, however long it waits, until released.
        assert_eq!(
            tracker.record_failure(t0 + Duration::from_secs(3600), "again"),
            Decision::Quarantine
        );
        tracker.release();
        assert!(!tracker.is_quarantined());
        assert!(matches!(
            tracker.record_failure(t0 + Duration::from_secs(3601), "after release"),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn failures_spread_over_time_never_quarantine() {
        let mut tracker = RestartTracker::new(policy());
        let t0 = Instant::now();
        for i in 0..100 {
            let decision = tracker.record_failure(t0 + Duration::from_secs(3 * i), "slow");
            assert!(matches!(decision, Decision::Restart { .. }), "failure {i}");
        }
        assert!(!tracker.is_quarantined());
    }
}
