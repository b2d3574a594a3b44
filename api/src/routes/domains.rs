//! `/domains`: pending domains and their approval (admin), and the DNS records a domain should
//! publish and whether it does (`manage_domains`).
//!
//! Approval is what allows sending: it generates the domain's DKIM key pair (the private key
//! stays in the database for the worker and never appears in a response) and sets it active.
//! A domain's managers may add Ed25519 signing beside it (`settings`, `PATCH /domains/{domain}`).

pub mod dkim;
mod records;
pub(crate) mod settings;
mod verify;

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::address::DomainName;
use shared::dkim::Algorithm;
use utoipa::ToSchema;

use crate::access::{Permission, require_admin, require_domain};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::routes::common::parse_domain;
use crate::routes::common::{Domain, ErrorBody, Page};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/domains/pending", get(pending))
        .route("/domains/{domain}", patch(settings::update))
        .route("/domains/{domain}/approve", post(approve))
        .route("/domains/{domain}/dns", get(dns))
        .route("/domains/{domain}/dns/verify", post(verify_dns))
}

#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct PendingDomain {
    #[schema(example = "newdomain.com")]
    domain: String,
    /// Always `false` here.
    active: bool,
    #[serde(with = "crate::time")]
    created: DateTime<Utc>,
    /// Who signed the domain up.
    #[schema(required = true, format = Email)]
    creator_email: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PendingList {
    success: bool,
    /// Every pending domain, not only this page's.
    total: i64,
    domains: Vec<PendingDomain>,
}

#[derive(Serialize, ToSchema)]
pub struct Approved {
    success: bool,
    #[schema(example = "Domain newdomain.com has been approved and activated")]
    message: String,
    #[schema(value_type = String)]
    domain: DomainName,
    /// Always `true`.
    active: bool,
}

/// The records a domain should publish, and a note on what comes next.
#[derive(Serialize, ToSchema)]
pub struct DnsRecords {
    success: bool,
    domain: String,
    active: bool,
    /// The RSA key's selector (`mail<yyyymm>`), once approval has made the domain's key.
    #[schema(required = true, example = "mail202611")]
    dkim_selector: Option<String>,
    /// The Ed25519 key's selector (`ed<yyyymm>`), while Ed25519 signing is on
    /// (`PATCH /domains/{domain}`).
    #[schema(required = true, example = "ed202612")]
    dkim_ed25519_selector: Option<String>,
    /// Where bounces for the domain's mail go (the envelope sender's domain).
    return_path_domain: String,
    records: Vec<records::Expected>,
    message: &'static str,
}

/// Each expected record beside what DNS answers.
#[derive(Serialize, ToSchema)]
pub struct DnsVerified {
    success: bool,
    domain: String,
    /// True when every record is `ok`.
    all_ok: bool,
    records: Vec<verify::Checked>,
}

/// `GET /domains/pending` (admin): oldest first, `limit`/`offset` as every list.
#[utoipa::path(
    get,
    path = "/api/v1/domains/pending",
    tag = "domains",
    params(Page),
    responses((status = 200, description = "{success, total, domains}", body = PendingList), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody))
)]
async fn pending(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<PendingList>> {
    require_admin(&p)?;
    let (limit, offset) = page.resolve()?;
    let total: i64 = sqlx::query_scalar("select count(*) from domains where not active")
        .fetch_one(&state.db)
        .await?;
    let domains: Vec<PendingDomain> = sqlx::query_as(
        "select domain, active, created_at as created, creator_email from domains
          where not active order by created_at, id limit $1 offset $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(PendingList {
        success: true,
        total,
        domains,
    }))
}

/// `POST /domains/{domain}/approve` (admin): `NOT_FOUND` for an unknown domain,
/// `DOMAIN_ALREADY_ACTIVE` (409) for an active one.
#[utoipa::path(
    post,
    path = "/api/v1/domains/{domain}/approve",
    tag = "domains",
    params(("domain" = Domain, Path, description = "Domain name")),
    responses((status = 200, description = "Approved and active", body = Approved), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody), (status = 409, description = "DOMAIN_ALREADY_ACTIVE", body = ErrorBody))
)]
async fn approve(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<JsonResponse<Approved>> {
    require_admin(&p)?;
    let domain = parse_domain(&raw)?;
    let row: Option<(bool, bool)> = sqlx::query_as(
        "select active, dkim_private_key is not null from domains where domain = $1",
    )
    .bind(domain.as_str())
    .fetch_optional(&state.db)
    .await?;
    let already = || ApiError::Conflict {
        code: "DOMAIN_ALREADY_ACTIVE",
        message: format!("Domain {domain} is already active"),
    };
    let has_key = match row {
        None => return Err(ApiError::NotFound(format!("Domain {domain} not found"))),
        Some((true, _)) => return Err(already()),
        Some((false, has_key)) => has_key,
    };
    // A domain that was approved before keeps its key (its DNS record is already published);
    // only a domain without one gets a new pair.
    let key = if has_key {
        None
    } else {
        Some(
            tokio::task::spawn_blocking(|| dkim::generate_rsa(Utc::now()))
                .await
                .map_err(|e| ApiError::Internal(e.into()))?
                .map_err(ApiError::Internal)?,
        )
    };
    // Conditional on `not active`: of two concurrent approvals exactly one wins, and the
    // coalesces keep a key some earlier approval stored.
    let done = sqlx::query(
        "update domains
            set active = true, approved_at = now(), updated_at = now(),
                dkim_selector = coalesce(dkim_selector, $2),
                dkim_private_key = coalesce(dkim_private_key, $3),
                dkim_public_key = coalesce(dkim_public_key, $4)
          where domain = $1 and not active",
    )
    .bind(domain.as_str())
    .bind(key.as_ref().map(|k| k.selector.as_str()))
    .bind(key.as_ref().map(|k| k.private_pem.as_str()))
    .bind(key.as_ref().map(|k| k.public.as_str()))
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(already());
    }
    // This process sends from it at once; others within MAILAPI_TOKEN_CACHE_TTL_MS.
    state.active_domains.forget(domain.as_str());
    tracing::info!(domain = %domain, "domain approved");
    Ok(JsonResponse(Approved {
        success: true,
        message: format!("Domain {domain} has been approved and activated"),
        domain,
        active: true,
    }))
}

/// A domain's published keys as stored (the private keys are not read here).
#[derive(sqlx::FromRow)]
struct PublicKeys {
    dkim_selector: Option<String>,
    dkim_public_key: Option<String>,
    dkim_ed25519_enabled: bool,
    dkim_ed25519_selector: Option<String>,
    dkim_ed25519_public_key: Option<String>,
}

/// The records to publish for a domain the caller may manage, and its DKIM keys (RSA first).
async fn expected_records(
    state: &AppState,
    p: &crate::auth::Principal,
    raw: &str,
) -> ApiResult<(
    crate::access::DomainRef,
    Vec<records::DkimRecord>,
    Vec<records::Expected>,
)> {
    let domain = parse_domain(raw)?;
    let d = require_domain(&state.db, p, Permission::ManageDomains, domain.as_str()).await?;
    let keys: PublicKeys = sqlx::query_as(
        "select dkim_selector, dkim_public_key, dkim_ed25519_enabled, dkim_ed25519_selector,
                dkim_ed25519_public_key
           from domains where id = $1",
    )
    .bind(d.id)
    .fetch_one(&state.db)
    .await?;
    let record = |algorithm, selector: &str, stored: &str| -> ApiResult<records::DkimRecord> {
        Ok(records::DkimRecord {
            algorithm,
            selector: selector.to_owned(),
            public: shared::dkim::public_key_record(algorithm, stored)
                .map_err(|e| ApiError::Internal(e.into()))?,
        })
    };
    let mut dkim = Vec::new();
    if let (Some(s), Some(k)) = (&keys.dkim_selector, &keys.dkim_public_key) {
        dkim.push(record(Algorithm::Rsa, s, k)?);
        // Listed only while the worker signs with it: a record for a key not in use would only
        // be one more thing to keep in DNS.
        if keys.dkim_ed25519_enabled
            && let (Some(s), Some(k)) = (&keys.dkim_ed25519_selector, &keys.dkim_ed25519_public_key)
        {
            dkim.push(record(Algorithm::Ed25519, s, k)?);
        }
    }
    let list = records::expected(&records::Inputs {
        domain: &d.domain,
        mx_host: state.settings.accounts.mx_host.as_str(),
        bounce_domain: state.settings.bounce_domain.as_str(),
        dkim: &dkim,
    });
    Ok((d, dkim, list))
}

/// `GET /domains/{domain}/dns` (`manage_domains`).
#[utoipa::path(
    get,
    path = "/api/v1/domains/{domain}/dns",
    tag = "domains",
    params(("domain" = Domain, Path, description = "Domain name")),
    responses((status = 200, description = "The records to publish", body = DnsRecords), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody))
)]
async fn dns(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<JsonResponse<DnsRecords>> {
    let (d, dkim, records) = expected_records(&state, &p, &raw).await?;
    let note = if dkim.is_empty() {
        "The DKIM record is listed once an admin approves the domain (approval creates its key)."
    } else {
        "Publish every record; POST /domains/{domain}/dns/verify checks them."
    };
    let selector = |alg| {
        dkim.iter()
            .find(|k| k.algorithm == alg)
            .map(|k| k.selector.clone())
    };
    Ok(JsonResponse(DnsRecords {
        success: true,
        domain: d.domain,
        active: d.active,
        dkim_selector: selector(Algorithm::Rsa),
        dkim_ed25519_selector: selector(Algorithm::Ed25519),
        return_path_domain: state.settings.bounce_domain.to_string(),
        records,
        message: note,
    }))
}

/// `POST /domains/{domain}/dns/verify` (`manage_domains`): each record ok, missing, wrong (or
/// error when the lookup itself failed), with what was found.
#[utoipa::path(
    post,
    path = "/api/v1/domains/{domain}/dns/verify",
    tag = "domains",
    params(("domain" = Domain, Path, description = "Domain name")),
    responses((status = 200, description = "Each record's state in DNS", body = DnsVerified), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody))
)]
async fn verify_dns(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> ApiResult<JsonResponse<DnsVerified>> {
    let (d, _, expected) = expected_records(&state, &p, &raw).await?;
    let resolver =
        verify::resolver(state.settings.accounts.dns_resolver).map_err(ApiError::Unavailable)?;
    let checked = verify::check_all(&resolver, expected).await;
    let all_ok = checked.iter().all(|c| c.status == records::Status::Ok);
    Ok(JsonResponse(DnsVerified {
        success: true,
        domain: d.domain,
        all_ok,
        records: checked,
    }))
}
