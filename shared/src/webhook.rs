//! Webhooks as both services need them: the Standard Webhooks signature (the layout Svix and
//! Resend use), the `whsec_` secrets it is made with, and the rule for which URLs may be called.
//!
//! Signature: `webhook-signature: v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`,
//! the key being the base64 after `whsec_`. Several signatures (old and new secret during a
//! rotation's overlap) are separated by spaces; a receiver accepts the request if any matches.
//! `webhook-timestamp` is the time of the attempt (Unix seconds), so each retry is signed anew
//! and a captured request cannot be replayed after the receiver's tolerance (5 minutes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the Standard Webhooks range is 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    rand::fill(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC key inside a `whsec_` secret; `None` if it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    STANDARD.decode(encoded).ok().filter(|k| !k.is_empty())
}

/// One `v1,<base64>` signature of `body` sent as `msg_id` at `timestamp`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(msg_id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
}

/// The `webhook-signature` value: one signature per key, space-separated.
pub fn signature_header(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("must be an absolute http:// or https:// URL of at most 2048 characters")]
    Malformed,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("{0} resolves to {1}, a loopback, private, link-local or otherwise internal address")]
    Internal(String, IpAddr),
    #[error("{0} does not resolve")]
    Unresolvable(String),
}

/// A URL that passed [`check_url`]'s syntax rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        if raw.len() > 2048 || crate::address::has_control_chars(raw) || raw.contains([' ', '\t']) {
            return Err(UrlError::Malformed);
        }
        let url = url::Url::parse(raw).map_err(|_| UrlError::Malformed)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::Malformed);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        Ok(Self { url })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host and port to connect to.
    pub fn host_port(&self) -> (String, u16) {
        let host = self.url.host_str().unwrap_or_default();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        (host, self.url.port_or_known_default().unwrap_or(80))
    }

    /// The addresses to connect to, every one of them allowed: the DNS answer is checked, not
    /// only the name, at registration and again before each connection.
    pub async fn resolve(&self, allow_private: bool) -> Result<Vec<SocketAddr>, UrlError> {
        let (host, port) = self.host_port();
        resolve_host(&host, port, allow_private).await
    }
}

/// `host`'s addresses (an IP address is its own), refused if any is internal unless
/// `allow_private`: the one rule for registration (the API) and connections (the worker's
/// resolver).
pub async fn resolve_host(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, UrlError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| UrlError::Unresolvable(host.to_owned()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlError::Unresolvable(host.to_owned()));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
        return Err(UrlError::Internal(host.to_owned(), bad.ip()));
    }
    Ok(addrs)
}

/// Loopback, private (RFC 1918, ULA), link-local (where cloud metadata lives), shared address
/// space, unspecified, multicast, documentation and other reserved ranges: nothing a sender's
/// public receiver can be.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64 of anything
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_libraries_do() {
        // The standard's own example, checked against its Python package.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let other = secret_key(&new_secret()).unwrap();
        let both = signature_header(&[key.clone(), other], "m", 1, b"{}");
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.starts_with(&sign(&key, "m", 1, b"{}")));
    }

    #[test]
    fn secrets_are_whsec_and_32_random_bytes() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert_ne!(new_secret(), s);
        assert_eq!(secret_key("sk_abc"), None);
        assert_eq!(secret_key("whsec_"), None);
    }

    #[test]
    fn urls_are_http_without_credentials() {
        assert!(WebhookUrl::parse("https://hooks.example.com/mail?x=1").is_ok());
        for bad in [
            "ftp://x.test/",
            "https://",
            "hooks.example.com",
            "https://a b.test/",
            "https://x.test/\n",
        ] {
            assert_eq!(WebhookUrl::parse(bad), Err(UrlError::Malformed), "{bad:?}");
        }
        assert_eq!(
            WebhookUrl::parse("https://user:pw@x.test/"),
            Err(UrlError::Credentials)
        );
    }

    #[tokio::test]
    async fn internal_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:192.168.1.1]/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://localhost:9/",
        ] {
            let u = WebhookUrl::parse(url).unwrap();
            assert!(
                matches!(u.resolve(false).await, Err(UrlError::Internal(..))),
                "{url}"
            );
            assert!(u.resolve(true).await.is_ok(), "{url}");
        }
        let public = WebhookUrl::parse("http://93.184.215.14:8080/").unwrap();
        assert_eq!(
            public.resolve(false).await.unwrap(),
            vec!["93.184.215.14:8080".parse().unwrap()]
        );
    }
}
