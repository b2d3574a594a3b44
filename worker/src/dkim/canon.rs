//! The "relaxed" canonicalisations of RFC 6376 section 3.4, for header fields (3.4.2) and the
//! body (3.4.4), over the CRLF-terminated bytes the worker hands to SMTP.
//!
//! Both tolerate transport changes verifiers must forgive: whitespace runs become one space,
//! whitespace at line ends and empty lines at the end of the body are ignored, header names
//! are compared in lowercase and folded header lines are unfolded.

/// One header field of a message: its name (the bytes before the colon) and its value (after
/// the colon, with any folding, without the CRLF that ends the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

impl Field<'_> {
    /// Whether this field is called `name` (case-insensitive, whitespace before the colon
    /// ignored).
    pub fn is(&self, name: &str) -> bool {
        trim_wsp_end(self.name).eq_ignore_ascii_case(name.as_bytes())
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits a message into its header fields, in order, and its body (what follows the empty
/// line; empty when there is none). A line that does not start a field (no colon) is skipped:
/// lettre never writes one, and a verifier could not match it to a name either.
pub fn split_message(message: &[u8]) -> (Vec<Field<'_>>, &[u8]) {
    let (head, body) = match find(message, b"\r\n\r\n") {
        Some(i) => (&message[..i + 2], &message[i + 4..]),
        None => (message, &message[message.len()..]),
    };
    let mut fields = Vec::new();
    let mut start = 0;
    while start < head.len() {
        // A field runs until a CRLF that is not followed by whitespace (a fold).
        let mut end = start;
        let field_end = loop {
            match find(&head[end..], b"\r\n") {
                Some(i) => {
                    let crlf = end + i;
                    if head.get(crlf + 2).copied().is_some_and(is_wsp) {
                        end = crlf + 2;
                    } else {
                        break crlf;
                    }
                }
                None => break head.len(),
            }
        };
        let line = &head[start..field_end];
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            fields.push(Field {
                name: &line[..colon],
                value: &line[colon + 1..],
            });
        }
        start = field_end + 2;
    }
    (fields, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Appends `field` canonicalised (relaxed) and followed by CRLF: lowercase name, no whitespace
/// around the colon, unfolded, whitespace runs as one SP, none at the end of the value.
pub fn relaxed_header(field: Field<'_>, out: &mut Vec<u8>) {
    let name = trim_wsp_end(field.name);
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    compress_wsp(field.value, true, out);
    out.extend_from_slice(b"\r\n");
}

/// Feeds `body` canonicalised (relaxed) to `emit`, in pieces: each line with whitespace runs as
/// one SP and none at its end, every line ended by CRLF, no empty lines at the end. An empty
/// body stays empty (RFC 6376 section 3.4.4 adds a CRLF only to a non-empty body).
pub fn relaxed_body(body: &[u8], mut emit: impl FnMut(&[u8])) {
    let mut pending_empty = 0usize;
    let mut line = Vec::with_capacity(128);
    let mut rest = body;
    while !rest.is_empty() {
        let (raw, next) = match find(rest, b"\r\n") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        line.clear();
        compress_wsp(raw, false, &mut line);
        if line.is_empty() {
            // Held back: only written if a non-empty line follows.
            pending_empty += 1;
            continue;
        }
        for _ in 0..pending_empty {
            emit(b"\r\n");
        }
        pending_empty = 0;
        emit(&line);
        emit(b"\r\n");
    }
}

/// Appends `value` with each run of WSP (and the CRLF of a fold) as one SP, and no whitespace
/// at the end; at the start too when `trim_start` (a header value after its colon).
fn compress_wsp(value: &[u8], trim_start: bool, out: &mut Vec<u8>) {
    let mut in_wsp = false;
    let mut wrote = false;
    for &b in value {
        // A CR or LF inside a field value can only be a fold's CRLF (followed by WSP): removing
        // it is the unfolding.
        if b == b'\r' || b == b'\n' {
            continue;
        }
        if is_wsp(b) {
            in_wsp = true;
            continue;
        }
        if in_wsp && (wrote || !trim_start) {
            out.push(b' ');
        }
        in_wsp = false;
        wrote = true;
        out.push(b);
    }
}

fn trim_wsp_end(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_wsp(b)).map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(raw: &[u8]) -> String {
        let (fields, _) = split_message(raw);
        let mut out = Vec::new();
        for f in fields {
            relaxed_header(f, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn body(raw: &[u8]) -> String {
        let mut out = Vec::new();
        relaxed_body(raw, |piece| out.extend_from_slice(piece));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc_6376_section_3_4_5_example() {
        // The RFC's example, with its <SP>, <HTAB> and <CRLF> written out.
        let message = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
        assert_eq!(header(message), "a:X\r\nb:Y Z\r\n");
        let (_, b) = split_message(message);
        assert_eq!(body(b), " C\r\nD E\r\n");
    }

    #[test]
    fn header_names_lowercase_and_whitespace_around_the_colon_goes() {
        assert_eq!(
            header(b"Subject  :   Hello   World  \r\nX-A:\r\n"),
            "subject:Hello World\r\nx-a:\r\n"
        );
        // A fold between words is one space; one at the start of the value disappears.
        assert_eq!(
            header(b"To:\r\n a@b.test,\r\n\tc@d.test\r\n"),
            "to:a@b.test, c@d.test\r\n"
        );
    }

    #[test]
    fn splits_fields_with_folds_and_finds_the_body() {
        let (fields, body) = split_message(b"A: 1\r\n 2\r\nB: 3\r\n\r\nbody\r\n");
        assert_eq!(
            fields,
            [
                Field {
                    name: b"A",
                    value: b" 1\r\n 2"
                },
                Field {
                    name: b"B",
                    value: b" 3"
                }
            ]
        );
        assert_eq!(body, b"body\r\n");
        let (fields, body) = split_message(b"A: 1\r\n");
        assert_eq!(fields.len(), 1);
        assert!(body.is_empty());
    }

    #[test]
    fn body_edge_cases() {
        assert_eq!(body(b""), "");
        assert_eq!(body(b"\r\n\r\n"), "");
        assert_eq!(body(b"  \r\n\t\r\n"), "");
        assert_eq!(body(b"no newline"), "no newline\r\n");
        assert_eq!(body(b"a\r\n\r\n \r\nb\r\n\r\n"), "a\r\n\r\n\r\nb\r\n");
        assert_eq!(body(b"\t lead"), " lead\r\n");
        // A dot line stays: dot-stuffing is SMTP's business, not the signature's.
        assert_eq!(body(b".\r\n..\r\n"), ".\r\n..\r\n");
    }
}
