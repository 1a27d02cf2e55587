//! Cron expressions as users write them in a crontab, evaluated in an IANA timezone.
//!
//! Syntax: five fields (`minute hour day-of-month month day-of-week`) or six with a
//! leading seconds field; each field `*`, `N`, `N-M`, `*/S`, `N-M/S`, `N/S` or a comma
//! list of those; month names `JAN`–`DEC` and weekday names `SUN`–`SAT` in any case;
//! weekday `0` and `7` are both Sunday; `?` means `*` in the two day fields; the macros
//! `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`.
//! As in Vixie cron, when both day fields are restricted a day matches if *either* does.
//!
//! The `cron` crate walks the calendar (month ends, leap days); this module parses and
//! checks the fields itself (so an error names the field and the value at fault, and
//! weekdays are numbered as crontab numbers them, where the crate counts Sunday as 1) and
//! maps wall-clock times to instants in the schedule's timezone:
//! - a local time that does not exist (the hour skipped when clocks go forward) fires
//!   at the first instant after the gap, once, however many such times the gap swallowed;
//! - a local time that happens twice (the hour repeated when clocks go back) fires once,
//!   at its first occurrence.
//!
//! Pure code: no clock; `after` is always an argument.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Why an expression or timezone was refused, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    /// `cron` or `timezone`: the request field this error is about.
    pub field: &'static str,
    pub message: String,
}

impl CronError {
    fn cron(message: impl Into<String>) -> Self {
        Self {
            field: "cron",
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
/// 0–7, Sunday being 0 and 7.
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// One parsed field: the values it allows, and whether it was `*` (or `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    values: Vec<u32>,
    star: bool,
}

impl Field {
    fn parse(text: &str, spec: FieldSpec, position: &str) -> Result<Self, CronError> {
        let wrong =
            |what: String| CronError::cron(format!("the {} field ({position}) {what}", spec.name));
        if text == "*" || (text == "?" && spec.name.starts_with("day")) {
            return Ok(Self::all(spec, true));
        }
        let mut values = vec![false; spec.max as usize + 1];
        for part in text.split(',') {
            if part.is_empty() {
                return Err(wrong(format!("{text:?} has an empty list item")));
            }
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step
                        .parse()
                        .map_err(|_| wrong(format!("step {step:?} in {part:?} is not a number")))?;
                    if step == 0 {
                        return Err(wrong(format!("step in {part:?} must be at least 1")));
                    }
                    (range, Some(step))
                }
                None => (part, None),
            };
            let (low, high) = if range == "*" {
                (spec.min, spec.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let low = value(a, spec).map_err(&wrong)?;
                let high = value(b, spec).map_err(&wrong)?;
                if low > high {
                    return Err(wrong(format!(
                        "range {range:?} runs backwards ({low} > {high})"
                    )));
                }
                (low, high)
            } else {
                let low = value(range, spec).map_err(&wrong)?;
                // `N/S` runs from N to the end of the field.
                (low, if step.is_some() { spec.max } else { low })
            };
            for v in (low..=high).step_by(step.unwrap_or(1) as usize) {
                values[v as usize] = true;
            }
        }
        if spec.name == "day-of-week" && values[7] {
            values[0] = true;
            values[7] = false;
        }
        let values: Vec<u32> = (0..=spec.max).filter(|v| values[*v as usize]).collect();
        Ok(Self {
            values,
            star: false,
        })
    }

    fn all(spec: FieldSpec, star: bool) -> Self {
        let max = if spec.name == "day-of-week" {
            6
        } else {
            spec.max
        };
        Self {
            values: (spec.min..=max).collect(),
            star,
        }
    }

    fn single(v: u32) -> Self {
        Self {
            values: vec![v],
            star: false,
        }
    }

    /// The field in the `cron` crate's syntax.
    fn crate_syntax(&self, weekday: bool) -> String {
        if self.star {
            return "*".into();
        }
        let items: Vec<String> = self
            .values
            .iter()
            .map(|v| {
                if weekday {
                    WEEKDAYS[*v as usize].to_owned()
                } else {
                    v.to_string()
                }
            })
            .collect();
        items.join(",")
    }
}

/// One value of a field: a number in range, or a name where the field has names.
fn value(text: &str, spec: FieldSpec) -> Result<u32, String> {
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        let offset = if spec.name == "month" { 1 } else { 0 };
        return Ok(i as u32 + offset);
    }
    let n: u32 = text.parse().map_err(|_| {
        if spec.names.is_empty() {
            format!("value {text:?} is not a number")
        } else {
            format!(
                "value {text:?} is neither a number nor one of {}",
                spec.names.join(", ")
            )
        }
    })?;
    if n < spec.min || n > spec.max {
        return Err(format!(
            "value {n} is out of range {}-{}",
            spec.min, spec.max
        ));
    }
    Ok(n)
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    second: Field,
    minute: Field,
    hour: Field,
    day_of_month: Field,
    month: Field,
    day_of_week: Field,
}

impl CronExpr {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `cron` crate schedules whose union this expression is: one, or two when both
    /// day fields are restricted (crontab's "either day matches").
    fn crate_schedules(&self) -> Vec<cron::Schedule> {
        let expr = |dom: &Field, dow: &Field| {
            format!(
                "{} {} {} {} {} {}",
                self.second.crate_syntax(false),
                self.minute.crate_syntax(false),
                self.hour.crate_syntax(false),
                dom.crate_syntax(false),
                self.month.crate_syntax(false),
                dow.crate_syntax(true),
            )
        };
        let star_dom = Field::all(DAY_OF_MONTH, true);
        let star_dow = Field::all(DAY_OF_WEEK, true);
        let texts = if !self.day_of_month.star && !self.day_of_week.star {
            vec![
                expr(&self.day_of_month, &star_dow),
                expr(&star_dom, &self.day_of_week),
            ]
        } else {
            vec![expr(&self.day_of_month, &self.day_of_week)]
        };
        texts
            .iter()
            .filter_map(|t| cron::Schedule::from_str(t).ok())
            .collect()
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(CronError::cron(format!(
                    "{trimmed:?} is not a supported macro (use @yearly, @monthly, @weekly, @daily or @hourly)"
                )))
            }
            _ => trimmed,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let specs: &[FieldSpec] = match fields.len() {
            5 => &[MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
            6 => &[SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
            n => {
                return Err(CronError::cron(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, found {n}"
                )))
            }
        };
        let count = fields.len();
        let mut parsed = Vec::with_capacity(count);
        for (i, (text, spec)) in fields.iter().zip(specs).enumerate() {
            let position = format!("field {} of {count}", i + 1);
            parsed.push(Field::parse(text, *spec, &position)?);
        }
        if count == 5 {
            parsed.insert(0, Field::single(0));
        }
        let mut parsed = parsed.into_iter();
        let mut next = || parsed.next().unwrap_or_else(|| Field::single(0));
        let expr = Self {
            text: trimmed.to_owned(),
            second: next(),
            minute: next(),
            hour: next(),
            day_of_month: next(),
            month: next(),
            day_of_week: next(),
        };
        if expr.crate_schedules().is_empty() {
            return Err(CronError::cron(format!(
                "{trimmed:?} is not a valid expression"
            )));
        }
        Ok(expr)
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses an IANA timezone name (`UTC`, `Europe/Berlin`, `America/New_York`).
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    Tz::from_str(name.trim()).map_err(|_| CronError {
        field: "timezone",
        message: format!("{name:?} is not an IANA timezone name (for example UTC, Europe/Berlin)"),
    })
}

/// A cron expression in a timezone: the due times of a schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: CronExpr,
    tz: Tz,
    schedules: Vec<cron::Schedule>,
}

/// How far ahead an expression must match at least once to be accepted (a leap day
/// repeats within 8 years; `0 0 30 2 *` never matches).
const HORIZON_YEARS: i64 = 9;

impl CronSchedule {
    pub fn new(expr: CronExpr, tz: Tz) -> Self {
        let schedules = expr.crate_schedules();
        Self {
            expr,
            tz,
            schedules,
        }
    }

    /// Parses and checks an expression and a timezone together; an expression that never
    /// matches a real date (`0 0 30 2 *`) is refused.
    pub fn parse(cron: &str, timezone: &str, now: DateTime<Utc>) -> Result<Self, CronError> {
        let schedule = Self::new(cron.parse()?, parse_timezone(timezone)?);
        if schedule.next_after(now).is_none() {
            return Err(CronError::cron(format!(
                "{:?} never matches a date (for example February 30)",
                schedule.expr.as_str()
            )));
        }
        Ok(schedule)
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first due time strictly after `after`, or `None` if none within nine years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let horizon = after + Duration::days(366 * HORIZON_YEARS);
        // Walk wall-clock times (as naive times, carried in the crate's UTC type) from
        // the wall-clock time of `after`, map each to an instant, keep the first past
        // `after`. In a repeated hour's second pass, wall times map to their first
        // occurrence, which is not past `after`: skipped, so they fire once.
        let local = after.with_timezone(&self.tz).naive_local();
        let start = Utc.from_utc_datetime(&local);
        let mut walks: Vec<_> = self
            .schedules
            .iter()
            .map(|s| s.after(&start).peekable())
            .collect();
        loop {
            // The earliest next wall time over the (one or two) walks.
            let (i, wall) = walks
                .iter_mut()
                .enumerate()
                .filter_map(|(i, w)| w.peek().map(|t| (i, *t)))
                .min_by_key(|(_, t)| *t)?;
            walks[i].next();
            if wall.naive_utc() > horizon.naive_utc() + Duration::days(1) {
                return None;
            }
            if let Some(instant) = self.instant_of(wall.naive_utc()) {
                if instant > after {
                    return Some(instant);
                }
            }
        }
    }

    /// The instant a wall-clock time means in this timezone: the first of two for a
    /// repeated time, the end of the gap for a skipped one.
    fn instant_of(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => {
                // Skipped by a forward jump: the first wall minute that exists again is
                // where the jump landed (gaps are whole minutes, at most a few hours).
                let mut probe = wall;
                for _ in 0..(6 * 60) {
                    probe += Duration::minutes(1);
                    let probe_minute = probe
                        .date()
                        .and_hms_opt(
                            chrono::Timelike::hour(&probe),
                            chrono::Timelike::minute(&probe),
                            0,
                        )
                        .unwrap_or(probe);
                    if let Some(t) = self.tz.from_local_datetime(&probe_minute).earliest() {
                        return Some(t.with_timezone(&Utc));
                    }
                }
                None
            }
        }
    }
}

/// The cron fuzz target's property (`fuzz/fuzz_targets/cron.rs`, which includes this
/// file; replayed by `tests/fuzz_corpus.rs`): the input's first line as an expression,
/// the second as a timezone (`UTC` without one), read as `POST /schedules` reads them. A
/// schedule that parses has a next due time after `now`, and one after that.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expr, tz) = text.split_once('\n').unwrap_or((text, "UTC"));
    let now = Utc
        .with_ymd_and_hms(2026, 3, 29, 0, 30, 0)
        .single()
        .expect("a date");
    let Ok(schedule) = CronSchedule::parse(expr, tz, now) else {
        return;
    };
    let next = schedule
        .next_after(now)
        .unwrap_or_else(|| panic!("{expr:?} in {tz:?} parsed but is never due"));
    assert!(
        next > now,
        "{expr:?}: next due time {next} is not after {now}"
    );
    if let Some(later) = schedule.next_after(next) {
        assert!(later > next, "{expr:?}: {later} is not after {next}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn next(cron: &str, tz: &str, after: &str) -> String {
        CronSchedule::parse(cron, tz, utc(after))
            .expect("valid")
            .next_after(utc(after))
            .expect("a next time")
            .to_rfc3339()
    }

    fn error(cron: &str) -> String {
        cron.parse::<CronExpr>().expect_err("invalid").message
    }

    #[test]
    fn five_fields_use_crontab_weekday_numbers() {
        // 2026-11-30 is a Monday.
        assert_eq!(
            next("0 9 * * 1", "UTC", "2026-11-30T10:00:00Z"),
            "2026-12-07T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * 0", "UTC", "2026-11-30T10:00:00Z"),
            "2026-12-06T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * 7", "UTC", "2026-11-30T10:00:00Z"),
            "2026-12-06T09:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * mon-fri", "UTC", "2026-12-04T10:00:00Z"),
            "2026-12-07T09:00:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "UTC", "2026-11-30T10:07:00Z"),
            "2026-11-30T10:15:00+00:00"
        );
        assert_eq!(
            next("30 */5 0 * * *", "UTC", "2026-11-30T00:00:31Z"),
            "2026-11-30T00:05:30+00:00"
        );
        assert_eq!(
            next("@hourly", "UTC", "2026-11-30T10:07:00Z"),
            "2026-11-30T11:00:00+00:00"
        );
    }

    #[test]
    fn restricted_day_fields_match_either_day() {
        // The 1st of the month or a Friday: 2026-12-04 is a Friday, before 2027-01-01.
        assert_eq!(
            next("0 0 1 * 5", "UTC", "2026-12-01T12:00:00Z"),
            "2026-12-04T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1 * 5", "UTC", "2026-12-25T12:00:00Z"),
            "2027-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn month_ends_and_leap_days() {
        assert_eq!(
            next("0 0 31 * *", "UTC", "2026-11-01T00:00:00Z"),
            "2026-12-31T00:00:00+00:00"
        );
        assert_eq!(
            next("0 12 29 2 *", "UTC", "2026-03-01T00:00:00Z"),
            "2028-02-29T12:00:00+00:00"
        );
        let never = CronSchedule::parse("0 0 30 2 *", "UTC", utc("2026-01-01T00:00:00Z"));
        assert!(never.expect_err("never").message.contains("never matches"));
    }

    #[test]
    fn timezones_shift_the_instant() {
        assert_eq!(
            next("0 0 * * *", "Europe/Berlin", "2026-11-30T10:00:00Z"),
            "2026-11-30T23:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-07-01T00:00:00Z"),
            "2026-07-01T13:00:00+00:00"
        );
    }

    #[test]
    fn a_skipped_local_time_fires_once_when_the_gap_ends() {
        // Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z"),
            "2026-03-29T01:00:00+00:00"
        );
        // Every 15 minutes: 02:00..02:45 all land on 03:00 CEST, fired once; the next is
        // 03:15.
        let s = CronSchedule::parse("*/15 * * * *", "Europe/Berlin", utc("2026-03-29T00:00:00Z"))
            .expect("valid");
        let mut t = utc("2026-03-29T00:40:00Z");
        let mut fired = Vec::new();
        for _ in 0..4 {
            t = s.next_after(t).expect("next");
            fired.push(t.to_rfc3339());
        }
        assert_eq!(
            fired,
            [
                "2026-03-29T00:45:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-29T01:15:00+00:00",
                "2026-03-29T01:30:00+00:00"
            ]
        );
    }

    #[test]
    fn a_repeated_local_time_fires_once() {
        // America/New_York 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:30 happens at
        // 05:30Z and again at 06:30Z. It fires at the first only.
        let s = CronSchedule::parse(
            "30 1 * * *",
            "America/New_York",
            utc("2026-10-31T12:00:00Z"),
        )
        .expect("valid");
        let first = s.next_after(utc("2026-10-31T12:00:00Z")).expect("next");
        assert_eq!(first.to_rfc3339(), "2026-11-01T05:30:00+00:00");
        let second = s.next_after(first).expect("next");
        assert_eq!(second.to_rfc3339(), "2026-11-02T06:30:00+00:00");
        // Every 30 minutes through the repeated hour: the wall times 01:00 and 01:30 fire
        // once each (at their first occurrence), then 02:00 EST.
        let s = CronSchedule::parse(
            "*/30 * * * *",
            "America/New_York",
            utc("2026-11-01T00:00:00Z"),
        )
        .expect("valid");
        let mut t = utc("2026-11-01T04:45:00Z");
        let mut fired = Vec::new();
        for _ in 0..3 {
            t = s.next_after(t).expect("next");
            fired.push(t.to_rfc3339());
        }
        assert_eq!(
            fired,
            [
                "2026-11-01T05:00:00+00:00",
                "2026-11-01T05:30:00+00:00",
                "2026-11-01T07:00:00+00:00"
            ]
        );
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        assert_eq!(
            error("61 * * * *"),
            "the minute field (field 1 of 5) value 61 is out of range 0-59"
        );
        assert_eq!(
            error("0 24 * * *"),
            "the hour field (field 2 of 5) value 24 is out of range 0-23"
        );
        assert_eq!(
            error("0 0 0 * *"),
            "the day-of-month field (field 3 of 5) value 0 is out of range 1-31"
        );
        assert_eq!(
            error("0 0 * 13 *"),
            "the month field (field 4 of 5) value 13 is out of range 1-12"
        );
        assert!(error("0 0 * * funday").contains(
            "day-of-week field (field 5 of 5) value \"funday\" is neither a number nor one of SUN"
        ));
        assert!(error("0 0 * *").contains("expected 5 fields"));
        assert!(error("*/0 * * * *").contains("step"));
        // A step past the field's end keeps only the start.
        let huge: CronExpr = "*/4294967295 * * * *".parse().expect("valid");
        assert_eq!(huge.minute.values, [0]);
        assert!(error("5-2 * * * *").contains("runs backwards"));
        assert!(error("60 0 0 * * *").contains("second field (field 1 of 6)"));
        assert!(error("@reboot").contains("not a supported macro"));
        let tz = parse_timezone("Mars/Olympus").expect_err("bad zone");
        assert_eq!(tz.field, "timezone");
    }
}
