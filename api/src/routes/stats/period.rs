//! The period a statistics request covers: `start_date`/`end_date` parsed once into whole UTC
//! hours, because the rollups count by the hour (of each message's `created_at`).
//!
//! A bound is an ISO 8601 date (`2024-01-27`) or date-time (`2024-01-27T10:30:00Z`, an offset,
//! or no offset meaning UTC). The start is rounded down to its hour; the end is rounded up to the
//! next whole hour (one already on the hour stays), and a date-only end means the whole day. So
//! `start_date=2024-01-20&end_date=2024-01-27` covers 2024-01-20T00:00:00Z to 2024-01-27T23:59:59Z,
//! as in the spec, and the figures equal a count of the messages created in `[start, end)`.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

use crate::error::{ApiError, ApiResult};

/// The longest period one request may cover (a year, leap day included).
const MAX_DAYS: i64 = 366;
/// The period when no `start_date` is given: this long before the end.
const DEFAULT_DAYS: i64 = 7;

/// `[start, end)`, both on whole UTC hours, `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Where the rollups are read for a period: whole days from the daily rows, and the partial
/// first and last day from the hourly rows. Any range may be empty (`from == to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub days: (NaiveDate, NaiveDate),
    pub head: (DateTime<Utc>, DateTime<Utc>),
    pub tail: (DateTime<Utc>, DateTime<Utc>),
}

impl Period {
    /// Parses the two query parameters (empty counts as absent) relative to `now`.
    pub fn parse(start: Option<&str>, end: Option<&str>, now: DateTime<Utc>) -> ApiResult<Self> {
        let start = start.map(str::trim).filter(|s| !s.is_empty());
        let end = end.map(str::trim).filter(|s| !s.is_empty());
        let end = match end {
            Some(raw) => parse_bound(raw, "end_date", Bound::End)?,
            None => ceil_hour(now).ok_or_else(|| invalid_date("end_date", "now"))?,
        };
        let start = match start {
            Some(raw) => parse_bound(raw, "start_date", Bound::Start)?,
            None => floor_hour(end - Duration::days(DEFAULT_DAYS))
                .ok_or_else(|| invalid_date("start_date", "the default"))?,
        };
        if end <= start {
            return Err(ApiError::invalid(
                "INVALID_RANGE",
                Some("end_date".to_owned()),
                "end_date must be after start_date",
            ));
        }
        if end - start > Duration::days(MAX_DAYS) {
            return Err(ApiError::invalid(
                "INVALID_RANGE",
                Some("start_date".to_owned()),
                format!("A period covers at most {MAX_DAYS} days"),
            ));
        }
        Ok(Self { start, end })
    }

    /// The last second inside the period, as the spec's `period.end` shows it.
    pub fn last_second(&self) -> DateTime<Utc> {
        self.end - Duration::seconds(1)
    }

    /// Splits into whole UTC days and the hours before the first and after the last of them.
    pub fn split(&self) -> Split {
        let first_day = ceil_day(self.start);
        let last_day = self.end.date_naive();
        match (first_day, midnight(last_day)) {
            (Some(first), Some(last_midnight)) if first < last_day => Split {
                days: (first, last_day),
                head: (self.start, midnight(first).unwrap_or(self.start)),
                tail: (last_midnight, self.end),
            },
            // No whole day inside: everything comes from the hourly rows.
            _ => Split {
                days: (last_day, last_day),
                head: (self.start, self.end),
                tail: (self.end, self.end),
            },
        }
    }

    /// Only hours: for scopes that keep no daily rows (a sender address).
    pub fn hours_only(&self) -> Split {
        let day = self.end.date_naive();
        Split {
            days: (day, day),
            head: (self.start, self.end),
            tail: (self.end, self.end),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Start,
    End,
}

fn parse_bound(raw: &str, field: &str, bound: Bound) -> ApiResult<DateTime<Utc>> {
    let bad = || invalid_date(field, raw);
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = match bound {
            Bound::Start => Some(date),
            // A date-only end includes that whole day.
            Bound::End => date.succ_opt(),
        };
        return day.and_then(midnight).ok_or_else(bad);
    }
    let instant = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M").map(|t| t.and_utc()))
        .map_err(|_| bad())?;
    match bound {
        Bound::Start => floor_hour(instant),
        Bound::End => ceil_hour(instant),
    }
    .ok_or_else(bad)
}

fn invalid_date(field: &str, raw: &str) -> ApiError {
    ApiError::invalid(
        "INVALID_DATE",
        Some(field.to_owned()),
        format!(
            "{field}: {raw:?} is not an ISO 8601 date (2024-01-27) or date-time (2024-01-27T10:30:00Z)"
        ),
    )
}

pub fn floor_hour(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.timestamp().div_euclid(3600) * 3600, 0)
}

fn ceil_hour(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let floor = floor_hour(t)?;
    if floor == t {
        Some(t)
    } else {
        floor.checked_add_signed(Duration::hours(1))
    }
}

fn midnight(day: NaiveDate) -> Option<DateTime<Utc>> {
    day.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

/// The first midnight at or after `t`, as a date.
fn ceil_day(t: DateTime<Utc>) -> Option<NaiveDate> {
    let day = t.date_naive();
    if midnight(day) == Some(t) {
        Some(day)
    } else {
        day.succ_opt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn code(r: ApiResult<Period>) -> &'static str {
        r.err().map(|e| e.code()).unwrap_or("OK")
    }

    #[test]
    fn dates_cover_whole_days_as_in_the_spec() {
        let p = Period::parse(Some("2024-01-20"), Some("2024-01-27"), Utc::now()).unwrap();
        assert_eq!(p.start, at("2024-01-20T00:00:00Z"));
        assert_eq!(p.last_second(), at("2024-01-27T23:59:59Z"));
        let s = p.split();
        assert_eq!(s.days.0.to_string(), "2024-01-20");
        assert_eq!(s.days.1.to_string(), "2024-01-28");
        assert_eq!(s.head.0, s.head.1);
        assert_eq!(s.tail.0, s.tail.1);
    }

    #[test]
    fn datetimes_round_outwards_to_hours() {
        let now = Utc::now();
        let p = Period::parse(
            Some("2024-01-20T10:30:00+02:00"),
            Some("2024-01-22T05:10"),
            now,
        );
        let p = p.unwrap();
        assert_eq!(p.start, at("2024-01-20T08:00:00Z"));
        assert_eq!(p.end, at("2024-01-22T06:00:00Z"));
        let s = p.split();
        assert_eq!(s.head, (p.start, at("2024-01-21T00:00:00Z")));
        assert_eq!(s.days.0.to_string(), "2024-01-21");
        assert_eq!(s.days.1.to_string(), "2024-01-22");
        assert_eq!(s.tail, (at("2024-01-22T00:00:00Z"), p.end));
        // An end on the hour stays: it is the first second not included.
        let p = Period::parse(
            Some("2024-01-20T10:00:00Z"),
            Some("2024-01-20T12:00:00Z"),
            now,
        );
        assert_eq!(p.unwrap().last_second(), at("2024-01-20T11:59:59Z"));
    }

    #[test]
    fn within_one_day_only_hours_are_read() {
        let p = Period::parse(
            Some("2024-01-20T10:00:00Z"),
            Some("2024-01-20T12:00:00Z"),
            at("2025-01-01T00:00:00Z"),
        )
        .unwrap();
        let s = p.split();
        assert_eq!(s.days.0, s.days.1);
        assert_eq!(s.head, (p.start, p.end));
    }

    #[test]
    fn defaults_are_the_last_seven_days() {
        let now = at("2024-01-27T10:30:00Z");
        let p = Period::parse(None, Some(""), now).unwrap();
        assert_eq!(p.end, at("2024-01-27T11:00:00Z"));
        assert_eq!(p.start, at("2024-01-20T11:00:00Z"));
    }

    #[test]
    fn bad_input_has_clear_codes() {
        let now = Utc::now();
        assert_eq!(
            code(Period::parse(Some("yesterday"), None, now)),
            "INVALID_DATE"
        );
        assert_eq!(
            code(Period::parse(None, Some("2024-13-01"), now)),
            "INVALID_DATE"
        );
        assert_eq!(
            code(Period::parse(Some("2024-01-27"), Some("2024-01-20"), now)),
            "INVALID_RANGE"
        );
        let same = Period::parse(Some("2024-01-20T10:00:00Z"), Some("2024-01-20T10:00"), now);
        assert_eq!(code(same), "INVALID_RANGE");
        assert_eq!(
            code(Period::parse(Some("2020-01-01"), Some("2024-01-01"), now)),
            "INVALID_RANGE"
        );
        assert_eq!(
            code(Period::parse(Some("+262143-01-01"), None, now)),
            "INVALID_DATE"
        );
    }
}
