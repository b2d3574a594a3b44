//! Who the client of a request is, for the per-IP signup limit and the request log line.
//!
//! The socket peer, unless the peer is a trusted proxy (`MAILAPI_TRUSTED_PROXIES`): then the
//! proxies' own report of the chain is believed, `Forwarded` (RFC 7239) over `X-Forwarded-For`
//! when a request has both, and the client is the right-most address in it that is not itself a
//! trusted proxy. Walking from the right matters: everything left of the first untrusted hop was
//! written by a party we do not trust, so a client cannot pick its own limit bucket by sending
//! `X-Forwarded-For: <anything>` through our proxy. When the chain cannot name that client (a
//! header that does not parse, or a hop that hides its client: `for=unknown`, `for=_hidden`),
//! the socket peer is used, as without a proxy. When every hop is trusted, the left-most one is
//! the client (a request from inside, through our own proxies).

mod forwarded;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use shared::net::TrustedProxies;

use self::forwarded::{Node, parse_forwarded, parse_x_forwarded_for};
use crate::error::ApiError;
use crate::state::AppState;

/// The request's client address, in the request's extensions (put there by [`resolve`]) and,
/// for the log line, in the response's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Middleware: names the client once per request, before anything that needs it.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = peer.map(|peer| {
        ClientIp(client_ip(
            peer,
            req.headers(),
            &state.settings.trusted_proxies,
        ))
    });
    if let Some(client) = client {
        req.extensions_mut().insert(client);
    }
    let mut response = next.run(req).await;
    if let Some(client) = client {
        response.extensions_mut().insert(client);
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<ClientIp>().copied().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "no client address: served without ConnectInfo"
            ))
        })
    }
}

/// The client of a request that arrived from `peer` with `headers`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    // A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`.
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let lines = |name: &str| -> Option<Vec<&str>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().ok())
            .collect()
    };
    let hops = if headers.contains_key("forwarded") {
        lines("forwarded").and_then(parse_forwarded)
    } else if headers.contains_key("x-forwarded-for") {
        lines("x-forwarded-for").and_then(parse_x_forwarded_for)
    } else {
        None
    };
    let Some(hops) = hops else {
        return peer;
    };
    for hop in hops.iter().rev() {
        match hop {
            Node::Ip(ip) if trusted.contains(*ip) => continue,
            Node::Ip(ip) => return ip.to_canonical(),
            Node::Hidden => return peer,
        }
    }
    match hops.first() {
        Some(Node::Ip(ip)) => ip.to_canonical(),
        _ => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(peer: &str, trusted: &str, headers: &[(&str, &str)]) -> IpAddr {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        client_ip(ip(peer), &map, &TrustedProxies::parse(trusted).unwrap())
    }

    const PROXIES: &str = "10.0.0.0/8, fd00::/8";

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let spoof = [
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=198.51.100.8"),
        ];
        assert_eq!(client("203.0.113.5", "", &spoof), ip("203.0.113.5"));
        assert_eq!(client("203.0.113.5", PROXIES, &spoof), ip("203.0.113.5"));
        assert_eq!(
            client("10.0.0.1", "", &spoof),
            ip("10.0.0.1"),
            "none trusted by default"
        );
        assert_eq!(
            client("::ffff:203.0.113.5", PROXIES, &spoof),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        // The client claimed 198.51.100.1 itself; our proxy appended what it saw.
        let xff = [("x-forwarded-for", "198.51.100.1, 203.0.113.9")];
        assert_eq!(client("10.0.0.1", PROXIES, &xff), ip("203.0.113.9"));
        // Two proxies of ours, the inner one IPv6.
        let xff = [("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.1.1.1")];
        assert_eq!(client("fd00::2", PROXIES, &xff), ip("203.0.113.9"));
        assert_eq!(client("::ffff:10.0.0.1", PROXIES, &xff), ip("203.0.113.9"));
        let fwd = [(
            "forwarded",
            r#"for=198.51.100.1, for="[2001:db8:cafe::17]:4711";proto=https, for=10.2.0.1"#,
        )];
        assert_eq!(client("10.0.0.1", PROXIES, &fwd), ip("2001:db8:cafe::17"));
        // Header lines are read in order as one list.
        let lines = [
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9:5555, 10.1.1.1"),
        ];
        assert_eq!(client("10.0.0.1", PROXIES, &lines), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let both = [
            ("x-forwarded-for", "203.0.113.1"),
            ("forwarded", "for=\"203.0.113.2:80\""),
        ];
        assert_eq!(client("10.0.0.1", PROXIES, &both), ip("203.0.113.2"));
        // Even when it cannot be read: then the peer, not the other header.
        let both = [
            ("x-forwarded-for", "203.0.113.1"),
            ("forwarded", "for=nonsense"),
        ];
        assert_eq!(client("10.0.0.1", PROXIES, &both), ip("10.0.0.1"));
    }

    #[test]
    fn a_chain_that_cannot_name_the_client_means_the_peer() {
        for headers in [
            vec![],
            vec![("x-forwarded-for", "not an address")],
            vec![("x-forwarded-for", "")],
            vec![("forwarded", "for=\"[2001:db8::1\"")],
            // Hidden hops: a proxy of ours did not say who its client was.
            vec![("forwarded", "for=198.51.100.1, for=_hidden")],
            vec![("forwarded", "for=198.51.100.1, for=unknown, for=10.1.1.1")],
            vec![("forwarded", "proto=https")],
            vec![("x-forwarded-for", "198.51.100.1, unknown")],
        ] {
            assert_eq!(
                client("10.0.0.1", PROXIES, &headers),
                ip("10.0.0.1"),
                "{headers:?}"
            );
        }
        // A hidden hop left of the client does not matter.
        let fwd = [("forwarded", "for=_hidden, for=203.0.113.9")];
        assert_eq!(client("10.0.0.1", PROXIES, &fwd), ip("203.0.113.9"));
    }

    #[test]
    fn when_every_hop_is_trusted_the_first_is_the_client() {
        let xff = [("x-forwarded-for", "10.3.3.3, 10.2.2.2")];
        assert_eq!(client("10.0.0.1", PROXIES, &xff), ip("10.3.3.3"));
        let fwd = [("forwarded", "for=\"[fd00::5]\", for=10.2.2.2")];
        assert_eq!(client("10.0.0.1", PROXIES, &fwd), ip("fd00::5"));
        let all = [("x-forwarded-for", "198.51.100.1, 203.0.113.9")];
        assert_eq!(client("10.0.0.1", "0.0.0.0/0", &all), ip("198.51.100.1"));
    }
}
