//! The benchmark's mailbox: created in the main database when missing, and filled with
//! Maildir files written straight into `cur/`, which `doveadm force-resync` indexes.

use std::os::unix::fs::chown;
use std::path::PathBuf;

const VMAIL_UID: u32 = 995;
const VMAIL_GID: u32 = 994;
/// One subject in this many carries the rare word searched for.
const RARE_EVERY: usize = 1000;

/// Creates the domain and the mailbox unless they exist.
pub(crate) async fn ensure_mailbox(db: &sqlx::PgPool, email: &str) -> anyhow::Result<()> {
    let (local, domain) = email
        .split_once('@')
        .ok_or_else(|| anyhow::anyhow!("not an address: {email}"))?;
    sqlx::query("insert into domains (domain, active) values ($1, true) on conflict do nothing")
        .bind(domain)
        .execute(db)
        .await?;
    sqlx::query(
        "insert into mailboxes (domain_id, local_part, email, password_hash)
         select id, $2, $3, $4 from domains where domain = $1
         on conflict do nothing",
    )
    .bind(domain)
    .bind(local)
    .bind(email)
    .bind(shared::password::hash_password(
        &uuid::Uuid::new_v4().to_string(),
    ))
    .execute(db)
    .await?;
    Ok(())
}

/// Writes `count` messages into the mailbox's `Maildir/cur` and has Dovecot index them.
pub(crate) fn seed(email: &str, first: usize, count: usize) -> anyhow::Result<()> {
    let (local, domain) = email
        .split_once('@')
        .ok_or_else(|| anyhow::anyhow!("not an address: {email}"))?;
    let root = PathBuf::from(format!("/var/vmail/{domain}/{local}/Maildir"));
    for sub in ["cur", "new", "tmp"] {
        let dir = root.join(sub);
        std::fs::create_dir_all(&dir)?;
        chown(&dir, Some(VMAIL_UID), Some(VMAIL_GID))?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let pid = std::process::id();
    for i in first..first + count {
        let body = message(email, i);
        let seen = if i.is_multiple_of(3) { "" } else { "S" };
        // Dovecot reads size (S) and virtual size (W) from the name; CRLF makes them equal.
        let name = format!(
            "{}.M{i}P{pid}.bench,S={len},W={len}:2,{seen}",
            now - (first + count - i) as u64,
            len = body.len()
        );
        let path = root.join("cur").join(name);
        std::fs::write(&path, &body)?;
        chown(&path, Some(VMAIL_UID), Some(VMAIL_GID))?;
    }
    let out = std::process::Command::new("doveadm")
        .args(["force-resync", "-u", email, "INBOX"])
        .output()?;
    anyhow::ensure!(out.status.success(), "doveadm force-resync: {out:?}");
    Ok(())
}

fn message(to: &str, i: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "invoice", "meeting", "report", "budget", "travel", "contract", "update", "review",
        "project", "release", "offer", "schedule",
    ];
    let w = |k: usize| WORDS[(i / k + k) % WORDS.len()];
    let rare = if i.is_multiple_of(RARE_EVERY) {
        " zeppelin"
    } else {
        ""
    };
    let paragraph = format!(
        "Hello, this is message {i} about the {} and the {}. Please review the attached {} \
         before the {} on Friday; the {} depends on it.\r\n",
        w(1),
        w(3),
        w(5),
        w(7),
        w(11)
    );
    let mut text = String::new();
    for _ in 0..20 {
        text.push_str(&paragraph);
    }
    format!(
        "From: Sender {s} <sender{s}@example{d}.com>\r\n\
         To: {to}\r\n\
         Subject: {} {} #{i}{rare}\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <bench-{i}@example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {text}",
        w(2),
        w(13),
        s = i % 500,
        d = i % 50,
    )
    .into_bytes()
}
