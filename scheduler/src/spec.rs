//! A schedule's definition and the pure decisions about it: validation, the jitter
//! offset, and what to do when its fire time has come (fire, or record a missed or
//! overlapping firing). No I/O, no clock: `now` is an argument.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cron::{CronError, CronSchedule};

/// The kinds of work a schedule fires.
pub const KINDS: &[&str] = &[RESCAN, ADVISORY_SYNC, EXPORT];
/// Re-evaluate targets' stored SBOMs against the current advisories, VEX and policy.
pub const RESCAN: &str = "rescan";
/// Import advisories from the schedule's source URLs (an `advisory-sync` job, hence its
/// name).
pub const ADVISORY_SYNC: &str =
    <stella_actors::advisory_sync::AdvisorySync as stella_supervisor::Kind>::NAME;

/// Run an export profile (an `export` job, hence its name).
pub const EXPORT: &str = <stella_actors::export::Export as stella_supervisor::Kind>::NAME;

/// The largest jitter window a schedule may ask for.
pub const MAX_JITTER_SECS: u32 = 3600;

/// A field of a schedule definition that is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<CronError> for SpecError {
    fn from(err: CronError) -> Self {
        Self::new(err.field, err.message)
    }
}

/// What happens to due times that passed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// Missed due times are recorded as a cancelled run, not fired.
    Skip,
    /// One run fires for the latest missed due time.
    FireOnce,
}

impl Missed {
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        match text {
            "skip" => Ok(Self::Skip),
            "fire-once" => Ok(Self::FireOnce),
            other => Err(SpecError::new(
                "missed",
                format!("{other:?} is not a missed-fire policy (skip, fire-once)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::FireOnce => "fire-once",
        }
    }
}

/// What happens when a schedule fires while its previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// The new firing is recorded as a cancelled run.
    Skip,
    /// The new run waits (in `planning`) until the previous one ends.
    Queue,
}

impl Overlap {
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        match text {
            "skip" => Ok(Self::Skip),
            "queue" => Ok(Self::Queue),
            other => Err(SpecError::new(
                "overlap",
                format!("{other:?} is not an overlap policy (skip, queue)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Queue => "queue",
        }
    }
}

/// A schedule's name: 1–100 visible characters.
pub fn check_name(name: &str) -> Result<(), SpecError> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(SpecError::new(
            "name",
            "must be 1-100 characters without control characters",
        ));
    }
    Ok(())
}

pub fn check_kind(kind: &str) -> Result<(), SpecError> {
    if KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(SpecError::new(
            "kind",
            format!("{kind:?} is not a schedule kind ({})", KINDS.join(", ")),
        ))
    }
}

pub fn check_jitter(seconds: i64) -> Result<u32, SpecError> {
    u32::try_from(seconds)
        .ok()
        .filter(|s| *s <= MAX_JITTER_SECS)
        .ok_or_else(|| {
            SpecError::new(
                "jitter_seconds",
                format!("{seconds} is out of range 0-{MAX_JITTER_SECS} (0 disables jitter)"),
            )
        })
}

/// The fixed offset of a schedule's fire times after its due times: a hash of its id
/// into `[0, jitter)` milliseconds. Deterministic (every process computes the same) and
/// spread (ten thousand schedules due at midnight fire over the whole window).
pub fn jitter_offset(schedule_id: &str, jitter_seconds: u32) -> Duration {
    let window = u64::from(jitter_seconds) * 1000;
    if window == 0 {
        return Duration::zero();
    }
    let digest = Sha256::digest(schedule_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let ms = u64::from_be_bytes(first) % window;
    Duration::milliseconds(i64::try_from(ms).unwrap_or(0))
}

/// A schedule's next due time after `after`, and its fire time.
pub fn next_times(
    cron: &CronSchedule,
    offset: Duration,
    after: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let due = cron.next_after(after);
    (due, due.map(|d| d + offset))
}

/// Due times a catch-up walks at most; beyond, it jumps to the present.
const MAX_CATCH_UP: usize = 10_000;

/// What to record for a schedule whose fire time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// The due time the run is for (unique per schedule).
    pub due_at: DateTime<Utc>,
    /// `planning` (it runs) or `cancelled` (missed or overlapping, recorded only).
    pub state: &'static str,
    pub error: Option<String>,
    /// Due times before `due_at` that passed without a run.
    pub missed: u64,
    pub first_missed: Option<DateTime<Utc>>,
}

/// A schedule's policies for late and overlapping firings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirePolicy {
    pub missed: Missed,
    pub overlap: Overlap,
    /// How late a fire may be and still count as on time.
    pub grace: Duration,
}

/// The decision for one schedule: the runs to record, oldest first, and its next times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub firings: Vec<Firing>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// Decides a schedule's firings at `now`, given its pending due time `due` (whose fire
/// time `due + offset` has come) and every later due time whose fire time has come too.
///
/// - A due time whose fire time is within `grace` of `now` is on time: it fires, each
///   one (a leader handover shorter than the grace loses no due time).
/// - Older ones were *missed* (no scheduler ran): `fire-once` fires one run for the
///   latest of them, counting the others; `skip` records one cancelled run saying which
///   were missed.
/// - The first firing while the schedule's previous run is still active
///   (`previous_active`) is recorded cancelled (`skip`) or fires and waits for that run
///   (`queue`).
pub fn decide(
    cron: &CronSchedule,
    offset: Duration,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: FirePolicy,
    previous_active: Option<&str>,
) -> Decision {
    let mut missed: Vec<DateTime<Utc>> = Vec::new();
    let mut on_time: Vec<DateTime<Utc>> = Vec::new();
    let mut next = Some(due);
    let mut walked = 0usize;
    while let Some(d) = next {
        if d + offset > now {
            break;
        }
        if now - (d + offset) > policy.grace {
            missed.push(d);
        } else {
            on_time.push(d);
        }
        walked += 1;
        next = if walked >= MAX_CATCH_UP {
            // Down for very long: stop walking one by one; count what was walked.
            cron.next_after(now - offset - policy.grace)
        } else {
            cron.next_after(d)
        };
    }
    let mut firings = Vec::new();
    if let (Some(first), Some(last)) = (missed.first(), missed.last()) {
        let count = missed.len() as u64;
        firings.push(match policy.missed {
            Missed::FireOnce => Firing {
                due_at: *last,
                state: "planning",
                error: None,
                missed: count - 1,
                first_missed: (count > 1).then_some(*first),
            },
            Missed::Skip => Firing {
                due_at: *last,
                state: "cancelled",
                error: Some(format!(
                    "missed: {count} due time(s) from {} to {} passed while no scheduler was \
                     running; missed-fire policy skip",
                    first.to_rfc3339(),
                    last.to_rfc3339()
                )),
                missed: count,
                first_missed: Some(*first),
            },
        });
    }
    firings.extend(on_time.into_iter().map(|d| Firing {
        due_at: d,
        state: "planning",
        error: None,
        missed: 0,
        first_missed: None,
    }));
    if let (Some(previous), Some(first)) = (
        previous_active,
        firings.iter_mut().find(|f| f.state == "planning"),
    ) {
        if policy.overlap == Overlap::Skip {
            first.state = "cancelled";
            first.error = Some(format!(
                "skipped: the previous run {previous} is still active; overlap policy skip"
            ));
        }
    }
    let (next_due_at, next_fire_at) = match next {
        Some(n) => (Some(n), Some(n + offset)),
        None => (None, None),
    };
    Decision {
        firings,
        next_due_at,
        next_fire_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn cron(expr: &str, tz: &str) -> CronSchedule {
        CronSchedule::parse(expr, tz, t("2026-01-01T00:00:00Z")).expect("valid")
    }

    #[test]
    fn jitter_is_deterministic_spread_and_within_the_window() {
        assert_eq!(jitter_offset("sch_a", 0), Duration::zero());
        assert_eq!(jitter_offset("sch_a", 60), jitter_offset("sch_a", 60));
        let offsets: std::collections::BTreeSet<i64> = (0..10_000)
            .map(|i| jitter_offset(&format!("sch_{i}"), 60).num_milliseconds())
            .collect();
        assert!(offsets.iter().all(|ms| (0..60_000).contains(ms)));
        // 10,000 schedules over 60,000 slots: nearly all distinct.
        assert!(offsets.len() > 9_000, "{}", offsets.len());
    }

    #[test]
    fn an_on_time_firing_runs_and_moves_to_the_next_due_time() {
        let c = cron("0 0 * * *", "UTC");
        let d = decide(
            &c,
            Duration::seconds(7),
            t("2026-12-01T00:00:00Z"),
            t("2026-12-01T00:00:07.5Z"),
            FirePolicy {
                missed: Missed::Skip,
                overlap: Overlap::Skip,
                grace: Duration::seconds(60),
            },
            None,
        );
        assert_eq!(d.firings.len(), 1);
        assert_eq!(d.firings[0].state, "planning");
        assert_eq!(d.firings[0].due_at, t("2026-12-01T00:00:00Z"));
        assert_eq!(d.firings[0].missed, 0);
        assert_eq!(d.next_due_at, Some(t("2026-12-02T00:00:00Z")));
        assert_eq!(d.next_fire_at, Some(t("2026-12-02T00:00:07Z")));
    }

    #[test]
    fn down_over_several_due_times_fire_once_fires_the_latest() {
        let c = cron("0 * * * *", "UTC");
        // Down from before 01:00 until 04:30: due 01:00, 02:00, 03:00, 04:00 passed.
        let d = decide(
            &c,
            Duration::zero(),
            t("2026-12-01T01:00:00Z"),
            t("2026-12-01T04:30:00Z"),
            FirePolicy {
                missed: Missed::FireOnce,
                overlap: Overlap::Skip,
                grace: Duration::seconds(60),
            },
            None,
        );
        assert_eq!(d.firings.len(), 1);
        assert_eq!(d.firings[0].state, "planning");
        assert_eq!(d.firings[0].due_at, t("2026-12-01T04:00:00Z"));
        assert_eq!(d.firings[0].missed, 3);
        assert_eq!(d.firings[0].first_missed, Some(t("2026-12-01T01:00:00Z")));
        assert_eq!(d.next_due_at, Some(t("2026-12-01T05:00:00Z")));
    }

    #[test]
    fn down_over_several_due_times_skip_records_them_without_running() {
        let c = cron("0 * * * *", "UTC");
        let d = decide(
            &c,
            Duration::zero(),
            t("2026-12-01T01:00:00Z"),
            t("2026-12-01T04:30:00Z"),
            FirePolicy {
                missed: Missed::Skip,
                overlap: Overlap::Skip,
                grace: Duration::seconds(60),
            },
            None,
        );
        assert_eq!(d.firings.len(), 1);
        assert_eq!(d.firings[0].state, "cancelled");
        assert_eq!(d.firings[0].missed, 4);
        let error = d.firings[0].error.clone().expect("a reason");
        assert!(error.contains("4 due time(s)"), "{error}");
        assert_eq!(d.next_due_at, Some(t("2026-12-01T05:00:00Z")));
        // Back just after 04:00 (within the grace): 04:00 still fires; the three
        // before it are recorded missed.
        let d = decide(
            &c,
            Duration::zero(),
            t("2026-12-01T01:00:00Z"),
            t("2026-12-01T04:00:20Z"),
            FirePolicy {
                missed: Missed::Skip,
                overlap: Overlap::Skip,
                grace: Duration::seconds(60),
            },
            None,
        );
        let got: Vec<_> = d
            .firings
            .iter()
            .map(|f| (f.due_at, f.state, f.missed))
            .collect();
        assert_eq!(
            got,
            [
                (t("2026-12-01T03:00:00Z"), "cancelled", 3),
                (t("2026-12-01T04:00:00Z"), "planning", 0)
            ]
        );
    }

    #[test]
    fn a_short_outage_fires_every_due_time_within_the_grace() {
        // A leader handover of 150 s over a per-minute schedule with a 10-minute grace:
        // all three due times fire, in order.
        let c = cron("* * * * *", "UTC");
        let d = decide(
            &c,
            Duration::zero(),
            t("2026-12-01T00:01:00Z"),
            t("2026-12-01T00:03:30Z"),
            FirePolicy {
                missed: Missed::Skip,
                overlap: Overlap::Skip,
                grace: Duration::minutes(10),
            },
            None,
        );
        let got: Vec<_> = d.firings.iter().map(|f| (f.due_at, f.state)).collect();
        assert_eq!(
            got,
            [
                (t("2026-12-01T00:01:00Z"), "planning"),
                (t("2026-12-01T00:02:00Z"), "planning"),
                (t("2026-12-01T00:03:00Z"), "planning")
            ]
        );
        assert_eq!(d.next_due_at, Some(t("2026-12-01T00:04:00Z")));
    }

    #[test]
    fn overlap_skip_cancels_queue_waits() {
        let c = cron("*/5 * * * *", "UTC");
        let args = |overlap| {
            decide(
                &c,
                Duration::zero(),
                t("2026-12-01T00:05:00Z"),
                t("2026-12-01T00:05:01Z"),
                FirePolicy {
                    missed: Missed::Skip,
                    overlap,
                    grace: Duration::seconds(60),
                },
                Some("run_previous"),
            )
        };
        let skipped = args(Overlap::Skip);
        assert_eq!(skipped.firings[0].state, "cancelled");
        assert!(skipped.firings[0]
            .error
            .clone()
            .expect("reason")
            .contains("run_previous is still active"));
        assert_eq!(args(Overlap::Queue).firings[0].state, "planning");
    }

    #[test]
    fn month_end_schedules_walk_short_months_and_leap_days() {
        let c = cron("0 6 29 * *", "UTC");
        // From January 29th 2028 (a leap year): February 29th, then March 29th.
        let d = decide(
            &c,
            Duration::zero(),
            t("2028-01-29T06:00:00Z"),
            t("2028-01-29T06:00:01Z"),
            FirePolicy {
                missed: Missed::Skip,
                overlap: Overlap::Skip,
                grace: Duration::seconds(60),
            },
            None,
        );
        assert_eq!(d.next_due_at, Some(t("2028-02-29T06:00:00Z")));
        let c = cron("0 6 29 * *", "UTC");
        let d = decide(
            &c,
            Duration::zero(),
            t("2027-01-29T06:00:00Z"),
            t("2027-01-29T06:00:01Z"),
            FirePolicy {
                missed: Missed::Skip,
                overlap: Overlap::Skip,
                grace: Duration::seconds(60),
            },
            None,
        );
        assert_eq!(d.next_due_at, Some(t("2027-03-29T06:00:00Z")));
    }
}
