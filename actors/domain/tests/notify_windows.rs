//! Delivery timing: digest windows, throttle windows, quiet hours (across midnight and
//! across both of Europe/Berlin's DST changes) and `Retry-After`.
//!
//! Quiet hours are also checked against an independent implementation: Python's
//! `zoneinfo` walking the wall clock minute by minute until the quiet hours end, over a
//! grid of instants around the 2026 DST changes. That python comes from
//! `STELLA_TEST_NOTIFY_PYTHON` (set by `ops/services.sh up`); without it the check is
//! skipped with a message, unless `STELLA_TEST_SERVICES` is set, where its absence is a
//! failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::{json, Value};
use stella_domain::notify::window::retry_after;
use stella_domain::notify::{DigestWindow, QuietHours, QuietMode, Throttle};

const PYTHON_VAR: &str = "STELLA_TEST_NOTIFY_PYTHON";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn quiet(start: &str, end: &str, tz: chrono_tz::Tz) -> QuietHours {
    QuietHours {
        start: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
        end: NaiveTime::parse_from_str(end, "%H:%M").unwrap(),
        timezone: tz,
        mode: QuietMode::Hold,
    }
}

#[test]
fn digest_windows_are_aligned_and_contain_their_instant() {
    let at = t("2026-03-01T10:07:31.250Z");
    assert_eq!(DigestWindow::Instant.window_of(at), (at, at));
    assert_eq!(
        DigestWindow::FiveMinutes.window_of(at),
        (t("2026-03-01T10:05:00Z"), t("2026-03-01T10:10:00Z"))
    );
    assert_eq!(
        DigestWindow::OneHour.window_of(at),
        (t("2026-03-01T10:00:00Z"), t("2026-03-01T11:00:00Z"))
    );
    assert_eq!(
        DigestWindow::OneDay.window_of(at),
        (t("2026-03-01T00:00:00Z"), t("2026-03-02T00:00:00Z"))
    );
    // A boundary belongs to the window it starts.
    assert_eq!(
        DigestWindow::FiveMinutes
            .window_of(t("2026-03-01T10:10:00Z"))
            .0,
        t("2026-03-01T10:10:00Z")
    );
    // Every instant of a sweep is inside its window, and consecutive windows tile.
    for window in [
        DigestWindow::FiveMinutes,
        DigestWindow::OneHour,
        DigestWindow::OneDay,
    ] {
        let len = window.seconds().unwrap();
        let mut at = t("2026-10-24T23:59:59Z");
        for _ in 0..500 {
            let (start, end) = window.window_of(at);
            assert!(start <= at && at < end, "{window:?} {at}");
            assert_eq!((end - start).num_seconds(), len);
            assert_eq!(start.timestamp() % len, 0);
            assert_eq!(window.window_of(end).0, end);
            at += chrono::Duration::seconds(97);
        }
    }
}

#[test]
fn throttle_windows_are_aligned_on_their_length() {
    let th = Throttle {
        max: 10,
        per_seconds: 60,
    };
    assert_eq!(
        th.window_of(t("2026-03-01T10:00:59Z")),
        (t("2026-03-01T10:00:00Z"), t("2026-03-01T10:01:00Z"))
    );
    let th = Throttle {
        max: 1,
        per_seconds: 7,
    };
    let (start, end) = th.window_of(t("2026-03-01T10:00:00Z"));
    assert_eq!(start.timestamp() % 7, 0);
    assert_eq!((end - start).num_seconds(), 7);
    assert!(start <= t("2026-03-01T10:00:00Z") && t("2026-03-01T10:00:00Z") < end);
}

#[test]
fn quiet_hours_across_midnight() {
    let q = quiet("22:00", "07:00", chrono_tz::UTC);
    assert_eq!(q.quiet_until(t("2026-03-01T21:59:59Z")), None);
    assert_eq!(
        q.quiet_until(t("2026-03-01T22:00:00Z")),
        Some(t("2026-03-02T07:00:00Z"))
    );
    assert_eq!(
        q.quiet_until(t("2026-03-01T23:30:00Z")),
        Some(t("2026-03-02T07:00:00Z"))
    );
    assert_eq!(
        q.quiet_until(t("2026-03-02T00:00:00Z")),
        Some(t("2026-03-02T07:00:00Z"))
    );
    assert_eq!(
        q.quiet_until(t("2026-03-02T06:59:59Z")),
        Some(t("2026-03-02T07:00:00Z"))
    );
    assert_eq!(q.quiet_until(t("2026-03-02T07:00:00Z")), None);
    assert_eq!(q.quiet_until(t("2026-03-02T12:00:00Z")), None);
    // Within one day.
    let lunch = quiet("12:00", "13:30", chrono_tz::UTC);
    assert_eq!(lunch.quiet_until(t("2026-03-02T11:59:00Z")), None);
    assert_eq!(
        lunch.quiet_until(t("2026-03-02T12:00:00Z")),
        Some(t("2026-03-02T13:30:00Z"))
    );
    assert_eq!(lunch.quiet_until(t("2026-03-02T13:30:00Z")), None);
    // In the channel's timezone: 22:00 in Berlin in winter is 21:00 UTC.
    let berlin = quiet("22:00", "07:00", chrono_tz::Europe::Berlin);
    assert_eq!(berlin.quiet_until(t("2026-01-15T20:59:00Z")), None);
    assert_eq!(
        berlin.quiet_until(t("2026-01-15T21:00:00Z")),
        Some(t("2026-01-16T06:00:00Z"))
    );
    // In summer, CEST (+2).
    assert_eq!(
        berlin.quiet_until(t("2026-07-15T20:00:00Z")),
        Some(t("2026-07-16T05:00:00Z"))
    );
}

#[test]
fn quiet_hours_across_berlins_dst_changes() {
    let berlin = chrono_tz::Europe::Berlin;
    // Spring, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC). A night of quiet
    // hours ending at 07:00 local is one hour shorter in UTC terms.
    let night = quiet("22:00", "07:00", berlin);
    assert_eq!(
        night.quiet_until(t("2026-03-28T21:00:00Z")),
        Some(t("2026-03-29T05:00:00Z"))
    );
    // An end inside the gap (02:30 does not exist that night) is the end of the gap.
    let gap = quiet("22:00", "02:30", berlin);
    assert_eq!(
        gap.quiet_until(t("2026-03-29T00:30:00Z")),
        Some(t("2026-03-29T01:00:00Z"))
    );
    assert_eq!(
        gap.quiet_until(t("2026-03-29T01:00:00Z")),
        None,
        "03:00 CEST is after 02:30"
    );

    // Autumn, 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:00–03:00 local
    // happens twice.
    assert_eq!(
        night.quiet_until(t("2026-10-24T20:00:00Z")),
        Some(t("2026-10-25T06:00:00Z"))
    );
    let twice = quiet("22:00", "02:30", berlin);
    // 01:30 CEST: the quiet hours end at the first 02:30 (CEST, 00:30 UTC).
    assert_eq!(
        twice.quiet_until(t("2026-10-24T23:30:00Z")),
        Some(t("2026-10-25T00:30:00Z"))
    );
    // 02:40 CEST: past the end.
    assert_eq!(twice.quiet_until(t("2026-10-25T00:40:00Z")), None);
    // 02:10 CET, the second time round: the wall clock is before 02:30 again, and the end
    // is the second 02:30 (CET, 01:30 UTC), never one already past.
    assert_eq!(
        twice.quiet_until(t("2026-10-25T01:10:00Z")),
        Some(t("2026-10-25T01:30:00Z"))
    );
}

#[test]
fn retry_after_forms() {
    let now = t("2015-10-21T07:00:00Z");
    assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
    // IMF-fixdate, and the two obsolete forms RFC 9110 requires recipients to read.
    for date in [
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Wednesday, 21-Oct-15 07:28:00 GMT",
        "Wed Oct 21 07:28:00 2015",
    ] {
        assert_eq!(
            retry_after(date, now),
            Some(Duration::from_secs(28 * 60)),
            "{date}"
        );
    }
    // A date already past is no wait.
    assert_eq!(
        retry_after("Wed, 21 Oct 2015 06:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    for bad in [
        "",
        "soon",
        "-5",
        "1.5",
        "+3",
        "120 s",
        "Wed, 32 Oct 2015 07:28:00 GMT",
    ] {
        assert_eq!(retry_after(bad, now), None, "{bad:?}");
    }
    // A number too long for u64 saturates (the caller caps the wait).
    assert_eq!(
        retry_after("99999999999999999999999", now),
        Some(Duration::from_secs(u64::MAX))
    );
}

const ORACLE: &str = r#"
import json, sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

cases = json.load(sys.stdin)
out = []
for case in cases:
    tz = ZoneInfo(case["timezone"])
    sh, sm = map(int, case["start"].split(":"))
    eh, em = map(int, case["end"].split(":"))
    start, end = sh * 60 + sm, eh * 60 + em
    def quiet(instant):
        local = instant.astimezone(tz)
        minute = local.hour * 60 + local.minute
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end
    at = datetime.fromtimestamp(case["at"], tz=timezone.utc)
    if not quiet(at):
        out.append(None)
        continue
    step = at.replace(second=0) + timedelta(minutes=1)
    while quiet(step):
        step += timedelta(minutes=1)
    out.append(int(step.timestamp()))
print(json.dumps(out))
"#;

fn python() -> Option<String> {
    match std::env::var(PYTHON_VAR) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!(
                "{PYTHON_VAR} must be set (by ops/services.sh up) when STELLA_TEST_SERVICES is set"
            )
        }
        _ => {
            eprintln!(
                "skipping the zoneinfo comparison: {PYTHON_VAR} is not set \
                 (run `ops/services.sh up` and `source /var/tmp/stella-services/env`)"
            );
            None
        }
    }
}

#[test]
fn quiet_hours_agree_with_pythons_zoneinfo_around_dst() {
    let Some(python) = python() else { return };
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let tzs = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "UTC",
    ];
    let hours = [
        ("22:00", "07:00"),
        ("22:00", "02:30"),
        ("01:30", "03:15"),
        ("02:15", "02:45"),
        ("09:00", "17:00"),
    ];
    for tz_name in tzs {
        let tz: chrono_tz::Tz = tz_name.parse().unwrap();
        for (start, end) in hours {
            let q = quiet(start, end, tz);
            // Around both 2026 changes of each zone (and ordinary nights for UTC).
            for around in [
                "2026-03-28T18:00:00Z",
                "2026-10-24T18:00:00Z",
                "2026-11-01T00:00:00Z",
                "2026-04-04T10:00:00Z",
                "2026-10-03T10:00:00Z",
            ] {
                let mut at = t(around);
                for _ in 0..30 {
                    cases.push(json!({"timezone": tz_name, "start": start, "end": end, "at": at.timestamp()}));
                    expected.push(q.quiet_until(at).map(|u| u.timestamp()));
                    at += chrono::Duration::minutes(47);
                }
            }
        }
    }
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(ORACLE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let oracle: Vec<Option<i64>> = serde_json::from_slice::<Value>(&output.stdout)
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    assert_eq!(oracle.len(), expected.len());
    let quiet_cases = expected.iter().filter(|e| e.is_some()).count();
    assert!(
        quiet_cases > 100,
        "the grid must cover quiet instants ({quiet_cases})"
    );
    for ((case, ours), theirs) in cases.iter().zip(&expected).zip(&oracle) {
        assert_eq!(ours, theirs, "{case}");
    }
}
