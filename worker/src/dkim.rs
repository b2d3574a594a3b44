//! DKIM signing of outgoing mail: the keys of each sending domain, read from `domains` and
//! kept for a minute, so that signing costs no query per message while a newly approved domain
//! (or one that just turned Ed25519 on) is signed within a minute.
//!
//! Layout: [`canon`] is RFC 6376's relaxed canonicalisation, [`key`] a parsed signing key (ring),
//! [`signer`] puts the DKIM-Signature fields on a message. Keys are parsed once: a refresh that
//! reads the same selectors and keys keeps the parsed ones.

pub mod canon;
pub mod key;
pub mod signer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use shared::cache::TtlCache;
use shared::dkim::Algorithm;
use sqlx::PgPool;

pub use key::SigningKey;
pub use signer::DomainSigner;

const TTL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error(transparent)]
    Key(#[from] shared::dkim::KeyError),
    #[error("key rejected: {0}")]
    KeyRejected(String),
    #[error("signing failed")]
    Sign,
}

/// A domain's keys as stored: what the parsed signer was made from.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct KeyRow {
    dkim_selector: Option<String>,
    dkim_private_key: Option<String>,
    dkim_ed25519_enabled: bool,
    dkim_ed25519_selector: Option<String>,
    dkim_ed25519_private_key: Option<String>,
}

/// What a domain's cache entry holds: the row read, and the signer parsed from it.
#[derive(Clone)]
struct Entry {
    row: Option<KeyRow>,
    signer: Option<Arc<DomainSigner>>,
}

/// Bound on cached domains.
const MAX_CACHED: usize = 10_000;

pub struct DkimKeys {
    cache: TtlCache<String, Entry>,
}

impl Default for DkimKeys {
    fn default() -> Self {
        Self {
            cache: TtlCache::new(TTL, MAX_CACHED),
        }
    }
}

impl DkimKeys {
    /// The signer of `domain`, or `None` when it has no RSA key (mail is then sent unsigned, as
    /// before approval gave it one).
    pub async fn for_domain(
        &self,
        db: &PgPool,
        domain: &str,
    ) -> Result<Option<Arc<DomainSigner>>, sqlx::Error> {
        if let Some(e) = self.cache.get(domain) {
            return Ok(e.signer);
        }
        let row: Option<KeyRow> = sqlx::query_as(
            "select dkim_selector, dkim_private_key, dkim_ed25519_enabled, dkim_ed25519_selector,
                    dkim_ed25519_private_key
               from domains where domain = $1",
        )
        .bind(domain)
        .fetch_optional(db)
        .await?;
        // The same keys as last time: keep the parsed ones (RSA parsing is not free).
        let signer = match self.cache.get_stale(domain) {
            Some(old) if old.row == row => old.signer,
            _ => row.as_ref().and_then(|r| build(domain, r)),
        };
        let entry = Entry {
            row,
            signer: signer.clone(),
        };
        self.cache.insert(domain.to_owned(), entry);
        Ok(signer)
    }
}

/// Parses a domain's keys. An unusable RSA key means no signature at all (logged); an unusable
/// Ed25519 key means RSA only (logged), since the RSA signature alone is what most receivers
/// check.
fn build(domain: &str, row: &KeyRow) -> Option<Arc<DomainSigner>> {
    let (Some(selector), Some(pem)) = (&row.dkim_selector, &row.dkim_private_key) else {
        return None;
    };
    let rsa = match SigningKey::from_pem(Algorithm::Rsa, pem) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(domain, error = %e, "stored DKIM RSA key is unusable; sending unsigned");
            return None;
        }
    };
    let mut keys = vec![(selector.clone(), rsa)];
    if row.dkim_ed25519_enabled
        && let (Some(selector), Some(pem)) =
            (&row.dkim_ed25519_selector, &row.dkim_ed25519_private_key)
    {
        match SigningKey::from_pem(Algorithm::Ed25519, pem) {
            Ok(k) => keys.push((selector.clone(), k)),
            Err(e) => {
                tracing::error!(domain, error = %e, "stored DKIM Ed25519 key is unusable; signing with RSA only");
            }
        }
    }
    Some(Arc::new(DomainSigner::new(domain, keys)))
}
