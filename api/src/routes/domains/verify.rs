//! Live DNS lookups for `POST /domains/{domain}/dns/verify`.
//!
//! A resolver is built per request with no shared cache, so a customer who just fixed a record
//! sees the fix at once (subject only to their own zone's propagation). It asks
//! `MAILAPI_DNS_RESOLVER` when set, otherwise the name servers in `/etc/resolv.conf`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;

use super::records::{Expected, Status, judge};

/// One expected record and what the lookup found for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checked {
    #[serde(flatten)]
    pub expected: Expected,
    pub status: Status,
    /// What DNS answers at the record's name (MX: `"<preference> <host>"`).
    pub found: Vec<String>,
    /// A sentence saying what is right or wrong.
    pub detail: String,
}

type TokioResolver = Resolver<TokioRuntimeProvider>;

pub fn resolver(configured: Option<SocketAddr>) -> anyhow::Result<TokioResolver> {
    let servers = match configured {
        Some(addr) => vec![addr],
        None => system_name_servers()?,
    };
    let config = ResolverConfig::from_name_servers(
        servers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect(),
    );
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(3);
    opts.attempts = 1;
    opts.use_hosts_file = ResolveHosts::Never;
    builder.build().context("building the DNS resolver")
}

/// `nameserver` lines of `/etc/resolv.conf`, port 53.
fn system_name_servers() -> anyhow::Result<Vec<SocketAddr>> {
    let conf = std::fs::read_to_string("/etc/resolv.conf")
        .context("reading /etc/resolv.conf (or set MAILAPI_DNS_RESOLVER)")?;
    let servers: Vec<SocketAddr> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    anyhow::ensure!(
        !servers.is_empty(),
        "no nameserver in /etc/resolv.conf (set MAILAPI_DNS_RESOLVER)"
    );
    Ok(servers)
}

/// Looks every record up (concurrently) and judges it.
pub async fn check_all(resolver: &TokioResolver, expected: Vec<Expected>) -> Vec<Checked> {
    futures::future::join_all(expected.into_iter().map(|e| check(resolver, e))).await
}

async fn check(resolver: &TokioResolver, expected: Expected) -> Checked {
    let rtype = if expected.record_type == "MX" {
        RecordType::MX
    } else {
        RecordType::TXT
    };
    // Fully qualified, so no search domain from resolv.conf is ever appended.
    let fqdn = format!("{}.", expected.name);
    match lookup(resolver, &fqdn, rtype).await {
        Ok(found) => {
            let (status, detail) = judge(&expected, &found);
            Checked {
                expected,
                status,
                found,
                detail,
            }
        }
        Err(e) => Checked {
            expected,
            status: Status::Error,
            found: Vec::new(),
            detail: format!("DNS lookup failed: {e}"),
        },
    }
}

/// The records of one type at `name`; empty for NXDOMAIN or no data.
async fn lookup(
    resolver: &TokioResolver,
    name: &str,
    rtype: RecordType,
) -> Result<Vec<String>, NetError> {
    let answer = match resolver.lookup(name, rtype).await {
        Ok(a) => a,
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(answer
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some(format!("{} {}", mx.preference, mx.exchange)),
            // A long TXT record is split into strings of at most 255 bytes; the value is
            // their concatenation (RFC 7208 3.3, RFC 6376 3.6.2.2).
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}
