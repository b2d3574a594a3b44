//! The partial hours at the edges of a period, counted from the raw rows: the rollups count
//! whole hours only, so a period from 10:17:00 needs 10:17:00-10:59:59 from here, directly or as
//! the rollups' 10:00 hour minus 10:00:00-10:16:59, whichever reads fewer rows ([`Period::raw`],
//! docs/STATS.md, "Periods").
//!
//! A row is placed by the same timestamp as in the rollups (a recipient by its message's
//! `created_at`) and counted by its status now, in the same snapshot as the rollups are read, so
//! the rollup hours corrected by these counts are exactly the rows stamped inside the period.
//! Each raw span is at most half an hour of mail: an index range scan of `messages` by
//! `created_at` (per sender address or sending domain where the scope has one), then each
//! message's recipients by the `(message_id, email)` key; migrations/20261206000200_stats_edges.sql
//! has the plans.
//!
//! Inbound events need no query of their own: `rollup::inbound_totals` and
//! `rollup::inbound_top_senders` read their raw spans in the same statement as their rollup
//! rows, so that the top ten are ranked over the whole period.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::period::Period;
use super::rollup::Counts;
use crate::access::StatsScope;

/// The counts of one hour bucket and recipient domain in a raw span, negative where the span is
/// taken from the rollups' count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeCounts {
    /// The hour the span lies in, as the rollups key it.
    pub bucket: DateTime<Utc>,
    pub rcpt_domain: String,
    pub counts: Counts,
}

/// The statement for every scope: `$1`..`$4` are the two raw spans, `$5` the scope key; `first`
/// tells which span a row is in. The spans are written as two literal ranges so that each is its
/// own index range scan (a `BitmapOr`), in the generic plan too. Joined to a list of ranges
/// instead (`unnest`), the planner cannot estimate the join's range and reads all of `messages`.
macro_rules! outbound_sql {
    ($scope_filter:literal) => {
        concat!(
            "select m.created_at >= $1 and m.created_at < $2 as first,
                    date_trunc('hour', m.created_at, 'UTC') as bucket, r.domain,
                    count(*) filter (where r.status = 'sent'),
                    count(*) filter (where r.status = 'bounced'),
                    count(*) filter (where r.status = 'deferred'),
                    count(*) filter (where r.status = 'failed'),
                    count(*) filter (where r.status = 'suppressed')
               from messages m
               join recipients r on r.message_id = m.id
              where (m.created_at >= $1 and m.created_at < $2
                     or m.created_at >= $3 and m.created_at < $4)
                and r.status <> 'pending' ",
            $scope_filter,
            " group by 1, 2, 3"
        )
    };
}

/// The raw corrections of the period's rollup hours ([`Period::raw`]), per hour bucket and
/// recipient domain, with their sign applied (none when the period starts and ends on whole
/// hours). `db` is the snapshot the rollups are read in.
pub async fn outbound(
    db: &mut PgConnection,
    scope: &StatsScope,
    period: &Period,
) -> Result<Vec<EdgeCounts>, sqlx::Error> {
    if !period.has_raw() {
        return Ok(Vec::new());
    }
    let [first, second] = period.raw;
    let (sql, key) = match scope {
        StatsScope::All => (outbound_sql!(""), None),
        StatsScope::Domain(d) => (outbound_sql!("and m.from_domain = $5"), Some(d.as_str())),
        StatsScope::Sender(e) => (outbound_sql!("and m.from_email = $5"), Some(e.as_str())),
    };
    type Row = (bool, DateTime<Utc>, String, i64, i64, i64, i64, i64);
    let mut query = sqlx::query_as::<_, Row>(sql)
        .bind(first.span.0)
        .bind(first.span.1)
        .bind(second.span.0)
        .bind(second.span.1);
    if let Some(key) = key {
        query = query.bind(key);
    }
    let rows = query.fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(
            |(in_first, bucket, rcpt_domain, sent, bounced, deferred, failed, suppressed)| {
                let sign = if in_first { first.sign } else { second.sign };
                EdgeCounts {
                    bucket,
                    rcpt_domain,
                    counts: Counts {
                        sent: sign * sent,
                        bounced: sign * bounced,
                        deferred: sign * deferred,
                        failed: sign * failed,
                        suppressed: sign * suppressed,
                    },
                }
            },
        )
        .collect())
}

/// Corrects per-hour counts read from the rollups by the raw spans.
pub fn add_to_hours(hours: &mut HashMap<DateTime<Utc>, Counts>, edges: &[EdgeCounts]) {
    for e in edges {
        hours.entry(e.bucket).or_default().add(&e.counts);
    }
}

/// Corrects per-recipient-domain counts read from the rollups by the raw spans; a domain whose
/// mail in the rollup hours was all outside the period drops out.
pub fn add_to_rcpt_domains(domains: &mut HashMap<String, Counts>, edges: &[EdgeCounts]) {
    for e in edges {
        domains
            .entry(e.rcpt_domain.clone())
            .or_default()
            .add(&e.counts);
    }
    domains.retain(|_, c| *c != Counts::default());
}
