//! One run of the checker: the stack up, the load while the faults fire, everything settled,
//! then the verdict.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sqlx::PgPool;
use testkit::{env, free_port, fresh_database, sink_counts};
use tokio::sync::Mutex;

use super::client::{Answer, Unavailable, send_one};
use super::faults::{start_faults, start_workers};
use super::proxy::{Proxy, via_port};
use super::stack::{Stack, admin_token, check_skew, wait_until_up};
use super::{Plan, STEPS};

async fn scalar(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(db)
        .await
        .unwrap()
}

pub(super) async fn run(plan: Plan) {
    if !cfg!(feature = "fault-injection") {
        panic!(
            "the checker needs the fault hooks: --features worker/fault-injection (deploy/test.sh passes it)"
        );
    }
    shared::install_crypto_provider();
    if plan.skew_secs > 0 {
        check_skew(plan.skew_secs);
    }
    let sink_dir = PathBuf::from(env("MAILAPI_SINK_DIR"));
    let since = SystemTime::now() - Duration::from_secs(1);
    let (db_url, db) = fresh_database().await;
    let pg_proxy = Arc::new(Proxy::start(5432).await);
    let smtp_upstream: u16 = env("MAILAPI_SMTP_PORT").parse().unwrap();
    let smtp_proxy = Arc::new(Proxy::start(smtp_upstream).await);
    let imap_proxy = Arc::new(Proxy::start(143).await);
    let stack = Arc::new(Stack {
        db_url: via_port(&db_url, pg_proxy.port),
        skew_secs: plan.skew_secs,
        smtp_port: smtp_proxy.port,
        imap_port: imap_proxy.port,
        logs: {
            let dir =
                std::env::temp_dir().join(format!("checker-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        },
        prefix: format!("checker-{}", uuid::Uuid::new_v4().simple()),
        redis_port: free_port(),
        api_ports: [free_port(), free_port()],
    });
    let domain = format!(
        "chk-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    sqlx::query("insert into domains (domain, active) values ($1, true)")
        .bind(&domain)
        .execute(&db)
        .await
        .unwrap();
    let token = admin_token(&db_url);
    eprintln!("checker: process logs in {}", stack.logs.display());

    let redis = Arc::new(Mutex::new(stack.redis()));
    let apis = Arc::new(Mutex::new([stack.api(0), stack.api(1)]));
    for port in stack.api_ports {
        wait_until_up(port).await;
    }

    // Workers: the armed ones go through every step, `rounds` times, restarted after each kill.
    let kills = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop_workers = tokio_util::sync::CancellationToken::new();
    let worker_tasks = start_workers(&stack, &plan, &kills, &stop_workers);

    // Process faults on a timeline.
    let started = Instant::now();
    let faults = start_faults(
        &plan,
        started,
        &stack,
        (&apis, &redis),
        &kills,
        [&pg_proxy, &smtp_proxy, &imap_proxy],
    );

    // The load: paced, each message its own task.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut sends = tokio::task::JoinSet::new();
    let gap = Duration::from_micros(1_000_000 / plan.per_second);
    let unavailable = Arc::new(Unavailable::default());
    let bounce_every = plan.bounce_every;
    for i in 0..plan.messages {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let (http, token, domain, ports) =
            (http.clone(), token.clone(), domain.clone(), stack.api_ports);
        let unavailable = unavailable.clone();
        sends.spawn(async move {
            (
                i,
                send_one(&http, ports, &token, &domain, i, &unavailable, bounce_every).await,
            )
        });
    }
    let mut answers = HashMap::new();
    while let Some(r) = sends.join_next().await {
        let (i, a) = r.unwrap();
        answers.insert(i, a);
    }
    faults.await.unwrap();
    eprintln!("load done in {:?}", started.elapsed());

    // Everything must settle: no message or recipient left open.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let open = scalar(
            &db,
            "select count(*) from messages m where m.status in ('pending', 'submitted')
                or exists (select 1 from recipients r where r.message_id = m.id
                            and r.status in ('pending', 'deferred'))",
        )
        .await;
        if open == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let examples: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
                "select m.rfc_message_id, m.status, m.queue_id, string_agg(r.status, ',')
                   from messages m join recipients r on r.message_id = m.id
                  where m.status in ('pending', 'submitted') or r.status in ('pending', 'deferred')
                  group by m.id limit 10",
            )
            .fetch_all(&db)
            .await
            .unwrap();
            panic!(
                "{open} messages never settled; the first (Message-ID, status, queue id, \
                 recipients): {examples:#?}; process logs in {}",
                stack.logs.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The bounce reports come back on Postfix's schedule after the statuses settle (the log
    // says `bounced` first): the workers keep running until every one is read and filed.
    let bounced = scalar(
        &db,
        "select count(*) from recipients where domain = 'sink-hard.test'",
    )
    .await;
    if bounced > 0 {
        reports_all_read(&domain, bounced as usize).await;
    }
    stop_workers.cancel();
    for t in worker_tasks {
        drop(t.await.unwrap());
    }

    // Postfix delivers on its own schedule: wait for the sink to have every stored message.
    // (id, Message-ID, status, whether it was meant to bounce)
    let stored: Vec<(uuid::Uuid, String, String, bool)> = sqlx::query_as(
        "select m.id, m.rfc_message_id, m.status,
                exists (select 1 from recipients r where r.message_id = m.id
                         and r.domain = 'sink-hard.test')
           from messages m",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    while Instant::now() < deadline {
        let counts = sink_counts(&sink_dir, since, &domain);
        if stored
            .iter()
            .all(|(_, rfc, _, bounces)| *bounces || counts.contains_key(rfc))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A little longer, so that a second copy on its way is counted too. The sink's files only
    // ever accumulate, so this read holds everything the earlier ones saw.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = sink_counts(&sink_dir, since, &domain);

    // The verdict.
    let in_db: HashSet<uuid::Uuid> = stored.iter().map(|(id, ..)| *id).collect();
    let accepted: Vec<uuid::Uuid> = answers
        .values()
        .filter_map(|a| match a {
            Answer::Accepted(id) => Some(*id),
            Answer::GaveUp(_) => None,
        })
        .collect();
    let gave_up: Vec<String> = answers
        .iter()
        .filter_map(|(i, a)| match a {
            Answer::GaveUp(why) => Some(format!("message {i}: {why}")),
            Answer::Accepted(_) => None,
        })
        .collect();
    let lost_db: Vec<_> = accepted.iter().filter(|id| !in_db.contains(id)).collect();
    let unsent: Vec<_> = stored
        .iter()
        .filter(|(_, rfc, _, bounces)| !bounces && !counts.contains_key(rfc))
        .collect();
    let not_sent_status: Vec<_> = stored
        .iter()
        .filter(|(_, _, s, bounces)| s != if *bounces { "bounced" } else { "sent" })
        .collect();
    let dupes: Vec<_> = stored
        .iter()
        .filter_map(|(_, rfc, ..)| counts.get(rfc).filter(|n| **n > 1).map(|n| (rfc, *n)))
        .collect();
    let kills = kills.lock().unwrap().clone();
    let retried = scalar(&db, "select count(*) from messages where attempts > 1").await;
    let recovered = scalar(
        &db,
        "select count(*) from delivery_events
          where event = 'submitted' and smtp_response like 'queued by an earlier attempt%'",
    )
    .await;
    eprintln!(
        "checker: {} messages sent by the client, {} got a 202, {} gave up; {} stored; \
         faults: {kills:?}; {retried} claimed again, {recovered} found in the MTA log instead \
         of re-sent; lost = {}, duplicates = {}, stuck = {}",
        plan.messages,
        accepted.len(),
        gave_up.len(),
        stored.len(),
        lost_db.len() + unsent.len(),
        dupes.len(),
        not_sent_status.len(),
    );
    // No process may panic, whatever was done to it (a SIGKILL is not a panic).
    let mut panics = Vec::new();
    for entry in std::fs::read_dir(&stack.logs).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.contains("panicked at") {
                let next = text.lines().nth(i + 1).unwrap_or_default();
                panics.push(format!("{}: {line} {next}", entry.path().display()));
            }
        }
    }
    assert!(panics.is_empty(), "panics: {panics:#?}");
    assert!(gave_up.is_empty(), "the client gave up on: {gave_up:?}");
    assert!(lost_db.is_empty(), "202 but not stored: {lost_db:?}");
    assert!(unsent.is_empty(), "stored but never delivered: {unsent:?}");
    assert!(
        not_sent_status.is_empty(),
        "not `sent`: {not_sent_status:?}"
    );
    // A logical message is stored once however often the client retried it.
    assert_eq!(
        stored.len(),
        plan.messages,
        "one stored message per idempotency key"
    );
    assert!(dupes.is_empty(), "delivered twice: {dupes:?}");
    // The event registry under the same faults: every message's published events are numbered
    // 1..n without a gap or a repeat, and the message's counter is at n.
    let bad_seq = scalar(
        &db,
        "select count(*) from messages m
           left join (select message_id, count(*) as n, count(distinct seq) as d,
                             min(seq) as lo, max(seq) as hi
                        from delivery_events where seq is not null group by message_id) e
             on e.message_id = m.id
          where coalesce(e.n, 0) <> m.event_seq or e.d <> e.n or e.lo <> 1 or e.hi <> e.n",
    )
    .await;
    assert_eq!(bad_seq, 0, "messages whose events' seq is not 1..n");
    let expected_kills = plan.armed_workers * plan.rounds * STEPS.len()
        + plan.api_kills.len()
        + plan.redis_kills.len()
        + plan.postgres_cuts.len()
        + plan.smtp_cuts.len()
        + plan.smtp_421.len()
        + plan.log_rotations.len()
        + plan.imap_cuts.len();
    use std::sync::atomic::Ordering::Relaxed;
    let (answers_503, bare_503) = (
        unavailable.answers.load(Relaxed),
        unavailable.without_retry_after.load(Relaxed),
    );
    eprintln!("checker: {answers_503} answers were 503 ({bare_503} without Retry-After)");
    assert_eq!(bare_503, 0, "every 503 carries Retry-After");
    if !plan.postgres_cuts.is_empty() {
        assert!(
            answers_503 > 0,
            "with Postgres cut off the API must answer 503, not hang"
        );
    }
    assert_eq!(
        kills.len(),
        expected_kills,
        "every fault must fire: {kills:?}"
    ); // Kept when a check fails, for a look at what the processes said.
    let _ = std::fs::remove_dir_all(&stack.logs);
}

/// Waits until the bounce reader has taken every report about our messages out of the bounce
/// mailbox's inbox and filed at least `bounced` of them under `Processed`: the reports that came
/// while IMAP was cut off were read once it was back.
async fn reports_all_read(domain: &str, bounced: usize) {
    let master = env("MAILAPI_IMAP_MASTER_PASSWORD");
    let user = format!(
        "bounces@{}*{}",
        std::env::var("MAILAPI_BOUNCE_DOMAIN").unwrap_or_else(|_| "bounces.mailapi.local".into()),
        std::env::var("MAILAPI_IMAP_MASTER_USER").unwrap_or_else(|_| "mailapi-master".into())
    );
    let count = |folder: &'static str| {
        let (user, master) = (user.clone(), master.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", 143))
                .await
                .unwrap();
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.unwrap().unwrap();
            let mut session = client
                .login(&user, &master)
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            session.examine(folder).await.unwrap();
            let found = session
                .uid_search(format!("TEXT \"@{domain}\""))
                .await
                .unwrap()
                .len();
            let _ = session.logout().await;
            found
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (waiting, filed) = (count("INBOX").await, count("Processed").await);
        if waiting == 0 && filed >= bounced {
            eprintln!("checker: {filed} bounce reports read and filed, none left waiting");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bounce reports: {waiting} still in the inbox, {filed} of {bounced} filed"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
