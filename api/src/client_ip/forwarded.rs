//! The hops a request went through, as a proxy chain reports them: `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`, each possibly over several header lines. Either parses completely or not at
//! all: a header we cannot read whole is not believed in part.

use std::net::IpAddr;

/// One hop's client as the next proxy saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`, RFC 7239 section 6.3), or a `Forwarded`
    /// element without `for=`: the proxy did not say who its client was.
    Hidden,
}

/// The `for=` of each element of the `Forwarded` lines, left (first hop) to right. Empty
/// elements and pairs are skipped, as the list syntax allows (RFC 7230 section 7).
pub fn parse_forwarded<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Vec<Node>> {
    let mut hops = Vec::new();
    for line in lines {
        let mut s = line;
        loop {
            let (element, after) = element(s)?;
            hops.extend(element);
            match after.strip_prefix(',') {
                Some(next) => s = next,
                None if after.is_empty() => break,
                None => return None,
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// One element, `name=value` pairs separated by `;`, up to a `,` or the end: its `for` (`None`
/// for an empty element) and what follows it.
fn element(mut s: &str) -> Option<(Option<Node>, &str)> {
    let mut node = None;
    let mut pairs = 0;
    loop {
        s = s.trim_start();
        if !(s.is_empty() || s.starts_with([',', ';'])) {
            let eq = s.find('=')?;
            let name = s[..eq].trim();
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return None;
            }
            let (value, after) = value(&s[eq + 1..])?;
            // A second `for` in one element is ambiguous.
            if name.eq_ignore_ascii_case("for") && node.replace(parse_node(&value)?).is_some() {
                return None;
            }
            pairs += 1;
            s = after.trim_start();
        }
        match s.strip_prefix(';') {
            Some(next) => s = next,
            None => break,
        }
    }
    let element = (pairs > 0).then(|| node.unwrap_or(Node::Hidden));
    Some((element, s))
}

/// A token or a quoted string (with `\` escapes), and what follows it.
fn value(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(quoted) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((out, &quoted[i + 1..])),
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        None
    } else {
        let end = s.find([';', ',']).unwrap_or(s.len());
        let token = s[..end].trim_end();
        // Lenient: `for=192.0.2.1:80` unquoted (':' is not a token character) is common and
        // unambiguous, so any run of visible characters without quotes is read as a value.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
            return None;
        }
        Some((token.to_owned(), &s[end..]))
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The addresses of the `X-Forwarded-For` lines, left (first hop) to right.
pub fn parse_x_forwarded_for<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Vec<Node>> {
    let mut hops = Vec::new();
    for line in lines {
        for entry in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            hops.push(parse_node(entry)?);
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:8080` (the port
/// may be obfuscated, `_p1`), `unknown` or `_obfuscated`.
pub fn parse_node(raw: &str) -> Option<Node> {
    if raw.eq_ignore_ascii_case("unknown") {
        return Some(Node::Hidden);
    }
    if let Some(obfuscated) = raw.strip_prefix('_') {
        return is_obfuscated(obfuscated).then_some(Node::Hidden);
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(Node::Ip(ip));
    }
    let (host, port) = match raw.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (
                host.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)?,
                port,
            )
        }
        None => {
            let (host, port) = raw.split_once(':')?;
            (
                host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)?,
                Some(port),
            )
        }
    };
    let port_ok = match port {
        None => true,
        Some(p) => match p.strip_prefix('_') {
            Some(obfuscated) => is_obfuscated(obfuscated),
            None => p.parse::<u16>().is_ok(),
        },
    };
    port_ok.then_some(Node::Ip(host))
}

/// RFC 7239's `obfnode`/`obfport` after the `_`: letters, digits, `.`, `_`, `-`.
fn is_obfuscated(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Node {
        Node::Ip(s.parse().unwrap())
    }

    #[test]
    fn nodes_in_every_form() {
        assert_eq!(parse_node("192.0.2.43"), Some(ip("192.0.2.43")));
        assert_eq!(parse_node("192.0.2.43:47011"), Some(ip("192.0.2.43")));
        assert_eq!(
            parse_node("2001:db8:cafe::17"),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            parse_node("[2001:db8:cafe::17]"),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            parse_node("[2001:db8:cafe::17]:4711"),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(parse_node("[::1]:_port-7"), Some(ip("::1")));
        assert_eq!(parse_node("unknown"), Some(Node::Hidden));
        assert_eq!(parse_node("_hidden"), Some(Node::Hidden));
        assert_eq!(parse_node("_SEVKISEK"), Some(Node::Hidden));
        for bad in [
            "",
            "_",
            "_a b",
            "example.com",
            "192.0.2.43:",
            "192.0.2.43:99999",
            "[192.0.2.43]",
            "[2001:db8::1",
            "[2001:db8::1]4711",
            "2001:db8::1:4711:x",
            "300.0.2.1",
        ] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn forwarded_as_in_rfc_7239() {
        // Section 4's examples.
        assert_eq!(
            parse_forwarded([r#"for="_gazonk""#]),
            Some(vec![Node::Hidden])
        );
        assert_eq!(
            parse_forwarded([r#"For="[2001:db8:cafe::17]:4711""#]),
            Some(vec![ip("2001:db8:cafe::17")])
        );
        assert_eq!(
            parse_forwarded(["for=192.0.2.60;proto=http;by=203.0.113.43"]),
            Some(vec![ip("192.0.2.60")])
        );
        assert_eq!(
            parse_forwarded(["for=192.0.2.43, for=198.51.100.17"]),
            Some(vec![ip("192.0.2.43"), ip("198.51.100.17")])
        );
        // Several header lines are one list, in order; quoted values may hold escapes.
        assert_eq!(
            parse_forwarded([
                r#"for="192.0.2.43:80";proto=https"#,
                r#"for=unknown, by=10.0.0.1;for="\[::1\]""#
            ]),
            Some(vec![ip("192.0.2.43"), Node::Hidden, ip("::1")])
        );
        // Empty elements and pairs are no hops; an element without `for` hides its client.
        assert_eq!(
            parse_forwarded(["for=192.0.2.1;, ,for=192.0.2.2 ; proto=http"]),
            Some(vec![ip("192.0.2.1"), ip("192.0.2.2")])
        );
        assert_eq!(
            parse_forwarded(["proto=https;host=example.com"]),
            Some(vec![Node::Hidden])
        );
    }

    #[test]
    fn forwarded_that_cannot_be_read_whole_is_not_read() {
        for bad in [
            "",
            "for",
            "for=",
            "for=192.0.2.1 garbage",
            r#"for="192.0.2.1"#,
            "for=192.0.2.1;for=192.0.2.2",
            "for=not-an-address",
            "f or=192.0.2.1",
            "for=192.0.2.1 ;x",
            "=192.0.2.1",
            ", ;",
        ] {
            assert_eq!(parse_forwarded([bad]), None, "{bad:?}");
        }
        assert_eq!(parse_forwarded(["for=192.0.2.1", "for=nope"]), None);
    }

    #[test]
    fn x_forwarded_for_lists() {
        assert_eq!(
            parse_x_forwarded_for(["203.0.113.195, 2001:db8:85a3::8a2e:370:7334"]),
            Some(vec![
                ip("203.0.113.195"),
                ip("2001:db8:85a3::8a2e:370:7334")
            ])
        );
        assert_eq!(
            parse_x_forwarded_for(["203.0.113.195:41237", "[2001:db8::1]:80,unknown"]),
            Some(vec![ip("203.0.113.195"), ip("2001:db8::1"), Node::Hidden])
        );
        assert_eq!(
            parse_x_forwarded_for(["203.0.113.195,"]),
            Some(vec![ip("203.0.113.195")])
        );
        for bad in [
            "",
            " , ",
            "203.0.113.195, nonsense",
            "a b",
            "203.0.113.195 10.0.0.1",
        ] {
            assert_eq!(parse_x_forwarded_for([bad]), None, "{bad:?}");
        }
    }
}
