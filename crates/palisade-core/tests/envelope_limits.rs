//! `palisade_protocol::ENVELOPE_HEADROOM`, which sizes every write buffer,
//! assumes maxima for room names, event names and identity claims; the
//! core's rules must not let anything longer through.

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::auth::{Algorithm, KeyMaterial, TokenRequest, TokenSigner, TokenVerifier, VerifyOptions};
use palisade_core::policy::{EventSpec, Policy, PolicySpec, valid_room_name};
use palisade_protocol::{MAX_EVENT_LEN, MAX_IDENTITY_LEN, MAX_ROOM_LEN};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

#[test]
fn room_names_fit_the_envelope() {
    assert!(valid_room_name(&"r".repeat(MAX_ROOM_LEN)));
    assert!(!valid_room_name(&"r".repeat(MAX_ROOM_LEN + 1)));
}

#[test]
fn event_names_fit_the_envelope() {
    let compiles = |len: usize| {
        let mut spec = PolicySpec::default();
        spec.events.insert("e".repeat(len), EventSpec::default());
        Policy::compile(&spec).is_ok()
    };
    assert!(compiles(MAX_EVENT_LEN));
    assert!(!compiles(MAX_EVENT_LEN + 1));
}

#[test]
fn identity_claims_fit_the_envelope() {
    let now = Timestamp::from_secs(1_800_000_000);
    let key = KeyMaterial {
        id: "k".into(),
        algorithm: Algorithm::HS256,
        secret: Some(vec![7; 32]),
        public_pem: None,
        private_pem: None,
    };
    let options =
        VerifyOptions { leeway: Duration::from_secs(30), issuer: None, audience: None, max_token_bytes: 8192 };
    let verifier = TokenVerifier::new(std::slice::from_ref(&key), options.clone()).unwrap();
    let signer = TokenSigner::new(&key, &options).unwrap();
    let verifies = |sub: usize, name: usize| {
        let request = TokenRequest {
            user_id: "u".repeat(sub),
            name: Some("n".repeat(name)),
            ttl: Duration::from_secs(60),
            ..TokenRequest::default()
        };
        verifier.verify(&signer.mint(request, now, &mut StdRng::seed_from_u64(0)).unwrap(), now).is_ok()
    };
    assert!(verifies(MAX_IDENTITY_LEN, MAX_IDENTITY_LEN));
    assert!(!verifies(MAX_IDENTITY_LEN + 1, 1));
    assert!(!verifies(1, MAX_IDENTITY_LEN + 1));
}
