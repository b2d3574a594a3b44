//! One authenticated IMAP connection for one mailbox, logged in with the Dovecot master user.
//!
//! Every command runs under a timeout. The connection is marked broken *before* a command is
//! written and healthy again only when its tagged reply was read, so a timeout, a transport
//! error or a request cancelled halfway leaves it broken and the pool drops it instead of
//! handing a half-read stream to the next request.
//!
//! A session remembers the folder it has open read-only and its message count. Reads of the same
//! folder then sync with NOOP (one cheap round trip) instead of EXAMINE, which on a big Maildir
//! folder costs far more: Dovecot re-reads the folder's uidlist (2.5 MB for 50,000 messages)
//! before the next message body can be opened. The count is kept current from the EXISTS and
//! EXPUNGE responses the server sends, as RFC 3501 §7 intends; when that bookkeeping could be
//! incomplete (a dropped unsolicited response, a raw command, a write) the folder is re-opened.

use std::time::Duration;

use async_imap::types::{Fetch, Mailbox, UnsolicitedResponse};
use futures::{FutureExt, TryStreamExt};
use secrecy::ExposeSecret;
use shared::config::ImapSettings;
use tokio::net::TcpStream;

use super::args::FolderName;
use super::error::ImapError;

pub type RawSession = async_imap::Session<TcpStream>;

/// Runs one IMAP call under the session's timeout and classifies its outcome.
macro_rules! imap_call {
    ($s:ident, $what:expr, $fut:expr) => {{
        $s.broken = true;
        let r = tokio::time::timeout($s.timeout, $fut).await;
        $s.settle($what, r)
    }};
}

pub struct MailSession {
    pub(crate) inner: RawSession,
    pub(crate) broken: bool,
    pub(crate) timeout: Duration,
    selected: Option<Selected>,
}

/// The folder open on this connection.
#[derive(Debug)]
struct Selected {
    folder: String,
    writable: bool,
    exists: u32,
}

impl MailSession {
    /// Connects, reads the greeting and logs in as `mailbox` through the master user.
    pub async fn connect(
        settings: &ImapSettings,
        mailbox: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self, ImapError> {
        let password = settings
            .master_password
            .as_ref()
            .ok_or_else(|| ImapError::Connect("MAILAPI_IMAP_MASTER_PASSWORD is not set".into()))?;
        let login = async {
            let tcp = TcpStream::connect((settings.host.as_str(), settings.port))
                .await
                .map_err(|e| ImapError::Connect(format!("connect: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let mut client = async_imap::Client::new(tcp);
            match client.read_response().await {
                Ok(Some(_greeting)) => {}
                Ok(None) => return Err(ImapError::Connect("closed before greeting".into())),
                Err(e) => return Err(ImapError::Connect(format!("greeting: {e}"))),
            }
            // `user*master` (Dovecot's master user separator); async-imap sends it quoted,
            // which it must be: `*` is not an atom character.
            let user = format!("{mailbox}*{}", settings.master_user);
            client
                .login(user, password.expose_secret())
                .await
                .map_err(|(e, _)| ImapError::Connect(format!("login as {mailbox}: {e}")))
        };
        let inner = tokio::time::timeout(connect_timeout, login)
            .await
            .map_err(|_| ImapError::Timeout("connect/login"))??;
        Ok(MailSession {
            inner,
            broken: false,
            timeout: command_timeout,
            selected: None,
        })
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Turns a timed call's result into ours, keeping the connection only when the server
    /// finished answering.
    pub(crate) fn settle<T>(
        &mut self,
        what: &'static str,
        r: Result<async_imap::error::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, ImapError> {
        match r {
            Err(_) => Err(ImapError::Timeout(what)),
            Ok(Ok(v)) => {
                self.broken = false;
                Ok(v)
            }
            Ok(Err(async_imap::error::Error::No(detail)))
            | Ok(Err(async_imap::error::Error::Bad(detail))) => {
                self.broken = false;
                Err(ImapError::Refused { what, detail })
            }
            Ok(Err(source)) => Err(ImapError::Protocol { what, source }),
        }
    }

    /// Whether the server has closed the idle connection (EOF) or spoken unasked (`* BYE` after
    /// `doveadm kick`, a shutdown or its idle timeout): between commands an IMAP server says
    /// nothing, so any readable byte means the connection is finished. Costs no round trip.
    pub fn looks_closed(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let stream = self.inner.get_mut();
        stream.peek(&mut probe).now_or_never().is_some()
    }

    /// Checks that an idle connection still answers.
    pub async fn ping(&mut self) -> Result<(), ImapError> {
        imap_call!(self, "NOOP", self.inner.noop())?;
        self.absorb_unsolicited();
        Ok(())
    }

    /// Opens `folder` read-only (reads never change flags or `\Recent`) and returns its EXISTS.
    /// When it is already open read-only here, NOOP brings the count up to date instead.
    pub async fn examine(&mut self, folder: &FolderName) -> Result<u32, ImapError> {
        let open_here = self
            .selected
            .as_ref()
            .is_some_and(|s| !s.writable && s.folder == folder.as_str());
        if open_here {
            self.ping().await?;
            if let Some(s) = &self.selected {
                return Ok(s.exists);
            }
        }
        self.open(folder, false).await.map(|m| m.exists)
    }

    /// Opens `folder` read-write, for flag changes and moves.
    pub async fn select(&mut self, folder: &FolderName) -> Result<u32, ImapError> {
        self.open(folder, true).await.map(|m| m.exists)
    }

    async fn open(&mut self, folder: &FolderName, writable: bool) -> Result<Mailbox, ImapError> {
        // A failed SELECT/EXAMINE leaves no folder open (RFC 3501 §6.3.1).
        self.selected = None;
        // async-imap quotes the name itself (escaping `\\` and `"`, refusing CR/LF).
        let name = folder.encoded();
        let r = if writable {
            imap_call!(self, "SELECT", self.inner.select(name))
        } else {
            imap_call!(self, "EXAMINE", self.inner.examine(name))
        };
        let mailbox = match r {
            Err(ImapError::Refused { what, detail }) => {
                // Dovecot says why (`[NONEXISTENT]`, `[CANNOT]` for a name that cannot be a
                // folder), but the parser under async-imap drops those codes. So ask LIST, a
                // structured answer, instead of reading the words after them.
                return Err(if self.is_listed(folder).await? {
                    ImapError::Refused { what, detail }
                } else {
                    ImapError::NoSuchFolder(folder.as_str().to_owned())
                });
            }
            other => other?,
        };
        self.selected = Some(Selected {
            folder: folder.as_str().to_owned(),
            writable,
            exists: mailbox.exists,
        });
        self.absorb_unsolicited();
        Ok(mailbox)
    }

    /// Whether `LIST "" <folder>` names exactly this folder (a `*` or `%` in it is a wildcard,
    /// so only an exact match counts). A name the server refuses to list is no folder. The
    /// pattern goes out quoted by us: async-imap sends it as it is given, so an unquoted `{5}`
    /// would be read as a literal and leave the server waiting for five bytes.
    async fn is_listed(&mut self, folder: &FolderName) -> Result<bool, ImapError> {
        let (pattern, name) = (folder.quoted(), folder.encoded());
        let listed = imap_call!(self, "LIST", async {
            let names = self.inner.list(Some(""), Some(pattern)).await?;
            names.try_collect::<Vec<_>>().await
        });
        self.absorb_unsolicited();
        match listed {
            Ok(names) => Ok(names.iter().any(|n| n.name() == name)),
            // A name LIST refuses (`..`, `/x`) is no folder either.
            Err(ImapError::Refused { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `FETCH`/`UID FETCH` of `set` with `items`, collected.
    pub async fn fetch(
        &mut self,
        by_uid: bool,
        set: &str,
        items: &str,
    ) -> Result<Vec<Fetch>, ImapError> {
        let inner = &mut self.inner;
        let fetches = imap_call!(self, "FETCH", async {
            if by_uid {
                inner.uid_fetch(set, items).await?.try_collect().await
            } else {
                inner.fetch(set, items).await?.try_collect().await
            }
        })?;
        self.absorb_unsolicited();
        Ok(fetches)
    }

    /// `UID SEARCH` with already-rendered criteria; the UIDs, ascending.
    ///
    /// Read here rather than with async-imap's `uid_search`, which ignores the tagged status
    /// and so turns a BAD or NO into "no matches".
    pub async fn uid_search(&mut self, criteria: &str) -> Result<Vec<u32>, ImapError> {
        let command = format!("UID SEARCH {criteria}");
        let inner = &mut self.inner;
        let (mut uids, count_changed) = imap_call!(self, "SEARCH", async {
            let id = inner.run_command(&command).await?;
            read_search(inner, id).await
        })?;
        if count_changed {
            self.selected = None;
        }
        self.absorb_unsolicited();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// A command whose only interesting answer is its tagged OK.
    pub async fn simple(&mut self, what: &'static str, command: &str) -> Result<(), ImapError> {
        self.absorb_unsolicited();
        // Writes and STATUS are rare: re-open the folder afterwards rather than track them.
        self.selected = None;
        imap_call!(self, what, self.inner.run_command_and_check_ok(command))?;
        self.absorb_unsolicited();
        Ok(())
    }

    /// Like [`simple`](Self::simple), returning the untagged replies that came with it (e.g.
    /// `OK [COPYUID ...]` for MOVE).
    pub async fn simple_collect(
        &mut self,
        what: &'static str,
        command: &str,
    ) -> Result<Vec<UnsolicitedResponse>, ImapError> {
        self.absorb_unsolicited();
        self.selected = None;
        imap_call!(self, what, self.inner.run_command_and_check_ok(command))?;
        let mut out = Vec::new();
        while let Ok(r) = self.inner.unsolicited_responses.try_recv() {
            out.push(r);
        }
        Ok(out)
    }

    /// Applies the EXISTS and EXPUNGE responses collected so far to the open folder's count
    /// and drops the rest (flag updates). async-imap's channel holds 100 and drops what does
    /// not fit: a full channel means the count may be wrong, so the folder is re-opened next.
    pub fn absorb_unsolicited(&mut self) {
        let rx = &self.inner.unsolicited_responses;
        let overflowed = rx.capacity().is_some_and(|c| rx.len() >= c);
        while let Ok(r) = self.inner.unsolicited_responses.try_recv() {
            if let Some(sel) = &mut self.selected {
                match r {
                    UnsolicitedResponse::Exists(n) => sel.exists = n,
                    UnsolicitedResponse::Expunge(_) => sel.exists = sel.exists.saturating_sub(1),
                    _ => {}
                }
            }
        }
        if overflowed {
            self.selected = None;
        }
    }

    /// Forgets the open folder (after commands whose untagged replies we did not track).
    pub(crate) fn forget_selection(&mut self) {
        self.selected = None;
    }
}

/// Collects `* SEARCH` numbers up to the tagged reply, and fails unless that reply is OK. The
/// flag is set when an EXISTS or EXPUNGE came along, which the caller's count must not miss.
async fn read_search(
    session: &mut RawSession,
    id: async_imap::imap_proto::RequestId,
) -> async_imap::error::Result<(Vec<u32>, bool)> {
    use async_imap::error::Error;
    use async_imap::imap_proto::{MailboxDatum, Response, Status};
    let mut uids = Vec::new();
    let mut count_changed = false;
    loop {
        let Some(resp) = session.read_response().await? else {
            return Err(Error::ConnectionLost);
        };
        match resp.parsed() {
            Response::Done {
                tag,
                status,
                outcome,
            } if *tag == id => {
                let info = outcome
                    .information
                    .as_deref()
                    .unwrap_or_default()
                    .to_owned();
                return match status {
                    Status::Ok => Ok((uids, count_changed)),
                    Status::No => Err(Error::No(info)),
                    _ => Err(Error::Bad(info)),
                };
            }
            Response::MailboxData(MailboxDatum::Search(found)) => uids.extend_from_slice(found),
            Response::MailboxData(MailboxDatum::Exists(_)) | Response::Expunge(_) => {
                count_changed = true;
            }
            _ => {}
        }
    }
}
