use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::identity::{IdentityError, check_name, check_sub};
use super::issuers::Issuers;
use super::keys::{KeyError, KeyMaterial};
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
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rooms: Option<Vec<String>>,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dev: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
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

struct VerifyKey {
    id: String,
    algorithm: jsonwebtoken::Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies access tokens against a set of keys.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<[VerifyKey]>,
    options: VerifyOptions,
    /// External issuers and their key caches, shared by every clone.
    issuers: Arc<Issuers>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("TokenVerifier").field("keys", &ids).finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds a verifier; fails if any key is unusable.
    pub fn new(keys: &[KeyMaterial], options: VerifyOptions) -> Result<Self, KeyError> {
        let keys = keys
            .iter()
            .map(|k| {
                let algorithm = k.algorithm.to_jwt();
                let mut validation = Validation::new(algorithm);
                // Claims are checked in `check_claims` against the caller's
                // `now`; jsonwebtoken would read the system clock instead.
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validation.validate_aud = false;
                validation.required_spec_claims = HashSet::new();
                Ok(VerifyKey { id: k.id.clone(), algorithm, key: k.decoding_key()?, validation })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(Self { keys: keys.into(), options, issuers: Arc::default() })
    }

    /// The verifier, also accepting the tokens of external issuers
    /// (docs/ARCHITECTURE.md, "External issuers").
    pub fn with_issuers(mut self, issuers: Issuers) -> Self {
        self.issuers = Arc::new(issuers);
        self
    }

    /// The external issuers, whose key sets the server fetches.
    pub fn issuers(&self) -> &Issuers {
        &self.issuers
    }

    /// The options in force.
    pub fn options(&self) -> &VerifyOptions {
        &self.options
    }

    /// Verifies `token` at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Identity, AuthError> {
        if token.is_empty() || token.len() > self.options.max_token_bytes {
            return Err(AuthError::Malformed);
        }
        // `alg: none` and unknown algorithms fail here: jsonwebtoken's
        // algorithm enum has no `none`.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // A token naming an external issuer is that issuer's keys' alone;
        // the own keys see only the others (docs/ARCHITECTURE.md, "External
        // issuers").
        if let Some(issuer) = self.issuers.route(token, &header)? {
            return issuer.verify(token, &header, now);
        }
        let key = self.select_key(&header)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
                ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => AuthError::BadClaims,
                _ => AuthError::Malformed,
            }
        })?;
        Self::check_claims(&self.options, data.claims, now)
    }

    fn select_key(&self, header: &Header) -> Result<&VerifyKey, AuthError> {
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|k| &k.id == kid).ok_or(AuthError::UnknownKey)?,
            // Without a `kid`, only a key pinned to the header's algorithm
            // may be tried; the first one configured wins.
            None => self.keys.iter().find(|k| k.algorithm == header.alg).ok_or(AuthError::UnknownKey)?,
        };
        if key.algorithm != header.alg {
            return Err(AuthError::WrongAlgorithm);
        }
        Ok(key)
    }

    pub(super) fn check_claims(options: &VerifyOptions, c: Claims, now: Timestamp) -> Result<Identity, AuthError> {
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
}

/// Mints access tokens with one of our own keys.
pub struct TokenSigner {
    kid: String,
    algorithm: jsonwebtoken::Algorithm,
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// What goes into a minted token.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `sub`.
    pub user_id: String,
    /// `name`.
    pub name: Option<String>,
    /// `roles`.
    pub roles: Vec<String>,
    /// `rooms`.
    pub rooms: Option<Vec<String>>,
    /// Lifetime from `now`.
    pub ttl: Duration,
    /// `sid`, for a login session's tokens.
    pub session_id: Option<String>,
    /// `dev`, for a session bound to its device.
    pub device: Option<String>,
}

impl TokenSigner {
    /// A signer for `key`, stamping the verifier's issuer and audience.
    pub fn new(key: &KeyMaterial, options: &VerifyOptions) -> Result<Self, KeyError> {
        Ok(Self {
            kid: key.id.clone(),
            algorithm: key.algorithm.to_jwt(),
            key: key.encoding_key()?,
            issuer: options.issuer.clone(),
            audience: options.audience.clone(),
        })
    }

    /// Signs a token valid from `now` for `req.ttl`.
    pub fn mint(&self, req: TokenRequest, now: Timestamp) -> Result<String, KeyError> {
        let claims = Claims {
            sub: req.user_id,
            name: req.name,
            roles: req.roles,
            rooms: req.rooms,
            exp: now.saturating_add(req.ttl).as_secs(),
            nbf: None,
            iat: Some(now.as_secs()),
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
            jti: Some(crate::random_id("t_")),
            sid: req.session_id,
            dev: req.device,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| KeyError::CannotSign(self.kid.clone()))
    }
}
