//! `GET /dashboard`: the page and its assets are served without a token, and Debian's headless
//! Chromium, given a token in the URL fragment, renders the real figures and both charts (checked
//! in the DOM it dumps, and in the pixels of its screenshot).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use shared::delivery::RecipientStatus::{Bounced, Deferred, Sent};
use testkit::TestApp;

/// The chart colours in style.css.
const DELIVERED: [u8; 3] = [0x2e, 0x7d, 0x32];
const BOUNCED: [u8; 3] = [0xc6, 0x28, 0x28];

#[tokio::test]
async fn assets_are_served_without_a_token_under_a_strict_policy() {
    let app = TestApp::spawn(&[]).await;
    for (path, kind, needle) in [
        ("/dashboard", "text/html", "/dashboard/app.js"),
        (
            "/dashboard/app.js",
            "text/javascript",
            "/api/v1/stats/delivery",
        ),
        ("/dashboard/style.css", "text/css", "--delivered"),
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let h = resp.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = resp.text().await.unwrap();
        assert!(body.contains(needle), "{path}");
        // Nothing is loaded from elsewhere (the SVG namespace is a name, not a download).
        let elsewhere = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !elsewhere.contains("http://") && !elsewhere.contains("https://"),
            "no CDN in {path}"
        );
    }
}

async fn chromium(args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=15000",
            "--window-size=1280,900",
        ])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(90), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!(
            "cannot run `chromium` ({e}); install Debian's package: apt-get install -y chromium \
             (deploy/test.sh does)"
        ),
        Err(_) => panic!("chromium did not finish within 90 s"),
    }
}

#[tokio::test]
async fn headless_chromium_renders_real_numbers_and_charts() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    app.domain("dash.test", true).await;
    let db = &app.db;
    let mut sent = Vec::new();
    for i in 0..12 {
        let to = format!(
            "r{i}@{}",
            ["gmail.test", "outlook.test", "yahoo.test"][i % 3]
        );
        let id = testkit::stats::send(&app, &admin, "news@dash.test", &[to.as_str()], &[]).await;
        testkit::stats::submit(db, id).await;
        sent.push((id, to));
    }
    let deferred: Vec<_> = sent
        .iter()
        .map(|(id, to)| (*id, to.as_str(), Deferred))
        .take(4)
        .collect();
    testkit::stats::statuses(db, &deferred).await;
    let outcome: Vec<_> = sent
        .iter()
        .enumerate()
        .map(|(i, (id, to))| (*id, to.as_str(), if i % 4 == 3 { Bounced } else { Sent }))
        .collect();
    testkit::stats::statuses(db, &outcome).await;

    let api: Value = app
        .get("/stats/delivery?group_by=domain", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let summary = &api["summary"];
    assert_eq!(summary["total_sent"], 12, "{api}");
    assert_eq!(summary["delivered"], 9, "{api}");

    let dir = std::env::temp_dir().join(format!("mailapi-dash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = format!("--user-data-dir={}", dir.join("profile").display());
    let url = format!("{}#token={admin}", app.url("/dashboard"));

    let dom = chromium(&[&profile, "--dump-dom", &url]).await;
    let html = String::from_utf8_lossy(&dom.stdout);
    for (id, value) in [
        ("total_sent", summary["total_sent"].to_string()),
        ("delivered", summary["delivered"].to_string()),
        ("bounced", summary["bounced"].to_string()),
        (
            "delivery_rate",
            format!("{:.1}%", summary["delivery_rate"].as_f64().unwrap()),
        ),
    ] {
        let needle = format!("id=\"{id}\">{value}<");
        assert!(
            html.contains(&needle),
            "{needle} in the rendered page:\n{html}"
        );
    }
    for domain in api["breakdown"].as_array().unwrap() {
        let d = domain["domain"].as_str().unwrap();
        assert!(
            html.contains(&format!(">{d}</text>")),
            "{d} labels a bar:\n{html}"
        );
    }
    assert!(
        html.contains("<rect class=\"delivered\""),
        "bars drawn:\n{html}"
    );
    assert!(!html.contains("class=\"error\""), "no error shown:\n{html}");

    let png = dir.join("dashboard.png");
    let shot = chromium(&[&profile, &format!("--screenshot={}", png.display()), &url]).await;
    assert!(
        png.exists(),
        "screenshot written: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let image = decode_png(&png);
    assert_eq!((image.width, image.height), (1280, 900));
    let count = |rgb: [u8; 3]| image.pixels.iter().filter(|p| **p == rgb).count();
    let distinct: std::collections::HashSet<[u8; 3]> = image.pixels.iter().copied().collect();
    assert!(distinct.len() > 20, "not blank: {} colours", distinct.len());
    assert!(
        count(DELIVERED) > 2000,
        "delivered bars: {} px",
        count(DELIVERED)
    );
    assert!(count(BOUNCED) > 200, "bounced bars: {} px", count(BOUNCED));
    // To look at it: MAILAPI_DASHBOARD_SCREENSHOT=/tmp/dashboard.png cargo nextest run ...
    if let Ok(keep) = std::env::var("MAILAPI_DASHBOARD_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

struct Image {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

/// Just enough PNG to look at a screenshot: 8-bit RGB or RGBA, not interlaced.
fn decode_png(path: &Path) -> Image {
    use std::io::Read;
    let data = std::fs::read(path).unwrap();
    assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    let mut at = 8;
    while at + 8 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind = &data[at + 4..at + 8];
        let body = &data[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().unwrap());
                height = u32::from_be_bytes(body[4..8].try_into().unwrap());
                assert_eq!(body[8], 8, "8-bit");
                assert_eq!(body[12], 0, "not interlaced");
                channels = match body[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(body),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width as usize * channels;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for row in raw.chunks(stride + 1).take(height as usize) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                other => panic!("filter {other}"),
            };
            cur[i] = line[i].wrapping_add(predictor);
        }
        pixels.extend(cur.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    Image {
        width,
        height,
        pixels,
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
