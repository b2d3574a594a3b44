//! The partial hours at the edges of a period, counted from the raw rows: the rollups count
//! whole hours only, so a period from 10:17:00 reads 10:17:00-10:59:59 here (docs/STATS.md).
//!
//! A row is placed by the same timestamp as in the rollups (a recipient by its message's
//! `created_at`), and counted by its status now, so an edge hour read here plus the whole hours
//! from the rollups count exactly the rows stamped inside the period. Each edge is shorter than
//! an hour, so a query reads at most two hours of mail: an index range scan of `messages` by
//! `created_at` (per sender or domain where the scope has one) and each message's recipients by
//! the `(message_id, email)` key; migrations/20261206000200_stats_edges.sql has the plans.
//!
//! Inbound events need no query of their own: `rollup::inbound_totals` and
//! `rollup::inbound_top_senders` read their edges in the same statement as their rollup rows,
//! so that the top ten are ranked over the whole period.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::period::Period;
use super::rollup::Counts;
use crate::access::StatsScope;

/// The counts of one hour bucket and recipient domain inside an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeCounts {
    /// The hour the edge lies in, as the rollups key it.
    pub bucket: DateTime<Utc>,
    pub rcpt_domain: String,
    pub counts: Counts,
}

/// The statement for every scope: `$1`..`$4` are the two edges, `$5` the scope key. The edges
/// are written as two literal ranges so that each is its own index range scan (a `BitmapOr`),
/// in the generic plan too. Joined to a list of ranges instead (`unnest`), the planner cannot
/// estimate the join's range and reads all of `messages`.
macro_rules! outbound_sql {
    ($scope_filter:literal) => {
        concat!(
            "select date_trunc('hour', m.created_at, 'UTC') as bucket, r.domain,
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
            " group by 1, 2"
        )
    };
}

/// Outbound counts of the period's edges, per hour bucket and recipient domain (none when the
/// period starts and ends on whole hours).
pub async fn outbound(
    db: &PgPool,
    scope: &StatsScope,
    period: &Period,
) -> Result<Vec<EdgeCounts>, sqlx::Error> {
    if !period.has_edges() {
        return Ok(Vec::new());
    }
    let [head, tail] = period.edges();
    let (sql, key) = match scope {
        StatsScope::All => (outbound_sql!(""), None),
        StatsScope::Domain(d) => (outbound_sql!("and m.from_domain = $5"), Some(d.as_str())),
        StatsScope::Sender(e) => (outbound_sql!("and m.from_email = $5"), Some(e.as_str())),
    };
    type Row = (DateTime<Utc>, String, i64, i64, i64, i64, i64);
    let mut query = sqlx::query_as::<_, Row>(sql)
        .bind(head.0)
        .bind(head.1)
        .bind(tail.0)
        .bind(tail.1);
    if let Some(key) = key {
        query = query.bind(key);
    }
    let rows = query.fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(
            |(bucket, rcpt_domain, sent, bounced, deferred, failed, suppressed)| EdgeCounts {
                bucket,
                rcpt_domain,
                counts: Counts {
                    sent,
                    bounced,
                    deferred,
                    failed,
                    suppressed,
                },
            },
        )
        .collect())
}

/// Adds the edges to per-hour counts read from the rollups.
pub fn add_to_hours(hours: &mut HashMap<DateTime<Utc>, Counts>, edges: &[EdgeCounts]) {
    for e in edges {
        hours.entry(e.bucket).or_default().add(&e.counts);
    }
}

/// Adds the edges to per-recipient-domain counts read from the rollups.
pub fn add_to_rcpt_domains(domains: &mut HashMap<String, Counts>, edges: &[EdgeCounts]) {
    for e in edges {
        domains
            .entry(e.rcpt_domain.clone())
            .or_default()
            .add(&e.counts);
    }
}
