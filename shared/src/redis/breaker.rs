//! Going on without Redis while it is away.
//!
//! Postgres is the record and Redis only wakes workers and counts rate limits, so a request
//! must never wait for Redis longer than a short timeout, and while Redis is away it should not
//! wait at all. [`Breaker`] bounds every command by `timeout` (reconnecting included) and, after
//! a command could not reach Redis, fails every command at once for [`BREAK_FOR`]. Then one
//! command is let through as a probe (the others keep failing fast until it answers): if it
//! succeeds, Redis is back for everyone.
//!
//! What the callers do instead: the API's rate limiter counts per process (governor), and an
//! accepted message's stream entry is left to the workers' reconciler, which re-adds it from
//! Postgres once Redis answers again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::RedisError;

/// How long commands fail at once after one could not reach Redis.
pub const BREAK_FOR: Duration = Duration::from_secs(1);

/// Whether a command may go to Redis now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Redis answers: go.
    Go,
    /// Redis was away and the pause is over: this command finds out whether it is back.
    Probe,
    /// Redis is away: fail at once.
    Refuse,
}

#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    timeout: Duration,
    pause: Duration,
    /// 0 while Redis answers; otherwise the time (ms after `epoch`, never 0) until which
    /// commands are refused.
    open_until: AtomicU64,
}

impl Breaker {
    pub fn new(timeout: Duration, pause: Duration) -> Breaker {
        Breaker {
            epoch: Instant::now(),
            timeout,
            pause,
            open_until: AtomicU64::new(0),
        }
    }

    /// The bound on one command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
    }

    pub fn admit(&self) -> Admit {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Go;
        }
        let now = self.now_ms();
        if now < until {
            return Admit::Refuse;
        }
        // One caller takes the probe; pushing the deadline past its own timeout keeps the others
        // failing fast while it runs.
        let probe_until = now + Self::ms(self.timeout);
        match self.open_until.compare_exchange(
            until,
            probe_until,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Admit::Probe,
            Err(_) => Admit::Refuse,
        }
    }

    /// Redis answered (any answer, an error reply included).
    pub fn answered(&self) {
        if self.open_until.load(Ordering::Acquire) != 0
            && self.open_until.swap(0, Ordering::AcqRel) != 0
        {
            tracing::info!("Redis answers again");
        }
    }

    /// A command could not reach Redis (refused, dropped or timed out).
    pub fn unreachable(&self, error: &RedisError) {
        let until = self.now_ms() + Self::ms(self.pause);
        if self.open_until.swap(until, Ordering::AcqRel) == 0 {
            tracing::warn!(%error, pause_ms = Self::ms(self.pause),
                "Redis cannot be reached; going on without it (rate limits per process, stream entries left to the reconciler)");
            metrics::counter!(crate::metrics::REDIS_UNREACHABLE).increment(1);
        }
    }

    /// Runs one command under the breaker: refused at once while Redis is away, bounded by the
    /// timeout otherwise.
    pub async fn run<T>(
        &self,
        admit: Admit,
        command: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        if admit == Admit::Refuse {
            return Err(away());
        }
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(v)) => {
                self.answered();
                Ok(v)
            }
            Ok(Err(e)) => {
                if cannot_reach(&e) {
                    self.unreachable(&e);
                } else {
                    self.answered();
                }
                Err(e)
            }
            Err(_) => {
                let e = RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer from Redis within {} ms", Self::ms(self.timeout)),
                ));
                self.unreachable(&e);
                Err(e)
            }
        }
    }
}

/// The error of a command refused while Redis is away.
fn away() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "Redis is unreachable (a recent command failed to reach it; retrying shortly)",
    ))
}

/// Whether `e` says Redis could not be reached, rather than that it refused the command. The
/// breaker logs such an outage once, so per-request handlers log these at debug level.
pub fn cannot_reach(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error() -> RedisError {
        RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ))
    }

    #[test]
    fn after_a_failure_commands_are_refused_then_one_probes() {
        let b = Breaker::new(Duration::from_millis(50), Duration::from_millis(30));
        assert_eq!(b.admit(), Admit::Go);
        b.unreachable(&io_error());
        assert_eq!(b.admit(), Admit::Refuse);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Admit::Probe);
        // While the probe runs, everyone else still fails fast.
        assert_eq!(b.admit(), Admit::Refuse);
        b.answered();
        assert_eq!(b.admit(), Admit::Go);
    }

    #[test]
    fn a_failed_probe_starts_another_pause() {
        let b = Breaker::new(Duration::from_millis(20), Duration::from_millis(30));
        b.unreachable(&io_error());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Admit::Probe);
        b.unreachable(&io_error());
        assert_eq!(b.admit(), Admit::Refuse);
    }

    #[tokio::test]
    async fn a_command_that_hangs_is_cut_at_the_timeout_and_opens_the_breaker() {
        let b = Breaker::new(Duration::from_millis(50), Duration::from_secs(5));
        let started = Instant::now();
        let r: Result<(), _> = b.run(b.admit(), std::future::pending()).await;
        assert!(r.unwrap_err().is_timeout());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(b.admit(), Admit::Refuse);
        // Refused commands never start.
        let r: Result<(), _> = b
            .run(b.admit(), async {
                panic!("must not run while Redis is away")
            })
            .await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn an_error_reply_is_an_answer() {
        let b = Breaker::new(Duration::from_millis(50), Duration::from_secs(5));
        let reply = RedisError::from((
            deadpool_redis::redis::ErrorKind::UnexpectedReturnType,
            "WRONGTYPE",
        ));
        let r: Result<(), _> = b.run(b.admit(), async { Err(reply) }).await;
        assert!(r.is_err());
        assert_eq!(b.admit(), Admit::Go);
    }
}
