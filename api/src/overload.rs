//! Load shedding: the API answers 503 `OVERLOADED` with a `Retry-After` instead of taking work
//! it cannot do in time. Two signals, each cheap to check on every request:
//!
//! * **In flight**: requests under `/api/v1` this process is working on. Past
//!   `MAILAPI_MAX_IN_FLIGHT` the next one is refused at once, before authentication, so a burst
//!   cannot pile up queued requests whose latency grows without bound.
//! * **Backlog**: messages that are due and not yet submitted, and how long the oldest of them
//!   has waited, read from Postgres (the record, shared by every replica) every
//!   `MAILAPI_SHED_SAMPLE_MS`. Past `MAILAPI_SHED_BACKLOG` or `MAILAPI_SHED_OLDEST_SECS`, sends
//!   are refused; every other route still answers, so senders can read statuses while the
//!   workers catch up.
//!
//! `Retry-After` for the backlog comes from the measured drain rate: the growth, per second of
//! this process's clock, of a counter the workers increment by the entries they acknowledge
//! (`Keys::drained`). The answer says when the backlog should be back under its threshold.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use shared::config::ServerLimits;
use shared::jobs::Keys;
use shared::redis::RedisConn;
use sqlx::PgPool;

pub mod middleware;

/// The most due messages one sample counts; a larger backlog is reported as this many (and
/// `capped`). Counting walks an index, so the cap bounds the sample's cost.
pub const BACKLOG_COUNT_CAP: i64 = 1_000_000;

/// How far back the drain rate looks.
const DRAIN_WINDOW: Duration = Duration::from_secs(10);

/// `Retry-After` bounds, in seconds.
pub const MIN_RETRY_AFTER: u64 = 1;
const MAX_RETRY_AFTER: u64 = 300;
/// `Retry-After` while nothing is draining (no worker, or the rate is not known yet).
const RETRY_AFTER_NO_DRAIN: u64 = 30;

/// A sample older than this is not trusted to shed by (Postgres unreachable: the request fails
/// on its own with 503 `SERVICE_UNAVAILABLE`).
const STALE_AFTER: Duration = Duration::from_secs(10);

/// Why a request was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShedReason {
    /// This process had `MAILAPI_MAX_IN_FLIGHT` requests under way.
    InFlight,
    /// More due messages than `MAILAPI_SHED_BACKLOG`.
    Backlog,
    /// The oldest due message has waited longer than `MAILAPI_SHED_OLDEST_SECS`.
    OldestAge,
}

impl ShedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::InFlight => "in_flight",
            ShedReason::Backlog => "backlog",
            ShedReason::OldestAge => "oldest_age",
        }
    }
}

/// One measurement of the backlog.
#[derive(Debug, Clone)]
pub struct Sample {
    /// This process's clock, for staleness.
    pub taken: Instant,
    pub taken_at: DateTime<Utc>,
    /// Due messages not yet submitted (at most [`BACKLOG_COUNT_CAP`]).
    pub backlog: u64,
    /// Seconds the oldest due message has waited; 0 with no backlog.
    pub oldest_age_secs: f64,
    /// Stream entries finished per second over the last few seconds; `None` until two readings
    /// of the counter exist (or while Redis is away).
    pub drain_rate: Option<f64>,
}

/// The shedding decision for a send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shed {
    pub reasons: [Option<ShedReason>; 2],
    pub retry_after_secs: u64,
}

impl Shed {
    pub fn first_reason(&self) -> Option<ShedReason> {
        self.reasons.iter().flatten().next().copied()
    }
}

pub struct Overload {
    limits: ServerLimits,
    in_flight: AtomicUsize,
    sample: Mutex<Option<Sample>>,
    /// Readings of the drained counter: (when, value).
    drained: Mutex<VecDeque<(Instant, u64)>>,
}

impl Overload {
    pub fn new(limits: ServerLimits) -> Self {
        Self {
            limits,
            in_flight: AtomicUsize::new(0),
            sample: Mutex::new(None),
            drained: Mutex::new(VecDeque::new()),
        }
    }

    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latest sample, if any.
    pub fn sample(&self) -> Option<Sample> {
        self.sample
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether a send should be refused now, by the latest fresh sample.
    pub fn shed_send(&self) -> Option<Shed> {
        let sample = self
            .sample
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        if sample.taken.elapsed() > STALE_AFTER {
            return None;
        }
        verdict(&self.limits, &sample)
    }

    /// Measures the backlog (Postgres) and reads the drained counter (Redis), and keeps the
    /// result for [`Overload::shed_send`].
    pub async fn measure(
        &self,
        db: &PgPool,
        redis: &RedisConn,
        keys: &Keys,
    ) -> anyhow::Result<Sample> {
        let (backlog, oldest_age_secs): (i64, Option<f64>) = sqlx::query_as(
            "select count(*), extract(epoch from now() - min(next_attempt_at))::float8
               from (select next_attempt_at from messages
                      where status = 'pending' and next_attempt_at <= now()
                      order by next_attempt_at limit $1) due",
        )
        .bind(BACKLOG_COUNT_CAP)
        .fetch_one(db)
        .await?;
        let counter = read_drained(redis, keys).await;
        let now = Instant::now();
        let drain_rate = {
            let mut readings = self
                .drained
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match counter {
                Some(value) => {
                    // A counter that went down was recreated (Redis restarted empty): start over.
                    if readings.back().is_some_and(|&(_, last)| value < last) {
                        readings.clear();
                    }
                    readings.push_back((now, value));
                    while readings.len() > 2
                        && readings
                            .get(1)
                            .is_some_and(|&(t, _)| now.duration_since(t) >= DRAIN_WINDOW)
                    {
                        readings.pop_front();
                    }
                    rate(&readings)
                }
                None => None,
            }
        };
        let sample = Sample {
            taken: now,
            taken_at: Utc::now(),
            backlog: u64::try_from(backlog).unwrap_or(0),
            oldest_age_secs: oldest_age_secs.unwrap_or(0.0).max(0.0),
            drain_rate,
        };
        metrics::gauge!(shared::metrics::BACKLOG).set(sample.backlog as f64);
        metrics::gauge!(shared::metrics::BACKLOG_OLDEST).set(sample.oldest_age_secs);
        *self
            .sample
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sample.clone());
        Ok(sample)
    }
}

/// The drained counter, or `None` when Redis cannot be asked.
async fn read_drained(redis: &RedisConn, keys: &Keys) -> Option<u64> {
    let mut conn = redis.clone();
    match redis::cmd("GET")
        .arg(keys.drained())
        .query_async::<Option<u64>>(&mut conn)
        .await
    {
        Ok(v) => Some(v.unwrap_or(0)),
        Err(e) => {
            tracing::debug!(error = %e, "could not read the drained counter");
            None
        }
    }
}

/// Entries per second between the oldest and the newest reading.
fn rate(readings: &VecDeque<(Instant, u64)>) -> Option<f64> {
    let (&(t0, v0), &(t1, v1)) = (readings.front()?, readings.back()?);
    let secs = t1.duration_since(t0).as_secs_f64();
    (secs >= 0.05).then(|| v1.saturating_sub(v0) as f64 / secs)
}

/// Whether `sample` calls for refusing sends under `limits`, and for how long.
pub fn verdict(limits: &ServerLimits, sample: &Sample) -> Option<Shed> {
    let over_count = limits.shed_backlog > 0 && sample.backlog > limits.shed_backlog;
    let age_limit = limits.shed_oldest_age.as_secs_f64();
    let over_age = age_limit > 0.0 && sample.oldest_age_secs > age_limit;
    if !over_count && !over_age {
        return None;
    }
    let wait = match sample.drain_rate {
        Some(rate) if rate > 0.0 => {
            let backlog = sample.backlog as f64;
            // Until the backlog is back at its threshold...
            let for_count = if over_count {
                (backlog - limits.shed_backlog as f64) / rate
            } else {
                0.0
            };
            // ... and until a message sent then would wait no longer than the age threshold.
            let for_age = if over_age {
                backlog / rate - age_limit
            } else {
                0.0
            };
            for_count.max(for_age).ceil().max(0.0) as u64
        }
        _ => RETRY_AFTER_NO_DRAIN,
    };
    Some(Shed {
        reasons: [
            over_count.then_some(ShedReason::Backlog),
            over_age.then_some(ShedReason::OldestAge),
        ],
        retry_after_secs: wait.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(backlog: u64, age: u64) -> ServerLimits {
        ServerLimits {
            max_in_flight: 10,
            shed_backlog: backlog,
            shed_oldest_age: Duration::from_secs(age),
            sample_every: Duration::from_secs(1),
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(60),
        }
    }

    fn sample(backlog: u64, age: f64, rate: Option<f64>) -> Sample {
        Sample {
            taken: Instant::now(),
            taken_at: Utc::now(),
            backlog,
            oldest_age_secs: age,
            drain_rate: rate,
        }
    }

    #[test]
    fn under_both_thresholds_nothing_is_shed() {
        assert_eq!(verdict(&limits(100, 60), &sample(100, 60.0, None)), None);
        // 0 turns a check off.
        assert_eq!(verdict(&limits(0, 0), &sample(1 << 40, 1e9, None)), None);
    }

    #[test]
    fn retry_after_is_the_time_to_drain_back_under_the_threshold() {
        // 1,000 over at 100/s: 10 s.
        let shed = verdict(&limits(5_000, 0), &sample(6_000, 1.0, Some(100.0))).unwrap();
        assert_eq!(shed.reasons, [Some(ShedReason::Backlog), None]);
        assert_eq!(shed.retry_after_secs, 10);
        // 6,000 at 100/s is 60 s of work; with a 30 s age limit, come back in 30 s.
        let shed = verdict(&limits(0, 30), &sample(6_000, 45.0, Some(100.0))).unwrap();
        assert_eq!(shed.reasons, [None, Some(ShedReason::OldestAge)]);
        assert_eq!(shed.retry_after_secs, 30);
    }

    #[test]
    fn retry_after_is_bounded_and_has_a_default_without_drain() {
        let shed = verdict(&limits(10, 0), &sample(11, 0.0, Some(1e9))).unwrap();
        assert_eq!(shed.retry_after_secs, MIN_RETRY_AFTER);
        let shed = verdict(&limits(10, 0), &sample(1_000_000, 0.0, Some(0.5))).unwrap();
        assert_eq!(shed.retry_after_secs, MAX_RETRY_AFTER);
        let shed = verdict(&limits(10, 0), &sample(11, 0.0, None)).unwrap();
        assert_eq!(shed.retry_after_secs, RETRY_AFTER_NO_DRAIN);
        let shed = verdict(&limits(10, 0), &sample(11, 0.0, Some(0.0))).unwrap();
        assert_eq!(shed.retry_after_secs, RETRY_AFTER_NO_DRAIN);
    }

    #[test]
    fn the_rate_spans_the_readings() {
        let t0 = Instant::now();
        let readings: VecDeque<_> = [(t0, 100), (t0 + Duration::from_secs(2), 300)].into();
        assert_eq!(rate(&readings), Some(100.0));
        let one: VecDeque<_> = [(t0, 100)].into();
        assert_eq!(rate(&one), None);
    }
}
