//! The period parser's rules, edge by edge.

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn code(r: ApiResult<Period>) -> &'static str {
    r.err().map(|e| e.code()).unwrap_or("OK")
}

fn parse(start: &str, end: &str) -> Period {
    Period::parse(Some(start), Some(end), at("2025-01-01T00:00:00Z")).unwrap()
}

#[test]
fn dates_cover_whole_days_as_in_the_spec() {
    let p = parse("2024-01-20", "2024-01-27");
    assert_eq!(p.start, at("2024-01-20T00:00:00Z"));
    assert_eq!(p.last_second(), at("2024-01-27T23:59:59Z"));
    assert_eq!(p.hours, (p.start, p.end));
    assert!(!p.has_raw());
    let s = p.split();
    assert_eq!(s.days.0.to_string(), "2024-01-20");
    assert_eq!(s.days.1.to_string(), "2024-01-28");
    assert_eq!(s.head.0, s.head.1);
    assert_eq!(s.tail.0, s.tail.1);
}

#[test]
fn datetimes_are_kept_to_the_second_and_the_end_is_included() {
    let p = parse("2024-01-20T10:17:00+02:00", "2024-01-22T05:10");
    assert_eq!(p.start, at("2024-01-20T08:17:00Z"));
    assert_eq!(p.last_second(), at("2024-01-22T05:10:00Z"));
    assert_eq!(p.end, at("2024-01-22T05:10:01Z"));
    // Whole hours from the rollups. The head edge (08:17-08:59:59) is its hour minus
    // 08:00-08:16:59 from the raw rows, the tail edge (05:00-05:10:00) raw rows.
    assert_eq!(
        p.hours,
        (at("2024-01-20T08:00:00Z"), at("2024-01-22T05:00:00Z"))
    );
    assert_eq!(
        p.raw,
        [
            RawSpan {
                span: (at("2024-01-20T08:00:00Z"), p.start),
                sign: -1
            },
            RawSpan {
                span: (at("2024-01-22T05:00:00Z"), p.end),
                sign: 1
            }
        ]
    );
    let s = p.split();
    assert_eq!(s.head, (p.hours.0, at("2024-01-21T00:00:00Z")));
    assert_eq!(s.days.0.to_string(), "2024-01-21");
    assert_eq!(s.days.1.to_string(), "2024-01-22");
    assert_eq!(s.tail, (at("2024-01-22T00:00:00Z"), p.hours.1));
    // A fraction of a second is dropped: the bounds are whole seconds.
    let p = parse("2024-01-20T10:17:00.900Z", "2024-01-20T10:30:00.250Z");
    assert_eq!(p.start, at("2024-01-20T10:17:00Z"));
    assert_eq!(p.end, at("2024-01-20T10:30:01Z"));
    // An end on the hour is that second, included: the hour after it is an edge of 1 s.
    let p = parse("2024-01-20T10:00:00Z", "2024-01-20T12:00:00Z");
    assert_eq!(p.last_second(), at("2024-01-20T12:00:00Z"));
    assert_eq!(p.hours, (p.start, at("2024-01-20T12:00:00Z")));
    assert_eq!(p.raw[1].span, (at("2024-01-20T12:00:00Z"), p.end));
    // One second is a period too.
    let p = parse("2024-01-20T10:17:00Z", "2024-01-20T10:17:00Z");
    assert_eq!(p.end - p.start, Duration::seconds(1));
}

/// How many times the rollup hours and the raw corrections count an instant.
fn weight(p: &Period, t: DateTime<Utc>) -> i64 {
    let inside = |(from, to): Span| i64::from(from <= t && t < to);
    inside(p.hours) + p.raw.iter().map(|r| r.sign * inside(r.span)).sum::<i64>()
}

#[test]
fn rollup_hours_and_raw_rows_count_each_second_of_the_period_once() {
    let later = at("2025-01-01T00:00:00Z");
    for (start, end, now) in [
        ("2024-01-20T10:17:00Z", "2024-01-20T10:44:59Z", later),
        ("2024-01-20T10:05:00Z", "2024-01-20T10:54:59Z", later),
        ("2024-01-20T10:17:00Z", "2024-01-20T10:59:59Z", later),
        ("2024-01-20T10:17:00Z", "2024-01-20T11:00:00Z", later),
        ("2024-01-20T10:47:00Z", "2024-01-23T08:05:00Z", later),
        ("2024-01-20T10:17:00Z", "2024-01-23T08:45:00Z", later),
        ("2024-01-20T23:59:59Z", "2024-01-21T00:00:00Z", later),
        ("2024-01-20T10:00:00Z", "2024-01-20T11:59:59Z", later),
        // Ending now, in the current hour: the rest of that hour is in the future.
        (
            "2024-01-13T10:20:07Z",
            "2024-01-20T10:20:07Z",
            at("2024-01-20T10:20:07.3Z"),
        ),
        (
            "2024-01-20T10:05:00Z",
            "2024-01-20T10:10:00Z",
            at("2024-01-20T10:10:00.3Z"),
        ),
    ] {
        let p = Period::parse(Some(start), Some(end), now).unwrap();
        let first = floor_hour(p.start).unwrap() - Duration::hours(1);
        let last = ceil_hour(p.end).unwrap() + Duration::hours(1);
        let mut t = first;
        while t < last {
            let want = i64::from(p.start <= t && t < p.end);
            assert_eq!(weight(&p, t), want, "{start} .. {end} at {t}");
            // Every second near the edges, every 10 minutes in between.
            let near = t < p.start + Duration::hours(2) || t >= p.end - Duration::hours(2);
            t += if near {
                Duration::seconds(1)
            } else {
                Duration::minutes(10)
            };
        }
        assert!(p.hours.0 <= p.hours.1, "{start} .. {end}");
        if p.hours.0 < p.hours.1 {
            assert_eq!(p.hours.0.timestamp() % 3600, 0, "{start}");
            assert_eq!(p.hours.1.timestamp() % 3600, 0, "{start}");
        }
        // Each raw part lies inside one hour, and they read at most half an hour each
        // (up to now).
        for r in p.raw {
            let (from, to) = r.span;
            assert!(from <= to, "{start} .. {end}");
            if from < to {
                let last = to - Duration::seconds(1);
                assert_eq!(floor_hour(from), floor_hour(last), "inside one hour");
            }
        }
        let read: Duration = p
            .raw
            .iter()
            .map(|r| (r.span.1.min(now) - r.span.0).max(Duration::zero()))
            .sum();
        assert!(read <= Duration::minutes(60), "{start} .. {end}: {read}");
    }
    // Inside one hour and short: only raw rows.
    let p = parse("2024-01-20T10:17:00Z", "2024-01-20T10:44:59Z");
    assert_eq!(p.hours.0, p.hours.1);
    assert_eq!(p.raw[0].span, (p.start, p.end));
    // Inside one hour and long: the hour minus both sides.
    let p = parse("2024-01-20T10:05:00Z", "2024-01-20T10:54:59Z");
    assert_eq!(
        p.hours,
        (at("2024-01-20T10:00:00Z"), at("2024-01-20T11:00:00Z"))
    );
    assert_eq!(p.raw.map(|r| r.sign), [-1, -1]);
    // Ending now: the tail is its hour minus the (empty) future.
    let now = at("2024-01-20T10:20:07.3Z");
    let p = Period::parse(Some("2024-01-13T10:20:07Z"), None, now).unwrap();
    assert_eq!(p.hours.1, at("2024-01-20T11:00:00Z"));
    assert_eq!(p.raw[1].span, (p.end, p.hours.1));
    assert_eq!(p.raw[1].sign, -1);
}

#[test]
fn within_one_day_only_hours_are_read() {
    let p = parse("2024-01-20T10:00:00Z", "2024-01-20T11:59:59Z");
    let s = p.split();
    assert_eq!(s.days.0, s.days.1);
    assert_eq!(s.head, (p.start, p.end));
    assert!(!p.has_raw());
}

#[test]
fn defaults_are_the_seven_days_up_to_now() {
    let now = at("2024-01-27T10:30:15.5Z");
    let p = Period::parse(None, Some(""), now).unwrap();
    assert_eq!(p.last_second(), at("2024-01-27T10:30:15Z"));
    assert_eq!(p.start, at("2024-01-20T10:30:16Z"));
    assert_eq!(p.end - p.start, Duration::days(7));
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
    let before = Period::parse(Some("2024-01-20T10:00:00Z"), Some("2024-01-20T09:59"), now);
    assert_eq!(code(before), "INVALID_RANGE");
    assert_eq!(
        code(Period::parse(Some("2020-01-01"), Some("2024-01-01"), now)),
        "INVALID_RANGE"
    );
    assert_eq!(
        code(Period::parse(Some("+262143-01-01"), None, now)),
        "INVALID_DATE"
    );
}
