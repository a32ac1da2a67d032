//! External issuers on a virtual clock: routing before any fetch, the
//! fetch rate limit, rotation, bad documents, and no key confusion across
//! issuers.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::auth::{IssuerKeys, IssuerSpec, JwksSpec, KeyMaterial, TokenVerifier};
use crate::testkit::{T0, key, mint, options};

const HOUR: Duration = Duration::from_secs(3600);
const MIN_REFRESH: Duration = Duration::from_secs(60);
const IDP: &str = "https://idp.example";

// Ed25519 test-only key pairs (`openssl genpkey -algorithm ed25519`); the
// same files are under crates/palisade-server/tests/data/.
const ED_A_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDcsTl47tGugY2vwMbsJ79rTjE1UBJbb/InYvrzvjKWc\n-----END PRIVATE KEY-----\n";
const ED_A_X: &str = "JiexXPmlzEYfS9u36Yd8qTycqoB1w3FKGYyegGfa2iI";
const ED_B_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEID1xvye355snU8slRYhzQT6BQjSjnPXfY5v2X2TBLGgv\n-----END PRIVATE KEY-----\n";
const ED_B_X: &str = "jlfXZSWTXBisi34FkQ8cIHyKeqOhm_G5vP2H2Hs8xhY";
const ED_A_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJiexXPmlzEYfS9u36Yd8qTycqoB1w3FKGYyegGfa2iI=\n-----END PUBLIC KEY-----\n";

fn jwks_spec() -> JwksSpec {
    JwksSpec {
        url: format!("{IDP}/jwks.json"),
        max_bytes: 4096,
        min_refresh: MIN_REFRESH,
        timeout: Duration::from_secs(5),
        max_age: HOUR,
    }
}

fn idp(algorithms: &[Algorithm]) -> IssuerSpec {
    IssuerSpec {
        issuer: IDP.into(),
        audience: Some("chat".into()),
        algorithms: algorithms.to_vec(),
        keys: IssuerKeys::Jwks(jwks_spec()),
    }
}

fn verifier_with(specs: &[IssuerSpec]) -> TokenVerifier {
    TokenVerifier::new(&[key()], options()).unwrap().with_issuers(Issuers::new(specs, &options()).unwrap())
}

fn jwk(kid: &str, x: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": x})
}

fn jwks(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

fn claims(iss: &str) -> Value {
    json!({"sub": "ext-1", "name": "External", "iss": iss, "aud": "chat", "exp": T0.as_secs() + 600, "iat": T0.as_secs()})
}

fn sign_ed(private: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_pem(private.as_bytes()).unwrap()).unwrap()
}

fn sign_hs(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn at(secs: u64) -> Timestamp {
    T0.saturating_add(Duration::from_secs(secs))
}

#[test]
fn a_key_set_token_is_fetched_for_once_then_verifies() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let token = sign_ed(ED_A_PRIVATE, Some("a"), &claims(IDP));
    assert_eq!(v.verify(&token, T0), Err(AuthError::UnknownKey), "nothing fetched yet");
    assert_eq!(v.issuers().key_wanted(&token, T0).as_deref(), Some(IDP));
    let req = v.issuers().needs_fetch(&token, T0).expect("a fetch is due");
    assert_eq!((req.issuer.as_str(), req.url.as_str(), req.max_bytes), (IDP, "https://idp.example/jwks.json", 4096));
    let installed = v.issuers().install_jwks(IDP, &jwks(&[jwk("a", ED_A_X)]), T0).unwrap();
    assert_eq!(installed, Installed { keys: 1, skipped: 0 });
    let id = v.verify(&token, T0).unwrap();
    assert_eq!((id.user_id.as_str(), id.name.as_str()), ("ext-1", "External"));
    // Fresh and present: no fetch wanted.
    assert_eq!(v.issuers().key_wanted(&token, at(1)), None);
    assert_eq!(v.issuers().needs_fetch(&token, at(1)), None);
}

#[test]
fn selection_refuses_before_any_fetch() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let no_fetch = |token: &str, want: AuthError| {
        assert_eq!(v.issuers().key_wanted(token, T0), None, "{want:?}");
        assert_eq!(v.issuers().needs_fetch(token, T0), None, "{want:?}");
        assert_eq!(v.verify(token, T0), Err(want));
    };
    // An algorithm the issuer does not allow (HS256, signed with the
    // public key's bytes as the secret: the classic confusion).
    let public_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(ED_A_X).unwrap();
    let mut secret = public_bytes.clone();
    secret.extend_from_slice(&public_bytes);
    no_fetch(&sign_hs(&secret, Some("a"), &claims(IDP)), AuthError::WrongAlgorithm);
    // No `kid` for a key-set issuer.
    no_fetch(&sign_ed(ED_A_PRIVATE, None, &claims(IDP)), AuthError::UnknownKey);
    // An issuer nobody configured goes to the own keys, which do not know it.
    no_fetch(&sign_ed(ED_A_PRIVATE, Some("a"), &claims("https://evil.example")), AuthError::UnknownKey);
    // Nothing was attempted: the first legitimate token may fetch at once.
    assert!(v.issuers().may_fetch(IDP, T0));
}

#[test]
fn an_unknown_kid_flood_costs_one_fetch_per_interval() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let mut fetches = 0;
    for i in 0..1000u64 {
        let now = T0.saturating_add(Duration::from_millis(i * 100)); // 100 s in all
        let token = sign_ed(ED_A_PRIVATE, Some(&format!("nope-{i}")), &claims(IDP));
        assert!(v.issuers().key_wanted(&token, now).is_some());
        if v.issuers().needs_fetch(&token, now).is_some() {
            fetches += 1;
            // The document never has the kid.
            v.issuers().install_jwks(IDP, &jwks(&[jwk("a", ED_A_X)]), now).unwrap();
        }
        assert_eq!(v.verify(&token, now), Err(AuthError::UnknownKey));
    }
    // At 0 s and at 60 s.
    assert_eq!(fetches, 2);
}

#[test]
fn a_failed_fetch_also_waits_for_the_interval() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let token = sign_ed(ED_A_PRIVATE, Some("a"), &claims(IDP));
    assert!(v.issuers().needs_fetch(&token, T0).is_some());
    // The server's fetch failed: nothing installed.
    assert!(!v.issuers().may_fetch(IDP, at(59)));
    assert_eq!(v.issuers().needs_fetch(&token, at(59)), None);
    assert!(v.issuers().needs_fetch(&token, at(60)).is_some());
}

#[test]
fn a_rotation_replaces_the_key_set() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let token_a = sign_ed(ED_A_PRIVATE, Some("a"), &claims(IDP));
    let token_b = sign_ed(ED_B_PRIVATE, Some("b"), &claims(IDP));
    assert!(v.issuers().needs_fetch(&token_a, T0).is_some());
    v.issuers().install_jwks(IDP, &jwks(&[jwk("a", ED_A_X)]), T0).unwrap();
    assert!(v.verify(&token_a, T0).is_ok());
    // The issuer now publishes only b: b is unknown until the next fetch,
    // which waits for the interval.
    assert_eq!(v.issuers().needs_fetch(&token_b, at(10)), None);
    assert_eq!(v.verify(&token_b, at(10)), Err(AuthError::UnknownKey));
    assert!(v.issuers().needs_fetch(&token_b, at(61)).is_some());
    v.issuers().install_jwks(IDP, &jwks(&[jwk("b", ED_B_X)]), at(61)).unwrap();
    assert!(v.verify(&token_b, at(61)).is_ok());
    // a is gone with the old set, and cannot force a refetch now.
    assert_eq!(v.verify(&token_a, at(62)), Err(AuthError::UnknownKey));
    assert_eq!(v.issuers().needs_fetch(&token_a, at(62)), None);
}

#[test]
fn stale_keys_are_refetched_on_next_use_and_verify_meanwhile() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let mut c = claims(IDP);
    c["exp"] = json!(T0.as_secs() + 3 * 3600);
    let token = sign_ed(ED_A_PRIVATE, Some("a"), &c);
    assert!(v.issuers().needs_fetch(&token, T0).is_some());
    v.issuers().install_jwks(IDP, &jwks(&[jwk("a", ED_A_X)]), T0).unwrap();
    assert_eq!(v.issuers().key_wanted(&token, at(3599)), None);
    // After `jwks_max_age`, the next use fetches again; until that fetch
    // succeeds, the keys in force still verify.
    assert!(v.issuers().needs_fetch(&token, at(3600)).is_some());
    assert!(v.verify(&token, at(3600)).is_ok());
}

#[test]
fn oversize_or_garbage_documents_keep_the_previous_keys() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let token = sign_ed(ED_A_PRIVATE, Some("a"), &claims(IDP));
    v.issuers().install_jwks(IDP, &jwks(&[jwk("a", ED_A_X)]), T0).unwrap();
    let mut big = jwks(&[jwk("b", ED_B_X)]);
    big.resize(4097, b' ');
    assert_eq!(v.issuers().install_jwks(IDP, &big, at(61)), Err(JwksError::TooLarge { size: 4097, max: 4096 }));
    for garbage in [&b"not json"[..], b"{\"keys\": 5}", b"[]", b"\xff\xfe", b"{\"keys\":[{\"kty\":\"OKP\"}],"] {
        assert!(matches!(v.issuers().install_jwks(IDP, garbage, at(61)), Err(JwksError::NotJwks(_))), "{garbage:?}");
    }
    assert!(v.verify(&token, at(61)).is_ok(), "the previous keys are still in force");
    assert!(matches!(v.issuers().install_jwks("https://other", b"{}", T0), Err(JwksError::UnknownIssuer(_))));
}

#[test]
fn keys_that_do_not_fit_the_issuer_are_skipped() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let doc = jwks(&[
        jwk("a", ED_A_X),
        // Duplicate kid: the first one stays.
        jwk("a", ED_B_X),
        // No kid.
        json!({"kty": "OKP", "crv": "Ed25519", "x": ED_B_X}),
        // An HMAC key never comes from a key set.
        json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}),
        // An encryption key.
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "use": "enc", "x": ED_B_X}),
        // `alg` that contradicts the key type.
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "r", "alg": "RS256", "x": ED_B_X}),
        // An algorithm the issuer does not allow (ES256).
        json!({"kty": "EC", "crv": "P-256", "kid": "p", "x": ED_A_X, "y": ED_B_X}),
        // A key type jsonwebtoken does not know, and bad material.
        json!({"kty": "AKP", "kid": "pq", "alg": "ML-DSA-44", "pub": "AAAA"}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"}),
        // No `alg`: inferred from the key type.
        jwk("b", ED_B_X)
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("alg");
                Value::Object(o)
            })
            .unwrap(),
    ]);
    assert_eq!(v.issuers().install_jwks(IDP, &doc, T0).unwrap(), Installed { keys: 2, skipped: 8 });
    assert!(v.verify(&sign_ed(ED_A_PRIVATE, Some("a"), &claims(IDP)), T0).is_ok());
    assert!(v.verify(&sign_ed(ED_B_PRIVATE, Some("b"), &claims(IDP)), T0).is_ok());
}

#[test]
fn a_key_set_is_bounded() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    let mut spec = idp(&[Algorithm::EdDSA]);
    if let IssuerKeys::Jwks(j) = &mut spec.keys {
        j.max_bytes = 1 << 20;
    }
    let v2 = verifier_with(&[spec]);
    let keys: Vec<Value> = (0..100).map(|i| jwk(&format!("k{i}"), ED_A_X)).collect();
    assert!(matches!(v.issuers().install_jwks(IDP, &jwks(&keys), T0), Err(JwksError::TooLarge { .. })));
    assert_eq!(v2.issuers().install_jwks(IDP, &jwks(&keys), T0).unwrap(), Installed { keys: 64, skipped: 36 });
}

#[test]
fn an_hs256_token_claiming_an_eddsa_issuer_is_refused_even_with_a_static_key() {
    // A static-key issuer pinned to EdDSA; the attacker signs HS256 with
    // the public PEM as the secret and names the issuer and the key's kid.
    let spec = IssuerSpec {
        issuer: IDP.into(),
        audience: None,
        algorithms: vec![Algorithm::EdDSA],
        keys: IssuerKeys::Static(vec![KeyMaterial {
            id: "a".into(),
            algorithm: Algorithm::EdDSA,
            secret: None,
            public_pem: Some(ED_A_PUBLIC.into()),
            private_pem: None,
        }]),
    };
    let v = verifier_with(&[spec]);
    let forged = sign_hs(ED_A_PUBLIC.as_bytes(), Some("a"), &claims(IDP));
    assert_eq!(v.verify(&forged, T0), Err(AuthError::WrongAlgorithm));
    // The real thing verifies, with or without a kid.
    assert!(v.verify(&sign_ed(ED_A_PRIVATE, Some("a"), &claims(IDP)), T0).is_ok());
    assert!(v.verify(&sign_ed(ED_A_PRIVATE, None, &claims(IDP)), T0).is_ok());
    assert_eq!(v.issuers().needs_fetch(&sign_ed(ED_A_PRIVATE, Some("a"), &claims(IDP)), T0), None);
}

#[test]
fn no_key_confusion_across_issuers() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    v.issuers().install_jwks(IDP, &jwks(&[jwk("a", ED_A_X), jwk("main", ED_B_X)]), T0).unwrap();
    // An own-issuer token is verified by the own keys only, even when a
    // key set holds a key with its kid.
    assert!(v.verify(&mint("u1", &[], HOUR, T0), T0).is_ok());
    // A token naming the own issuer, signed by the external key, finds no
    // own key for it.
    let mut own = claims("palisade");
    own["aud"] = json!("palisade");
    assert_eq!(v.verify(&sign_ed(ED_A_PRIVATE, Some("a"), &own), T0), Err(AuthError::UnknownKey));
    assert_eq!(v.verify(&sign_ed(ED_B_PRIVATE, Some("main"), &own), T0), Err(AuthError::WrongAlgorithm));
    // A token naming the external issuer, signed with the own HMAC key and
    // kid, is the external issuer's to judge: wrong algorithm.
    assert_eq!(v.verify(&sign_hs(&[7u8; 32], Some("main"), &claims(IDP)), T0), Err(AuthError::WrongAlgorithm));
    // Two `iss` members cannot route one way and verify another.
    let (head, _) = mint("u1", &[], HOUR, T0).split_once('.').map(|(h, r)| (h.to_owned(), r.to_owned())).unwrap();
    let payload =
        format!(r#"{{"sub":"u1","exp":{},"iss":"{IDP}","iss":"palisade","aud":"palisade"}}"#, T0.as_secs() + 60);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let dup = format!("{head}.{}.sig", b64(&payload));
    assert_eq!(v.verify(&dup, T0), Err(AuthError::Malformed));
}

#[test]
fn external_claims_are_checked_and_sessions_are_not_theirs() {
    let v = verifier_with(&[idp(&[Algorithm::EdDSA])]);
    v.issuers().install_jwks(IDP, &jwks(&[jwk("a", ED_A_X)]), T0).unwrap();
    let sign = |c: &Value| sign_ed(ED_A_PRIVATE, Some("a"), c);
    let mut c = claims(IDP);
    c["sid"] = json!("s_own_session");
    c["dev"] = json!("d_hash");
    let id = v.verify(&sign(&c), T0).unwrap();
    assert_eq!((id.session_id, id.device), (None, None));
    assert!(id.external_issuer.is_some(), "the identity says who vouched for it");
    // The issuer's audience, not the own one.
    let mut c = claims(IDP);
    c["aud"] = json!("palisade");
    assert_eq!(v.verify(&sign(&c), T0), Err(AuthError::WrongAudience));
    // Expiry with the own leeway.
    let c = claims(IDP);
    assert!(v.verify(&sign(&c), at(630)).is_ok());
    assert_eq!(v.verify(&sign(&c), at(631)), Err(AuthError::Expired));
    // Identity rules.
    let mut c = claims(IDP);
    c["name"] = json!("<script>");
    assert!(matches!(v.verify(&sign(&c), T0), Err(AuthError::BadIdentity(_))));
    // A bad signature.
    let forged = sign_ed(ED_B_PRIVATE, Some("a"), &claims(IDP));
    assert_eq!(v.verify(&forged, T0), Err(AuthError::BadSignature));
}

#[test]
fn bad_issuer_specs_are_refused() {
    let own = options();
    let mut same_as_own = idp(&[Algorithm::EdDSA]);
    same_as_own.issuer = "palisade".into();
    let hmac_jwks = idp(&[Algorithm::HS256]);
    let none = idp(&[]);
    for specs in
        [vec![same_as_own], vec![hmac_jwks], vec![none], vec![idp(&[Algorithm::EdDSA]), idp(&[Algorithm::EdDSA])]]
    {
        assert!(Issuers::new(&specs, &own).is_err());
    }
    let static_wrong_alg = IssuerSpec {
        keys: IssuerKeys::Static(vec![crate::testkit::hs_key("h", &[1u8; 32])]),
        ..idp(&[Algorithm::EdDSA])
    };
    assert!(matches!(Issuers::new(&[static_wrong_alg], &own), Err(IssuerError::Algorithms(..))));
}
