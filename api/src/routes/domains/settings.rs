//! `PATCH /domains/{domain}`: the settings a domain's managers may change themselves. One so
//! far: Ed25519 DKIM signing (RFC 8463) beside the RSA signature, off until turned on.

use axum::Json as JsonResponse;
use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::dkim;
use crate::access::{Permission, require_domain};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::routes::common::input::constraint;
use crate::routes::common::parse_domain;
use crate::routes::common::{Domain, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomain {
    /// Also sign with Ed25519, after the RSA signature. The first `true` creates the key: then
    /// publish the second DKIM record `GET /domains/{domain}/dns` lists. `false` stops signing
    /// with it and keeps the key, so turning it on again needs no new record. (The only setting
    /// so far, so it is required: a PATCH that changes nothing is a client's mistake.)
    dkim_ed25519: bool,
}

/// A domain's settings after `PATCH /domains/{domain}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DomainUpdated {
    success: bool,
    domain: String,
    active: bool,
    /// Whether mail from the domain is signed with Ed25519 too (after the RSA signature).
    dkim_ed25519: bool,
    /// The Ed25519 key's selector once it exists (kept while signing with it is off).
    #[schema(required = true, example = "ed202612")]
    dkim_ed25519_selector: Option<String>,
    message: String,
}

/// `PATCH /domains/{domain}` (`manage_domains`, or admin): `{"dkim_ed25519": true|false}`.
/// `DOMAIN_NOT_APPROVED` (409) when turning Ed25519 on for a domain that has no RSA key yet.
#[utoipa::path(
    patch,
    path = "/api/v1/domains/{domain}",
    tag = "domains",
    params(("domain" = Domain, Path, description = "Domain name")),
    request_body = UpdateDomain,
    responses((status = 200, description = "{success, domain, dkim_ed25519, dkim_ed25519_selector, ...}", body = DomainUpdated), (status = 400, description = "VALIDATION_ERROR: `dkim_ed25519` missing, or an unknown field", body = ErrorBody), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody), (status = 409, description = "DOMAIN_NOT_APPROVED: Ed25519 signs beside the RSA key approval creates", body = ErrorBody))
)]
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    Json(req): Json<UpdateDomain>,
) -> ApiResult<JsonResponse<DomainUpdated>> {
    let domain = parse_domain(&raw)?;
    let d = require_domain(&state.db, &p, Permission::ManageDomains, domain.as_str()).await?;
    let ed25519 = req.dkim_ed25519;
    // Made on every `true` (it takes microseconds) and stored only where there is none yet, so
    // of two concurrent first requests one key wins and both answer with it.
    let key = if ed25519 {
        Some(dkim::generate_ed25519(Utc::now()).map_err(ApiError::Internal)?)
    } else {
        None
    };
    let row: (bool, Option<String>) = sqlx::query_as(
        "update domains
            set dkim_ed25519_enabled = $2,
                dkim_ed25519_selector = coalesce(dkim_ed25519_selector, $3),
                dkim_ed25519_private_key = coalesce(dkim_ed25519_private_key, $4),
                dkim_ed25519_public_key = coalesce(dkim_ed25519_public_key, $5),
                updated_at = now()
          where id = $1
          returning dkim_ed25519_enabled, dkim_ed25519_selector",
    )
    .bind(d.id)
    .bind(ed25519)
    .bind(key.as_ref().map(|k| k.selector.as_str()))
    .bind(key.as_ref().map(|k| k.private_pem.as_str()))
    .bind(key.as_ref().map(|k| k.public.as_str()))
    .fetch_one(&state.db)
    .await
    .map_err(|e| match constraint(&e) {
        Some("domains_dkim_ed25519_needs_keys") => ApiError::Conflict {
            code: "DOMAIN_NOT_APPROVED",
            message: format!(
                "Domain {domain} has no DKIM key yet: Ed25519 signs beside the RSA key that \
                 approval creates"
            ),
        },
        _ => e.into(),
    })?;
    let (enabled, selector) = row;
    tracing::info!(domain = %domain, dkim_ed25519 = enabled, "domain settings changed");
    let message = if enabled {
        format!(
            "Ed25519 signing is on (the worker picks it up within a minute). Publish its DKIM \
             record, listed by GET /api/v1/domains/{domain}/dns; until then receivers rely on \
             the RSA signature."
        )
    } else {
        "Ed25519 signing is off (within a minute); its key is kept.".to_owned()
    };
    Ok(JsonResponse(DomainUpdated {
        success: true,
        domain: d.domain,
        active: d.active,
        dkim_ed25519: enabled,
        dkim_ed25519_selector: selector,
        message,
    }))
}
