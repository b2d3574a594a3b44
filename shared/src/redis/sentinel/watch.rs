//! The watcher that tells a [`super::MasterLookup`] the sentinels moved the master: it stays
//! subscribed to `+switch-master` on one sentinel at a time and bumps the lookup's epoch.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, ConnectionInfo, RedisError, Value};
use futures::StreamExt as _;

/// The sentinels' channel announcing `<name> <old ip> <old port> <new ip> <new port>`.
const SWITCH_MASTER: &str = "+switch-master";
/// Bounds connecting and subscribing to a sentinel, and its answer to a liveness `PING`.
const WATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the watcher waits for an announcement before checking its sentinel still answers.
const WATCH_IDLE: Duration = Duration::from_secs(5);

/// Stays subscribed to one sentinel at a time (the next one when it stops answering) and bumps
/// `epoch` on every `+switch-master` for `master_name`. Ends once the lookup is dropped.
pub(super) async fn watch_switches(
    sentinels: Vec<ConnectionInfo>,
    master_name: String,
    epoch: Weak<AtomicU64>,
) {
    for info in sentinels.iter().cycle() {
        if epoch.strong_count() == 0 {
            return;
        }
        let subscribed = async {
            let mut pubsub = redis::Client::open(info.clone())?
                .get_async_pubsub()
                .await?;
            pubsub.subscribe(SWITCH_MASTER).await?;
            Ok::<_, RedisError>(pubsub.split())
        };
        let Ok(Ok((mut sink, mut stream))) = tokio::time::timeout(WATCH_TIMEOUT, subscribed).await
        else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        loop {
            match tokio::time::timeout(WATCH_IDLE, stream.next()).await {
                Ok(Some(msg)) => {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    if payload.split(' ').next() == Some(master_name.as_str()) {
                        let Some(epoch) = epoch.upgrade() else { return };
                        epoch.fetch_add(1, Ordering::SeqCst);
                        tracing::info!(%payload, "a sentinel announced a new Redis master");
                    }
                }
                Ok(None) => break,
                Err(_idle) => {
                    if epoch.strong_count() == 0 {
                        return;
                    }
                    let ping = tokio::time::timeout(WATCH_TIMEOUT, sink.ping::<Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
    }
}
