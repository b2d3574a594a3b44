//! The ceiling of `bench/run.sh e2e`: Postfix alone. `--sessions` authenticated SMTP sessions to
//! the submission port (the worker's own pool code, `worker::smtp`, with the settings of
//! /etc/mailapi/mailapi.env) submit `--messages` messages of `--size` bytes to `--to`, as fast as
//! Postfix takes them. Prints how long the submissions took; the script then waits until
//! Postfix's queue is empty, which is when every message was delivered.
//!
//! ```sh
//! source /etc/mailapi/mailapi.env
//! cargo run --release -p worker --example postfix_alone -- --sessions 20 --messages 10000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use lettre::Address;
use lettre::address::Envelope;

struct Args {
    sessions: usize,
    messages: usize,
    size: usize,
    from: String,
    to: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sessions: 20,
        messages: 10_000,
        size: 2048,
        from: "bench@bench.test".into(),
        to: "r@sink-ok.test".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--sessions" => a.sessions = number()?.max(1),
            "--messages" => a.messages = number()?,
            "--size" => a.size = number()?,
            "--from" => a.from = value,
            "--to" => a.to = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// A plain message of about `size` bytes with its own Message-ID.
fn message(a: &Args, n: usize) -> Vec<u8> {
    let head = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: postfix alone {n}\r\n\
         Message-ID: <postfix-alone-{n}-{}@bench.test>\r\nDate: Mon, 7 Dec 2026 00:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        a.from,
        a.to,
        std::process::id()
    );
    let mut body = String::with_capacity(a.size);
    while head.len() + body.len() + 78 < a.size {
        body.push_str(&"x".repeat(76));
        body.push_str("\r\n");
    }
    format!("{head}{body}").into_bytes()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    let args = parse_args().map_err(anyhow::Error::msg)?;
    let mut settings = shared::config::Settings::from_env()?;
    settings.smtp.pool_size = u32::try_from(args.sessions)?;
    let smtp = worker::smtp::Smtp::new(&settings.smtp);
    let envelope = Envelope::new(
        Some(args.from.parse::<Address>()?),
        vec![args.to.parse::<Address>()?],
    )?;
    let args = Arc::new(args);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let sessions: Vec<_> = (0..args.sessions)
        .map(|_| {
            let (smtp, envelope, args, next, failed) = (
                smtp.clone(),
                envelope.clone(),
                args.clone(),
                next.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= args.messages {
                        return;
                    }
                    if let Err(e) = smtp.submit(&envelope, &message(&args, n)).await
                        && failed.fetch_add(1, Ordering::Relaxed) < 5
                    {
                        eprintln!("message {n}: {e}");
                    }
                }
            })
        })
        .collect();
    for s in sessions {
        s.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "submitted {} messages over {} sessions in {secs:.2} s = {:.0} msg/s ({failed} failed)",
        args.messages - failed,
        args.sessions,
        (args.messages - failed) as f64 / secs
    );
    anyhow::ensure!(failed == 0, "{failed} submissions failed");
    Ok(())
}
