//! API tokens: `mapi_` followed by 43 base62 characters (~256 random bits). The first eight of
//! those are the display prefix `/tokens/me` shows; only a SHA-256 of the whole token is stored.

use rand::Rng;
use sha2::{Digest, Sha256};

pub const TOKEN_MARKER: &str = "mapi_";
const BODY_LEN: usize = 43;
pub const PREFIX_LEN: usize = 8;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A token secret. It is shown once, at creation, and never stored.
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let body: String = (0..BODY_LEN)
            .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
            .collect();
        Self(format!("{TOKEN_MARKER}{body}"))
    }

    /// Accepts only strings shaped like our tokens, so junk is refused before any lookup.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(TOKEN_MARKER)?;
        (body.len() == BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn prefix(&self) -> &str {
        &self.0[TOKEN_MARKER.len()..TOKEN_MARKER.len() + PREFIX_LEN]
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSecret({}…)", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert_ne!(a.expose(), b.expose());
        let parsed = TokenSecret::parse(a.expose()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_eq!(a.prefix().len(), PREFIX_LEN);
        assert!(!format!("{a:?}").contains(&a.expose()[13..]));
    }

    #[test]
    fn junk_is_refused() {
        for bad in [
            "",
            "mapi_",
            "mapi_short",
            "xxxx_0123456789012345678901234567890123456789012",
            "mapi_012345678901234567890123456789012345678901\n",
        ] {
            assert!(TokenSecret::parse(bad).is_none(), "{bad:?}");
        }
    }
}
