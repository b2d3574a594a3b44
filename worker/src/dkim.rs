//! DKIM keys per sending domain, read from `domains` and kept for a minute so that signing costs
//! no query per message, while a newly approved domain is signed within a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use sqlx::PgPool;

const TTL: Duration = Duration::from_secs(60);

/// Headers covered by the signature: everything a reader trusts, not only lettre's default four.
/// Only message-level headers: lettre signs before it adds the body part's `Content-Type`, so
/// listing that would make every signature fail at the verifier.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
];

/// When a domain's key was read, and the key (`None`: the domain has none).
type Entry = (Instant, Option<Arc<DkimConfig>>);

#[derive(Default)]
pub struct DkimKeys {
    cache: Mutex<HashMap<String, Entry>>,
}

impl DkimKeys {
    /// The signing configuration of `domain`, or `None` when it has no key (mail is then sent
    /// unsigned, as before approval added one).
    pub async fn for_domain(
        &self,
        db: &PgPool,
        domain: &str,
    ) -> Result<Option<Arc<DkimConfig>>, sqlx::Error> {
        if let Some((at, cfg)) = self.cache.lock().expect("dkim cache").get(domain)
            && at.elapsed() < TTL
        {
            return Ok(cfg.clone());
        }
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("select dkim_selector, dkim_private_key from domains where domain = $1")
                .bind(domain)
                .fetch_optional(db)
                .await?;
        let cfg = match row {
            Some((Some(selector), Some(pem))) => match signing_config(domain, &selector, &pem) {
                Ok(cfg) => Some(Arc::new(cfg)),
                Err(e) => {
                    tracing::error!(domain, error = %e, "stored DKIM key is unusable; sending unsigned");
                    None
                }
            },
            _ => None,
        };
        self.cache
            .lock()
            .expect("dkim cache")
            .insert(domain.to_owned(), (Instant::now(), cfg.clone()));
        Ok(cfg)
    }
}

pub fn signing_config(domain: &str, selector: &str, pem: &str) -> anyhow::Result<DkimConfig> {
    let key = DkimSigningKey::new(pem, DkimSigningAlgorithm::Rsa)
        .map_err(|e| anyhow::anyhow!("invalid DKIM private key: {e:?}"))?;
    let headers = SIGNED_HEADERS
        .iter()
        .map(|h| HeaderName::new_from_ascii_str(h))
        .collect();
    Ok(DkimConfig::new(
        selector.to_owned(),
        domain.to_owned(),
        key,
        headers,
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}
