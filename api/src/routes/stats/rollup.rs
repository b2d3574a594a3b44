//! Reads the rollups that migrations/20261126000200_stats.sql maintains, for the rollup hours of
//! a period. Every query is an index range scan over buckets, so its cost is the number of
//! buckets in the period, never the number of recipients; the partial hours at a period's edges
//! are corrected from the raw rows ([`super::edges`]), all in one [`snapshot`]. The figures are
//! defined in docs/STATS.md.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::period::{Period, Split};
use crate::access::StatsScope;

/// Recipients per status (only statuses the rollups count: `pending` is never counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: i64,
    pub bounced: i64,
    pub deferred: i64,
    pub failed: i64,
    pub suppressed: i64,
}

impl Counts {
    /// Refused before reaching a remote server: the MTA or our retries gave up, or suppressed.
    pub fn rejected(&self) -> i64 {
        self.failed + self.suppressed
    }

    /// Recipients a receiving server was tried for: delivered, bounced or still deferred. The
    /// spec's breakdown `sent` (delivered + bounced + deferred in its example).
    pub fn attempted(&self) -> i64 {
        self.sent + self.bounced + self.deferred
    }

    /// Every recipient with an outcome or an attempt: all but `pending`. The spec's
    /// `total_sent`, which includes rejected mail (its `delivery_rate` is delivered / this).
    pub fn total(&self) -> i64 {
        self.attempted() + self.rejected()
    }

    pub fn add(&mut self, c: &Counts) {
        self.sent += c.sent;
        self.bounced += c.bounced;
        self.deferred += c.deferred;
        self.failed += c.failed;
        self.suppressed += c.suppressed;
    }
}

/// A rollup row: its key, then the status columns.
type Row<K> = (K, i64, i64, i64, i64, i64);

fn counts<K>((key, sent, bounced, deferred, failed, suppressed): Row<K>) -> (K, Counts) {
    let c = Counts {
        sent,
        bounced,
        deferred,
        failed,
        suppressed,
    };
    (key, c)
}

/// Outbound counts per hour bucket of the period.
pub async fn outbound_by_hour(
    db: &mut PgConnection,
    scope: &StatsScope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<DateTime<Utc>, Counts>, sqlx::Error> {
    // A sender address keeps only per-recipient-domain rows; the others keep hourly totals.
    let sql = match scope {
        StatsScope::Sender(_) => {
            "select bucket, sum(sent)::bigint, sum(bounced)::bigint, sum(deferred)::bigint,
                    sum(failed)::bigint, sum(suppressed)::bigint
               from stats_outbound_hourly_rcpt
              where scope = $1 and bucket >= $2 and bucket < $3
              group by bucket"
        }
        StatsScope::All | StatsScope::Domain(_) => {
            "select bucket, sent, bounced, deferred, failed, suppressed
               from stats_outbound_hourly
              where scope = $1 and bucket >= $2 and bucket < $3"
        }
    };
    let rows: Vec<Row<DateTime<Utc>>> = sqlx::query_as(sql)
        .bind(scope.key())
        .bind(from)
        .bind(to)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(counts).collect())
}

/// Outbound counts per recipient domain over the split period.
pub async fn outbound_by_rcpt_domain(
    db: &mut PgConnection,
    scope: &StatsScope,
    split: &Split,
) -> Result<HashMap<String, Counts>, sqlx::Error> {
    let rows: Vec<Row<String>> = sqlx::query_as(
        "select rcpt_domain, sum(sent)::bigint, sum(bounced)::bigint, sum(deferred)::bigint,
                sum(failed)::bigint, sum(suppressed)::bigint
           from (select rcpt_domain, sent, bounced, deferred, failed, suppressed
                   from stats_outbound_daily_rcpt
                  where scope = $1 and day >= $2 and day < $3
                 union all
                 select rcpt_domain, sent, bounced, deferred, failed, suppressed
                   from stats_outbound_hourly_rcpt
                  where scope = $1 and bucket >= $4 and bucket < $5
                 union all
                 select rcpt_domain, sent, bounced, deferred, failed, suppressed
                   from stats_outbound_hourly_rcpt
                  where scope = $1 and bucket >= $6 and bucket < $7) r
          group by rcpt_domain",
    )
    .bind(scope.key())
    .bind(split.days.0)
    .bind(split.days.1)
    .bind(split.head.0)
    .bind(split.head.1)
    .bind(split.tail.0)
    .bind(split.tail.1)
    .fetch_all(db)
    .await?;
    let mut out: HashMap<String, Counts> = rows.into_iter().map(counts).collect();
    out.retain(|_, c| c.total() != 0);
    Ok(out)
}

/// Inbound events for a receiving domain, per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inbound {
    pub accepted: i64,
    pub rejected: i64,
    pub spam: i64,
}

/// Inbound events for `domain` in the period: the rollup hours corrected by the raw spans of
/// `inbound_events` (by `occurred_at`, as the rollup buckets them, each with its sign), in one
/// statement and so one snapshot.
pub async fn inbound_totals(
    db: &mut PgConnection,
    domain: &str,
    period: &Period,
) -> Result<Inbound, sqlx::Error> {
    let [first, second] = period.raw;
    let (accepted, rejected, spam): (i64, i64, i64) = sqlx::query_as(
        "select coalesce(sum(accepted), 0)::bigint, coalesce(sum(rejected), 0)::bigint,
                coalesce(sum(spam), 0)::bigint
           from (select accepted, rejected, spam
                   from stats_inbound_hourly
                  where domain = $1 and bucket >= $2 and bucket < $3
                 union all
                 select $6 * count(*) filter (where status = 'accepted'),
                        $6 * count(*) filter (where status = 'rejected'),
                        $6 * count(*) filter (where status = 'spam')
                   from inbound_events
                  where domain = $1 and occurred_at >= $4 and occurred_at < $5
                 union all
                 select $9 * count(*) filter (where status = 'accepted'),
                        $9 * count(*) filter (where status = 'rejected'),
                        $9 * count(*) filter (where status = 'spam')
                   from inbound_events
                  where domain = $1 and occurred_at >= $7 and occurred_at < $8) r",
    )
    .bind(domain)
    .bind(period.hours.0)
    .bind(period.hours.1)
    .bind(first.span.0)
    .bind(first.span.1)
    .bind(first.sign)
    .bind(second.span.0)
    .bind(second.span.1)
    .bind(second.sign)
    .fetch_one(db)
    .await?;
    Ok(Inbound {
        accepted,
        rejected,
        spam,
    })
}

/// The `limit` sender domains with the most inbound events in the period (the null sender left
/// out), ranked over the rollups' days and hours and the raw spans together, in one statement.
pub async fn inbound_top_senders(
    db: &mut PgConnection,
    domain: &str,
    period: &Period,
    limit: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let split = period.split();
    let [first, second] = period.raw;
    sqlx::query_as(
        "select sender_domain, sum(n)::bigint as count from (
             select sender_domain, accepted + rejected + spam as n
               from stats_inbound_daily_sender
              where domain = $1 and day >= $2 and day < $3
             union all
             select sender_domain, accepted + rejected + spam
               from stats_inbound_hourly_sender
              where domain = $1 and bucket >= $4 and bucket < $5
             union all
             select sender_domain, accepted + rejected + spam
               from stats_inbound_hourly_sender
              where domain = $1 and bucket >= $6 and bucket < $7
             union all
             select sender_domain, $11 * count(*)
               from inbound_events
              where domain = $1 and sender_domain is not null
                and occurred_at >= $9 and occurred_at < $10
              group by sender_domain
             union all
             select sender_domain, $14 * count(*)
               from inbound_events
              where domain = $1 and sender_domain is not null
                and occurred_at >= $12 and occurred_at < $13
              group by sender_domain) r
          where sender_domain <> '<>'
          group by sender_domain
         having sum(n) <> 0
          order by count desc, sender_domain
          limit $8",
    )
    .bind(domain)
    .bind(split.days.0)
    .bind(split.days.1)
    .bind(split.head.0)
    .bind(split.head.1)
    .bind(split.tail.0)
    .bind(split.tail.1)
    .bind(limit)
    .bind(first.span.0)
    .bind(first.span.1)
    .bind(first.sign)
    .bind(second.span.0)
    .bind(second.span.1)
    .bind(second.sign)
    .fetch_all(db)
    .await
}

/// Opens the snapshot a request's figures are read in: the rollups and the raw spans that
/// correct them must see the same statuses, or a recipient whose status changed in between
/// would be added under one status and taken away under another.
pub async fn snapshot(
    db: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    db.begin_with("begin isolation level repeatable read, read only")
        .await
}

/// The UTC day an hour bucket belongs to.
pub fn day_of(bucket: DateTime<Utc>) -> NaiveDate {
    bucket.date_naive()
}
