//! A bounded pool of authenticated IMAP sessions, keyed by mailbox (a session is logged in as
//! one user, so it can only be reused for that user).
//!
//! At most `max_total` sessions exist (a semaphore permit travels with each), and at most
//! `max_per_mailbox` are in use for one mailbox, so twenty concurrent requests on one mailbox
//! are served by several connections instead of queueing behind one, without one mailbox
//! starving the rest. Requests for one mailbox queue first at that mailbox's gate, a fair (FIFO)
//! semaphore, so under load every request waits its turn rather than losing races; then they take
//! an idle session or open one. When the pool is full, an idle session of another mailbox is
//! closed to make room; otherwise the request waits, and fails after `acquire_timeout`. An idle session older than
//! `max_idle` is closed; one idle longer than `ping_after` is checked with NOOP before reuse, and
//! a session that failed, timed out or was abandoned mid-command is dropped, never reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::config::ImapSettings;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::error::ImapError;
use super::session::MailSession;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_total: usize,
    /// Dovecot allows `mail_max_userip_connections` (100 here) per user and IP.
    pub max_per_mailbox: usize,
    pub acquire_timeout: Duration,
    pub connect_timeout: Duration,
    /// Upper bound for any single IMAP command.
    pub command_timeout: Duration,
    pub ping_after: Duration,
    pub max_idle: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_total: 64,
            max_per_mailbox: 8,
            acquire_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(15),
            ping_after: Duration::from_secs(5),
            max_idle: Duration::from_secs(120),
        }
    }
}

#[derive(Clone)]
pub struct ImapPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    settings: ImapSettings,
    config: PoolConfig,
    permits: Arc<Semaphore>,
    state: Mutex<PoolState>,
    /// Woken whenever a session is returned or closed.
    released: Notify,
}

#[derive(Default)]
struct PoolState {
    idle: HashMap<String, Vec<Idle>>,
    /// Per mailbox, `max_per_mailbox` permits for sessions in use. Idle sessions hold none, so
    /// sessions (idle + in use) never exceed it: a new one is opened only when none is idle.
    gates: HashMap<String, Arc<Semaphore>>,
}

struct Idle {
    session: MailSession,
    permit: OwnedSemaphorePermit,
    since: Instant,
}

/// What `acquire` found under the lock.
enum Slot {
    Reuse(Idle),
    Connect(OwnedSemaphorePermit),
    Wait,
}

impl ImapPool {
    pub fn new(settings: ImapSettings, config: PoolConfig) -> Self {
        ImapPool {
            inner: Arc::new(PoolInner {
                permits: Arc::new(Semaphore::new(config.max_total)),
                settings,
                config,
                state: Mutex::new(PoolState::default()),
                released: Notify::new(),
            }),
        }
    }

    /// A session logged in as `mailbox`, reused when one is idle.
    pub async fn acquire(&self, mailbox: &str) -> Result<PooledSession, ImapError> {
        let cfg = &self.inner.config;
        let started = tokio::time::Instant::now();
        let deadline = started + cfg.acquire_timeout;
        let exhausted = || ImapError::PoolExhausted(cfg.acquire_timeout);
        let gate = self.inner.gate(mailbox);
        let in_use = tokio::time::timeout_at(deadline, gate.acquire_owned())
            .await
            .map_err(|_| exhausted())?
            .map_err(|_| exhausted())?;
        let mut guard = PooledSession {
            session: None,
            permit: None,
            in_use: Some(in_use),
            mailbox: mailbox.to_owned(),
            pool: self.inner.clone(),
            counted: false,
        };
        loop {
            let notified = self.inner.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.inner.take_slot(mailbox) {
                Slot::Reuse(idle) => {
                    guard.permit = Some(idle.permit);
                    let mut session = idle.session;
                    let alive = !session.looks_closed()
                        && (idle.since.elapsed() < cfg.ping_after || session.ping().await.is_ok());
                    if !alive {
                        // Dead (kicked, server restarted): replace it within the same slot.
                        tracing::debug!(mailbox, "replacing a dead IMAP connection");
                        session = self.connect(mailbox).await?;
                    }
                    guard.session = Some(session);
                    return Ok(guard.handed_out(started));
                }
                Slot::Connect(permit) => {
                    guard.permit = Some(permit);
                    guard.session = Some(self.connect(mailbox).await?);
                    return Ok(guard.handed_out(started));
                }
                Slot::Wait => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(exhausted());
                    }
                }
            }
        }
    }

    async fn connect(&self, mailbox: &str) -> Result<MailSession, ImapError> {
        let cfg = &self.inner.config;
        MailSession::connect(
            &self.inner.settings,
            mailbox,
            cfg.connect_timeout,
            cfg.command_timeout,
        )
        .await
    }

    /// Sessions currently open (idle or in use), for tests and metrics.
    pub fn open_sessions(&self) -> usize {
        self.inner.config.max_total - self.inner.permits.available_permits()
    }
}

impl PoolInner {
    fn gate(&self, mailbox: &str) -> Arc<Semaphore> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.gates
            .entry(mailbox.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_per_mailbox)))
            .clone()
    }

    fn take_slot(&self, mailbox: &str) -> Slot {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.close_expired(&mut st);
        if let Some(idle) = st.idle.get_mut(mailbox).and_then(Vec::pop) {
            return Slot::Reuse(idle);
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => Slot::Connect(p),
            Err(_) => evict_oldest_idle(&mut st).map_or(Slot::Wait, Slot::Connect),
        }
    }

    /// Closes idle sessions past `max_idle`, and forgets gates nobody holds or waits on.
    fn close_expired(&self, st: &mut PoolState) {
        let max_idle = self.config.max_idle;
        for list in st.idle.values_mut() {
            list.retain(|i| i.since.elapsed() < max_idle);
        }
        st.idle.retain(|_, l| !l.is_empty());
        let max = self.config.max_per_mailbox;
        let PoolState { idle, gates } = st;
        gates.retain(|m, g| {
            idle.contains_key(m) || Arc::strong_count(g) > 1 || g.available_permits() < max
        });
    }

    fn give_back(&self, mailbox: &str, session: Option<MailSession>, permit: OwnedSemaphorePermit) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match session {
            Some(mut session) if !session.is_broken() => {
                session.absorb_unsolicited();
                st.idle.entry(mailbox.to_owned()).or_default().push(Idle {
                    session,
                    permit,
                    since: Instant::now(),
                });
            }
            _ => drop(permit),
        }
        drop(st);
        self.released.notify_waiters();
    }
}

/// Closes the least recently used idle session and returns its permit.
fn evict_oldest_idle(st: &mut PoolState) -> Option<OwnedSemaphorePermit> {
    let (mailbox, index) = st
        .idle
        .iter()
        .flat_map(|(m, list)| list.iter().enumerate().map(move |(i, s)| (m, i, s.since)))
        .min_by_key(|(_, _, since)| *since)
        .map(|(m, i, _)| (m.clone(), i))?;
    let list = st.idle.get_mut(&mailbox)?;
    let victim = list.remove(index);
    if list.is_empty() {
        st.idle.remove(&mailbox);
    }
    Some(victim.permit)
}

/// A session on loan from the pool; it goes back on drop unless it broke.
pub struct PooledSession {
    session: Option<MailSession>,
    /// The pool-wide permit; it stays with the session when the session goes idle.
    permit: Option<OwnedSemaphorePermit>,
    /// The mailbox gate's permit; released after the session is back in the idle list, so
    /// the next request in line finds it there.
    in_use: Option<OwnedSemaphorePermit>,
    mailbox: String,
    pool: Arc<PoolInner>,
    /// Counted in the in-use gauge (only guards that were handed out are).
    counted: bool,
}

impl PooledSession {
    fn handed_out(mut self, waiting_since: tokio::time::Instant) -> Self {
        metrics::histogram!(shared::metrics::IMAP_WAIT)
            .record(waiting_since.elapsed().as_secs_f64());
        metrics::gauge!(shared::metrics::IMAP_IN_USE).increment(1.0);
        self.counted = true;
        self
    }
}

impl std::ops::Deref for PooledSession {
    type Target = MailSession;

    fn deref(&self) -> &MailSession {
        self.session
            .as_ref()
            .expect("a handed-out guard holds a session")
    }
}

impl std::ops::DerefMut for PooledSession {
    fn deref_mut(&mut self) -> &mut MailSession {
        self.session
            .as_mut()
            .expect("a handed-out guard holds a session")
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        if self.counted {
            metrics::gauge!(shared::metrics::IMAP_IN_USE).decrement(1.0);
        }
        if let Some(permit) = self.permit.take() {
            self.pool
                .give_back(&self.mailbox, self.session.take(), permit);
        }
        drop(self.in_use.take());
    }
}
