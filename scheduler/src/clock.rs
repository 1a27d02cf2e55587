//! The scheduler's clock. Scheduling logic takes `now` as an argument; only the loop in
//! [`crate::Scheduler::run`] asks a [`Clock`], so tests drive time by hand.

use chrono::{DateTime, Utc};

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
