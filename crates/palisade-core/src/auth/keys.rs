use std::fmt;

use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

/// Signature algorithms a key may be pinned to. `none` does not exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// Ed25519 signatures.
    EdDSA,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl Algorithm {
    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
            Self::HS384 => jsonwebtoken::Algorithm::HS384,
            Self::HS512 => jsonwebtoken::Algorithm::HS512,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }

    /// Whether the key is a shared secret (as opposed to a key pair).
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// Key bytes as loaded from config (files already read by the caller).
#[derive(Clone)]
pub struct KeyMaterial {
    /// Key id, matched against the token header's `kid`.
    pub id: String,
    /// The one algorithm this key accepts.
    pub algorithm: Algorithm,
    /// Shared secret, for HMAC keys.
    pub secret: Option<Vec<u8>>,
    /// PEM public key, for asymmetric keys.
    pub public_pem: Option<String>,
    /// PEM private key, for asymmetric keys we sign with.
    pub private_pem: Option<String>,
}

impl fmt::Debug for KeyMaterial {
    // Key bytes never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial").field("id", &self.id).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// Why key material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An HMAC key without a secret, or one too short to be safe.
    #[error("key `{0}`: an HMAC key needs a secret of at least 32 bytes")]
    WeakSecret(String),
    /// An asymmetric key without the public key needed to verify.
    #[error("key `{0}`: needs a public key to verify tokens")]
    MissingPem(String),
    /// The PEM could not be parsed for the key's algorithm.
    #[error("key `{id}`: {what} is not a valid PEM for {algorithm:?}")]
    BadPem {
        /// Key id.
        id: String,
        /// Which part.
        what: &'static str,
        /// The key's algorithm.
        algorithm: Algorithm,
    },
    /// The key cannot sign (no secret and no private key).
    #[error("key `{0}` cannot sign: it has no secret or private key")]
    CannotSign(String),
}

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2 asks for at least
/// the hash output size).
pub(crate) const MIN_HMAC_SECRET: usize = 32;

impl KeyMaterial {
    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        if self.algorithm.is_hmac() {
            return match &self.secret {
                Some(s) if s.len() >= MIN_HMAC_SECRET => Ok(DecodingKey::from_secret(s)),
                _ => Err(KeyError::WeakSecret(self.id.clone())),
            };
        }
        let bad = |what| KeyError::BadPem { id: self.id.clone(), what, algorithm: self.algorithm };
        if let Some(public) = &self.public_pem {
            let pem = public.as_bytes();
            return match self.algorithm {
                Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
                Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
                Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
                _ => unreachable_hmac(),
            }
            .map_err(|_| bad("public_key"));
        }
        Err(KeyError::MissingPem(self.id.clone()))
    }

    pub(crate) fn encoding_key(&self) -> Result<EncodingKey, KeyError> {
        if self.algorithm.is_hmac() {
            return match &self.secret {
                Some(s) if s.len() >= MIN_HMAC_SECRET => Ok(EncodingKey::from_secret(s)),
                Some(_) => Err(KeyError::WeakSecret(self.id.clone())),
                None => Err(KeyError::CannotSign(self.id.clone())),
            };
        }
        let private = self.private_pem.as_deref().ok_or_else(|| KeyError::CannotSign(self.id.clone()))?;
        let pem = private.as_bytes();
        match self.algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            _ => unreachable_hmac(),
        }
        .map_err(|_| KeyError::BadPem { id: self.id.clone(), what: "private_key", algorithm: self.algorithm })
    }

    /// Whether this key can mint tokens.
    pub fn can_sign(&self) -> bool {
        if self.algorithm.is_hmac() { self.secret.is_some() } else { self.private_pem.is_some() }
    }
}

fn unreachable_hmac<T>() -> Result<T, jsonwebtoken::errors::Error> {
    // Callers branch on `is_hmac` first; an HMAC algorithm never gets here.
    Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into())
}
