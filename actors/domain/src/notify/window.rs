//! Time arithmetic of delivery: digest and throttle windows, quiet hours, `Retry-After`.
//! Every function takes the time it reasons about; none reads a clock.
//!
//! Windows are aligned to the Unix epoch in UTC (`[k·len, (k+1)·len)`), so every process
//! computes the same window for the same instant and a window's start is a stable part of
//! a digest's dedupe key. A one-day digest window is a UTC day.

use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, LocalResult, NaiveDateTime, TimeZone, Utc};

use super::channel::{QuietHours, Throttle};
use super::rule::DigestWindow;

/// The aligned window of `len_seconds` containing `at`: `[start, end)`.
fn aligned(at: DateTime<Utc>, len_seconds: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = at.timestamp().div_euclid(len_seconds) * len_seconds;
    let start = DateTime::from_timestamp(start, 0).unwrap_or(at);
    (start, start + ChronoDuration::seconds(len_seconds))
}

impl DigestWindow {
    /// The window `at` falls in, `[start, end)`; for `instant` the empty window `(at, at)`.
    pub fn window_of(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match self.seconds() {
            Some(len) => aligned(at, len),
            None => (at, at),
        }
    }
}

impl Throttle {
    /// The throttle window `at` falls in, `[start, end)`, aligned on `per_seconds`.
    pub fn window_of(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        aligned(at, i64::from(self.per_seconds.max(1)))
    }
}

impl QuietHours {
    /// When the quiet hours around `at` end, or `None` when `at` is not in quiet hours.
    ///
    /// Whether `at` is quiet is read on the wall clock of the channel's timezone
    /// (`start` inclusive, `end` exclusive; `start` > `end` wraps midnight). The end is the
    /// first instant after `at` at which that wall clock shows `end`: on a day that repeats
    /// an hour (autumn), the earlier of the two still after `at`; on a day that skips it
    /// (spring), the instant the clock jumps past the gap.
    pub fn quiet_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.timezone).naive_local();
        let (date, time) = (local.date(), local.time());
        let end_date = if self.start < self.end {
            if time < self.start || time >= self.end {
                return None;
            }
            date
        } else if time >= self.start {
            date.succ_opt()?
        } else if time < self.end {
            date
        } else {
            return None;
        };
        self.first_after(end_date.and_time(self.end), at)
    }

    /// The first instant after `at` whose wall-clock time in the timezone is `wall`, or
    /// the end of the gap when `wall` does not exist that day.
    fn first_after(&self, wall: NaiveDateTime, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut candidate = wall;
        // A gap is at most a few hours (and in practice one); step by minutes to its end.
        for _ in 0..=24 * 60 {
            match self.timezone.from_local_datetime(&candidate) {
                LocalResult::Single(t) => {
                    let t = t.with_timezone(&Utc);
                    return (t > at).then_some(t);
                }
                LocalResult::Ambiguous(early, late) => {
                    let (early, late) = (early.with_timezone(&Utc), late.with_timezone(&Utc));
                    return [early, late].into_iter().find(|t| *t > at);
                }
                LocalResult::None => {
                    candidate += ChronoDuration::minutes(1);
                    // Land on the minute: a gap ends on one.
                    candidate = candidate
                        .date()
                        .and_hms_opt(
                            chrono::Timelike::hour(&candidate),
                            chrono::Timelike::minute(&candidate),
                            0,
                        )
                        .unwrap_or(candidate);
                }
            }
        }
        None
    }
}

/// How long a `Retry-After` header asks to wait: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850 and asctime forms). A date
/// in the past is no wait (`0`); anything else is `None`.
pub fn retry_after(header: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = header.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate rather than fail: the caller caps the wait.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let when: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn throttle_windows_are_aligned() {
        let th = Throttle {
            max: 10,
            per_seconds: 60,
        };
        assert_eq!(
            th.window_of(t("2026-03-01T10:00:59.900Z")),
            (t("2026-03-01T10:00:00Z"), t("2026-03-01T10:01:00Z"))
        );
        assert_eq!(
            th.window_of(t("2026-03-01T10:01:00Z")),
            (t("2026-03-01T10:01:00Z"), t("2026-03-01T10:02:00Z"))
        );
    }
}
