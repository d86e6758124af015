//! A cron expression read in an IANA time zone: the instants at which it ticks.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use kernelize_core::{Error, ErrorKind, Result};

use crate::definition::{parse_schedule, parse_timezone};

/// A cron schedule in a time zone; every tick is an instant, given in UTC.
///
/// Expressions have 5 fields (minute hour day-of-month month day-of-week), or 6 with
/// seconds first, or are a nickname (`@hourly`, `@daily`, ...). The fields are read in the
/// schedule's zone, so `0 9 * * *` in `Europe/Paris` ticks at 09:00 Paris time, summer and
/// winter. See the [module docs](super) for what happens when a clock change skips or
/// repeats the hour a tick falls in.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    timezone: Option<String>,
    zone: Tz,
    cron: Cron,
}

impl Schedule {
    /// Reads `expression` in `timezone` (an IANA name; UTC when `None`). A bad expression
    /// or an unknown zone is a `ConfigInvalid` error that says which.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self> {
        let cron = parse_schedule(expression)
            .map_err(|message| Error::new(ErrorKind::ConfigInvalid, message))?;
        let zone = match timezone {
            Some(name) => parse_timezone(name)
                .map_err(|message| Error::new(ErrorKind::ConfigInvalid, message))?,
            None => Tz::UTC,
        };
        Ok(Self {
            expression: expression.trim().to_string(),
            timezone: timezone.map(str::to_string),
            zone,
            cron,
        })
    }

    /// The expression, as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone name as written, `None` when the schedule runs in UTC by default.
    pub fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }

    /// The zone the fields are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first tick strictly after `t`; `None` when the expression never matches again
    /// (like `0 0 30 2 *`, the 30th of February).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks fall on whole seconds: a tick at `t`'s whole second is not after `t`.
        let (floor, _) = split_second(t);
        self.cron
            .find_next_occurrence(&floor.with_timezone(&self.zone), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last tick at or before `t`.
    pub fn latest_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (floor, _) = split_second(t);
        self.cron
            .find_previous_occurrence(&floor.with_timezone(&self.zone), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last tick strictly before `t`.
    pub fn previous_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (floor, whole) = split_second(t);
        // Past a whole second, that second itself is before `t`.
        self.cron
            .find_previous_occurrence(&floor.with_timezone(&self.zone), !whole)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The ticks strictly after `t`, in order, without end (unless the expression stops
    /// matching). Bound it with `take` or `take_while`.
    pub fn ticks_after(&self, t: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cursor = t;
        std::iter::from_fn(move || {
            let next = self.next_after(cursor)?;
            cursor = next;
            Some(next)
        })
    }
}

/// `t` truncated to its second, and whether it was a whole second already.
fn split_second(t: DateTime<Utc>) -> (DateTime<Utc>, bool) {
    match t.duration_trunc(TimeDelta::seconds(1)) {
        Ok(floor) => (floor, floor == t),
        Err(_) => (t, true),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ticks_fall_on_whole_seconds_and_fractions_of_a_second_are_respected() {
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        let t = at("2026-01-01T10:00:00.500Z");
        assert_eq!(every_minute.next_after(t), Some(at("2026-01-01T10:01:00Z")));
        assert_eq!(
            every_minute.latest_until(t),
            Some(at("2026-01-01T10:00:00Z"))
        );
        assert_eq!(
            every_minute.previous_before(t),
            Some(at("2026-01-01T10:00:00Z"))
        );
        assert_eq!(
            every_minute.previous_before(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-01T09:59:00Z"))
        );
        assert_eq!(
            every_minute.next_after(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-01T10:01:00Z"))
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_config_errors() {
        let e = Schedule::parse("* * *", None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("3 fields"), "{e}");
        let e = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(e.message().contains("Mars/Olympus"), "{e}");
    }
}
