//! The key cache of one JWKS issuer: which keys a fetched JSON Web Key Set
//! holds, when it was fetched, and when the next fetch is allowed
//! (docs/ARCHITECTURE.md, "External issuers"). Pure: every instant is an
//! argument, the fetch itself is the server's.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::keys::Algorithm;
use crate::Timestamp;

/// Most keys kept for one issuer: a key set is a handful of keys in
/// rotation, and this bounds what one document may make us hold.
pub const MAX_JWKS_KEYS: usize = 64;

/// Where and how an issuer's key set is fetched (`[[auth.issuers]]` with
/// `jwks_url`, docs/CONFIG.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSpec {
    /// The document's URL; only ever from config, never from a token.
    pub url: String,
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Shortest time between two fetch attempts, failed ones included.
    pub min_refresh: Duration,
    /// Time allowed for one whole fetch (the server enforces it).
    pub timeout: Duration,
    /// Age after which the keys are fetched again on next use.
    pub max_age: Duration,
}

/// A fetch the server should perform now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The issuer (`iss`) whose key set this is.
    pub issuer: String,
    /// Its configured URL.
    pub url: String,
    /// Stop reading the body past this many bytes.
    pub max_bytes: usize,
    /// Give up on the whole fetch after this long.
    pub timeout: Duration,
}

/// Why a fetched document was not installed; the keys in force stay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// No JWKS issuer of that name is configured.
    #[error("no JWKS issuer `{0}` is configured")]
    UnknownIssuer(String),
    /// The document is larger than `jwks_max_bytes`.
    #[error("document of {size} bytes is over jwks_max_bytes ({max})")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not a JSON object with a `keys` array.
    #[error("not a JSON Web Key Set: {0}")]
    NotJwks(String),
}

/// What an install kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    /// Keys now in force for the issuer.
    pub keys: usize,
    /// Entries left out: no `kid`, a duplicate `kid`, a key type or `alg`
    /// the issuer does not allow, an encryption key, bad key material, or
    /// beyond [`MAX_JWKS_KEYS`].
    pub skipped: usize,
}

/// One verification key, pinned to exactly one algorithm.
pub(super) struct PinnedKey {
    pub(super) algorithm: jsonwebtoken::Algorithm,
    pub(super) key: DecodingKey,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<PinnedKey>>,
    /// Last document installed.
    fetched_at: Option<Timestamp>,
    /// Last fetch started, successful or not.
    attempted_at: Option<Timestamp>,
}

impl State {
    fn wants(&self, spec: &JwksSpec, kid: &str, now: Timestamp) -> bool {
        let stale = self.fetched_at.is_none_or(|at| now >= at.saturating_add(spec.max_age));
        stale || !self.keys.contains_key(kid)
    }

    fn may_fetch(&self, spec: &JwksSpec, now: Timestamp) -> bool {
        self.attempted_at.is_none_or(|at| now >= at.saturating_add(spec.min_refresh))
    }
}

/// One issuer's cache. Keyed by `kid` within the issuer: the issuer's own
/// entry holds it, so the cache as a whole is keyed by (issuer, kid) and a
/// `kid` of one issuer never finds another issuer's key.
pub(super) struct JwksCache {
    pub(super) spec: JwksSpec,
    allowed: Vec<Algorithm>,
    state: RwLock<State>,
}

impl JwksCache {
    pub(super) fn new(spec: JwksSpec, allowed: Vec<Algorithm>) -> Self {
        Self { spec, allowed, state: RwLock::default() }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves the map whole (every write
        // is one assignment), so a poisoned lock is still usable.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key for `kid`, if the last document had it.
    pub(super) fn lookup(&self, kid: &str) -> Option<Arc<PinnedKey>> {
        self.read().keys.get(kid).cloned()
    }

    /// Whether `kid` is missing, or every key is older than `max_age`:
    /// a fetch is due, or under way.
    pub(super) fn wants(&self, kid: &str, now: Timestamp) -> bool {
        self.read().wants(&self.spec, kid, now)
    }

    /// Whether a fetch may start at `now`: `min_refresh` has passed since
    /// the last attempt, failed or not.
    pub(super) fn may_fetch(&self, now: Timestamp) -> bool {
        self.read().may_fetch(&self.spec, now)
    }

    /// [`Self::wants`] and [`Self::may_fetch`], and if both, records the
    /// attempt, in one step: two callers never both get to fetch within
    /// `min_refresh`.
    pub(super) fn begin_fetch(&self, kid: &str, now: Timestamp) -> bool {
        let mut state = self.write();
        if !state.wants(&self.spec, kid, now) || !state.may_fetch(&self.spec, now) {
            return false;
        }
        state.attempted_at = Some(now);
        true
    }

    /// Replaces the key set with the one in `body`. On error the keys in
    /// force stay.
    pub(super) fn install(&self, body: &[u8], now: Timestamp) -> Result<Installed, JwksError> {
        if body.len() > self.spec.max_bytes {
            return Err(JwksError::TooLarge { size: body.len(), max: self.spec.max_bytes });
        }
        let (keys, skipped) = parse(body, &self.allowed)?;
        let installed = Installed { keys: keys.len(), skipped };
        let mut state = self.write();
        // A rotation replaces the set: a key the issuer dropped stops
        // verifying now, not when it would have expired from a cache.
        state.keys = keys;
        state.fetched_at = Some(now);
        Ok(installed)
    }
}

#[derive(Deserialize)]
struct RawSet<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

/// Parses a key set. Each entry is parsed on its own: one key of a type
/// jsonwebtoken does not know (a post-quantum key, say) must not make the
/// issuer's other keys unusable.
fn parse(body: &[u8], allowed: &[Algorithm]) -> Result<(HashMap<String, Arc<PinnedKey>>, usize), JwksError> {
    let text = std::str::from_utf8(body).map_err(|_| JwksError::NotJwks("not UTF-8".into()))?;
    let set: RawSet<'_> = serde_json::from_str(text).map_err(|e| JwksError::NotJwks(e.to_string()))?;
    let mut keys = HashMap::new();
    let mut skipped = 0;
    for raw in set.keys {
        let usable = serde_json::from_str::<Jwk>(raw.get()).ok().and_then(|jwk| {
            let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty())?;
            let algorithm = fit(&jwk, allowed)?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((kid, PinnedKey { algorithm: algorithm.to_jwt(), key }))
        });
        match usable {
            // The first key with a `kid` wins; a second one with the same
            // `kid` would make the choice depend on order.
            Some((kid, key)) if keys.len() < MAX_JWKS_KEYS && !keys.contains_key(&kid) => {
                keys.insert(kid, Arc::new(key));
            }
            _ => skipped += 1,
        }
    }
    Ok((keys, skipped))
}

/// The one algorithm a JWK may verify, from its key type and curve, if the
/// issuer allows it and the JWK's own `alg` and `use` (when given) agree.
/// Shared secrets (`kty: oct`) never come from a key set: an HMAC key
/// published for anyone to read would let anyone sign.
fn fit(jwk: &Jwk, allowed: &[Algorithm]) -> Option<Algorithm> {
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok();
    let (algorithm, named) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            // 2048 to 8192 bits, as the verifier accepts.
            let n = b64(&p.n)?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            (2048..=8192).contains(&bits).then_some(())?;
            (Algorithm::RS256, KeyAlgorithm::RS256)
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (b64(&p.x)?.len() == 32 && b64(&p.y)?.len() == 32).then_some(())?;
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (b64(&p.x)?.len() == 32).then_some(())?;
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        _ => return None,
    };
    if jwk.common.key_algorithm.is_some_and(|a| a != named) {
        return None;
    }
    allowed.contains(&algorithm).then_some(algorithm)
}
