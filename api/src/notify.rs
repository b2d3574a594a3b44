//! One Postgres `LISTEN` connection per API process, shared by every request that waits for a
//! message to change (`Prefer: wait` on send; later long-polls). A waiting request holds no
//! database connection and no worker slot: it registers interest in one message id and sleeps
//! until the listener wakes it, then reads the row once.
//!
//! A notification is only a wake-up (see `shared::notify`): a waiter always re-reads the row, so
//! a lost notification costs at most the wait, and a spurious one a query. When the listening
//! connection is (re)established every waiter is woken once, because notifications sent while it
//! was down are gone.
//!
//! The connection is opened on the first registration, so a process that never waits never
//! holds it, and the listener ends when the last handle to the hub is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long the listener sleeps before reconnecting after a failure.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Notifications {
    shared: Arc<Shared>,
}

struct Shared {
    database_url: SecretString,
    channel: &'static str,
    state: Mutex<State>,
    /// Cancelled when the process shuts down: waits end at once.
    closing: CancellationToken,
    /// Cancelled when the last handle is dropped: the listener task ends.
    dropped: CancellationToken,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.dropped.cancel();
    }
}

#[derive(Default)]
struct State {
    started: bool,
    next_key: u64,
    waiters: HashMap<Uuid, Vec<(u64, Arc<Notify>)>>,
}

/// Interest in one id; dropping it unregisters.
pub struct Registration {
    shared: Arc<Shared>,
    id: Uuid,
    key: u64,
    notify: Arc<Notify>,
}

impl Notifications {
    pub fn new(database_url: SecretString, channel: &'static str) -> Self {
        Self {
            shared: Arc::new(Shared {
                database_url,
                channel,
                state: Mutex::new(State::default()),
                closing: CancellationToken::new(),
                dropped: CancellationToken::new(),
            }),
        }
    }

    /// Registers interest in `id`. Register BEFORE reading the row: a change committed after the
    /// read then wakes the registration, and one committed before it is seen by the read.
    pub fn register(&self, id: Uuid) -> Registration {
        let notify = Arc::new(Notify::new());
        let mut state = self.shared.lock();
        let key = state.next_key;
        state.next_key += 1;
        state
            .waiters
            .entry(id)
            .or_default()
            .push((key, notify.clone()));
        if !state.started {
            state.started = true;
            tokio::spawn(listen(
                Arc::downgrade(&self.shared),
                self.shared.database_url.clone(),
                self.shared.channel,
                self.shared.dropped.clone(),
            ));
        }
        Registration {
            shared: self.shared.clone(),
            id,
            key,
            notify,
        }
    }

    /// Ends every wait now and makes later ones return at once (graceful shutdown: in-flight
    /// requests answer instead of holding the drain up).
    pub fn close(&self) {
        self.shared.closing.cancel();
    }

    /// Requests currently waiting (for metrics and tests).
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiters.values().map(Vec::len).sum()
    }
}

impl Registration {
    /// Returns when the id was notified, the listener reconnected, or the hub is closing
    /// (`false` then). A wake-up that came before this call is not lost.
    pub async fn notified(&self) -> bool {
        tokio::select! {
            () = self.notify.notified() => true,
            () = self.shared.closing.cancelled() => false,
        }
    }

    pub fn is_closing(&self) -> bool {
        self.shared.closing.is_cancelled()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(list) = state.waiters.get_mut(&self.id) {
            list.retain(|(k, _)| *k != self.key);
            if list.is_empty() {
                state.waiters.remove(&self.id);
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent (each change is one
        // call), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self, id: &Uuid) {
        if let Some(list) = self.lock().waiters.get(id) {
            for (_, n) in list {
                n.notify_one();
            }
        }
    }

    fn wake_all(&self) {
        for list in self.lock().waiters.values() {
            for (_, n) in list {
                n.notify_one();
            }
        }
    }
}

/// The listener: connects, `LISTEN`s, wakes waiters by id; reconnects on failure and wakes
/// everyone after each (re)connect. Ends when the hub is dropped.
async fn listen(
    hub: Weak<Shared>,
    url: SecretString,
    channel: &'static str,
    dropped: CancellationToken,
) {
    loop {
        let connected = tokio::select! {
            () = dropped.cancelled() => return,
            c = connect(url.expose_secret(), channel) => c,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for message changes; retrying");
                tokio::select! {
                    () = dropped.cancelled() => return,
                    () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                }
            }
        };
        // Whatever was committed while we were not listening: every waiter re-reads its row.
        match hub.upgrade() {
            Some(s) => s.wake_all(),
            None => return,
        }
        loop {
            let next = tokio::select! {
                () = dropped.cancelled() => return,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(n)) => {
                    if let (Ok(id), Some(s)) = (Uuid::parse_str(n.payload()), hub.upgrade()) {
                        s.wake(&id);
                    }
                }
                // The connection dropped: reconnect (and wake everyone) from the top.
                Ok(None) | Err(_) => {
                    tracing::warn!("the LISTEN connection dropped; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn connect(url: &str, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
