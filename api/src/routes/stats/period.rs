//! The period a statistics request covers: `start_date`/`end_date` parsed once, to the second,
//! and where each part of it is counted. docs/STATS.md, "Periods", is the user-facing version.
//!
//! A bound is an ISO 8601 date (`2024-01-27`) or date-time (`2024-01-27T10:30:00Z`, an offset,
//! or no offset meaning UTC); a fraction of a second is dropped. `end_date` is the last second
//! included, as the spec's `period.end` shows it: `2024-01-20 .. 2024-01-27` covers
//! 2024-01-20T00:00:00Z to 2024-01-27T23:59:59Z, and `..T10:16:59Z` stops before 10:17.
//!
//! The rollups count whole UTC hours (of each message's `created_at`, each inbound event's
//! `occurred_at`), so a period is read in two kinds of parts: its whole hours from the rollups,
//! and the partial hours at its two edges from the raw rows, by the same timestamp. An edge is
//! counted whichever way reads fewer raw rows: directly (`10:17:00-10:59:59`), or as its whole
//! hour from the rollups minus the rest of that hour (`10:00:00-10:16:59`) when the rest is
//! shorter or lies in the future. Each raw part is then at most half an hour of mail, and an
//! edge that ends now costs nothing. Read in one snapshot, the parts count exactly the rows
//! stamped in `[start, end)`.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

use crate::error::{ApiError, ApiResult};

/// The longest period one request may cover (a year, leap day included).
const MAX_DAYS: i64 = 366;
/// The period when no `start_date` is given: this long before the end.
const DEFAULT_DAYS: i64 = 7;

/// A half-open interval of time, `[from, to)`; empty when `from == to`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// A part of a period counted from the raw rows: a span inside one UTC hour whose rows are
/// added to what the rollups count (`sign` 1), or taken from it (`sign` -1: the rest of an
/// edge's hour, which the rollups count whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSpan {
    pub span: Span,
    pub sign: i64,
}

/// `[start, end)` in whole seconds, `start < end`; `end` is one second after `end_date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The UTC hours read from the hourly rollups: the whole hours inside the period, plus the
    /// hour of an edge counted as "its hour minus the rest". Possibly empty (`from == to`).
    pub hours: Span,
    /// What [`Period::hours`] is corrected by from the raw rows; either may be empty.
    pub raw: [RawSpan; 2],
}

/// Where the rollups are read for the whole hours of a period: whole days from the daily rows,
/// and the hours before the first and after the last of them from the hourly rows. Any range
/// may be empty (`from == to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub days: (NaiveDate, NaiveDate),
    pub head: Span,
    pub tail: Span,
}

impl Period {
    /// Parses the two query parameters (empty counts as absent) relative to `now`.
    pub fn parse(start: Option<&str>, end: Option<&str>, now: DateTime<Utc>) -> ApiResult<Self> {
        let start = start.map(str::trim).filter(|s| !s.is_empty());
        let end = end.map(str::trim).filter(|s| !s.is_empty());
        let end = match end {
            Some(raw) => parse_bound(raw, "end_date", Bound::End)?,
            // Now, this second included.
            None => floor_second(now)
                .and_then(|t| t.checked_add_signed(Duration::seconds(1)))
                .ok_or_else(|| invalid_date("end_date", "now"))?,
        };
        let start = match start {
            Some(raw) => parse_bound(raw, "start_date", Bound::Start)?,
            None => end
                .checked_sub_signed(Duration::days(DEFAULT_DAYS))
                .ok_or_else(|| invalid_date("start_date", "the default"))?,
        };
        if end <= start {
            return Err(ApiError::invalid(
                "INVALID_RANGE",
                Some("end_date".to_owned()),
                "end_date must not be before start_date",
            ));
        }
        if end - start > Duration::days(MAX_DAYS) {
            return Err(ApiError::invalid(
                "INVALID_RANGE",
                Some("start_date".to_owned()),
                format!("A period covers at most {MAX_DAYS} days"),
            ));
        }
        let (hours, raw) =
            plan(start, end, now).ok_or_else(|| invalid_date("end_date", "the period"))?;
        Ok(Self {
            start,
            end,
            hours,
            raw,
        })
    }

    /// The last second inside the period, as the spec's `period.end` shows it: the requested
    /// `end_date` itself (or the last second of a date-only one).
    pub fn last_second(&self) -> DateTime<Utc> {
        self.end - Duration::seconds(1)
    }

    /// Whether any part of the period must be counted from the raw rows.
    pub fn has_raw(&self) -> bool {
        self.raw.iter().any(|r| r.span.0 < r.span.1)
    }

    /// Every UTC hour the period touches, newest first: the buckets of `group_by=hour` (the
    /// first and last may be partial).
    pub fn hour_buckets(&self) -> impl Iterator<Item = DateTime<Utc>> + use<> {
        let first = self.start.timestamp().div_euclid(3600);
        let last = (self.end.timestamp() - 1).div_euclid(3600);
        (first..=last)
            .rev()
            .filter_map(|h| DateTime::from_timestamp(h * 3600, 0))
    }

    /// Splits the whole hours into whole UTC days and the hours before and after them.
    pub fn split(&self) -> Split {
        let (from, to) = self.hours;
        let first_day = ceil_day(from);
        let last_day = to.date_naive();
        match (first_day, midnight(last_day)) {
            (Some(first), Some(last_midnight)) if first < last_day => Split {
                days: (first, last_day),
                head: (from, midnight(first).unwrap_or(from)),
                tail: (last_midnight, to),
            },
            // No whole day inside: everything comes from the hourly rows.
            _ => Split {
                days: (last_day, last_day),
                head: (from, to),
                tail: (to, to),
            },
        }
    }

    /// Only hours: for scopes that keep no daily rows (a sender address).
    pub fn hours_only(&self) -> Split {
        let (from, to) = self.hours;
        let day = to.date_naive();
        Split {
            days: (day, day),
            head: (from, to),
            tail: (to, to),
        }
    }
}

/// The rollup hours and the raw corrections of `[start, end)`, choosing for each edge the way
/// that reads fewer raw rows, estimated by the length of each raw span up to `now` (there are no
/// rows after now). Both ways are exact; this only decides the cost.
fn plan(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(Span, [RawSpan; 2])> {
    let cost = |(from, to): Span| (to.min(now) - from).max(Duration::zero());
    let add = |span: Span| RawSpan { span, sign: 1 };
    let subtract = |span: Span| RawSpan { span, sign: -1 };
    let hour = Duration::hours(1);
    let start_hour = floor_hour(start)?;
    let (first_whole, end_hour) = (ceil_hour(start)?, floor_hour(end)?);
    if first_whole <= end_hour {
        // The head edge `[start, first_whole)` lies in `start_hour`, the tail edge
        // `[end_hour, end)` in `end_hour`; either may be empty.
        let (from, head) = if cost((start_hour, start)) < cost((start, first_whole)) {
            (start_hour, subtract((start_hour, start)))
        } else {
            (first_whole, add((start, first_whole)))
        };
        let next_hour = end_hour.checked_add_signed(hour)?;
        let (to, tail) = if end > end_hour && cost((end, next_hour)) < cost((end_hour, end)) {
            (next_hour, subtract((end, next_hour)))
        } else {
            (end_hour, add((end_hour, end)))
        };
        return Some(((from, to), [head, tail]));
    }
    // Inside one hour, neither bound on it: the period itself, or its hour minus both sides.
    let next_hour = start_hour.checked_add_signed(hour)?;
    let (before, after) = ((start_hour, start), (end, next_hour));
    if cost(before) + cost(after) < cost((start, end)) {
        Some(((start_hour, next_hour), [subtract(before), subtract(after)]))
    } else {
        Some(((end, end), [add((start, end)), add((end, end))]))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Start,
    End,
}

/// A bound as the first instant of the period (`Start`) or the first instant after it (`End`).
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
    let second = floor_second(instant);
    match bound {
        Bound::Start => second,
        // The end's second is included whole.
        Bound::End => second.and_then(|t| t.checked_add_signed(Duration::seconds(1))),
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

fn floor_second(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.timestamp(), 0)
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
mod tests;
