//! External token issuers (docs/ARCHITECTURE.md, "External issuers";
//! `[[auth.issuers]]` in docs/CONFIG.md §5a).
//!
//! A token is routed by its unverified `iss` before any key is looked up
//! or fetched. `iss` only *selects* among configured issuers: the URL a key
//! set is fetched from is config, never token, and a token that names an
//! external issuer must use one of that issuer's algorithms (and, for a key
//! set, carry a `kid`) before anything is fetched for it. Each issuer's
//! keys verify its own tokens only, and the own keys (`auth.keys`) verify
//! only tokens that name no external issuer, so no key of one trust domain
//! ever verifies a token of another. After the signature, the same claim
//! checks as for own tokens run, `iss` included.

use std::collections::HashSet;

use base64::Engine as _;
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde::Deserialize;

use super::claims::{self, AuthError, Claims, Identity, VerifyOptions};
use super::jwks::{FetchRequest, Installed, JwksCache, JwksError, JwksSpec, PinnedKey};
use super::keys::{Algorithm, KeyError, KeyMaterial};
use crate::Timestamp;

/// One `[[auth.issuers]]` entry, files already read.
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// Exact `iss` of its tokens.
    pub issuer: String,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Algorithms its tokens may use.
    pub algorithms: Vec<Algorithm>,
    /// Where its keys come from.
    pub keys: IssuerKeys,
}

/// Where an external issuer's keys come from.
#[derive(Debug, Clone)]
pub enum IssuerKeys {
    /// Keys given in config.
    Static(Vec<KeyMaterial>),
    /// A JSON Web Key Set the server fetches.
    Jwks(JwksSpec),
}

/// Why the issuers cannot be built. The server's config checks name the
/// key; these are the core's own guarantees.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// Empty, duplicate, or equal to the own `auth.issuer`.
    #[error("issuer `{0}`: must be non-empty and distinct from auth.issuer and every other issuer")]
    Name(String),
    /// No algorithm, an HMAC algorithm for a key set, or a static key
    /// whose algorithm is not in the list.
    #[error("issuer `{0}`: {1}")]
    Algorithms(String, &'static str),
    /// Static key material that cannot verify.
    #[error("issuer `{0}`: {1}")]
    Key(String, KeyError),
}

struct StaticKey {
    id: String,
    pinned: PinnedKey,
}

enum Keys {
    Static(Vec<StaticKey>),
    Jwks(JwksCache),
}

/// One configured external issuer.
pub(super) struct Issuer {
    name: String,
    algorithms: Vec<jsonwebtoken::Algorithm>,
    /// The claim checks of its tokens: its `iss` and audience, with the
    /// own leeway.
    options: VerifyOptions,
    keys: Keys,
}

/// Every configured external issuer, and the key sets fetched for them.
#[derive(Default)]
pub struct Issuers {
    list: Vec<Issuer>,
    max_token_bytes: usize,
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.list.iter().map(|i| i.name.as_str()).collect();
        f.debug_struct("Issuers").field("issuers", &names).finish_non_exhaustive()
    }
}

/// The only claim read before the signature is checked.
#[derive(Deserialize)]
struct IssOnly {
    #[serde(default)]
    iss: Option<String>,
}

impl Issuers {
    /// Builds the issuers; `own` are the own issuer's options (its `iss`
    /// must not be reused, its leeway and token size apply to all).
    pub fn new(specs: &[IssuerSpec], own: &VerifyOptions) -> Result<Self, IssuerError> {
        let mut names = HashSet::new();
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.issuer.clone();
            if name.is_empty() || own.issuer.as_deref() == Some(name.as_str()) || !names.insert(name.clone()) {
                return Err(IssuerError::Name(name));
            }
            if spec.algorithms.is_empty() {
                return Err(IssuerError::Algorithms(name, "needs at least one algorithm"));
            }
            let keys = match &spec.keys {
                IssuerKeys::Static(keys) => Keys::Static(static_keys(&name, keys, &spec.algorithms)?),
                IssuerKeys::Jwks(jwks) => {
                    if spec.algorithms.iter().any(|a| a.is_hmac()) {
                        return Err(IssuerError::Algorithms(name, "HMAC algorithms need static keys, not a key set"));
                    }
                    Keys::Jwks(JwksCache::new(jwks.clone(), spec.algorithms.clone()))
                }
            };
            let options = VerifyOptions {
                leeway: own.leeway,
                issuer: Some(name.clone()),
                audience: spec.audience.clone(),
                max_token_bytes: own.max_token_bytes,
            };
            let algorithms = spec.algorithms.iter().map(|a| a.to_jwt()).collect();
            list.push(Issuer { name, algorithms, options, keys });
        }
        Ok(Self { list, max_token_bytes: own.max_token_bytes })
    }

    /// Whether any issuer's keys come from a key set.
    pub fn has_jwks(&self) -> bool {
        self.list.iter().any(|i| matches!(i.keys, Keys::Jwks(_)))
    }

    /// The external issuer `token` names, after the checks that come before
    /// any key lookup or fetch: its algorithm is one the issuer allows
    /// ([`AuthError::WrongAlgorithm`]) and, for a key set, it carries a
    /// `kid` ([`AuthError::UnknownKey`]). `None`: no external issuer is
    /// named, the own keys decide.
    pub(super) fn route(&self, token: &str, header: &Header) -> Result<Option<&Issuer>, AuthError> {
        if self.list.is_empty() {
            return Ok(None);
        }
        let Some(iss) = peek_iss(token)? else {
            return Ok(None);
        };
        let Some(issuer) = self.list.iter().find(|i| i.name == iss) else {
            return Ok(None);
        };
        if !issuer.algorithms.contains(&header.alg) {
            return Err(AuthError::WrongAlgorithm);
        }
        if matches!(issuer.keys, Keys::Jwks(_)) && header.kid.is_none() {
            return Err(AuthError::UnknownKey);
        }
        Ok(Some(issuer))
    }

    /// The key set issuer and `kid` `token` needs, when its pre-checks pass
    /// and they are not both fresh in the cache.
    fn wanted(&self, token: &str) -> Option<(&Issuer, &JwksCache, String)> {
        if token.is_empty() || token.len() > self.max_token_bytes {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let issuer = self.route(token, &header).ok()??;
        let Keys::Jwks(cache) = &issuer.keys else {
            return None;
        };
        Some((issuer, cache, header.kid?))
    }

    /// The key set issuer whose key `token` needs and the cache lacks (or
    /// holds only stale): a fetch for it is due, or under way. Records
    /// nothing; the server takes the issuer's fetch lock and then asks
    /// [`Issuers::needs_fetch`].
    pub fn key_wanted(&self, token: &str, now: Timestamp) -> Option<String> {
        let (issuer, cache, kid) = self.wanted(token)?;
        cache.wants(&kid, now).then(|| issuer.name.clone())
    }

    /// The fetch to make before verifying `token`: only when the token
    /// passes the pre-checks, its (issuer, kid) is missing or stale, and
    /// `jwks_min_refresh` has passed since the issuer's last attempt. The
    /// attempt is recorded, so a flood of unknown `kid`s costs one fetch
    /// per interval.
    pub fn needs_fetch(&self, token: &str, now: Timestamp) -> Option<FetchRequest> {
        let (issuer, cache, kid) = self.wanted(token)?;
        cache.begin_fetch(&kid, now).then(|| FetchRequest {
            issuer: issuer.name.clone(),
            url: cache.spec.url.clone(),
            max_bytes: cache.spec.max_bytes,
            timeout: cache.spec.timeout,
        })
    }

    /// Installs a fetched document for `issuer`, replacing its keys; on
    /// error the keys in force stay.
    pub fn install_jwks(&self, issuer: &str, body: &[u8], now: Timestamp) -> Result<Installed, JwksError> {
        self.cache(issuer).ok_or_else(|| JwksError::UnknownIssuer(issuer.to_owned()))?.install(body, now)
    }

    /// Whether a fetch for `issuer` may start at `now` (`jwks_min_refresh`).
    pub fn may_fetch(&self, issuer: &str, now: Timestamp) -> bool {
        self.cache(issuer).is_some_and(|c| c.may_fetch(now))
    }

    fn cache(&self, issuer: &str) -> Option<&JwksCache> {
        self.list.iter().find(|i| i.name == issuer).and_then(|i| match &i.keys {
            Keys::Jwks(cache) => Some(cache),
            Keys::Static(_) => None,
        })
    }
}

impl Issuer {
    /// Verifies a token [`Issuers::route`] sent here: the signature with
    /// this issuer's key for the header, then the claims.
    pub(super) fn verify(&self, token: &str, header: &Header, now: Timestamp) -> Result<Identity, AuthError> {
        let claims = match &self.keys {
            Keys::Static(keys) => {
                let key = match &header.kid {
                    Some(kid) => keys.iter().find(|k| &k.id == kid),
                    None => keys.iter().find(|k| k.pinned.algorithm == header.alg),
                }
                .ok_or(AuthError::UnknownKey)?;
                decode(token, header, &key.pinned)?
            }
            Keys::Jwks(cache) => {
                // `route` refused a key-set token without a `kid`.
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                let key = cache.lookup(kid).ok_or(AuthError::UnknownKey)?;
                decode(token, header, &key)?
            }
        };
        let mut identity = claims::check(&self.options, claims, now)?;
        // Login sessions, and the refresh tokens that go with them, are
        // the own issuer's: an external token's `sid` names nothing here.
        identity.session_id = None;
        identity.device = None;
        identity.external_issuer = Some(self.name.clone());
        Ok(identity)
    }
}

fn static_keys(name: &str, keys: &[KeyMaterial], allowed: &[Algorithm]) -> Result<Vec<StaticKey>, IssuerError> {
    if keys.is_empty() {
        return Err(IssuerError::Algorithms(name.to_owned(), "needs at least one key"));
    }
    keys.iter()
        .map(|k| {
            if !allowed.contains(&k.algorithm) {
                return Err(IssuerError::Algorithms(name.to_owned(), "a key's algorithm is not in `algorithms`"));
            }
            let key: DecodingKey = k.decoding_key().map_err(|e| IssuerError::Key(name.to_owned(), e))?;
            Ok(StaticKey { id: k.id.clone(), pinned: PinnedKey { algorithm: k.algorithm.to_jwt(), key } })
        })
        .collect()
}

/// Checks the signature with `key`, pinned to its one algorithm.
fn decode(token: &str, header: &Header, key: &PinnedKey) -> Result<Claims, AuthError> {
    if key.algorithm != header.alg {
        return Err(AuthError::WrongAlgorithm);
    }
    let mut validation = Validation::new(key.algorithm);
    // As for own tokens: claims are checked against the caller's `now` in
    // `claims::check`, not by jsonwebtoken against the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map(|d| d.claims).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
            ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => AuthError::BadClaims,
            _ => AuthError::Malformed,
        }
    })
}

/// The payload's `iss`, read without checking the signature: it only picks
/// which keys may verify the token. The caller has bounded the token's
/// length (`auth.max_token_bytes`). A payload that is not base64url JSON,
/// whose `iss` is not a string, or that has two `iss` members is refused:
/// the signed claims are read with the same rules, so what routes a token
/// is what its signature covers.
fn peek_iss(token: &str) -> Result<Option<String>, AuthError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed);
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|_| AuthError::Malformed)?;
    let claims: IssOnly = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
    Ok(claims.iss)
}

#[cfg(test)]
#[path = "issuers_tests.rs"]
mod tests;
