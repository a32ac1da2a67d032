//! What a token claims, and the checks every token's claims pass beyond its
//! signature, whichever key (own or an external issuer's) verified it. A
//! leaf: the own keys' verifier and the external issuers both use it, and
//! it uses neither.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::identity::{IdentityError, check_name, check_sub};
use crate::Timestamp;

/// Why a token was refused. Every variant looks the same to the client
/// (HTTP 401, one body); the variant is for the operator's log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented.
    #[error("no credential")]
    Missing,
    /// More than one credential was presented.
    #[error("more than one credential")]
    Ambiguous,
    /// The token is not a well-formed JWT.
    #[error("malformed token")]
    Malformed,
    /// The header names a key we do not have, or no key fits.
    #[error("unknown key")]
    UnknownKey,
    /// The header's algorithm is not the one pinned for the key.
    #[error("algorithm not allowed for key")]
    WrongAlgorithm,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A required claim is absent or of the wrong type.
    #[error("missing or invalid claim")]
    BadClaims,
    /// `exp` is in the past (beyond leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` does not match.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not match.
    #[error("wrong audience")]
    WrongAudience,
    /// `sub` or `name` breaks the identity rules (docs/PROTOCOL.md §1.4).
    #[error("identity claim refused: {0}")]
    BadIdentity(IdentityError),
}

/// Checks applied to every token, beyond its signature.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences), when set.
    pub audience: Option<String>,
    /// Longest accepted token, in bytes; longer ones are refused unparsed.
    pub max_token_bytes: usize,
}

/// A user whose token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`.
    pub user_id: String,
    /// `name`, or `sub` when absent.
    pub name: String,
    /// `roles` from the token.
    pub roles: Vec<String>,
    /// `rooms` from the token: when present, the only rooms it may join.
    pub rooms: Option<Vec<String>>,
    /// `exp`.
    pub expires_at: Timestamp,
    /// `jti`, for revocation.
    pub token_id: Option<String>,
    /// `iat`, for revoking a user's tokens issued before an instant.
    pub issued_at: Option<Timestamp>,
    /// `sid`: the login session the own issuer minted the token for.
    pub session_id: Option<String>,
    /// `dev`: the device fingerprint the session is bound to.
    pub device: Option<String>,
    /// The external issuer (`auth.issuers`) that signed the token; `None`
    /// for the own keys. Two tokens with one `sub` from different issuers
    /// are not the same user's to swap on a live connection.
    pub external_issuer: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    pub(super) sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rooms: Option<Vec<String>>,
    pub(super) exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) dev: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(a) => a == aud,
            Self::Many(all) => all.iter().any(|a| a == aud),
        }
    }
}

/// Most roles or rooms a token may carry.
const MAX_LIST_LEN: usize = 64;

/// The claims every token must pass beyond its signature, at `now`.
pub(super) fn check(options: &VerifyOptions, c: Claims, now: Timestamp) -> Result<Identity, AuthError> {
    let leeway = options.leeway;
    let expires_at = Timestamp::from_secs(c.exp);
    if now > expires_at.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if c.nbf.is_some_and(|nbf| now.saturating_add(leeway) < Timestamp::from_secs(nbf)) {
        return Err(AuthError::NotYetValid);
    }
    if let Some(want) = &options.issuer
        && c.iss.as_deref() != Some(want)
    {
        return Err(AuthError::WrongIssuer);
    }
    if let Some(want) = &options.audience
        && !c.aud.as_ref().is_some_and(|a| a.contains(want))
    {
        return Err(AuthError::WrongAudience);
    }
    // `sub` and `name` are broadcast as `from` to every room member.
    check_sub(&c.sub).map_err(AuthError::BadIdentity)?;
    let name = c.name.unwrap_or_else(|| c.sub.clone());
    check_name(&name).map_err(AuthError::BadIdentity)?;
    if c.roles.len() > MAX_LIST_LEN || c.rooms.as_ref().is_some_and(|r| r.len() > MAX_LIST_LEN) {
        return Err(AuthError::BadClaims);
    }
    let issued_at = c.iat.map(Timestamp::from_secs);
    Ok(Identity {
        user_id: c.sub,
        name,
        roles: c.roles,
        rooms: c.rooms,
        expires_at,
        token_id: c.jti,
        issued_at,
        session_id: c.sid,
        device: c.dev,
        external_issuer: None,
    })
}
