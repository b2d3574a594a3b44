//! Search: `UID SEARCH CHARSET UTF-8 OR OR SUBJECT q FROM q BODY q` in one folder, newest first,
//! then one FETCH of the page's headers plus the first 4 KiB of each body, from which a snippet
//! around the first match is cut.

use async_imap::types::Fetch;
use chrono::{DateTime, Utc};
use mail_parser::MessageParser;
use serde::Serialize;

use super::args::{FolderName, SearchTerm};
use super::error::ImapError;
use super::session::MailSession;
use super::summary::{Address, addresses};

/// Characters of context on each side of the match.
const CONTEXT_BEFORE: usize = 40;
const SNIPPET_CHARS: usize = 160;

/// Header plus a partial body: enough to decode the start of the text part.
const HIT_ITEMS: &str = "(UID INTERNALDATE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.4096>)";

/// Which parts of a message a search looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub subject: bool,
    pub from: bool,
    pub body: bool,
}

impl Fields {
    pub const ALL: Fields = Fields {
        subject: true,
        from: true,
        body: true,
    };

    /// `subject,from,body` in any combination.
    pub fn parse(s: &str) -> Option<Fields> {
        let mut f = Fields {
            subject: false,
            from: false,
            body: false,
        };
        for part in s.split(',').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "subject" => f.subject = true,
                "from" => f.from = true,
                "body" => f.body = true,
                _ => return None,
            }
        }
        (f.subject || f.from || f.body).then_some(f)
    }
}

/// One message a search found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    #[schema(minimum = 1)]
    pub uid: u32,
    pub folder: String,
    #[schema(required = true)]
    pub from: Option<Address>,
    pub subject: String,
    #[schema(required = true, format = DateTime)]
    pub date: Option<String>,
    /// Up to 160 characters of the text around the first match, "..." where cut.
    #[schema(example = "...discuss the meeting agenda...")]
    pub snippet: String,
}

pub struct SearchResult {
    pub total: usize,
    pub hits: Vec<SearchHit>,
}

/// The SEARCH criteria; every term travels as a quoted string or a literal.
pub fn criteria(term: &SearchTerm, fields: Fields) -> String {
    let arg = term.arg();
    let mut keys: Vec<String> = Vec::new();
    if fields.subject {
        keys.push(format!("SUBJECT {arg}"));
    }
    if fields.from {
        keys.push(format!("FROM {arg}"));
    }
    if fields.body {
        keys.push(format!("BODY {arg}"));
    }
    // OR is binary: n keys need n-1 ORs in prefix position.
    let ors = "OR ".repeat(keys.len().saturating_sub(1));
    format!("CHARSET UTF-8 {ors}{}", keys.join(" "))
}

impl MailSession {
    pub async fn search(
        &mut self,
        folder: &FolderName,
        term: &SearchTerm,
        fields: Fields,
        offset: usize,
        limit: usize,
    ) -> Result<SearchResult, ImapError> {
        self.examine(folder).await?;
        let mut uids = self.uid_search(&criteria(term, fields)).await?;
        uids.reverse();
        let total = uids.len();
        let page: Vec<u32> = uids.into_iter().skip(offset).take(limit).collect();
        let fetched = self.summaries(&page, HIT_ITEMS).await?;
        let hits = fetched
            .iter()
            .filter_map(|f| hit(f, folder, term.as_str()))
            .collect();
        Ok(SearchResult { total, hits })
    }
}

fn hit(f: &Fetch, folder: &FolderName, query: &str) -> Option<SearchHit> {
    let uid = f.uid?;
    let mut raw = f.header().unwrap_or_default().to_vec();
    raw.extend_from_slice(f.text().unwrap_or_default());
    let parsed = MessageParser::new().parse(&raw);
    let (from, subject, date, text) = match &parsed {
        Some(m) => (
            m.from().and_then(|a| addresses(a).into_iter().next()),
            m.subject().unwrap_or_default().to_owned(),
            m.date()
                .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
            m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        ),
        None => (None, String::new(), None, String::new()),
    };
    let date = date.or_else(|| f.internal_date().map(|d| d.with_timezone(&Utc)));
    Some(SearchHit {
        uid,
        folder: folder.as_str().to_owned(),
        from,
        subject,
        date: date.as_ref().map(crate::time::format),
        snippet: snippet(&text, query),
    })
}

/// Up to `SNIPPET_CHARS` characters of `text` around the first case-insensitive match of
/// `query` (or from the start when the match was in a header), whitespace collapsed, with
/// "..." where text was cut.
pub fn snippet(text: &str, query: &str) -> String {
    let chars: Vec<char> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    let fold = |c: &char| c.to_lowercase().next().unwrap_or(*c);
    let hay: Vec<char> = chars.iter().map(fold).collect();
    let needle: Vec<char> = query
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| fold(&c))
        .collect();
    let at = if needle.is_empty() {
        None
    } else {
        hay.windows(needle.len())
            .position(|w| w == needle.as_slice())
    };
    let start = at.map_or(0, |i| i.saturating_sub(CONTEXT_BEFORE));
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push_str("...");
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_quote_every_term() {
        let t = SearchTerm::parse(r#"a" DELETE"#).unwrap();
        assert_eq!(
            criteria(&t, Fields::ALL),
            r#"CHARSET UTF-8 OR OR SUBJECT "a\" DELETE" FROM "a\" DELETE" BODY "a\" DELETE""#
        );
        let only = Fields::parse("subject").unwrap();
        assert_eq!(
            criteria(&SearchTerm::parse("ü").unwrap(), only),
            "CHARSET UTF-8 SUBJECT {2+}\r\nü"
        );
        assert_eq!(Fields::parse("subject,nope"), None);
    }

    #[test]
    fn snippets_centre_on_the_match() {
        let text = format!(
            "{} the Meeting agenda {}",
            "x ".repeat(100),
            "y ".repeat(100)
        );
        let s = snippet(&text, "meeting");
        assert!(s.starts_with("...") && s.ends_with("..."), "{s}");
        assert!(s.contains("the Meeting agenda"), "{s}");
        assert_eq!(snippet("short   text\n here", "zzz"), "short text here");
        assert_eq!(snippet("Grüße aus Köln", "KÖLN"), "Grüße aus Köln");
    }
}
