//! Open-loop HTTP load at a fixed rate, for bench/run.sh: `connections` keep-alive connections,
//! each sending one request every `connections / rate` seconds, their schedules spread evenly
//! over that interval (no synchronised bursts). A request's latency is counted from the moment
//! it was SCHEDULED, not from when it could go out: when the server falls behind, the wait for a
//! free connection counts too (no coordinated omission).
//!
//! ```sh
//! cargo run --release -p api --example loadgen -- \
//!     --url http://127.0.0.1:18080/api/v1/mail/send --body bench/out/send.json \
//!     --header "X-MAILAPI-TOKEN: ..." --connections 64 --rate 3000 --seconds 10
//! ```
//!
//! `--log FILE` writes every request (scheduled time, status, latency) for a closer look.
//!
//! Prints `N requests (M x <status>) in S s = R req/s; p50 .. ms, p99 .. ms, p99.9 .. ms, max .. ms`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

struct Args {
    url: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    connections: usize,
    rate: f64,
    seconds: f64,
    warmup: f64,
    log: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        body: Vec::new(),
        headers: vec![("content-type".into(), "application/json".into())],
        connections: 64,
        rate: 1000.0,
        seconds: 10.0,
        warmup: 2.0,
        log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--body" => {
                let path = value()?;
                a.body = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
            }
            "--header" => {
                let h = value()?;
                let (k, v) = h.split_once(':').ok_or(format!("bad header {h}"))?;
                a.headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "--connections" => a.connections = value()?.parse().map_err(|e| format!("{e}"))?,
            "--rate" => a.rate = value()?.parse().map_err(|e| format!("{e}"))?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--warmup" => a.warmup = value()?.parse().map_err(|e| format!("{e}"))?,
            "--log" => a.log = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.url.is_empty() || a.connections == 0 || a.rate <= 0.0 {
        return Err("--url, --connections > 0 and --rate > 0 are required".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    shared::install_crypto_provider();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let interval = Duration::from_secs_f64(args.connections as f64 / args.rate);
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.connections {
        // One client per connection: one keep-alive connection each.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .build()
            .expect("http client");
        let url = args.url.clone();
        let body = args.body.clone();
        let headers = args.headers.clone();
        let phase = interval.mul_f64(c as f64 / args.connections as f64);
        tasks.spawn(async move {
            let mut samples: Vec<(u16, Duration, Duration)> = Vec::new();
            let mut errors = 0u64;
            let mut due = start + phase;
            while due < end {
                tokio::time::sleep_until(due).await;
                let mut req = client.post(&url).body(body.clone());
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                let status = match req.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        Some(status)
                    }
                    Err(_) => None,
                };
                // From the scheduled time: a late start is the server's delay too.
                let latency = Instant::now() - due;
                if due >= measure_from {
                    match status {
                        Some(s) => samples.push((s, due - measure_from, latency)),
                        None => errors += 1,
                    }
                }
                due += interval;
            }
            (samples, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (samples, e) = r.expect("load task");
        all.extend(samples);
        errors += e;
    }
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    if let Some(path) = &args.log {
        // Scheduled time (ms since the measurement began), status, latency (µs): one per line.
        all.sort_by_key(|(_, at, _)| *at);
        let lines: Vec<String> = all
            .iter()
            .map(|(s, at, l)| format!("{:.3}\t{s}\t{}", at.as_secs_f64() * 1000.0, l.as_micros()))
            .collect();
        if let Err(e) = std::fs::write(path, lines.join("\n") + "\n") {
            eprintln!("loadgen: {path}: {e}");
        }
    }
    for (s, _, _) in &all {
        *by_status.entry(*s).or_default() += 1;
    }
    let mut lat: Vec<f64> = all
        .iter()
        .map(|(_, _, d)| d.as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    if lat.is_empty() {
        println!("no request completed ({errors} errors)");
        return;
    }
    let pct = |q: f64| lat[((q * lat.len() as f64) as usize).min(lat.len() - 1)];
    let statuses: Vec<String> = by_status
        .iter()
        .map(|(s, n)| format!("{n} x {s}"))
        .collect();
    println!(
        "{} requests ({}{}) in {:.1} s = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        lat.len(),
        statuses.join(", "),
        if errors > 0 {
            format!(", {errors} errors")
        } else {
            String::new()
        },
        args.seconds,
        lat.len() as f64 / args.seconds,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        lat[lat.len() - 1],
    );
}
