//! Folder listing with counts and sizes in one round trip: `LIST "" "*" RETURN (STATUS
//! (MESSAGES UNSEEN SIZE))` (LIST-STATUS, RFC 5819, with STATUS=SIZE, RFC 8438; Dovecot 2.3
//! announces both). Dovecot answers SIZE from its index (the mailbox's cached virtual size), so
//! this stays fast on big folders; no per-message FETCH is needed.

use serde::Serialize;

use super::args::FolderName;
use super::error::ImapError;
use super::raw::{self, Token};
use super::session::MailSession;

/// A folder with its counts: messages, unread messages and bytes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FolderInfo {
    #[schema(example = "INBOX")]
    pub name: String,
    pub messages: u64,
    pub unread: u64,
    /// Bytes.
    pub size: u64,
    /// `\Sent`, `\Trash`, ... (RFC 6154), when the server marks the folder.
    #[serde(skip)]
    pub special_use: Option<String>,
}

impl MailSession {
    /// Every selectable folder, in the server's order.
    pub async fn folders(&mut self) -> Result<Vec<FolderInfo>, ImapError> {
        let reply = self
            .raw(
                "LIST",
                r#"LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))"#,
            )
            .await?;
        let mut out: Vec<FolderInfo> = Vec::new();
        for line in &reply {
            let Some(tokens) = raw::tokenize(line) else {
                return Err(ImapError::Unexpected("LIST"));
            };
            match tokens.as_slice() {
                [Token::Atom(kw), Token::List(attrs), _delim, name]
                    if kw.eq_ignore_ascii_case("LIST") =>
                {
                    let attrs: Vec<String> = attrs.iter().filter_map(Token::text).collect();
                    if attrs.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect")) {
                        continue;
                    }
                    let Some(name) = name.text() else { continue };
                    let special_use = attrs
                        .into_iter()
                        .find(|a| SPECIAL_USE.iter().any(|s| s.eq_ignore_ascii_case(a)));
                    out.push(FolderInfo {
                        name: FolderName::from_server(&name),
                        messages: 0,
                        unread: 0,
                        size: 0,
                        special_use,
                    });
                }
                [Token::Atom(kw), name, Token::List(items)]
                    if kw.eq_ignore_ascii_case("STATUS") =>
                {
                    let Some(name) = name.text().map(|n| FolderName::from_server(&n)) else {
                        continue;
                    };
                    if let Some(f) = out.iter_mut().find(|f| f.name == name) {
                        apply_status(f, items);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The folder the server marks `\Trash`, or one named `Trash`.
    pub async fn trash_folder(&mut self) -> Result<FolderName, ImapError> {
        let folders = self.folders().await?;
        let name = folders
            .iter()
            .find(|f| f.special_use.as_deref() == Some("\\Trash"))
            .or_else(|| {
                folders
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case("Trash"))
            })
            .map(|f| f.name.clone())
            .ok_or_else(|| ImapError::NoSuchFolder("Trash".into()))?;
        FolderName::parse(&name).map_err(|_| ImapError::Unexpected("LIST"))
    }

    /// Runs `command` on the socket directly (see [`raw`]); untagged lines on OK.
    async fn raw(&mut self, what: &'static str, command: &str) -> Result<Vec<Vec<u8>>, ImapError> {
        // The raw reader does not report EXISTS/EXPUNGE for the open folder to the session.
        self.absorb_unsolicited();
        self.forget_selection();
        self.broken = true;
        let stream = self.inner.get_mut();
        let reply = tokio::time::timeout(self.timeout, raw::command(stream, "R1", command))
            .await
            .map_err(|_| ImapError::Timeout(what))?
            .map_err(|e| ImapError::Protocol {
                what,
                source: e.into(),
            })?;
        self.broken = false;
        if reply.ok {
            Ok(reply.untagged)
        } else {
            Err(ImapError::Refused {
                what,
                detail: reply.text,
            })
        }
    }
}

const SPECIAL_USE: [&str; 6] = [
    "\\Sent",
    "\\Trash",
    "\\Drafts",
    "\\Junk",
    "\\Archive",
    "\\All",
];

fn apply_status(f: &mut FolderInfo, items: &[Token]) {
    for pair in items.chunks(2) {
        let [Token::Atom(key), Token::Atom(value)] = pair else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match key.to_ascii_uppercase().as_str() {
            "MESSAGES" => f.messages = value,
            "UNSEEN" => f.unread = value,
            "SIZE" => f.size = value,
            _ => {}
        }
    }
}
