use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sha2::{Digest, Sha256};

/// When a failed job attempt is retried: exponential back-off with jitter, where the
/// jitter is seeded by the job's idempotency key. A replay of the same job therefore
/// schedules the same delays, and different jobs failing together spread out.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub factor: f32,
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_secs(2),
            factor: 2.0,
            max_delay: Duration::from_secs(300),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The delay before retrying after failed attempt number `attempt` (1 for the first
    /// attempt), or `None` when no attempt is left.
    pub fn delay(&self, key: &str, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let seed = u64::from_be_bytes(
            Sha256::digest(key.as_bytes())[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_factor(self.factor)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts as usize)
            .with_jitter()
            .with_jitter_seed(seed)
            .build()
            .nth(attempt as usize - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gets_the_same_schedule() {
        let policy = RetryPolicy::default();
        let a: Vec<_> = (1..5).map(|n| policy.delay("job_1:run", n)).collect();
        let b: Vec<_> = (1..5).map(|n| policy.delay("job_1:run", n)).collect();
        assert_eq!(a, b);
        let other: Vec<_> = (1..5).map(|n| policy.delay("job_2:run", n)).collect();
        assert_ne!(a, other, "jitter does not depend on the key");
    }

    #[test]
    fn delays_grow_within_bounds_and_stop_after_the_last_attempt() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..5).map(|n| policy.delay("k", n).unwrap()).collect();
        for (i, delay) in delays.iter().enumerate() {
            // Jitter adds up to the base delay: [base, 2 * base), capped.
            let base = Duration::from_secs(2 << i).min(policy.max_delay);
            assert!(
                *delay >= base && *delay <= base * 2,
                "attempt {}: {delay:?}",
                i + 1
            );
        }
        assert_eq!(policy.delay("k", 5), None);
        assert_eq!(policy.delay("k", 0), None);
    }
}
