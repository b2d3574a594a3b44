//! Changes to one message: flags (`\Seen`, `\Flagged`), move to another folder, delete (move to
//! Trash; from Trash itself, expunge). Each opens the folder read-write with SELECT and checks
//! the UID exists first, because UID STORE/MOVE on a missing UID succeed silently.

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Outcome, ResponseCode};
use async_imap::types::UnsolicitedResponse;

use super::args::FolderName;
use super::error::ImapError;
use super::session::MailSession;
use super::summary::flags;

/// A flag a client may set or clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserFlag {
    Seen,
    Flagged,
}

impl UserFlag {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim_start_matches('\\');
        if s.eq_ignore_ascii_case("seen") {
            Some(UserFlag::Seen)
        } else if s.eq_ignore_ascii_case("flagged") {
            Some(UserFlag::Flagged)
        } else {
            None
        }
    }

    fn imap(self) -> &'static str {
        match self {
            UserFlag::Seen => "\\Seen",
            UserFlag::Flagged => "\\Flagged",
        }
    }
}

/// Where a message went.
pub struct Moved {
    pub folder: String,
    /// From COPYUID (UIDPLUS) when the server reports it.
    pub uid: Option<u32>,
}

impl MailSession {
    async fn select_existing(&mut self, folder: &FolderName, uid: u32) -> Result<(), ImapError> {
        self.select(folder).await?;
        let found = self.fetch(true, &uid.to_string(), "(UID)").await?;
        if found.iter().any(|f| f.uid == Some(uid)) {
            Ok(())
        } else {
            Err(ImapError::NoSuchMessage)
        }
    }

    /// Adds and removes flags; returns the flags afterwards.
    pub async fn set_flags(
        &mut self,
        folder: &FolderName,
        uid: u32,
        add: &[UserFlag],
        remove: &[UserFlag],
    ) -> Result<Vec<String>, ImapError> {
        self.select_existing(folder, uid).await?;
        for (sign, list) in [('+', add), ('-', remove)] {
            if list.is_empty() {
                continue;
            }
            let names: Vec<&str> = list.iter().map(|f| f.imap()).collect();
            let command = format!("UID STORE {uid} {sign}FLAGS.SILENT ({})", names.join(" "));
            self.simple("STORE", &command).await?;
        }
        let after = self.fetch(true, &uid.to_string(), "(UID FLAGS)").await?;
        after
            .iter()
            .find(|f| f.uid == Some(uid))
            .map(flags)
            .ok_or(ImapError::NoSuchMessage)
    }

    /// UID MOVE to `to`, which must exist.
    pub async fn move_message(
        &mut self,
        folder: &FolderName,
        uid: u32,
        to: &FolderName,
    ) -> Result<Moved, ImapError> {
        // STATUS on the target first: MOVE to a missing folder is a NO [TRYCREATE] whose code
        // async-imap folds into text; asking first gives a clean INVALID_FOLDER.
        self.require_folder(to).await?;
        self.select_existing(folder, uid).await?;
        let replies = self
            .simple_collect("MOVE", &format!("UID MOVE {uid} {}", to.quoted()))
            .await?;
        Ok(Moved {
            folder: to.as_str().to_owned(),
            uid: replies.iter().find_map(copied_uid),
        })
    }

    /// Moves to Trash; a message already in Trash is removed for good.
    pub async fn delete_message(
        &mut self,
        folder: &FolderName,
        uid: u32,
    ) -> Result<Option<Moved>, ImapError> {
        let trash = self.trash_folder().await?;
        if trash.as_str() != folder.as_str() {
            return self.move_message(folder, uid, &trash).await.map(Some);
        }
        self.select_existing(folder, uid).await?;
        self.simple(
            "STORE",
            &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
        )
        .await?;
        // UID EXPUNGE (UIDPLUS) removes only this message, not others marked \Deleted.
        self.simple("EXPUNGE", &format!("UID EXPUNGE {uid}"))
            .await?;
        Ok(None)
    }

    /// `NoSuchFolder` unless `folder` exists.
    pub async fn require_folder(&mut self, folder: &FolderName) -> Result<(), ImapError> {
        let command = format!("STATUS {} (MESSAGES)", folder.quoted());
        match self.simple("STATUS", &command).await {
            Err(ImapError::Refused { .. }) => Err(ImapError::NoSuchFolder(folder.as_str().into())),
            other => other,
        }
    }
}

/// The destination UID from `OK [COPYUID validity src dst]`.
fn copied_uid(r: &UnsolicitedResponse) -> Option<u32> {
    let UnsolicitedResponse::Other(data) = r else {
        return None;
    };
    match data.parsed() {
        async_imap::imap_proto::Response::Data {
            outcome:
                Outcome {
                    code: Some(ResponseCode::CopyUid(_, _, dst)),
                    ..
                },
            ..
        } => match dst.first()? {
            UidSetMember::Uid(u) => Some(*u),
            UidSetMember::UidRange(r) => Some(*r.start()),
        },
        _ => None,
    }
}
