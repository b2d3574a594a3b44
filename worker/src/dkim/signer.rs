//! DKIM-Signature headers (RFC 6376 section 5) over the exact bytes handed to SMTP, one per key
//! of the sending domain: RSA first, then Ed25519 when the domain has it on (RFC 8463 dual
//! signing: receivers that do not know Ed25519 ignore its signature and use the RSA one).
//!
//! Signed header fields: [`SIGNED_HEADERS`], each one present in the message, every instance,
//! plus one more time than it occurs ("oversigning"). Per RFC 6376 section 5.4.2 a name listed
//! more often than the field occurs stands for a field that is absent, so a From, Subject or
//! List-Unsubscribe added on the way (a second one that a mail reader might show instead)
//! breaks the signature. Fields the message does not have are not listed: a list that adds
//! its own List-Unsubscribe to a message that had none, or a forwarder that adds a Cc, does not
//! break our signature, and RFC 6376 does not require them.

use base64::Engine as _;

use super::DkimError;
use super::canon::{self, Field};
use super::key::SigningKey;

/// What a reader relies on, and the one-click unsubscribe fields (RFC 8058 requires both
/// List-Unsubscribe and List-Unsubscribe-Post to be signed), in the order `h=` lists them.
pub const SIGNED_HEADERS: [&str; 11] = [
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Header lines are folded before this many characters (RFC 5322 section 2.1.1's "SHOULD").
const LINE: usize = 78;

/// A domain's keys, each with its selector, in the order the signatures go on the message.
#[derive(Debug)]
pub struct DomainSigner {
    domain: String,
    keys: Vec<(String, SigningKey)>,
}

impl DomainSigner {
    pub fn new(domain: &str, keys: Vec<(String, SigningKey)>) -> Self {
        Self {
            domain: domain.to_owned(),
            keys,
        }
    }

    /// The algorithms this domain signs with, in order.
    pub fn algorithms(&self) -> Vec<shared::dkim::Algorithm> {
        self.keys.iter().map(|(_, k)| k.algorithm()).collect()
    }

    /// `message` with a DKIM-Signature field per key in front, signed now.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sign_at(message, now)
    }

    /// As [`sign`](Self::sign), with `t=` given.
    pub fn sign_at(&self, message: &[u8], timestamp: u64) -> Result<Vec<u8>, DkimError> {
        let (fields, body) = canon::split_message(message);
        let bh = body_hash(body);
        let names = signed_names(&fields);
        let signed_fields = header_hash_input(&fields, &names);
        let mut out = Vec::with_capacity(message.len() + 700 * self.keys.len());
        for (selector, key) in &self.keys {
            let unsigned = signature_field(
                key.algorithm(),
                &self.domain,
                selector,
                timestamp,
                &names,
                &bh,
            );
            let mut data = signed_fields.clone();
            append_own_field(&unsigned, &mut data);
            let b = base64::engine::general_purpose::STANDARD.encode(key.sign(&data)?);
            out.extend_from_slice(append_b(unsigned, &b).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(message);
        Ok(out)
    }
}

/// `bh=`: the base64 SHA-256 of the relaxed body.
pub fn body_hash(body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    canon::relaxed_body(body, |piece| ctx.update(piece));
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

/// `h=`: each of [`SIGNED_HEADERS`] the message has, once per instance and once more.
fn signed_names(fields: &[Field<'_>]) -> Vec<&'static str> {
    let mut names = Vec::new();
    for name in SIGNED_HEADERS {
        let n = fields.iter().filter(|f| f.is(name)).count();
        if n > 0 {
            names.extend(std::iter::repeat_n(name, n + 1));
        }
    }
    names
}

/// The canonical fields `names` select (RFC 6376 section 5.4.2): each occurrence of a name
/// takes the last instance not taken yet, so repeated names go from the bottom up, and a name
/// with no instance left contributes nothing.
pub fn header_hash_input(fields: &[Field<'_>], names: &[&str]) -> Vec<u8> {
    let mut taken: Vec<(&str, usize)> = Vec::new();
    let mut out = Vec::with_capacity(1024);
    for &name in names {
        let skip = match taken.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, count)) => {
                *count += 1;
                *count - 1
            }
            None => {
                taken.push((name, 1));
                0
            }
        };
        if let Some(field) = fields.iter().rev().filter(|f| f.is(name)).nth(skip) {
            canon::relaxed_header(*field, &mut out);
        }
    }
    out
}

/// Appends the signature's own field, relaxed and without its final CRLF, to the data-hash
/// input (RFC 6376 section 3.7). `text` is the whole field with an empty `b=`, folded exactly
/// as it will be sent.
pub fn append_own_field(text: &str, data: &mut Vec<u8>) {
    let (fields, _) = canon::split_message(text.as_bytes());
    let field = fields.first().copied().unwrap_or(Field {
        name: b"DKIM-Signature",
        value: b"",
    });
    canon::relaxed_header(field, data);
    data.truncate(data.len() - 2);
}

/// The DKIM-Signature field up to and including `b=`, folded.
fn signature_field(
    algorithm: shared::dkim::Algorithm,
    domain: &str,
    selector: &str,
    timestamp: u64,
    names: &[&str],
    bh: &str,
) -> String {
    let mut f = Folder::new("DKIM-Signature:");
    f.word("v=1;");
    f.word(&format!("a={};", algorithm.signature_tag()));
    f.word("c=relaxed/relaxed;");
    f.word(&format!("d={domain};"));
    f.word(&format!("s={selector};"));
    f.word(&format!("t={timestamp};"));
    // h= may fold after any colon (RFC 6376 section 3.5: FWS around each ":").
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let piece = match (i, last) {
            (0, true) => format!("h={name};"),
            (0, false) => format!("h={name}:"),
            (_, true) => format!("{name};"),
            (_, false) => format!("{name}:"),
        };
        if i == 0 {
            f.word(&piece);
        } else {
            f.glued(&piece);
        }
    }
    f.word(&format!("bh={bh};"));
    f.word("b=");
    f.text
}

/// The field with the signature's base64 after `b=`, folded wherever the line is full (FWS
/// may stand anywhere in base64 values, and verifiers drop it with the value).
fn append_b(unsigned: String, b: &str) -> String {
    let mut f = Folder::resume(unsigned);
    let mut rest = b;
    while !rest.is_empty() {
        if f.column >= LINE {
            f.fold();
        }
        let (chunk, tail) = rest.split_at((LINE - f.column).min(rest.len()));
        f.text.push_str(chunk);
        f.column += chunk.len();
        rest = tail;
    }
    f.text
}

/// Builds a header field line by line, folding with CRLF TAB before a word that would not fit.
struct Folder {
    text: String,
    column: usize,
}

impl Folder {
    fn new(name: &str) -> Self {
        Self {
            text: name.to_owned(),
            column: name.len(),
        }
    }

    fn resume(text: String) -> Self {
        let column = text.rsplit("\r\n").next().map_or(0, str::len);
        Self { text, column }
    }

    fn fold(&mut self) {
        self.text.push_str("\r\n\t");
        // A tab counts as one column here; what matters is staying far below 998.
        self.column = 1;
    }

    /// A tag, after a space or at the start of a new line.
    fn word(&mut self, w: &str) {
        if self.column + 1 + w.len() > LINE {
            self.fold();
        } else {
            self.text.push(' ');
            self.column += 1;
        }
        self.text.push_str(w);
        self.column += w.len();
    }

    /// A piece that continues the previous one without a space unless the line is full.
    fn glued(&mut self, w: &str) {
        if self.column + w.len() > LINE {
            self.fold();
        }
        self.text.push_str(w);
        self.column += w.len();
    }
}
