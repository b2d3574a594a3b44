//! The changes to one message: its flags, moving it to another folder, deleting it (to Trash,
//! or for good from Trash). Access and validation as for the reads (`super`).

use axum::extract::State;
use serde::Deserialize;

use super::responses::{Deleted, Flags, Moved};
use super::{FolderQuery, authorize, folder, session, uid};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::imap::actions::UserFlag;
use crate::routes::common::{ErrorBody, Folder, Text, text};
use crate::state::AppState;

text!(
    FlagName,
    "`\\Seen` or `\\Flagged` (any case; the backslash may be left out).",
    Text {
        pattern: Some(r"^\\*([Ss][Ee][Ee][Nn]|[Ff][Ll][Aa][Gg][Gg][Ee][Dd])$"),
        ..Text::default()
    }
);

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagsRequest {
    /// Flags to set.
    #[serde(default)]
    #[schema(value_type = Vec<FlagName>)]
    add: Vec<String>,
    /// Flags to clear.
    #[serde(default)]
    #[schema(value_type = Vec<FlagName>)]
    remove: Vec<String>,
}

fn user_flags(field: &str, names: &[String]) -> ApiResult<Vec<UserFlag>> {
    names
        .iter()
        .map(|n| {
            UserFlag::parse(n).ok_or_else(|| {
                ApiError::validation(field, format!("unsupported flag {n:?} (\\Seen, \\Flagged)"))
            })
        })
        .collect()
}

/// `POST /mailbox/{email}/messages/{uid}/flags?folder=` `{"add": ["\\Seen"], "remove": [...]}`
#[utoipa::path(
    post,
    path = "/api/v1/mailbox/{email}/messages/{uid}/flags",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address"), ("uid" = u32, Path, description = "IMAP UID"), FolderQuery),
    request_body = FlagsRequest,
    responses((status = 200, description = "The message's flags after the change", body = Flags), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or MESSAGE_NOT_FOUND", body = ErrorBody))
)]
pub async fn set_flags(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((email, uid_param)): Path<(String, u32)>,
    Query(q): Query<FolderQuery>,
    Json(req): Json<FlagsRequest>,
) -> ApiResult<axum::Json<Flags>> {
    let add = user_flags("add", &req.add)?;
    let remove = user_flags("remove", &req.remove)?;
    let email = authorize(&state, &p, &email).await?;
    let folder = folder(q.folder.as_deref())?;
    let uid = uid(uid_param)?;
    let mut s = session(&state, &email).await?;
    let flags = s.set_flags(&folder, uid, &add, &remove).await?;
    Ok(axum::Json(Flags {
        success: true,
        uid,
        folder: folder.as_str().to_owned(),
        flags,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// An existing folder (one that does not exist is a 400 `INVALID_FOLDER`).
    #[schema(value_type = Folder)]
    to_folder: String,
}

/// `POST /mailbox/{email}/messages/{uid}/move?folder=` `{"to_folder": "Archive"}`
#[utoipa::path(
    post,
    path = "/api/v1/mailbox/{email}/messages/{uid}/move",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address"), ("uid" = u32, Path, description = "IMAP UID"), FolderQuery),
    request_body = MoveRequest,
    responses((status = 200, description = "Moved: the message's new place", body = Moved), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or MESSAGE_NOT_FOUND", body = ErrorBody))
)]
pub async fn move_message(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((email, uid_param)): Path<(String, u32)>,
    Query(q): Query<FolderQuery>,
    Json(req): Json<MoveRequest>,
) -> ApiResult<axum::Json<Moved>> {
    let email = authorize(&state, &p, &email).await?;
    let from = folder(q.folder.as_deref())?;
    let to = folder(Some(&req.to_folder))?;
    let uid = uid(uid_param)?;
    let moved = session(&state, &email)
        .await?
        .move_message(&from, uid, &to)
        .await?;
    Ok(axum::Json(Moved {
        success: true,
        uid,
        folder: from.as_str().to_owned(),
        to_folder: moved.folder,
        new_uid: moved.uid,
    }))
}

/// `DELETE /mailbox/{email}/messages/{uid}?folder=`: to Trash, or for good from Trash.
#[utoipa::path(
    delete,
    path = "/api/v1/mailbox/{email}/messages/{uid}",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address"), ("uid" = u32, Path, description = "IMAP UID"), FolderQuery),
    responses((status = 200, description = "Moved to Trash, or deleted for good from Trash", body = Deleted), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or MESSAGE_NOT_FOUND", body = ErrorBody))
)]
pub async fn delete_message(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((email, uid_param)): Path<(String, u32)>,
    Query(q): Query<FolderQuery>,
) -> ApiResult<axum::Json<Deleted>> {
    let email = authorize(&state, &p, &email).await?;
    let folder = folder(q.folder.as_deref())?;
    let uid = uid(uid_param)?;
    let moved = session(&state, &email)
        .await?
        .delete_message(&folder, uid)
        .await?;
    Ok(axum::Json(Deleted {
        success: true,
        uid,
        folder: folder.as_str().to_owned(),
        deleted: moved.is_none(),
        to_folder: moved.as_ref().map(|m| m.folder.clone()),
        new_uid: moved.and_then(|m| m.uid),
    }))
}
