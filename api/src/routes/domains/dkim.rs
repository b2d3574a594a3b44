//! DKIM keys made by the API: the RSA pair at approval, the Ed25519 pair when a domain first
//! turns Ed25519 signing on. Generated with aws-lc-rs (constant-time, and it can make RSA keys,
//! which ring cannot); the worker signs with ring. Stored forms: see `shared::dkim`.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use chrono::{DateTime, Datelike, Utc};
use shared::dkim::Algorithm;

/// A new key pair, the selector it is published under, and both halves in their stored forms.
pub struct DkimKey {
    pub algorithm: Algorithm,
    pub selector: String,
    pub private_pem: String,
    /// RSA: `RSA PUBLIC KEY` PEM; Ed25519: the `p=` value (base64 of the 32 raw bytes).
    pub public: String,
}

/// `mail<yyyymm>` for RSA, `ed<yyyymm>` for Ed25519: a selector per month of creation, so a
/// later rotation gets a new name and the old record can stay published while signed mail is
/// still in flight; and one per algorithm, since a selector names exactly one key record.
pub fn selector_for(algorithm: Algorithm, at: DateTime<Utc>) -> String {
    let prefix = match algorithm {
        Algorithm::Rsa => "mail",
        Algorithm::Ed25519 => "ed",
    };
    format!("{prefix}{:04}{:02}", at.year(), at.month())
}

/// Generates an RSA-2048 pair (2048 bits is what receivers expect today and still fits one TXT
/// record), stored as PKCS#1 PEM like every key before it. CPU-bound for tens of milliseconds:
/// call on the blocking pool.
pub fn generate_rsa(at: DateTime<Utc>) -> anyhow::Result<DkimKey> {
    let key = RsaKeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let pkcs8: Pkcs8V1Der<'static> = key
        .as_der()
        .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
    Ok(DkimKey {
        algorithm: Algorithm::Rsa,
        selector: selector_for(Algorithm::Rsa, at),
        private_pem: shared::dkim::rsa_pkcs1_pem_from_pkcs8(pkcs8.as_ref())?,
        // `as_ref` is the RSAPublicKey DER (RFC 8017).
        public: shared::dkim::pem("RSA PUBLIC KEY", key.public_key().as_ref())?,
    })
}

/// Generates an Ed25519 pair (microseconds).
pub fn generate_ed25519(at: DateTime<Utc>) -> anyhow::Result<DkimKey> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| anyhow::anyhow!("generated Ed25519 key rejected: {e}"))?;
    Ok(DkimKey {
        algorithm: Algorithm::Ed25519,
        selector: selector_for(Algorithm::Ed25519, at),
        private_pem: shared::dkim::pem("PRIVATE KEY", pkcs8.as_ref())?,
        public: base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::PublicKeyX509Der;

    #[test]
    fn selectors_are_per_month_and_algorithm() {
        let at = DateTime::parse_from_rfc3339("2026-03-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(selector_for(Algorithm::Rsa, at), "mail202603");
        assert_eq!(selector_for(Algorithm::Ed25519, at), "ed202603");
    }

    #[test]
    fn a_new_rsa_key_is_stored_as_pkcs1_and_published_as_its_spki() {
        let key = generate_rsa(Utc::now()).unwrap();
        assert!(
            key.private_pem
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        assert!(key.public.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"));
        // The p= we publish from the stored public key is what aws-lc-rs itself encodes as the
        // key's SubjectPublicKeyInfo.
        let p = shared::dkim::public_key_record(Algorithm::Rsa, &key.public).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&p)
            .unwrap();
        let pkcs1 = match shared::dkim::private_key_der(Algorithm::Rsa, &key.private_pem).unwrap() {
            shared::dkim::PrivateDer::RsaPkcs1(der) => der,
            other => panic!("{other:?}"),
        };
        let reparsed = RsaKeyPair::from_der(&pkcs1).unwrap();
        let spki: PublicKeyX509Der<'static> = reparsed.public_key().as_der().unwrap();
        assert_eq!(der, spki.as_ref());
        assert_eq!(der.len(), 294);
    }

    #[test]
    fn a_new_ed25519_key_publishes_its_32_raw_bytes() {
        let key = generate_ed25519(Utc::now()).unwrap();
        assert!(key.private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(
            shared::dkim::public_key_record(Algorithm::Ed25519, &key.public).unwrap(),
            key.public
        );
        assert_eq!(key.public.len(), 44);
        assert_ne!(generate_ed25519(Utc::now()).unwrap().public, key.public);
    }
}
