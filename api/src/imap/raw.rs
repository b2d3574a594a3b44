//! A raw command on the session's socket, for replies async-imap's parser rejects: its STATUS
//! grammar (imap-proto 0.17) has no `SIZE` item (RFC 8438), and an unparseable line would break
//! the connection. Safe because the server only speaks when asked: between commands async-imap
//! holds no buffered bytes, and this reader consumes exactly up to our tagged line.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reply larger than this is refused: LIST-STATUS for even thousands of folders is far smaller.
const MAX_REPLY_BYTES: usize = 8 << 20;

#[derive(Debug)]
pub struct RawReply {
    /// Each untagged line without `* ` and CRLF; literals stay inline as `{n}\r\n<n bytes>`.
    pub untagged: Vec<Vec<u8>>,
    pub ok: bool,
    pub text: String,
}

/// Sends `tag command` and reads until the line tagged `tag`.
pub async fn command(
    stream: &mut TcpStream,
    tag: &str,
    command: &str,
) -> std::io::Result<RawReply> {
    stream
        .write_all(format!("{tag} {command}\r\n").as_bytes())
        .await?;
    stream.flush().await?;
    let mut reader = BufReader::new(stream);
    let mut untagged = Vec::new();
    let mut total = 0usize;
    loop {
        let line = read_response_line(&mut reader, &mut total).await?;
        if let Some(rest) = line.strip_prefix(b"* ") {
            untagged.push(rest.to_vec());
            continue;
        }
        if let Some(rest) = line
            .strip_prefix(tag.as_bytes())
            .and_then(|r| r.strip_prefix(b" "))
        {
            if !reader.buffer().is_empty() {
                return Err(std::io::Error::other("data after tagged reply"));
            }
            let text = String::from_utf8_lossy(rest).into_owned();
            return Ok(RawReply {
                ok: text.starts_with("OK"),
                untagged,
                text,
            });
        }
        // `+` continuations or other tags cannot happen for the commands we send raw.
        return Err(std::io::Error::other("unexpected line in raw reply"));
    }
}

/// One response line, with any literals it announces read inline. The trailing CRLF is removed.
async fn read_response_line(
    reader: &mut BufReader<&mut TcpStream>,
    total: &mut usize,
) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let start = line.len();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        *total += n;
        if *total > MAX_REPLY_BYTES {
            return Err(std::io::Error::other("raw reply too large"));
        }
        let chunk = &line[start..];
        match literal_length(chunk) {
            Some(len) if *total + len <= MAX_REPLY_BYTES => {
                let at = line.len();
                line.resize(at + len, 0);
                reader.read_exact(&mut line[at..]).await?;
                *total += len;
            }
            Some(_) => return Err(std::io::Error::other("raw reply too large")),
            None => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }
}

/// `n` when a line segment ends with `{n}\r\n`.
fn literal_length(chunk: &[u8]) -> Option<usize> {
    let body = chunk.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|b| *b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

/// A parsed IMAP value from an untagged line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Token>),
}

impl Token {
    /// The token as text (atoms and strings).
    pub fn text(&self) -> Option<String> {
        match self {
            Token::Atom(a) => Some(a.clone()),
            Token::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            Token::List(_) => None,
        }
    }
}

/// Splits a line into tokens: atoms, quoted strings, literals and parenthesised lists.
pub fn tokenize(line: &[u8]) -> Option<Vec<Token>> {
    let mut pos = 0;
    let tokens = parse_seq(line, &mut pos, false)?;
    (pos == line.len()).then_some(tokens)
}

fn parse_seq(s: &[u8], pos: &mut usize, in_list: bool) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    loop {
        while s.get(*pos) == Some(&b' ') {
            *pos += 1;
        }
        match s.get(*pos) {
            None if !in_list => return Some(out),
            None => return None,
            Some(b')') if in_list => {
                *pos += 1;
                return Some(out);
            }
            Some(b'(') => {
                *pos += 1;
                out.push(Token::List(parse_seq(s, pos, true)?));
            }
            Some(b'"') => out.push(Token::Str(parse_quoted(s, pos)?)),
            Some(b'{') => out.push(Token::Str(parse_literal(s, pos)?)),
            Some(_) => {
                let start = *pos;
                while s
                    .get(*pos)
                    .is_some_and(|b| !matches!(b, b' ' | b'(' | b')' | b'"'))
                {
                    *pos += 1;
                }
                out.push(Token::Atom(
                    String::from_utf8_lossy(&s[start..*pos]).into_owned(),
                ));
            }
        }
    }
}

fn parse_quoted(s: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    *pos += 1;
    let mut out = Vec::new();
    loop {
        match *s.get(*pos)? {
            b'"' => {
                *pos += 1;
                return Some(out);
            }
            b'\\' => {
                out.push(*s.get(*pos + 1)?);
                *pos += 2;
            }
            b => {
                out.push(b);
                *pos += 1;
            }
        }
    }
}

fn parse_literal(s: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let close = *pos + s[*pos..].iter().position(|b| *b == b'}')?;
    let len: usize = std::str::from_utf8(&s[*pos + 1..close])
        .ok()?
        .parse()
        .ok()?;
    let start = close + 3; // `}\r\n`
    let data = s.get(start..start + len)?.to_vec();
    *pos = start + len;
    Some(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_list_and_status_lines() {
        let t = tokenize(br#"LIST (\HasNoChildren \Junk) "/" Spam"#).unwrap();
        assert_eq!(
            t,
            vec![
                Token::Atom("LIST".into()),
                Token::List(vec![
                    Token::Atom("\\HasNoChildren".into()),
                    Token::Atom("\\Junk".into())
                ]),
                Token::Str(b"/".to_vec()),
                Token::Atom("Spam".into()),
            ]
        );
        let t = tokenize(b"STATUS {5}\r\na b\"c (MESSAGES 2 SIZE 10)").unwrap();
        assert_eq!(t[1], Token::Str(b"a b\"c".to_vec()));
        assert!(matches!(&t[2], Token::List(l) if l.len() == 4));
        assert_eq!(
            tokenize(br#"STATUS "a\"b" ()"#).unwrap()[1],
            Token::Str(b"a\"b".to_vec())
        );
        assert_eq!(tokenize(b"LIST (unclosed"), None);
        assert_eq!(tokenize(b"STATUS {99}\r\nshort"), None);
    }

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_length(b"* STATUS {12}\r\n"), Some(12));
        assert_eq!(literal_length(b"* STATUS x\r\n"), None);
    }
}
