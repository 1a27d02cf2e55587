//! The scheduler's clock. Scheduling logic takes `now` as an argument; only the loop in
//! [`crate::Scheduler::run`] asks a [`Clock`], so tests drive time by hand.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Where the scheduler loop reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock running `speed` times faster from `origin` (a real instant): every
/// process given the same origin and speed reads the same time. For demos and tests of
/// schedules that would take hours in real time.
#[derive(Debug, Clone, Copy)]
pub struct AcceleratedClock {
    pub origin: DateTime<Utc>,
    pub speed: u32,
}

impl Clock for AcceleratedClock {
    fn now(&self) -> DateTime<Utc> {
        let real = Utc::now();
        let elapsed = real - self.origin;
        self.origin + elapsed * i32::try_from(self.speed).unwrap_or(i32::MAX)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<Mutex<DateTime<Utc>>>);

impl FakeClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
