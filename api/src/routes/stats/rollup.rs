//! Reads the rollups that migrations/20261126000200_stats.sql maintains. Every query is an index
//! range scan over buckets, so its cost is the number of buckets in the period, never the number of
//! recipients. The figures are defined in docs/STATS.md.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;

use super::period::Split;
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

    /// Every recipient with an outcome or an attempt: all but `pending`.
    pub fn total(&self) -> i64 {
        self.sent + self.bounced + self.deferred + self.rejected()
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
    db: &PgPool,
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
    db: &PgPool,
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

pub async fn inbound_totals(
    db: &PgPool,
    domain: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Inbound, sqlx::Error> {
    let (accepted, rejected, spam): (i64, i64, i64) = sqlx::query_as(
        "select coalesce(sum(accepted), 0)::bigint, coalesce(sum(rejected), 0)::bigint,
                coalesce(sum(spam), 0)::bigint
           from stats_inbound_hourly
          where domain = $1 and bucket >= $2 and bucket < $3",
    )
    .bind(domain)
    .bind(from)
    .bind(to)
    .fetch_one(db)
    .await?;
    Ok(Inbound {
        accepted,
        rejected,
        spam,
    })
}

/// The `limit` sender domains with the most inbound events (the null sender left out).
pub async fn inbound_top_senders(
    db: &PgPool,
    domain: &str,
    split: &Split,
    limit: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
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
              where domain = $1 and bucket >= $6 and bucket < $7) r
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
    .fetch_all(db)
    .await
}

/// The UTC day an hour bucket belongs to.
pub fn day_of(bucket: DateTime<Utc>) -> NaiveDate {
    bucket.date_naive()
}
