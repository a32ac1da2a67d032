use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};

use super::claims::{self, Audience, AuthError, Claims, Identity, VerifyOptions};
use super::issuers::Issuers;
use super::keys::{Algorithm, KeyError, KeyMaterial};
use crate::Timestamp;

struct VerifyKey {
    id: String,
    algorithm: jsonwebtoken::Algorithm,
    check: Check,
}

/// How a key checks a signature.
enum Check {
    /// A shared secret, keyed once: `jsonwebtoken::decode` keys a new HMAC
    /// and parses the header twice and the claims twice on every call,
    /// which on the handshake is work bought again for nothing. The same
    /// library (aws-lc) computes and compares the MAC, in constant time.
    Hmac(Box<hmac::Key>),
    /// A key pair: `jsonwebtoken` checks it.
    Pair(Box<(DecodingKey, Validation)>),
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
                let key = k.decoding_key()?;
                let check = match hmac_algorithm(k.algorithm) {
                    Some(mac) => Check::Hmac(Box::new(hmac::Key::new(mac, key.as_bytes()))),
                    None => {
                        let mut validation = Validation::new(algorithm);
                        // Claims are checked in `claims::check` against the
                        // caller's `now`; jsonwebtoken would read the system
                        // clock instead.
                        validation.validate_exp = false;
                        validation.validate_nbf = false;
                        validation.validate_aud = false;
                        validation.required_spec_claims = HashSet::new();
                        Check::Pair(Box::new((key, validation)))
                    }
                };
                Ok(VerifyKey { id: k.id.clone(), algorithm, check })
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
        let claims = match &key.check {
            Check::Hmac(mac) => hmac_claims(mac, token)?,
            Check::Pair(pair) => {
                jsonwebtoken::decode::<Claims>(token, &pair.0, &pair.1)
                    .map_err(|e| {
                        use jsonwebtoken::errors::ErrorKind;
                        match e.kind() {
                            ErrorKind::InvalidSignature => AuthError::BadSignature,
                            ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
                            ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => AuthError::BadClaims,
                            _ => AuthError::Malformed,
                        }
                    })?
                    .claims
            }
        };
        claims::check(&self.options, claims, now)
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
}

/// The aws-lc HMAC of an HMAC key's algorithm; `None` for a key pair.
fn hmac_algorithm(algorithm: Algorithm) -> Option<hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        Algorithm::EdDSA | Algorithm::RS256 | Algorithm::ES256 => None,
    }
}

/// The claims of `token` once its MAC checks, as `jsonwebtoken::decode`
/// finds them: the same split (the signature after the last dot, the
/// claims after the one before; the header, parsed by the caller, is the
/// rest), the same base64url without padding, the MAC over the same bytes,
/// the signature checked before the claims are read, and the same errors.
fn hmac_claims(mac: &hmac::Key, token: &str) -> Result<Claims, AuthError> {
    use base64::Engine as _;
    let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (message, signature) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
    let (_, payload) = message.rsplit_once('.').ok_or(AuthError::Malformed)?;
    let signature = b64.decode(signature).map_err(|_| AuthError::Malformed)?;
    hmac::verify(mac, message.as_bytes(), &signature).map_err(|_| AuthError::BadSignature)?;
    let claims = b64.decode(payload).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&claims).map_err(|_| AuthError::BadClaims)
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

    /// Signs a token valid from `now` for `req.ttl`, its `jti` drawn from
    /// `rng`.
    pub fn mint(&self, req: TokenRequest, now: Timestamp, rng: &mut impl rand::CryptoRng) -> Result<String, KeyError> {
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
            jti: Some(crate::random_id("t_", rng)),
            sid: req.session_id,
            dev: req.device,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| KeyError::CannotSign(self.kid.clone()))
    }
}
