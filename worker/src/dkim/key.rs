//! A signing key, parsed once into ring's form: RSA (PKCS#1 v1.5 padding, SHA-256) or Ed25519.
//!
//! ring's RSA private-key operation is constant-time and runs BoringSSL's assembly Montgomery
//! multiplication, with blinding; ring's Ed25519 is constant-time too. Neither has the timing
//! leak of the pure-Rust `rsa` crate (RUSTSEC-2023-0071) the worker signed with before.

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use shared::dkim::{Algorithm, PrivateDer, private_key_der};

use super::DkimError;

pub enum SigningKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    /// The algorithm only: a key has nothing else worth logging.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?})", self.algorithm())
    }
}

impl SigningKey {
    /// Parses a stored private key (see `shared::dkim` for the accepted forms). ring refuses RSA
    /// keys under 2048 bits, which receivers have rejected since RFC 8301 anyway.
    pub fn from_pem(algorithm: Algorithm, pem: &str) -> Result<Self, DkimError> {
        let der = private_key_der(algorithm, pem)?;
        let rejected = |e: ring::error::KeyRejected| DkimError::KeyRejected(e.to_string());
        Ok(match (algorithm, der) {
            (Algorithm::Rsa, PrivateDer::RsaPkcs1(der)) => {
                SigningKey::Rsa(RsaKeyPair::from_der(&der).map_err(rejected)?)
            }
            (Algorithm::Rsa, PrivateDer::Pkcs8(der)) => {
                SigningKey::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(rejected)?)
            }
            // v1 documents (OpenSSL's) have no public key to check against; v2 ones (ring's and
            // aws-lc-rs's) do, and it is checked.
            (Algorithm::Ed25519, PrivateDer::Pkcs8(der)) => SigningKey::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(rejected)?,
            ),
            (Algorithm::Ed25519, PrivateDer::RsaPkcs1(_)) => {
                unreachable!("shared::dkim returns PKCS#1 only for RSA")
            }
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Rsa(_) => Algorithm::Rsa,
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Signs the data-hash input of RFC 6376 section 3.7 (the canonical signed header fields,
    /// then the signature's own header with an empty `b=`). RSA-SHA256 hashes it and signs the
    /// hash with PKCS#1 v1.5 padding; Ed25519-SHA256 signs its SHA-256 hash with PureEdDSA
    /// (RFC 8463 section 3), not the data itself.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DkimError> {
        match self {
            SigningKey::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), data, &mut sig)
                    .map_err(|_| DkimError::Sign)?;
                Ok(sig)
            }
            SigningKey::Ed25519(key) => {
                let hash = ring::digest::digest(&ring::digest::SHA256, data);
                Ok(key.sign(hash.as_ref()).as_ref().to_vec())
            }
        }
    }

    /// The public key's raw bytes (RSA: RSAPublicKey DER; Ed25519: 32 bytes), for tests that
    /// verify what was signed.
    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        match self {
            SigningKey::Rsa(key) => key.public_key().as_ref().to_vec(),
            SigningKey::Ed25519(key) => key.public_key().as_ref().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    const RSA_PKCS1: &str = include_str!("../../../shared/testdata/dkim-rsa2048.pem");
    const RSA_PKCS8: &str = include_str!("../../../shared/testdata/dkim-rsa2048.pkcs8.pem");
    const ED25519_PEM: &str = include_str!("../../../shared/testdata/dkim-ed25519.pem");
    const ED25519_PUB: &str = include_str!("../../../shared/testdata/dkim-ed25519.pub");

    #[test]
    fn pkcs1_and_pkcs8_rsa_keys_sign_alike_and_verify() {
        let a = SigningKey::from_pem(Algorithm::Rsa, RSA_PKCS1).unwrap();
        let b = SigningKey::from_pem(Algorithm::Rsa, RSA_PKCS8).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let sig = a.sign(b"data").unwrap();
        // PKCS#1 v1.5 is deterministic: the same key gives the same signature.
        assert_eq!(sig, b.sign(b"data").unwrap());
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, a.public_key());
        public.verify(b"data", &sig).unwrap();
        assert!(public.verify(b"Data", &sig).is_err());
    }

    #[test]
    fn ed25519_signs_the_sha256_of_the_data() {
        use base64::Engine as _;
        let key = SigningKey::from_pem(Algorithm::Ed25519, ED25519_PEM).unwrap();
        let published = base64::engine::general_purpose::STANDARD
            .decode(ED25519_PUB.trim())
            .unwrap();
        assert_eq!(key.public_key(), published);
        let sig = key.sign(b"data").unwrap();
        let public = UnparsedPublicKey::new(&ED25519, &published);
        let hash = ring::digest::digest(&ring::digest::SHA256, b"data");
        public.verify(hash.as_ref(), &sig).unwrap();
        assert!(public.verify(b"data", &sig).is_err());
    }

    #[test]
    fn a_key_of_the_other_algorithm_is_refused() {
        assert!(SigningKey::from_pem(Algorithm::Rsa, ED25519_PEM).is_err());
        assert!(SigningKey::from_pem(Algorithm::Ed25519, RSA_PKCS8).is_err());
        assert!(SigningKey::from_pem(Algorithm::Ed25519, RSA_PKCS1).is_err());
    }
}
