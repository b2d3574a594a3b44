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
    pub fn add(&mut self, status: &str, n: i64) {
        match status {
            "sent" => self.sent += n,
            "bounced" => self.bounced += n,
            "deferred" => self.deferred += n,
            "failed" => self.failed += n,
            "suppressed" => self.suppressed += n,
            // `pending` is never written to a rollup; anything else would be a new status that
            // docs/STATS.md does not define yet, so it is left out rather than guessed.
            _ => {}
        }
    }

    /// Refused before reaching a remote server: the MTA or our retries gave up, or suppressed.
    pub fn rejected(&self) -> i64 {
        self.failed + self.suppressed
    }

    /// Every recipient with an outcome or an attempt: all but `pending`.
    pub fn total(&self) -> i64 {
        self.sent + self.bounced + self.deferred + self.rejected()
    }
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
            "select bucket, status, sum(n)::bigint from stats_outbound_hourly_rcpt
              where scope = $1 and bucket >= $2 and bucket < $3
              group by bucket, status"
        }
        StatsScope::All | StatsScope::Domain(_) => {
            "select bucket, status, n from stats_outbound_hourly
              where scope = $1 and bucket >= $2 and bucket < $3"
        }
    };
    let rows: Vec<(DateTime<Utc>, String, i64)> = sqlx::query_as(sql)
        .bind(scope.key())
        .bind(from)
        .bind(to)
        .fetch_all(db)
        .await?;
    let mut out: HashMap<DateTime<Utc>, Counts> = HashMap::new();
    for (bucket, status, n) in rows {
        out.entry(bucket).or_default().add(&status, n);
    }
    Ok(out)
}

/// Outbound counts per recipient domain over the split period.
pub async fn outbound_by_rcpt_domain(
    db: &PgPool,
    scope: &StatsScope,
    split: &Split,
) -> Result<HashMap<String, Counts>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "select rcpt_domain, status, sum(n)::bigint from (
             select rcpt_domain, status, n from stats_outbound_daily_rcpt
              where scope = $1 and day >= $2 and day < $3
             union all
             select rcpt_domain, status, n from stats_outbound_hourly_rcpt
              where scope = $1 and bucket >= $4 and bucket < $5
             union all
             select rcpt_domain, status, n from stats_outbound_hourly_rcpt
              where scope = $1 and bucket >= $6 and bucket < $7) r
          group by rcpt_domain, status",
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
    let mut out: HashMap<String, Counts> = HashMap::new();
    for (domain, status, n) in rows {
        out.entry(domain).or_default().add(&status, n);
    }
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

impl Inbound {
    fn add(&mut self, status: &str, n: i64) {
        match status {
            "accepted" => self.accepted += n,
            "rejected" => self.rejected += n,
            "spam" => self.spam += n,
            _ => {}
        }
    }
}

pub async fn inbound_totals(
    db: &PgPool,
    domain: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Inbound, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select status, sum(n)::bigint from stats_inbound_hourly
          where domain = $1 and bucket >= $2 and bucket < $3
          group by status",
    )
    .bind(domain)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let mut out = Inbound::default();
    for (status, n) in rows {
        out.add(&status, n);
    }
    Ok(out)
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
             select sender_domain, n from stats_inbound_daily_sender
              where domain = $1 and day >= $2 and day < $3
             union all
             select sender_domain, n from stats_inbound_hourly_sender
              where domain = $1 and bucket >= $4 and bucket < $5
             union all
             select sender_domain, n from stats_inbound_hourly_sender
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
