//! CPU time per DKIM-signed 2 KB message on the worker's path: build the MIME from the stored
//! payload, sign it with the domain's key, produce the bytes handed to SMTP.
//!
//! `cargo bench -p worker --bench dkim_sign` (no Criterion: the measure is this thread's CPU time
//! from `/proc/thread-self/schedstat`, so other load on a shared machine does not count as ours).
//! Numbers and their history: docs/BENCHMARKS.md, "DKIM signing".

use std::time::Duration;

use chrono::Utc;
use shared::address::NamedAddress;
use shared::outgoing::OutgoingMessage;

const KEY_PEM: &str = include_str!("../../shared/testdata/dkim-rsa2048.pem");

/// CPU time this thread has run, in nanoseconds (Linux schedstat).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("schedstat's first field");
    Duration::from_nanos(ns)
}

/// Runs `f` `n` times after `n / 10` warm-up runs; prints CPU and wall time per run.
fn measure(name: &str, n: u32, mut f: impl FnMut() -> usize) -> Duration {
    for _ in 0..n / 10 {
        std::hint::black_box(f());
    }
    let (cpu, wall) = (thread_cpu(), std::time::Instant::now());
    for _ in 0..n {
        std::hint::black_box(f());
    }
    let per_cpu = (thread_cpu() - cpu) / n;
    let per_wall = wall.elapsed() / n;
    println!(
        "{name:<48} {:>8.1} µs CPU  {:>8.1} µs wall  (n = {n})",
        per_cpu.as_secs_f64() * 1e6,
        per_wall.as_secs_f64() * 1e6
    );
    per_cpu
}

/// A 2 KB message like the load benchmark's: one recipient, a text body of ~1,900 bytes.
fn message() -> OutgoingMessage {
    let addr = |e: &str| NamedAddress::parse(e).expect("a valid address");
    let line = "The quick brown fox jumps over the lazy dog, and then over it again.\n";
    OutgoingMessage {
        from: NamedAddress::parse("Bench Sender <bench@bench.test>").expect("a valid address"),
        to: vec![addr("r@sink-ok.test")],
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: None,
        subject: "bench".into(),
        text: Some(line.repeat(1900 / line.len())),
        html: None,
        headers: Vec::new(),
        attachments: Vec::new(),
    }
}

const ED25519_PEM: &str = include_str!("../../shared/testdata/dkim-ed25519.pem");

fn main() {
    use shared::dkim::Algorithm;
    use worker::dkim::{DomainSigner, SigningKey};

    let msg = message();
    let date = Utc::now();
    let id = "<0123456789abcdef0123456789abcdef@bench.test>";
    let size = msg.build(id, date).unwrap().formatted().len();
    println!("message: {size} bytes unsigned");

    let unsigned = measure("build + format, unsigned", 5000, || {
        msg.build(id, date).unwrap().formatted().len()
    });
    let rsa = || SigningKey::from_pem(Algorithm::Rsa, KEY_PEM).unwrap();
    let ed25519 = || SigningKey::from_pem(Algorithm::Ed25519, ED25519_PEM).unwrap();
    let rsa_only = DomainSigner::new("bench.test", vec![("mail202612".into(), rsa())]);
    let dual = DomainSigner::new(
        "bench.test",
        vec![("mail202612".into(), rsa()), ("ed202612".into(), ed25519())],
    );
    let signed = measure("build + format + sign (ring RSA-2048)", 3000, || {
        let bytes = msg.build(id, date).unwrap().formatted();
        rsa_only.sign(&bytes).unwrap().len()
    });
    let both = measure("build + format + sign (RSA-2048 + Ed25519)", 3000, || {
        let bytes = msg.build(id, date).unwrap().formatted();
        dual.sign(&bytes).unwrap().len()
    });
    measure("parse the RSA key (once per key, cached)", 1000, || {
        std::hint::black_box(rsa());
        0
    });
    println!(
        "signing alone: {:.1} µs CPU per message (RSA), {:.1} µs (RSA + Ed25519)",
        (signed - unsigned).as_secs_f64() * 1e6,
        (both - unsigned).as_secs_f64() * 1e6
    );
}
