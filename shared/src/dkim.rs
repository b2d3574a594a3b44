//! DKIM key formats, shared by the API (which makes and publishes keys) and the worker (which
//! signs with them). No cryptography here: only how keys are stored and published.
//!
//! Stored forms (`domains` columns):
//! - RSA private key: PEM, PKCS#1 (`RSA PRIVATE KEY`) as approval has always written it; PKCS#8
//!   (`PRIVATE KEY`) is read too, for keys an operator imports. New keys stay PKCS#1 so that a
//!   worker of the previous release, still running during a rolling upgrade, signs with them.
//! - RSA public key: PEM, PKCS#1 (`RSA PUBLIC KEY`) or SubjectPublicKeyInfo (`PUBLIC KEY`).
//! - Ed25519 private key: PEM, PKCS#8 (`PRIVATE KEY`, v1 or v2).
//! - Ed25519 public key: the 32 raw bytes in base64, which is exactly what `p=` publishes
//!   (RFC 8463 section 4).
//!
//! Published `p=` for RSA is the base64 of the SubjectPublicKeyInfo DER, the form
//! `opendkim-genkey` writes and every verifier accepts.

use base64::Engine as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode as _, Encode as _};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::{ObjectIdentifier, PrivateKeyInfo};

/// rsaEncryption (RFC 8017 appendix C).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-Ed25519 (RFC 8410 section 3).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A DKIM signing algorithm we sign with: RSA-SHA256 (RFC 6376) or Ed25519-SHA256 (RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// The key type, `k=` in the DNS record.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// The signature algorithm, `a=` in the DKIM-Signature header.
    pub fn signature_tag(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa-sha256",
            Algorithm::Ed25519 => "ed25519-sha256",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM document: {0}")]
    Pem(String),
    #[error("unexpected PEM label {label:?} for an {algorithm:?} {what}")]
    Label {
        label: String,
        algorithm: Algorithm,
        what: &'static str,
    },
    #[error("malformed {0} key: {1}")]
    Der(&'static str, String),
    #[error("the PKCS#8 document holds a key of another algorithm ({0})")]
    WrongAlgorithm(ObjectIdentifier),
    #[error("an Ed25519 public key is 32 bytes in base64")]
    Ed25519Public,
}

/// A stored private key, decoded: the DER to hand to the signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateDer {
    /// RSAPrivateKey (RFC 8017 A.1.2).
    RsaPkcs1(Vec<u8>),
    /// PrivateKeyInfo (RFC 5208 / 5958), already checked to hold a key of the expected algorithm.
    Pkcs8(Vec<u8>),
}

/// Decodes a stored private key of `algorithm`; see the module doc for the accepted forms.
pub fn private_key_der(algorithm: Algorithm, pem: &str) -> Result<PrivateDer, KeyError> {
    let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| KeyError::Pem(e.to_string()))?;
    match (algorithm, label) {
        (Algorithm::Rsa, "RSA PRIVATE KEY") => Ok(PrivateDer::RsaPkcs1(der)),
        (_, "PRIVATE KEY") => {
            let info = PrivateKeyInfo::from_der(&der)
                .map_err(|e| KeyError::Der("PKCS#8 private", e.to_string()))?;
            let want = match algorithm {
                Algorithm::Rsa => RSA_ENCRYPTION,
                Algorithm::Ed25519 => ED25519,
            };
            if info.algorithm.oid != want {
                return Err(KeyError::WrongAlgorithm(info.algorithm.oid));
            }
            Ok(PrivateDer::Pkcs8(der))
        }
        (algorithm, label) => Err(KeyError::Label {
            label: label.to_owned(),
            algorithm,
            what: "private key",
        }),
    }
}

/// `RSA PRIVATE KEY` PEM of the RSAPrivateKey inside a PKCS#8 RSA key (what key generators
/// give), the form approval stores.
pub fn rsa_pkcs1_pem_from_pkcs8(pkcs8_der: &[u8]) -> Result<String, KeyError> {
    let info = PrivateKeyInfo::from_der(pkcs8_der)
        .map_err(|e| KeyError::Der("PKCS#8 private", e.to_string()))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(KeyError::WrongAlgorithm(info.algorithm.oid));
    }
    pem("RSA PRIVATE KEY", info.private_key)
}

/// PEM with LF line endings, as every stored key is written.
pub fn pem(label: &str, der: &[u8]) -> Result<String, KeyError> {
    pkcs8::der::pem::encode_string(label, LineEnding::LF, der)
        .map_err(|e| KeyError::Pem(e.to_string()))
}

/// The `p=` value for a stored public key of `algorithm`.
pub fn public_key_record(algorithm: Algorithm, stored: &str) -> Result<String, KeyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match algorithm {
        Algorithm::Rsa => {
            let (label, der) = pkcs8::der::pem::decode_vec(stored.trim().as_bytes())
                .map_err(|e| KeyError::Pem(e.to_string()))?;
            let spki = match label {
                "PUBLIC KEY" => {
                    let spki = SubjectPublicKeyInfoRef::from_der(&der)
                        .map_err(|e| KeyError::Der("RSA public", e.to_string()))?;
                    if spki.algorithm.oid != RSA_ENCRYPTION {
                        return Err(KeyError::WrongAlgorithm(spki.algorithm.oid));
                    }
                    der
                }
                "RSA PUBLIC KEY" => rsa_spki_from_pkcs1(&der)?,
                other => {
                    return Err(KeyError::Label {
                        label: other.to_owned(),
                        algorithm,
                        what: "public key",
                    });
                }
            };
            Ok(b64.encode(spki))
        }
        Algorithm::Ed25519 => {
            let raw = b64
                .decode(stored.trim())
                .map_err(|_| KeyError::Ed25519Public)?;
            if raw.len() != 32 {
                return Err(KeyError::Ed25519Public);
            }
            Ok(b64.encode(raw))
        }
    }
}

/// Wraps an RSAPublicKey (PKCS#1) in a SubjectPublicKeyInfo with the rsaEncryption algorithm
/// and its NULL parameters (RFC 3279 section 2.3.1).
fn rsa_spki_from_pkcs1(pkcs1: &[u8]) -> Result<Vec<u8>, KeyError> {
    let bad = |e: pkcs8::der::Error| KeyError::Der("RSA public", e.to_string());
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION,
            parameters: Some(pkcs8::der::AnyRef::NULL),
        },
        subject_public_key: pkcs8::der::asn1::BitStringRef::from_bytes(pkcs1).map_err(bad)?,
    };
    spki.to_der().map_err(bad)
}

/// The whole TXT value published at `<selector>._domainkey.<domain>`.
pub fn txt_value(algorithm: Algorithm, public_b64: &str) -> String {
    format!("v=DKIM1; k={}; p={public_b64}", algorithm.key_type())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public half of worker/testdata/dkim-rsa2048.pem as approval stored public keys before
    /// December 2026 (PKCS#1, `openssl rsa -RSAPublicKey_out`) ...
    const PKCS1_PUBLIC: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAzsROOu7LQqBym5wd57zVhAatb30lMG/Tc59zljp6L1Lz56+jJ+R+
DH0U6vvJqRDCzpnvXaHREU9PiivUS4x7V9iowaFGu27yjEnIi4DsJm3kuJTlH3cc
oaxbTHL1JAtRbato502advQ4xhRM4pMeY+w3/uMRCxehxIC24Payw7vB399rrTez
3/yMKrRbGEUv6VeNQsxM5LkSRkyVSPUjVoaThcI78XYpnENQ5eKIwacffmOgCsbx
mNeetLdNrYtPzMsxRfUP+L3/cfSOQl3U+JkYCDe8Jtuey6czMtesj2FvYjmprDOa
NvZ1912yptmzJOe/r9uMNhD4CQNzkJ5lswIDAQAB
-----END RSA PUBLIC KEY-----
";
    /// ... and as SubjectPublicKeyInfo (`openssl rsa -pubout`).
    const SPKI_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzsROOu7LQqBym5wd57zV
hAatb30lMG/Tc59zljp6L1Lz56+jJ+R+DH0U6vvJqRDCzpnvXaHREU9PiivUS4x7
V9iowaFGu27yjEnIi4DsJm3kuJTlH3ccoaxbTHL1JAtRbato502advQ4xhRM4pMe
Y+w3/uMRCxehxIC24Payw7vB399rrTez3/yMKrRbGEUv6VeNQsxM5LkSRkyVSPUj
VoaThcI78XYpnENQ5eKIwacffmOgCsbxmNeetLdNrYtPzMsxRfUP+L3/cfSOQl3U
+JkYCDe8Jtuey6czMtesj2FvYjmprDOaNvZ1912yptmzJOe/r9uMNhD4CQNzkJ5l
swIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn an_old_pkcs1_public_key_publishes_what_openssl_calls_its_public_key() {
        let p = public_key_record(Algorithm::Rsa, PKCS1_PUBLIC).unwrap();
        let openssl: String = SPKI_PUBLIC
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(p, openssl);
        assert!(p.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        assert_eq!(public_key_record(Algorithm::Rsa, SPKI_PUBLIC).unwrap(), p);
        assert_eq!(
            txt_value(Algorithm::Rsa, &p),
            format!("v=DKIM1; k=rsa; p={p}")
        );
    }

    #[test]
    fn pkcs1_and_pkcs8_private_keys_decode_to_the_same_key() {
        let pkcs1 = include_str!("../testdata/dkim-rsa2048.pem");
        let pkcs8 = include_str!("../testdata/dkim-rsa2048.pkcs8.pem");
        let PrivateDer::RsaPkcs1(inner) = private_key_der(Algorithm::Rsa, pkcs1).unwrap() else {
            panic!("PKCS#1 PEM decodes as PKCS#1");
        };
        let PrivateDer::Pkcs8(outer) = private_key_der(Algorithm::Rsa, pkcs8).unwrap() else {
            panic!("PKCS#8 PEM decodes as PKCS#8");
        };
        // What approval stores from a generator's PKCS#8 is byte for byte openssl's PKCS#1.
        assert_eq!(rsa_pkcs1_pem_from_pkcs8(&outer).unwrap(), pkcs1);
        assert_eq!(
            PrivateKeyInfo::from_der(&outer).unwrap().private_key,
            inner.as_slice()
        );
        // An RSA key is not taken for an Ed25519 one, nor the other way round.
        assert!(matches!(
            private_key_der(Algorithm::Ed25519, pkcs8),
            Err(KeyError::WrongAlgorithm(_))
        ));
        let ed = include_str!("../testdata/dkim-ed25519.pem");
        assert!(matches!(
            private_key_der(Algorithm::Ed25519, ed),
            Ok(PrivateDer::Pkcs8(_))
        ));
        assert!(matches!(
            private_key_der(Algorithm::Rsa, ed),
            Err(KeyError::WrongAlgorithm(_))
        ));
    }

    #[test]
    fn labels_and_algorithms_must_match() {
        assert!(matches!(
            private_key_der(
                Algorithm::Ed25519,
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            ),
            Err(KeyError::Label { .. })
        ));
        assert!(matches!(
            private_key_der(Algorithm::Rsa, "no pem here"),
            Err(KeyError::Pem(_))
        ));
        assert!(matches!(
            public_key_record(Algorithm::Ed25519, "AAAA"),
            Err(KeyError::Ed25519Public)
        ));
        let raw = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(public_key_record(Algorithm::Ed25519, &raw).unwrap(), raw);
        assert_eq!(
            txt_value(Algorithm::Ed25519, &raw),
            format!("v=DKIM1; k=ed25519; p={raw}")
        );
    }
}
