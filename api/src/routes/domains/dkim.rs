//! DKIM keys made at approval, and the TXT record that publishes them.
//!
//! Keys are RSA-2048 stored as PKCS#1 PEM, the form the worker's signer (lettre) reads. The
//! published `p=` is the base64 of the public key's SubjectPublicKeyInfo DER, the form
//! `opendkim-genkey` writes and every verifier accepts.

use base64::Engine as _;
use chrono::{DateTime, Datelike, Utc};
use rsa::pkcs1::{DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};

/// Key size: 2048 bits is what receivers expect today and still fits one TXT record.
const KEY_BITS: usize = 2048;

/// A new key pair and the selector it is published under.
pub struct DkimKey {
    pub selector: String,
    pub private_pem: String,
    pub public_pem: String,
}

/// `mail<yyyymm>`: a selector per month of creation, so a later rotation gets a new name and
/// the old record can stay published while signed mail is still in flight.
pub fn selector_for(at: DateTime<Utc>) -> String {
    format!("mail{:04}{:02}", at.year(), at.month())
}

/// Generates a key pair. CPU-bound for up to a few seconds: call on the blocking pool.
pub fn generate(at: DateTime<Utc>) -> anyhow::Result<DkimKey> {
    let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)?;
    let private_pem = key.to_pkcs1_pem(LineEnding::LF)?.to_string();
    let public_pem = key.to_public_key().to_pkcs1_pem(LineEnding::LF)?;
    Ok(DkimKey {
        selector: selector_for(at),
        private_pem,
        public_pem,
    })
}

/// The `p=` value for a stored public key (PKCS#1 PEM).
pub fn public_key_base64(public_pem: &str) -> anyhow::Result<String> {
    let key = RsaPublicKey::from_pkcs1_pem(public_pem)?;
    let der = key.to_public_key_der()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

/// The whole TXT value published at `<selector>._domainkey.<domain>`.
pub fn txt_value(public_b64: &str) -> String {
    format!("v=DKIM1; k=rsa; p={public_b64}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_is_per_month() {
        let at = DateTime::parse_from_rfc3339("2026-03-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(selector_for(at), "mail202603");
    }

    #[test]
    fn generated_keys_publish_a_spki_key_the_signer_accepts() {
        let key = generate(Utc::now()).unwrap();
        assert!(
            key.private_pem
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );
        let p = public_key_base64(&key.public_pem).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&p)
            .unwrap();
        // SubjectPublicKeyInfo of a 2048-bit RSA key is 294 bytes and starts with a SEQUENCE.
        assert_eq!(der.len(), 294);
        assert!(txt_value(&p).starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"));
    }
}
