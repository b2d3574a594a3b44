//! `/mailbox/{email}/...`: folders, messages, attachments and search, read over IMAP (spec
//! sections 4-8), plus flag, move and delete for one message.
//!
//! Every handler decides access first (so a user token probing another mailbox learns nothing,
//! not even whether it exists), then checks the mailbox is ours, then validates the request,
//! and only then borrows a pooled session logged in as that mailbox.

mod responses;
pub mod write;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::access::require_mailbox_access;
use crate::auth::{Auth, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::imap::search::Fields;
use crate::imap::{FolderName, PooledSession, SearchTerm, disposition, message};
use crate::routes::common::{ErrorBody, Folder, Page, Text, patterns, text};
use crate::state::AppState;

pub use self::responses::{
    Deleted, Flags, FolderList, MessageBody, MessageList, Moved, SearchResult,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mailbox/{email}/folders", get(folders))
        .route("/mailbox/{email}/messages", get(list_messages))
        .route(
            "/mailbox/{email}/messages/{uid}",
            get(get_message).delete(write::delete_message),
        )
        .route(
            "/mailbox/{email}/messages/{uid}/attachment/{index}",
            get(download_attachment),
        )
        .route(
            "/mailbox/{email}/messages/{uid}/flags",
            post(write::set_flags),
        )
        .route(
            "/mailbox/{email}/messages/{uid}/move",
            post(write::move_message),
        )
        .route("/mailbox/{email}/search", get(search))
}

/// Access, then existence: in that order. Returns the address, lowercased as stored.
async fn authorize(state: &AppState, p: &Principal, email: &str) -> ApiResult<String> {
    let email = email.trim().to_lowercase();
    require_mailbox_access(&state.db, p, &email).await?;
    let active: Option<bool> = sqlx::query_scalar("select active from mailboxes where email = $1")
        .bind(&email)
        .fetch_optional(&state.db)
        .await?;
    // An inactive mailbox cannot log in to Dovecot either; to the API it is not there.
    if active != Some(true) {
        return Err(ApiError::MailboxNotFound);
    }
    Ok(email)
}

/// A pooled session logged in as `email`; taken only once the request is known to be valid.
async fn session(state: &AppState, email: &str) -> ApiResult<PooledSession> {
    Ok(state.imap.acquire(email).await?)
}

fn folder(name: Option<&str>) -> ApiResult<FolderName> {
    match name {
        None => Ok(FolderName::inbox()),
        Some(n) => FolderName::parse(n)
            .map_err(|e| ApiError::InvalidFolder(format!("Invalid folder name: {e}"))),
    }
}

/// The shared page rules, in the sizes IMAP sequence numbers take. An offset past any folder's
/// end stays past it.
fn page(page: &Page) -> ApiResult<(u32, u32)> {
    let (limit, offset) = page.resolve()?;
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    Ok((limit, u32::try_from(offset).unwrap_or(u32::MAX)))
}

/// UID 0 does not exist (and is a syntax error in a UID set).
fn uid(uid: u32) -> ApiResult<u32> {
    if uid == 0 {
        Err(ApiError::MessageNotFound)
    } else {
        Ok(uid)
    }
}

/// `GET /mailbox/{email}/folders`
#[utoipa::path(
    get,
    path = "/api/v1/mailbox/{email}/folders",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address")),
    responses((status = 200, description = "The mailbox's folders with their counts", body = FolderList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn folders(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(email): Path<String>,
) -> ApiResult<axum::Json<FolderList>> {
    let email = authorize(&state, &p, &email).await?;
    let folders = session(&state, &email).await?.folders().await?;
    Ok(axum::Json(FolderList {
        success: true,
        mailbox: email,
        folders,
    }))
}

/// `GET /mailbox/{email}/messages?folder=&limit=&offset=`
#[utoipa::path(
    get,
    path = "/api/v1/mailbox/{email}/messages",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address"), FolderQuery, Page),
    responses((status = 200, description = "A page of the folder, newest first", body = MessageList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn list_messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(email): Path<String>,
    Query(q): Query<FolderQuery>,
    Query(requested): Query<Page>,
) -> ApiResult<axum::Json<MessageList>> {
    let email = authorize(&state, &p, &email).await?;
    let folder = folder(q.folder.as_deref())?;
    let (limit, offset) = page(&requested)?;
    let page = session(&state, &email)
        .await?
        .list_page(&folder, offset, limit)
        .await?;
    Ok(axum::Json(MessageList {
        success: true,
        mailbox: email,
        folder: folder.as_str().to_owned(),
        total: page.total,
        limit,
        offset,
        messages: page.messages,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FolderQuery {
    /// Folder name, `/` between levels (default `INBOX`). One that does not exist is a 400
    /// `INVALID_FOLDER`, as the spec has it.
    #[param(value_type = Option<Folder>, inline)]
    folder: Option<String>,
}

/// `GET /mailbox/{email}/messages/{uid}?folder=`
#[utoipa::path(
    get,
    path = "/api/v1/mailbox/{email}/messages/{uid}",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address"), ("uid" = u32, Path, description = "IMAP UID"), FolderQuery),
    responses((status = 200, description = "The message: headers, bodies, attachments' metadata, flags", body = MessageBody), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn get_message(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((email, uid_param)): Path<(String, u32)>,
    Query(q): Query<FolderQuery>,
) -> ApiResult<axum::Json<MessageBody>> {
    let email = authorize(&state, &p, &email).await?;
    let folder = folder(q.folder.as_deref())?;
    let uid = uid(uid_param)?;
    // The session goes back to the pool before parsing: it is not needed for that.
    let raw = session(&state, &email)
        .await?
        .fetch_message(&folder, uid)
        .await?;
    Ok(axum::Json(MessageBody {
        success: true,
        message: message::detail(&raw, &folder),
    }))
}

/// `GET /mailbox/{email}/messages/{uid}/attachment/{index}?folder=`: the bytes as attached.
/// An index past the last attachment is 404 `NOT_FOUND` (the message exists; the part does not).
#[utoipa::path(
    get,
    path = "/api/v1/mailbox/{email}/messages/{uid}/attachment/{index}",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address"), ("uid" = u32, Path, description = "IMAP UID"), ("index" = usize, Path, description = "Attachment index (0-based)"), FolderQuery),
    responses((status = 200, description = "The attachment's bytes, with its Content-Type and a Content-Disposition", content_type = "application/octet-stream", body = Vec<u8>), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND, MESSAGE_NOT_FOUND or NOT_FOUND (no such attachment)", body = ErrorBody))
)]
async fn download_attachment(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((email, uid_param, index)): Path<(String, u32, usize)>,
    Query(q): Query<FolderQuery>,
) -> ApiResult<Response> {
    let email = authorize(&state, &p, &email).await?;
    let folder = folder(q.folder.as_deref())?;
    let uid = uid(uid_param)?;
    // The session goes back to the pool before parsing: it is not needed for that.
    let raw = session(&state, &email)
        .await?
        .fetch_message(&folder, uid)
        .await?;
    let not_found = || ApiError::NotFound(format!("Attachment {index} not found"));
    let parsed = raw.parse().ok_or_else(not_found)?;
    let att = message::take_attachment(parsed, index).ok_or_else(not_found)?;
    // Only the attachment's bytes stay in memory while the response is sent; they are moved
    // into the body, not copied.
    drop(raw);
    let content_type = match &att.charset {
        Some(cs) => format!("{}; charset={cs}", att.content_type),
        None => att.content_type.clone(),
    };
    let mut response = Body::from(att.bytes).into_response();
    let headers = response.headers_mut();
    let safe = |v: String| {
        HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    headers.insert(header::CONTENT_TYPE, safe(content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition::attachment(att.filename.as_deref()))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    // A browser must not render an attached HTML file as if it came from the API.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// Longest search text, in characters.
const MAX_QUERY_CHARS: usize = 512;

text!(
    SearchText,
    "2 to 512 characters, at least 2 of them not blank, no control characters.",
    Text {
        min: Some(2),
        max: Some(MAX_QUERY_CHARS),
        pattern: Some(patterns::SEARCH_TERM),
        ..Text::default()
    }
);
text!(
    SearchFields,
    "A comma-separated list of `subject`, `from` and `body`.",
    Text {
        pattern: Some(patterns::SEARCH_FIELDS),
        ..Text::default()
    }
);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// The text to find: 2 to 512 characters, at least 2 of them not blank, no control
    /// characters.
    #[param(required = true, value_type = SearchText, inline)]
    q: Option<String>,
    /// Beyond the spec: where to look, a comma-separated list of `subject`, `from` and `body`
    /// (default all three).
    #[serde(rename = "in")]
    #[param(value_type = Option<SearchFields>, inline)]
    fields: Option<String>,
}

/// `GET /mailbox/{email}/search?q=&folder=&limit=`
#[utoipa::path(
    get,
    path = "/api/v1/mailbox/{email}/search",
    tag = "mailbox",
    params(("email" = String, Path, format = Email, description = "Mailbox address"), SearchQuery, FolderQuery, Page),
    responses((status = 200, description = "A page of the messages that match, newest first", body = SearchResult), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn search(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(email): Path<String>,
    Query(q): Query<SearchQuery>,
    Query(in_folder): Query<FolderQuery>,
    Query(requested): Query<Page>,
) -> ApiResult<axum::Json<SearchResult>> {
    let email = authorize(&state, &p, &email).await?;
    let folder = folder(in_folder.folder.as_deref())?;
    let raw = q.q.as_deref().unwrap_or_default();
    // Measured before trimming, as the document's maxLength is.
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::validation("q", "must be at most 512 characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "q",
            "must not contain control characters",
        ));
    }
    let text = raw.trim();
    if text.chars().count() < 2 {
        return Err(ApiError::validation("q", "must be at least 2 characters"));
    }
    let term = SearchTerm::parse(text).map_err(|e| ApiError::validation("q", e.to_string()))?;
    let fields = match q.fields.as_deref() {
        None => Fields::ALL,
        Some(f) => Fields::parse(f)
            .ok_or_else(|| ApiError::validation("in", "a list of subject, from, body"))?,
    };
    let (limit, offset) = page(&requested)?;
    let result = session(&state, &email)
        .await?
        .search(&folder, &term, fields, offset as usize, limit as usize)
        .await?;
    Ok(axum::Json(SearchResult {
        success: true,
        query: term.as_str().to_owned(),
        folder: folder.as_str().to_owned(),
        total: result.total,
        messages: result.hits,
    }))
}
