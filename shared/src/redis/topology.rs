//! `MAILAPI_REDIS_URL` parsed into the topology behind it.
//!
//! Accepted forms:
//! - one node, as redis-rs reads it: `redis://[[user]:password@]host[:port][/db]`,
//!   `rediss://...`, `unix:///path`, `redis+unix:///path`;
//! - Sentinel: `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/db]`
//!   (port 26379 by default). The hosts are the sentinels; the credentials and `db` are for
//!   the master they name. Sentinels that require a password of their own take it from the
//!   query: `?sentinel_password=...` (and `sentinel_username=...`);
//! - Cluster: `redis+cluster://[[user]:password@]host[:port][,host[:port]...]` (port 6379 by
//!   default): any reachable nodes of the cluster; the client discovers the rest.
//!
//! The multi-host syntax follows the `redis+sentinel://` URL scheme used by other Redis clients
//! (hosts separated by commas, the service name as the first path segment). Credentials must be
//! percent-encoded as in any URL.

use deadpool_redis::redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

const SENTINEL_SCHEME: &str = "redis+sentinel://";
const CLUSTER_SCHEME: &str = "redis+cluster://";
const SENTINEL_DEFAULT_PORT: u16 = 26379;
const REDIS_DEFAULT_PORT: u16 = 6379;

/// Where Redis is, and how it is laid out.
#[derive(Clone)]
pub enum Topology {
    /// One server, reached exactly as the URL says (redis-rs parses it when connecting).
    Single { url: String },
    /// A Redis Cluster, found through any of these nodes.
    Cluster { nodes: Vec<ConnectionInfo> },
    /// A master (with replicas) watched by Sentinels, which name the current master.
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master_name: String,
        /// Database and credentials for the master.
        master: RedisConnectionInfo,
    },
}

/// Addresses only: the URL may carry a password.
impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs = |nodes: &[ConnectionInfo]| -> Vec<String> {
            nodes.iter().map(|n| n.addr().to_string()).collect()
        };
        match self {
            Topology::Single { .. } => f.write_str("Single"),
            Topology::Cluster { nodes } => f.debug_tuple("Cluster").field(&addrs(nodes)).finish(),
            Topology::Sentinel {
                sentinels,
                master_name,
                ..
            } => f
                .debug_struct("Sentinel")
                .field("sentinels", &addrs(sentinels))
                .field("master_name", master_name)
                .finish(),
        }
    }
}

impl Topology {
    /// Parses a URL of one of the forms in the module documentation. The error says what is
    /// wrong without repeating the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<Topology, String> {
        if let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) {
            return parse_sentinel(rest);
        }
        if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
            return parse_cluster(rest);
        }
        if url.starts_with("rediss+sentinel://") || url.starts_with("rediss+cluster://") {
            return Err("TLS to a Sentinel set or a Cluster is not supported".into());
        }
        if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| url.starts_with(s))
        {
            return Ok(Topology::Single {
                url: url.to_owned(),
            });
        }
        Err(
            "must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
                .into(),
        )
    }
}

/// The parts of `[userinfo@]host[:port],...[/path][?query]`.
struct MultiHost<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<(String, u16)>,
    path: &'a str,
    query: &'a str,
}

fn split_multi_host(rest: &str, default_port: u16) -> Result<MultiHost<'_>, String> {
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let hosts = hosts
        .split(',')
        .map(|h| split_host_port(h, default_port))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MultiHost {
        userinfo,
        hosts,
        path,
        query,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(raw: &str, default_port: u16) -> Result<(String, u16), String> {
    let raw = raw.trim();
    let (host, port) = if let Some(v6) = raw.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{raw}`: unclosed `[`"))?;
        match after {
            "" => (format!("[{host}]"), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (format!("[{host}]"), Some(port)),
                None => return Err(format!("`{raw}`: expected `:port` after `]`")),
            },
        }
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (raw.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(format!("`{raw}` is not a host name or address"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{raw}`: `{p}` is not a port"))?,
    };
    Ok((host, port))
}

/// One node's connection info through redis-rs's own URL parser, which also percent-decodes
/// the credentials.
fn node(userinfo: Option<&str>, host: &str, port: u16, db: i64) -> Result<ConnectionInfo, String> {
    let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    format!("redis://{auth}{host}:{port}/{db}")
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("node {host}:{port}: {e}"))
}

fn parse_db(raw: &str) -> Result<i64, String> {
    raw.parse::<i64>()
        .ok()
        .filter(|db| *db >= 0)
        .ok_or_else(|| format!("`{raw}` is not a database number"))
}

fn parse_sentinel(rest: &str) -> Result<Topology, String> {
    let parts = split_multi_host(rest, SENTINEL_DEFAULT_PORT)?;
    let mut segments = parts.path.trim_start_matches('/').split('/');
    let master_name = segments.next().unwrap_or_default();
    if master_name.is_empty() {
        return Err(
            "needs the master's name as its path: redis+sentinel://host:26379/<master-name>".into(),
        );
    }
    let db = match segments.next() {
        None | Some("") => 0,
        Some(raw) => parse_db(raw)?,
    };
    if segments.next().is_some() {
        return Err("path must be /<master-name> or /<master-name>/<db>".into());
    }
    let mut sentinel_auth: (Option<&str>, Option<&str>) = (None, None);
    for pair in parts.query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sentinel_username", v)) => sentinel_auth.0 = Some(v),
            Some(("sentinel_password", v)) => sentinel_auth.1 = Some(v),
            _ => {
                return Err(format!(
                    "unknown query parameter `{}` (only sentinel_username, sentinel_password)",
                    pair.split('=').next().unwrap_or_default()
                ));
            }
        }
    }
    let sentinel_userinfo = match sentinel_auth {
        (None, None) => None,
        (user, password) => Some(format!(
            "{}:{}",
            user.unwrap_or_default(),
            password.unwrap_or_default()
        )),
    };
    let sentinels = parts
        .hosts
        .iter()
        .map(|(host, port)| node(sentinel_userinfo.as_deref(), host, *port, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let (host, port) = &parts.hosts[0];
    let master = node(parts.userinfo, host, *port, db)?
        .redis_settings()
        .clone();
    Ok(Topology::Sentinel {
        sentinels,
        master_name: master_name.to_owned(),
        master,
    })
}

fn parse_cluster(rest: &str) -> Result<Topology, String> {
    let parts = split_multi_host(rest, REDIS_DEFAULT_PORT)?;
    if !matches!(parts.path, "" | "/" | "/0") {
        return Err("a Cluster has only database 0; leave the path empty".into());
    }
    if !parts.query.is_empty() {
        return Err("takes no query parameters".into());
    }
    let nodes = parts
        .hosts
        .iter()
        .map(|(host, port)| node(parts.userinfo, host, *port, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Topology::Cluster { nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(nodes: &[ConnectionInfo]) -> Vec<String> {
        nodes.iter().map(|n| n.addr().to_string()).collect()
    }

    #[test]
    fn single_node_urls_pass_through() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://cache.example:6380/2",
            "unix:///run/redis.sock",
        ] {
            match Topology::parse(url).unwrap() {
                Topology::Single { url: u } => assert_eq!(u, url),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        let t = Topology::parse("redis+sentinel://:s%40cret@10.0.0.1,10.0.0.2:26380/mymaster/3")
            .unwrap();
        let Topology::Sentinel {
            sentinels,
            master_name,
            master,
        } = t
        else {
            panic!("not sentinel")
        };
        assert_eq!(addrs(&sentinels), ["10.0.0.1:26379", "10.0.0.2:26380"]);
        assert_eq!(master_name, "mymaster");
        assert_eq!(master.db(), 3);
        assert_eq!(master.password(), Some("s@cret"));
        // The master's password is not sent to the sentinels.
        assert_eq!(sentinels[0].redis_settings().password(), None);

        let t = Topology::parse("redis+sentinel://[::1]:26379/m?sentinel_password=pw").unwrap();
        let Topology::Sentinel { sentinels, .. } = t else {
            panic!("not sentinel")
        };
        assert_eq!(sentinels[0].redis_settings().password(), Some("pw"));
    }

    #[test]
    fn cluster_urls_list_seed_nodes() {
        let t = Topology::parse("redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001,node3").unwrap();
        let Topology::Cluster { nodes } = t else {
            panic!("not cluster")
        };
        assert_eq!(
            addrs(&nodes),
            ["127.0.0.1:7000", "127.0.0.1:7001", "node3:6379"]
        );
        assert_eq!(nodes[2].redis_settings().username(), Some("u"));
    }

    #[test]
    fn malformed_urls_are_refused_without_echoing_secrets() {
        for bad in [
            "http://127.0.0.1",
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel://127.0.0.1:99999/m",
            "redis+sentinel://127.0.0.1/m/x",
            "redis+sentinel://127.0.0.1/m?password=x",
            "redis+cluster://127.0.0.1:7000/1",
            "redis+cluster://127.0.0.1:7000,,127.0.0.1:7001",
            "redis+cluster://:hunter2@127.0.0.1:notaport",
            "rediss+cluster://127.0.0.1:7000",
        ] {
            let err = Topology::parse(bad).expect_err(bad);
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
