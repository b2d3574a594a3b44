//! `Content-Disposition` for downloads (RFC 6266): an ASCII `filename` every client understands,
//! plus `filename*` with the exact UTF-8 name (RFC 8187) when the two differ.

/// The header value for an attachment named `name` (or unnamed).
///
/// `filename*` comes first: clients that understand it prefer it wherever it is, and naive
/// parsers that split on `filename=` and take the last piece (the spec's Python example) then
/// get the clean ASCII name rather than a fragment of the extended parameter.
pub fn attachment(name: Option<&str>) -> String {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let Some(name) = name else {
        return "attachment".to_owned();
    };
    let fallback = ascii_fallback(name);
    if fallback == name {
        format!("attachment; filename=\"{fallback}\"")
    } else {
        format!(
            "attachment; filename*=UTF-8''{}; filename=\"{fallback}\"",
            percent_encode(name)
        )
    }
}

/// The name with anything outside printable ASCII, and the characters that would end or
/// escape a quoted string or a path, replaced by `_`.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | '/' | '%' | ';') => c,
            _ => '_',
        })
        .collect()
}

/// RFC 8187 `value-chars`: attr-char stays, every other byte is `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_names_stay_simple() {
        assert_eq!(
            attachment(Some("agenda.pdf")),
            "attachment; filename=\"agenda.pdf\""
        );
        assert_eq!(attachment(None), "attachment");
    }

    #[test]
    fn non_ascii_names_get_rfc6266_encoding() {
        assert_eq!(
            attachment(Some("Übersicht 2024.pdf")),
            "attachment; filename*=UTF-8''%C3%9Cbersicht%202024.pdf; filename=\"_bersicht 2024.pdf\""
        );
        assert_eq!(
            attachment(Some("a\"b\\c.txt")),
            "attachment; filename*=UTF-8''a%22b%5Cc.txt; filename=\"a_b_c.txt\""
        );
        // The spec's Python example splits on `filename=` and strips quotes.
        let header = attachment(Some("отчёт.pdf"));
        let naive = header.split("filename=").last().unwrap().trim_matches('"');
        assert_eq!(naive, "_____.pdf");
    }
}
