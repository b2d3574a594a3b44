//! `/domains/{domain}/users`: mailboxes of a domain, for admins and holders of `manage_users`
//! on it. Passwords are stored as `{SHA512-CRYPT}` hashes, which Dovecot verifies directly, so a
//! created or changed password works for IMAP at once.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{DomainRef, Permission, require_domain};
use crate::auth::{Auth, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::common::input::{Password, address_in_domain, display_name, insert_mailbox};
use crate::routes::common::parse_domain;
use crate::routes::common::{DisplayName, Domain, ErrorBody, NewPassword, Page};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/domains/{domain}/users", get(list).post(create))
        .route(
            "/domains/{domain}/users/{email}",
            patch(update).delete(remove),
        )
}

/// A mailbox of the domain.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    #[schema(format = Email)]
    email: String,
    #[schema(required = true)]
    name: Option<String>,
    active: bool,
    #[serde(with = "crate::time")]
    created_at: DateTime<Utc>,
    #[serde(with = "crate::time")]
    updated_at: DateTime<Utc>,
}

macro_rules! user_columns {
    () => {
        "email, name, active, created_at, updated_at"
    };
}

async fn fetch_user(conn: impl sqlx::PgExecutor<'_>, id: i64) -> ApiResult<User> {
    Ok(sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from mailboxes where id = $1"
    ))
    .bind(id)
    .fetch_one(conn)
    .await?)
}

async fn domain_for(state: &AppState, p: &Principal, raw: &str) -> ApiResult<DomainRef> {
    let domain = parse_domain(raw)?;
    require_domain(&state.db, p, Permission::ManageUsers, domain.as_str()).await
}

#[derive(Serialize, ToSchema)]
pub struct UserBody {
    success: bool,
    domain: String,
    user: User,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    success: bool,
    domain: String,
    /// Every mailbox of the domain, not only this page's.
    total: i64,
    users: Vec<User>,
}

#[derive(Serialize, ToSchema)]
pub struct UserDeleted {
    success: bool,
    message: String,
    #[schema(format = Email)]
    email: String,
}

/// Every field optional at the serde level so a missing one is reported by name.
#[derive(Deserialize, ToSchema)]
struct CreateUser {
    /// An address in the path's domain.
    #[schema(required = true, nullable = false, format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(required = true, value_type = NewPassword)]
    password: Option<String>,
    #[schema(value_type = Option<DisplayName>)]
    name: Option<String>,
    /// Default true.
    active: Option<bool>,
}

/// `POST /domains/{domain}/users`: 201 with the new mailbox; `MAILBOX_EXISTS` (409) if taken.
#[utoipa::path(
    post,
    path = "/api/v1/domains/{domain}/users",
    tag = "users",
    params(("domain" = Domain, Path, description = "Domain name")),
    request_body = CreateUser,
    responses((status = 201, description = "The new mailbox", body = UserBody), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody), (status = 409, description = "MAILBOX_EXISTS", body = ErrorBody))
)]
async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    Json(req): Json<CreateUser>,
) -> ApiResult<(StatusCode, JsonResponse<UserBody>)> {
    let d = domain_for(&state, &p, &raw).await?;
    let email = req
        .email
        .as_deref()
        .ok_or_else(|| ApiError::validation("email", "is required"))?;
    let email = address_in_domain(email, &d.domain)?;
    let password = req
        .password
        .as_deref()
        .ok_or_else(|| ApiError::validation("password", "is required"))?;
    let hash = Password::parse(password)?.hash().await?;
    let name = display_name(req.name.as_deref())?;
    let mut conn = state.db.acquire().await?;
    let id = insert_mailbox(
        &mut conn,
        d.id,
        &email,
        name.as_deref(),
        &hash,
        req.active.unwrap_or(true),
    )
    .await?;
    let user = fetch_user(&mut *conn, id).await?;
    Ok((
        StatusCode::CREATED,
        JsonResponse(UserBody {
            success: true,
            domain: d.domain,
            user,
        }),
    ))
}

/// `GET /domains/{domain}/users`: by address, `limit`/`offset` as every list.
#[utoipa::path(
    get,
    path = "/api/v1/domains/{domain}/users",
    tag = "users",
    params(("domain" = Domain, Path, description = "Domain name"), Page),
    responses((status = 200, description = "A page of the domain's mailboxes, by address", body = UserList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody))
)]
async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<UserList>> {
    let d = domain_for(&state, &p, &raw).await?;
    let (limit, offset) = page.resolve()?;
    let total: i64 = sqlx::query_scalar("select count(*) from mailboxes where domain_id = $1")
        .bind(d.id)
        .fetch_one(&state.db)
        .await?;
    let users: Vec<User> = sqlx::query_as(concat!(
        "select ",
        user_columns!(),
        " from mailboxes where domain_id = $1 order by email limit $2 offset $3"
    ))
    .bind(d.id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(UserList {
        success: true,
        domain: d.domain,
        total,
        users,
    }))
}

/// Any of the three, at least one of them not null (see [`UpdateUser::rules`]).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(value_type = Option<NewPassword>)]
    password: Option<String>,
    /// Blank clears the name.
    #[schema(value_type = Option<DisplayName>)]
    name: Option<String>,
    active: Option<bool>,
}

impl UpdateUser {
    /// At least one field that is not null: `PATCH /domains/{domain}/users/{email}` refuses a change of nothing.
    pub fn rules() -> Vec<utoipa::openapi::RefOr<utoipa::openapi::Schema>> {
        use crate::routes::common::rule;
        use utoipa::openapi::schema::Type;
        vec![rule::any_of(vec![
            rule::object([("password", rule::of_type(Type::String))], ["password"]),
            rule::object([("name", rule::of_type(Type::String))], ["name"]),
            rule::object([("active", rule::of_type(Type::Boolean))], ["active"]),
        ])]
    }
}

/// The mailbox `raw_email` of domain `d`; `MAILBOX_NOT_FOUND` when it is not one of its own.
fn mailbox_address(d: &DomainRef, raw_email: &str) -> ApiResult<String> {
    address_in_domain(raw_email, &d.domain)
        .map(|e| e.as_str().to_owned())
        .map_err(|_| ApiError::MailboxNotFound)
}

/// Every token of a mailbox is dropped from this process's cache after a change that disables
/// them (deactivation, deletion); other processes see it within the cache's TTL.
async fn forget_tokens(state: &AppState, mailbox_id: i64) -> ApiResult<()> {
    let ids: Vec<i64> = sqlx::query_scalar("select id from api_tokens where mailbox_id = $1")
        .bind(mailbox_id)
        .fetch_all(&state.db)
        .await?;
    for id in ids {
        state.tokens.forget(id);
    }
    Ok(())
}

/// `PATCH /domains/{domain}/users/{email}`: any of password, name, active.
#[utoipa::path(
    patch,
    path = "/api/v1/domains/{domain}/users/{email}",
    tag = "users",
    params(("domain" = Domain, Path, description = "Domain name"), ("email" = String, Path, format = Email, description = "Mailbox address")),
    request_body = UpdateUser,
    responses((status = 200, description = "The mailbox after the change", body = UserBody), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND or MAILBOX_NOT_FOUND", body = ErrorBody))
)]
async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((raw, raw_email)): Path<(String, String)>,
    Json(req): Json<UpdateUser>,
) -> ApiResult<JsonResponse<UserBody>> {
    let d = domain_for(&state, &p, &raw).await?;
    let email = mailbox_address(&d, &raw_email)?;
    if req.password.is_none() && req.name.is_none() && req.active.is_none() {
        return Err(ApiError::validation(
            "body",
            "give at least one of password, name, active",
        ));
    }
    let hash = match req.password.as_deref() {
        Some(pw) => Some(Password::parse(pw)?.hash().await?),
        None => None,
    };
    // `name: ""` clears the name; an absent name leaves it unchanged.
    let name = display_name(req.name.as_deref())?;
    let row: Option<(i64, bool)> = sqlx::query_as(
        "update mailboxes
            set password_hash = coalesce($3, password_hash),
                name = case when $4 then $5 else name end,
                active = coalesce($6, active),
                updated_at = now()
          where domain_id = $1 and email = $2
          returning id, active",
    )
    .bind(d.id)
    .bind(&email)
    .bind(hash)
    .bind(req.name.is_some())
    .bind(name)
    .bind(req.active)
    .fetch_optional(&state.db)
    .await?;
    let (id, active) = row.ok_or(ApiError::MailboxNotFound)?;
    if !active {
        forget_tokens(&state, id).await?;
    }
    let user = fetch_user(&state.db, id).await?;
    Ok(JsonResponse(UserBody {
        success: true,
        domain: d.domain,
        user,
    }))
}

/// `DELETE /domains/{domain}/users/{email}`: the mailbox, its tokens and its grants. The mail
/// stored by Dovecot stays on disk until an operator removes it.
#[utoipa::path(
    delete,
    path = "/api/v1/domains/{domain}/users/{email}",
    tag = "users",
    params(("domain" = Domain, Path, description = "Domain name"), ("email" = String, Path, format = Email, description = "Mailbox address")),
    responses((status = 200, description = "Deleted", body = UserDeleted), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND or MAILBOX_NOT_FOUND", body = ErrorBody))
)]
async fn remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((raw, raw_email)): Path<(String, String)>,
) -> ApiResult<JsonResponse<UserDeleted>> {
    let d = domain_for(&state, &p, &raw).await?;
    let email = mailbox_address(&d, &raw_email)?;
    let id: Option<i64> =
        sqlx::query_scalar("select id from mailboxes where domain_id = $1 and email = $2")
            .bind(d.id)
            .bind(&email)
            .fetch_optional(&state.db)
            .await?;
    let id = id.ok_or(ApiError::MailboxNotFound)?;
    forget_tokens(&state, id).await?;
    sqlx::query("delete from mailboxes where id = $1")
        .bind(id)
        .execute(&state.db)
        .await?;
    Ok(JsonResponse(UserDeleted {
        success: true,
        message: format!("Mailbox {email} deleted"),
        email,
    }))
}
