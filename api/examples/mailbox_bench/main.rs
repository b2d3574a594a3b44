//! Benchmark of the mailbox endpoints on a big folder, each beside the same IMAP commands sent
//! straight to Dovecot in the same run (the ceiling the API cannot beat).
//!
//! ```text
//! source /etc/mailapi/mailapi.env
//! cargo run -p api --example mailbox_bench -- --email bench@bench-imap.test --messages 50000
//! ```
//!
//! The mailbox (and its domain) are created in the main database when missing; remove them
//! afterwards with `delete from domains where domain = '<domain>'` and
//! `rm -r /var/vmail/<domain>`. When its INBOX holds fewer than
//! `--messages`, the rest are written as Maildir files straight into `cur/` (as the vmail user)
//! and `doveadm force-resync` indexes them: ~50,000 messages in seconds instead of an hour of
//! SMTP. The API runs in this process on 127.0.0.1:0 against the main database, with the rate
//! limit lifted and a temporary admin token that is deleted at the end.

mod seed;

use std::time::{Duration, Instant};

use api::auth::TokenType;
use api::imap::summary::SUMMARY_ITEMS;
use api::imap::{FolderName, ImapPool, PoolConfig};
use rand::Rng;
use secrecy::ExposeSecret;
use shared::config::Settings;
use tokio_util::sync::CancellationToken;

use seed::{ensure_mailbox, seed};

struct Args {
    email: String,
    messages: usize,
    iterations: usize,
    clients: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        email: "bench@bench-imap.test".into(),
        messages: 50_000,
        iterations: 200,
        clients: 20,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--email" => a.email = value,
            "--messages" => a.messages = value.parse().expect("--messages N"),
            "--iterations" => a.iterations = value.parse().expect("--iterations N"),
            "--clients" => a.clients = value.parse().expect("--clients N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Times `$imap` and `$api` (each an `anyhow::Result<()>` expression that may `.await`)
/// alternately `$n` times, so both see the same machine load, and pushes both rows to `$report`.
/// A macro rather than a function taking closures, so that the bodies can borrow the IMAP
/// session mutably on each round. Panics on the first error.
macro_rules! pair {
    ($report:ident, $n:expr, |$i:ident| $imap_name:expr => $imap:expr, $api_name:expr => $api:expr) => {{
        let n: usize = $n;
        let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for $i in 0..n {
            let t = Instant::now();
            let r: anyhow::Result<()> = $imap;
            if let Err(e) = r {
                panic!("{}: {e:#}", $imap_name);
            }
            a.push(t.elapsed());
            let t = Instant::now();
            let r: anyhow::Result<()> = $api;
            if let Err(e) = r {
                panic!("{}: {e:#}", $api_name);
            }
            b.push(t.elapsed());
        }
        for (name, samples) in [($imap_name, &mut a), ($api_name, &mut b)] {
            let stats = Stats::from(samples);
            eprintln!(
                "{name}: p50 {:.1} ms, p95 {:.1} ms",
                ms(stats.p50),
                ms(stats.p95)
            );
            $report.push((name.to_owned(), n, stats));
        }
    }};
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    let args = parse_args();
    let settings = settings()?;
    let db = sqlx::PgPool::connect(settings.database_url.expose_secret()).await?;
    shared::MIGRATOR.run(&db).await?;
    ensure_mailbox(&db, &args.email).await?;

    let pool = ImapPool::new(settings.imap.clone(), PoolConfig::default());
    let inbox = FolderName::inbox();
    let existing = pool.acquire(&args.email).await?.examine(&inbox).await? as usize;
    if existing < args.messages {
        let started = Instant::now();
        seed(&args.email, existing, args.messages - existing)?;
        println!(
            "seeded {} messages in {:.1?}",
            args.messages - existing,
            started.elapsed()
        );
    }
    let total = pool.acquire(&args.email).await?.examine(&inbox).await?;
    println!("INBOX of {} holds {total} messages", args.email);

    // The API, in process.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    tokio::spawn(api::run(settings.clone(), listener, shutdown.clone()));
    let token_name = format!("mailbox-bench-{}", uuid::Uuid::new_v4().simple());
    let (secret, _) = api::tokens::create_token(&db, TokenType::Admin, None, &token_name, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = reqwest::Client::new();
    let token = secret.expose().to_owned();
    let get = |path: String| {
        let req = http
            .get(format!("{base}/mailbox/{}{path}", args.email))
            .header("X-MAILAPI-TOKEN", &token);
        async move {
            let r = req.send().await?;
            let ok = r.status().is_success();
            let _ = r.bytes().await?;
            anyhow::ensure!(ok, "HTTP error");
            Ok::<_, anyhow::Error>(())
        }
    };
    // Warm Dovecot's caches (the first header search of a folder builds them: ~5 s).
    get("/messages".into()).await?;
    get("/search?q=zeppelin&in=subject,from".into()).await?;

    let n = args.iterations;
    let mut report = Vec::new();
    let max_uid = total.max(1);
    let mut rng = rand::rng();
    let offsets: Vec<u32> = (0..n).map(|_| rng.random_range(0..max_uid)).collect();
    let uids: Vec<u32> = (0..n).map(|_| rng.random_range(1..=max_uid)).collect();

    // Warm-up over the same pages and messages, so that neither side of a pair pays for
    // filling Dovecot's cache (the first side to touch a message would).
    for i in 0..n {
        get(format!("/messages?limit=50&offset={}", offsets[i])).await?;
        get(format!("/messages/{}", uids[i])).await?;
    }

    // Each API operation beside the same IMAP commands on one warm session (the ceiling).
    // "sync" is what a pooled session does before a read: EXAMINE the first time, NOOP while
    // the folder stays open on that connection.
    let mut s = pool.acquire(&args.email).await?;
    pair!(report, n, |i|
        "IMAP: sync + FETCH 50 (page)" => async {
            let exists = s.examine(&inbox).await?;
            if let Some((lo, hi)) = api::imap::listing::page_range(exists, offsets[i], 50) {
                s.fetch(false, &format!("{lo}:{hi}"), SUMMARY_ITEMS).await?;
            }
            Ok(())
        }.await,
        "API: GET /messages?limit=50&offset=random" =>
            get(format!("/messages?limit=50&offset={}", offsets[i])).await
    );
    pair!(report, n, |i|
        "IMAP: sync + UID FETCH BODY.PEEK[]" => async {
            s.fetch_message(&inbox, uids[i]).await?;
            Ok(())
        }.await,
        "API: GET /messages/{uid}" => get(format!("/messages/{}", uids[i])).await
    );
    let searches = n.min(50);
    pair!(report, searches, |_i|
        "IMAP: sync + UID SEARCH OR SUBJECT x FROM x" => async {
            s.examine(&inbox).await?;
            s.uid_search(r#"CHARSET UTF-8 OR SUBJECT "zeppelin" FROM "zeppelin""#).await?;
            Ok(())
        }.await,
        "API: GET /search?q=zeppelin&in=subject,from (50 hits)" =>
            get("/search?q=zeppelin&in=subject,from".into()).await
    );
    pair!(report, searches, |_i|
        "IMAP: sync + UID SEARCH OR SUBJECT y FROM y" => async {
            s.examine(&inbox).await?;
            s.uid_search(r#"CHARSET UTF-8 OR SUBJECT "sender7@ex" FROM "sender7@ex""#).await?;
            Ok(())
        }.await,
        "API: GET /search?q=sender7@ex&in=subject,from (100 hits)" =>
            get("/search?q=sender7%40ex&in=subject,from".into()).await
    );
    let bodies = n.min(10);
    pair!(report, bodies, |_i|
        "IMAP: sync + UID SEARCH OR OR SUBJECT x FROM x BODY x" => async {
            s.examine(&inbox).await?;
            s.uid_search(
                r#"CHARSET UTF-8 OR OR SUBJECT "zeppelin" FROM "zeppelin" BODY "zeppelin""#,
            )
            .await?;
            Ok(())
        }.await,
        "API: GET /search?q=zeppelin (subject, from and body)" =>
            get("/search?q=zeppelin".into()).await
    );
    pair!(report, n, |_i|
        "IMAP: LIST-STATUS (MESSAGES UNSEEN SIZE)" => async {
            s.folders().await?;
            Ok(())
        }.await,
        "API: GET /folders" => get("/folders".into()).await
    );
    drop(s);

    // Concurrency: N clients on one mailbox, each alternating list pages and full messages.
    let started = Instant::now();
    let per_client = n / 2;
    let tasks = (0..args.clients).map(|c| {
        let get = &get;
        let offsets = &offsets;
        let uids = &uids;
        async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            for i in 0..per_client {
                let path = if i % 2 == 0 {
                    format!("/messages?limit=50&offset={}", offsets[(i + c) % n])
                } else {
                    format!("/messages/{}", uids[(i + c) % n])
                };
                let t = Instant::now();
                if get(path).await.is_err() {
                    errors += 1;
                }
                lat.push(t.elapsed());
            }
            (lat, errors)
        }
    });
    let results = futures::future::join_all(tasks).await;
    let elapsed = started.elapsed();
    let errors: usize = results.iter().map(|r| r.1).sum();
    let mut all: Vec<Duration> = results.into_iter().flat_map(|r| r.0).collect();
    let requests = all.len();
    let conc = Stats::from(&mut all);
    println!(
        "{} clients x {per_client} requests (list/full alternating): {requests} requests, {errors} errors, {:.0} req/s, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        args.clients,
        requests as f64 / elapsed.as_secs_f64(),
        ms(conc.p50),
        ms(conc.p95),
        ms(conc.max)
    );
    println!();
    println!("| operation | n | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, count, st) in &report {
        println!(
            "| {name} | {count} | {:.1} | {:.1} | {:.1} |",
            ms(st.p50),
            ms(st.p95),
            ms(st.max)
        );
    }
    println!(
        "| API: {} concurrent clients, list/full alternating ({errors} errors, {:.0} req/s) | {requests} | {:.1} | {:.1} | {:.1} |",
        args.clients,
        requests as f64 / elapsed.as_secs_f64(),
        ms(conc.p50),
        ms(conc.p95),
        ms(conc.max)
    );

    sqlx::query("delete from api_tokens where name = $1")
        .bind(&token_name)
        .execute(&db)
        .await?;
    shutdown.cancel();
    Ok(())
}

fn settings() -> anyhow::Result<Settings> {
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    Ok(Settings::from_lookup(|k| match k {
        "MAILAPI_RATE_LIMIT_PER_MINUTE" | "MAILAPI_RATE_LIMIT_PER_HOUR" => Some("100000000".into()),
        "MAILAPI_KEY_PREFIX" => Some(prefix.clone()),
        _ => std::env::var(k).ok(),
    })?)
}

struct Stats {
    p50: Duration,
    p95: Duration,
    max: Duration,
}

impl Stats {
    fn from(samples: &mut [Duration]) -> Stats {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
            samples.get(i).copied().unwrap_or_default()
        };
        Stats {
            p50: at(0.50),
            p95: at(0.95),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
