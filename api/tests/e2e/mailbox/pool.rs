//! The IMAP session pool: bounds, reuse and eviction, and what a reused session sees.

use futures::StreamExt;
use std::time::Duration;
use testkit::assert_error;

use super::Fixture;
use super::support::{append, imap_as, messages, plain_message};

#[tokio::test]
async fn pool_bounds_reuse_and_eviction() {
    use api::imap::{ImapError, ImapPool, PoolConfig};
    let f = Fixture::new().await;
    let pool = ImapPool::new(
        f.app.settings.imap.clone(),
        PoolConfig {
            max_total: 3,
            max_per_mailbox: 2,
            acquire_timeout: Duration::from_millis(300),
            ..PoolConfig::default()
        },
    );
    let a1 = pool.acquire(&f.alice).await.unwrap();
    let a2 = pool.acquire(&f.alice).await.unwrap();
    // A third for the same mailbox waits for one of the two, then gives up.
    assert!(matches!(
        pool.acquire(&f.alice).await,
        Err(ImapError::PoolExhausted(_))
    ));
    let b1 = pool.acquire(&f.bob).await.unwrap();
    assert_eq!(pool.open_sessions(), 3);
    // Returned sessions are reused, not reopened.
    drop(a1);
    let a1 = pool.acquire(&f.alice).await.unwrap();
    assert_eq!(pool.open_sessions(), 3);
    drop(a1);
    // The pool is full: Bob's second session evicts Alice's idle one.
    let b2 = pool.acquire(&f.bob).await.unwrap();
    assert_eq!(pool.open_sessions(), 3);
    // A waiting request gets the first session returned.
    let (p, alice) = (pool.clone(), f.alice.clone());
    let waiter = tokio::spawn(async move {
        let mut s = p.acquire(&alice).await?;
        s.examine(&api::imap::FolderName::inbox()).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(a2);
    waiter.await.unwrap().unwrap();
    drop((b1, b2));
}

#[tokio::test]
async fn a_reused_session_sees_new_and_expunged_mail() {
    let f = Fixture::new().await;
    let path = format!("/mailbox/{}/messages", f.alice);
    let total = async || f.get_json(&path, &f.alice_token).await["total"].clone();
    append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    assert_eq!(total().await, 1);
    // Arrivals and expunges by other connections reach the pooled session's count.
    let second = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 2)).await;
    append(&f.alice, "INBOX", None, &plain_message(&f.alice, 3)).await;
    assert_eq!(total().await, 3);
    let mut other = imap_as(&f.alice).await;
    other.select("INBOX").await.unwrap();
    other
        .uid_store(second.to_string(), "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    other.expunge().await.unwrap().collect::<Vec<_>>().await;
    other.logout().await.ok();
    let list = f.get_json(&path, &f.alice_token).await;
    assert_eq!(list["total"], 2);
    let uids: Vec<u64> = messages(&list)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    assert!(!uids.contains(&u64::from(second)), "{uids:?}");
    assert_error(
        f.get(&format!("{path}/{second}"), &f.alice_token).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
}
