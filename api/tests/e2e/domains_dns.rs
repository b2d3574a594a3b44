//! The DNS records a domain should publish, and live verification against a DNS server on
//! loopback (dnsmasq, started and stopped by the test) serving right and wrong records.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{Proc, TestApp};

const MX_HOST: &str = "mx.mailapi.test";

/// dnsmasq on 127.0.0.1:`port`, answering only for the given zones; killed (by its pid) on drop.
struct Dnsmasq(Proc);

impl Dnsmasq {
    fn start(port: u16, zones: &[&str], records: &[String]) -> Dnsmasq {
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
        ])
        .arg(format!("--port={port}"))
        // Names in these zones that have no record are NXDOMAIN, not REFUSED.
        .args(zones.iter().map(|z| format!("--local=/{z}/")))
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start dnsmasq ({e}): apt-get install dnsmasq-base (deploy/test.sh installs it)")
        });
        Dnsmasq(Proc(child))
    }

    async fn wait_ready(&mut self, port: u16) {
        for _ in 0..100 {
            if let Some(status) = self.0.0.try_wait().unwrap() {
                panic!("dnsmasq exited at start: {status}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("dnsmasq did not start listening on port {port}");
    }
}

/// `--txt-record` with the value split into strings of at most 255 bytes, as a zone would hold
/// a 2048-bit DKIM key. No quotes: without a shell dnsmasq would keep them (no value here has a
/// comma).
fn txt(name: &str, value: &str) -> String {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("--txt-record={name},{}", chunks.join(","))
}

fn mx(name: &str, host: &str) -> String {
    format!("--mx-host={name},{host},10")
}

async fn signup_and_approve(app: &TestApp, admin: &str, domain: &str) -> (String, Value) {
    let body: Value = app
        .http
        .post(app.api("/auth/signup"))
        .json(&json!({"domain": domain, "email": format!("admin@{domain}"), "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let pending: Value = app
        .get(&format!("/domains/{domain}/dns"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["active"], false);
    assert_eq!(
        pending["dkim_selector"],
        Value::Null,
        "no key before approval: {pending}"
    );
    assert!(!pending.to_string().contains("DKIM1"));
    let r = app
        .post_json(&format!("/domains/{domain}/approve"), admin, &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    // With Ed25519 on, a second DKIM record (its own selector) is listed and checked.
    let r = app
        .http
        .patch(app.api(&format!("/domains/{domain}")))
        .header("X-MAILAPI-TOKEN", admin)
        .json(&json!({"dkim_ed25519": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dns: Value = app
        .get(&format!("/domains/{domain}/dns"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    (token, dns)
}

fn record<'a>(list: &'a Value, purpose: &str) -> &'a Value {
    list["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no {purpose} record in {list}"))
}

/// The Ed25519 DKIM record (the second `dkim` one; the RSA record comes first).
fn ed25519_record(list: &Value) -> &Value {
    let dkim: Vec<&Value> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["purpose"] == "dkim")
        .collect();
    assert_eq!(dkim.len(), 2, "RSA and Ed25519 records in {list}");
    dkim[1]
}

#[tokio::test]
async fn published_records_verify_and_wrong_or_missing_ones_are_named() {
    let port = testkit::free_udp_port();
    let app = TestApp::spawn(&[
        ("MAILAPI_DNS_RESOLVER", &format!("127.0.0.1:{port}")),
        ("MAILAPI_MX_HOST", MX_HOST),
    ])
    .await;
    let admin = app.admin_token().await;
    let (good_token, good) = signup_and_approve(&app, &admin, "good.test").await;
    let (bad_token, bad) = signup_and_approve(&app, &admin, "bad.test").await;

    // What the endpoint asks to publish.
    let selector = good["dkim_selector"].as_str().unwrap();
    assert_eq!(good["active"], true);
    let m = record(&good, "mx");
    assert_eq!(
        (
            m["type"].as_str(),
            m["name"].as_str(),
            m["value"].as_str(),
            m["priority"].as_u64()
        ),
        (Some("MX"), Some("good.test"), Some(MX_HOST), Some(10))
    );
    assert_eq!(record(&good, "spf")["value"], "v=spf1 mx -all");
    let dkim = record(&good, "dkim");
    assert_eq!(dkim["name"], format!("{selector}._domainkey.good.test"));
    let dkim_value = dkim["value"].as_str().unwrap().to_owned();
    assert!(
        dkim_value.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{dkim_value}"
    );
    assert_eq!(record(&good, "dmarc")["name"], "_dmarc.good.test");
    assert!(
        record(&good, "dmarc")["value"]
            .as_str()
            .unwrap()
            .starts_with("v=DMARC1; p=")
    );
    let ed = ed25519_record(&good);
    let ed_selector = good["dkim_ed25519_selector"].as_str().unwrap();
    assert_ne!(ed_selector, selector);
    assert_eq!(ed["name"], format!("{ed_selector}._domainkey.good.test"));
    let ed_value = ed["value"].as_str().unwrap().to_owned();
    // k=ed25519 and the 32-byte key in base64 (44 characters), no SubjectPublicKeyInfo.
    assert!(ed_value.starts_with("v=DKIM1; k=ed25519; p="), "{ed_value}");
    assert_eq!(ed_value.len(), "v=DKIM1; k=ed25519; p=".len() + 44);
    let bad_dkim_name = record(&bad, "dkim")["name"].as_str().unwrap().to_owned();
    assert_ne!(
        record(&bad, "dkim")["value"].as_str().unwrap(),
        dkim_value,
        "a key per domain"
    );

    // good.test publishes exactly what was asked; bad.test gets the MX, SPF and RSA DKIM key
    // wrong (it publishes good.test's key), and has no Ed25519 DKIM or DMARC record.
    let mut records: Vec<String> = good["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["type"].as_str().unwrap() {
            "MX" => mx(r["name"].as_str().unwrap(), r["value"].as_str().unwrap()),
            _ => txt(r["name"].as_str().unwrap(), r["value"].as_str().unwrap()),
        })
        .collect();
    records.extend([
        mx("bad.test", "wrong-mx.test"),
        txt("bad.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt("bad.test", "unrelated-verification=123"),
        txt(&bad_dkim_name, &dkim_value),
    ]);
    let mut dns = Dnsmasq::start(port, &["good.test", "bad.test"], &records);
    dns.wait_ready(port).await;

    let v: Value = app
        .post_json("/domains/good.test/dns/verify", &good_token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(v["all_ok"], true, "{v:#}");
    for r in v["records"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
    }
    assert_eq!(record(&v, "mx")["found"], json!([format!("10 {MX_HOST}.")]));
    assert_eq!(
        record(&v, "dkim")["found"],
        json!([dkim_value]),
        "split TXT strings are joined"
    );
    assert_eq!(ed25519_record(&v)["found"], json!([ed_value]));
    assert_eq!(ed25519_record(&v)["status"], "ok");

    let v: Value = app
        .post_json("/domains/bad.test/dns/verify", &bad_token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["all_ok"], false);
    let mxr = record(&v, "mx");
    assert_eq!(mxr["status"], "wrong", "{mxr}");
    assert_eq!(mxr["found"], json!(["10 wrong-mx.test."]));
    assert!(mxr["detail"].as_str().unwrap().contains(MX_HOST));
    let spf = record(&v, "spf");
    assert_eq!(spf["status"], "wrong", "{spf}");
    assert!(
        spf["found"]
            .as_array()
            .unwrap()
            .contains(&json!("v=spf1 ip4:192.0.2.1 -all"))
    );
    let dk = record(&v, "dkim");
    assert_eq!(dk["status"], "wrong", "{dk}");
    assert_eq!(dk["found"], json!([dkim_value]));
    assert!(dk["detail"].as_str().unwrap().contains("differs"), "{dk}");
    let ed = ed25519_record(&v);
    assert_eq!(ed["status"], "missing", "{ed}");
    let dm = record(&v, "dmarc");
    assert_eq!(dm["status"], "missing", "{dm}");
    assert_eq!(dm["found"], json!([]));

    // Another domain's token may not look at these records.
    let r = app.get("/domains/good.test/dns", Some(&bad_token)).await;
    testkit::assert_error(r, 403, "ACCESS_DENIED").await;
    drop(dns);
}
