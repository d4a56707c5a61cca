//! PKCE (RFC 7636) with the S256 method, always: the code the browser
//! carries back is useless to anyone who sees it (another local process, a
//! browser extension, a proxy log) without the verifier, which never leaves
//! this process except in the token request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::secret::Secret;

/// A verifier and its challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// 43 characters of `[A-Za-z0-9-_]` (32 random bytes): the minimum
    /// length, the full 256 bits of entropy RFC 7636 §7.1 asks for.
    pub verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`, sent in the authorization URL.
    pub challenge: String,
}

/// The only method dexcred sends; `plain` would defeat the purpose.
pub const METHOD: &str = "S256";

impl Pkce {
    pub fn generate() -> Result<Pkce> {
        Ok(Pkce::from_verifier(Secret::new(super::random_token(32)?)))
    }

    pub fn from_verifier(verifier: Secret) -> Pkce {
        let challenge = challenge(verifier.expose());
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// The S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifiers_meet_the_rfc() {
        let p = Pkce::generate().unwrap();
        let v = p.verifier.expose();
        assert!((43..=128).contains(&v.len()));
        assert!(
            v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
        );
        assert_eq!(p.challenge, challenge(v));
        assert_ne!(Pkce::generate().unwrap().verifier, p.verifier);
    }
}
