//! Shared fixtures for unit tests.

use std::time::Duration;

use crate::Timestamp;
use crate::auth::{Algorithm, KeyMaterial, TokenRequest, TokenSigner, TokenVerifier, VerifyOptions};

pub(crate) const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

pub(crate) fn hs_key(id: &str, secret: &[u8]) -> KeyMaterial {
    KeyMaterial {
        id: id.into(),
        algorithm: Algorithm::HS256,
        secret: Some(secret.to_vec()),
        public_pem: None,
        private_pem: None,
    }
}

pub(crate) fn options() -> VerifyOptions {
    VerifyOptions {
        leeway: Duration::from_secs(30),
        issuer: Some("palisade".into()),
        audience: Some("palisade".into()),
        max_token_bytes: 8192,
    }
}

pub(crate) fn key() -> KeyMaterial {
    hs_key("main", &[7u8; 32])
}

pub(crate) fn verifier() -> TokenVerifier {
    TokenVerifier::new(&[key()], options()).unwrap()
}

pub(crate) fn mint(sub: &str, roles: &[&str], ttl: Duration, now: Timestamp) -> String {
    let signer = TokenSigner::new(&key(), &options()).unwrap();
    let req = TokenRequest {
        user_id: sub.into(),
        name: Some(format!("{sub} name")),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        rooms: None,
        ttl,
    };
    signer.mint(req, now).unwrap()
}
