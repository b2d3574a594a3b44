//! The DNS records a hosted domain should publish, and how a published set is judged.
//!
//! Pure functions: the live lookups are in `verify`, so every judgement here is unit-tested
//! without a DNS server.

use serde::Serialize;
use shared::dkim::Algorithm;

/// What a record is for; decides how published values are compared with the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Inbound mail for the domain reaches this server.
    Mx,
    /// This server may send for the domain.
    Spf,
    /// Receivers can check the worker's DKIM signatures: one record per key (RSA, and Ed25519
    /// when the domain signs with it), each at its own selector.
    Dkim,
    /// Receivers know what to do with mail that fails both SPF and DKIM alignment.
    Dmarc,
    /// Bounce reports for mail sent from the domain come back to this server (only listed when
    /// the return-path domain lies inside the customer's domain).
    ReturnPathMx,
}

/// A record the domain should publish.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Expected {
    pub purpose: Purpose,
    /// `MX` or `TXT`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(MX|TXT)$")]
    pub record_type: &'static str,
    pub name: String,
    pub value: String,
    /// The MX preference (MX records only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub priority: Option<u16>,
    pub ttl: u32,
}

/// One DKIM key to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimRecord {
    pub algorithm: Algorithm,
    pub selector: String,
    /// The `p=` value.
    pub public: String,
}

/// The server-side facts the records are built from.
pub struct Inputs<'a> {
    pub domain: &'a str,
    pub mx_host: &'a str,
    pub bounce_domain: &'a str,
    /// The keys the worker signs with (none before approval), in signing order: RSA first.
    pub dkim: &'a [DkimRecord],
}

const TTL: u32 = 3600;
const MX_PRIORITY: u16 = 10;

pub fn expected(i: &Inputs<'_>) -> Vec<Expected> {
    let txt = |purpose, name: String, value: String| Expected {
        purpose,
        record_type: "TXT",
        name,
        value,
        priority: None,
        ttl: TTL,
    };
    let mx = |purpose, name: String| Expected {
        purpose,
        record_type: "MX",
        name,
        value: i.mx_host.to_owned(),
        priority: Some(MX_PRIORITY),
        ttl: TTL,
    };
    let d = i.domain;
    let mut out = vec![
        mx(Purpose::Mx, d.to_owned()),
        txt(Purpose::Spf, d.to_owned(), "v=spf1 mx -all".to_owned()),
    ];
    for k in i.dkim {
        out.push(txt(
            Purpose::Dkim,
            format!("{}._domainkey.{d}", k.selector),
            shared::dkim::txt_value(k.algorithm, &k.public),
        ));
    }
    out.push(txt(
        Purpose::Dmarc,
        format!("_dmarc.{d}"),
        format!("v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@{d}"),
    ));
    if i.bounce_domain != d && i.bounce_domain.ends_with(&format!(".{d}")) {
        out.push(mx(Purpose::ReturnPathMx, i.bounce_domain.to_owned()));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Missing,
    Wrong,
    /// The lookup itself failed (timeout, server failure): nothing can be said about the record.
    Error,
}

/// Judges what was found at a record's name (MX: `"<pref> <host>"`; TXT: each record's strings
/// joined) against what was expected, with a sentence saying what is wrong.
pub fn judge(e: &Expected, found: &[String]) -> (Status, String) {
    match e.purpose {
        Purpose::Mx | Purpose::ReturnPathMx => {
            let ours = found
                .iter()
                .any(|f| f.rsplit(' ').next().is_some_and(|h| same_host(h, &e.value)));
            match (found.is_empty(), ours) {
                (true, _) => (Status::Missing, format!("No MX record at {}", e.name)),
                (false, true) => (Status::Ok, format!("MX points to {}", e.value)),
                (false, false) => (Status::Wrong, format!("No MX record points to {}", e.value)),
            }
        }
        Purpose::Spf => {
            let spf = tagged(found, "v=spf1");
            match spf.as_slice() {
                [] => (Status::Missing, format!("No SPF record at {}", e.name)),
                [one] if authorises_mx(one, &e.name) => {
                    (Status::Ok, "SPF authorises the domain's MX".to_owned())
                }
                [_] => (
                    Status::Wrong,
                    "SPF does not authorise this server (add the `mx` mechanism)".to_owned(),
                ),
                _ => (
                    Status::Wrong,
                    "More than one SPF record: receivers treat that as a permanent error"
                        .to_owned(),
                ),
            }
        }
        Purpose::Dkim => {
            let want = tag(&e.value, "p").unwrap_or_default();
            // k= defaults to rsa (RFC 6376 section 3.6.1); an Ed25519 record must say so.
            let want_k = tag(&e.value, "k").unwrap_or_else(|| "rsa".to_owned());
            let keys = tagged(found, "v=DKIM1");
            if found.is_empty() {
                return (Status::Missing, format!("No DKIM record at {}", e.name));
            }
            let matches = found.iter().any(|f| {
                tag(f, "p").as_deref() == Some(want.as_str())
                    && tag(f, "k")
                        .unwrap_or_else(|| "rsa".to_owned())
                        .eq_ignore_ascii_case(&want_k)
                    && tag(f, "v").is_none_or(|v| v == "DKIM1")
            });
            if matches {
                (Status::Ok, "DKIM public key matches".to_owned())
            } else if keys.is_empty() && found.iter().all(|f| tag(f, "p").is_none()) {
                (Status::Wrong, "The TXT record is not a DKIM key".to_owned())
            } else {
                (
                    Status::Wrong,
                    "The published DKIM key differs from this server's key".to_owned(),
                )
            }
        }
        Purpose::Dmarc => {
            let dmarc = tagged(found, "v=DMARC1");
            match dmarc.as_slice() {
                [] => (Status::Missing, format!("No DMARC record at {}", e.name)),
                [one] => match tag(one, "p").map(|p| p.to_ascii_lowercase()) {
                    Some(p) if ["none", "quarantine", "reject"].contains(&p.as_str()) => {
                        (Status::Ok, format!("DMARC policy p={p}"))
                    }
                    _ => (
                        Status::Wrong,
                        "DMARC record has no valid p= policy".to_owned(),
                    ),
                },
                _ => (
                    Status::Wrong,
                    "More than one DMARC record: receivers ignore them all".to_owned(),
                ),
            }
        }
    }
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The records whose first term is `version` (case-insensitive), as SPF and DMARC define it.
fn tagged<'a>(found: &'a [String], version: &str) -> Vec<&'a String> {
    found
        .iter()
        .filter(|f| {
            let first = f.split([';', ' ']).next().unwrap_or_default().trim();
            first.eq_ignore_ascii_case(version)
        })
        .collect()
}

/// An SPF record authorises our MX through `mx` (any qualifier but `-`/`~`/`?`), optionally
/// naming the domain itself.
fn authorises_mx(spf: &str, domain: &str) -> bool {
    spf.split_ascii_whitespace().skip(1).any(|term| {
        let term = term.strip_prefix('+').unwrap_or(term).to_ascii_lowercase();
        term == "mx"
            || term
                .strip_prefix("mx:")
                .is_some_and(|d| same_host(d, domain))
    })
}

/// The value of `name=` in a `tag=value; ...` list (DKIM, DMARC), whitespace removed from it.
fn tag(record: &str, name: &str) -> Option<String> {
    record.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Expected> {
        expected(&Inputs {
            domain: "example.com",
            mx_host: "mail.host.test",
            bounce_domain: "bounces.example.com",
            dkim: &[
                DkimRecord {
                    algorithm: Algorithm::Rsa,
                    selector: "mail202611".into(),
                    public: "AAAA".into(),
                },
                DkimRecord {
                    algorithm: Algorithm::Ed25519,
                    selector: "ed202612".into(),
                    public: "EEEE".into(),
                },
            ],
        })
    }

    fn get(p: Purpose) -> Expected {
        records().into_iter().find(|r| r.purpose == p).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn lists_every_record() {
        let names: Vec<_> = records()
            .iter()
            .map(|r| (r.record_type, r.name.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("MX", "example.com".to_owned()),
                ("TXT", "example.com".to_owned()),
                ("TXT", "mail202611._domainkey.example.com".to_owned()),
                ("TXT", "ed202612._domainkey.example.com".to_owned()),
                ("TXT", "_dmarc.example.com".to_owned()),
                ("MX", "bounces.example.com".to_owned()),
            ]
        );
        assert_eq!(get(Purpose::Dkim).value, "v=DKIM1; k=rsa; p=AAAA");
        let dkim: Vec<_> = records()
            .into_iter()
            .filter(|r| r.purpose == Purpose::Dkim)
            .map(|r| r.value)
            .collect();
        assert_eq!(
            dkim,
            ["v=DKIM1; k=rsa; p=AAAA", "v=DKIM1; k=ed25519; p=EEEE"]
        );
    }

    #[test]
    fn judges_mx() {
        let mx = get(Purpose::Mx);
        assert_eq!(judge(&mx, &s(&["10 mail.host.test."])).0, Status::Ok);
        assert_eq!(judge(&mx, &s(&["10 MAIL.host.test"])).0, Status::Ok);
        assert_eq!(judge(&mx, &s(&["10 other.test."])).0, Status::Wrong);
        assert_eq!(judge(&mx, &[]).0, Status::Missing);
    }

    #[test]
    fn judges_spf() {
        let spf = get(Purpose::Spf);
        assert_eq!(judge(&spf, &s(&["v=spf1 mx -all"])).0, Status::Ok);
        assert_eq!(
            judge(&spf, &s(&["google-site=x", "v=spf1 +mx ~all"])).0,
            Status::Ok
        );
        assert_eq!(
            judge(&spf, &s(&["v=spf1 ip4:192.0.2.1 -all"])).0,
            Status::Wrong
        );
        assert_eq!(judge(&spf, &s(&["v=spf1 -mx -all"])).0, Status::Wrong);
        assert_eq!(
            judge(&spf, &s(&["v=spf1 mx", "v=spf1 mx"])).0,
            Status::Wrong
        );
        assert_eq!(judge(&spf, &s(&["unrelated"])).0, Status::Missing);
    }

    #[test]
    fn judges_dkim() {
        let dkim = get(Purpose::Dkim);
        assert_eq!(judge(&dkim, &s(&["v=DKIM1; k=rsa; p=AAAA"])).0, Status::Ok);
        assert_eq!(judge(&dkim, &s(&["p=AA AA"])).0, Status::Ok);
        assert_eq!(
            judge(&dkim, &s(&["v=DKIM1; k=rsa; p=BBBB"])).0,
            Status::Wrong
        );
        assert_eq!(
            judge(&dkim, &s(&["v=DKIM1; k=ed25519; p=AAAA"])).0,
            Status::Wrong
        );
        assert_eq!(judge(&dkim, &[]).0, Status::Missing);

        let ed = records()
            .into_iter()
            .filter(|r| r.purpose == Purpose::Dkim)
            .nth(1)
            .unwrap();
        assert_eq!(
            judge(&ed, &s(&["v=DKIM1; k=ed25519; p=EEEE"])).0,
            Status::Ok
        );
        // The right bytes under the wrong key type (or none, which means rsa) are wrong.
        assert_eq!(judge(&ed, &s(&["v=DKIM1; p=EEEE"])).0, Status::Wrong);
        assert_eq!(judge(&ed, &s(&["v=DKIM1; k=rsa; p=EEEE"])).0, Status::Wrong);
        assert_eq!(
            judge(&ed, &s(&["v=DKIM1; k=ed25519; p=AAAA"])).0,
            Status::Wrong
        );
    }

    #[test]
    fn judges_dmarc() {
        let d = get(Purpose::Dmarc);
        assert_eq!(judge(&d, &s(&["v=DMARC1; p=reject"])).0, Status::Ok);
        assert_eq!(
            judge(&d, &s(&["v=DMARC1; rua=mailto:x@y"])).0,
            Status::Wrong
        );
        assert_eq!(judge(&d, &s(&["v=spf1 mx"])).0, Status::Missing);
    }
}
