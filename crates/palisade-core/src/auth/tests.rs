use std::time::Duration;

use base64::Engine as _;

use super::*;
use crate::testkit::{T0, hs_key, key, mint, options, rng, verifier};

const HOUR: Duration = Duration::from_secs(3600);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn a_minted_token_verifies_and_carries_identity() {
    let id = verifier().verify(&mint("u1", &["student"], HOUR, T0), T0).unwrap();
    assert_eq!(id.user_id, "u1");
    assert_eq!(id.name, "u1 name");
    assert_eq!(id.roles, vec!["student".to_string()]);
    assert_eq!(id.expires_at, T0.saturating_add(HOUR));
    assert!(id.token_id.is_some());
}

#[test]
fn expiry_honours_leeway_on_a_virtual_clock() {
    let token = mint("u1", &[], Duration::from_secs(60), T0);
    let v = verifier();
    assert!(v.verify(&token, T0.saturating_add(Duration::from_secs(60 + 30))).is_ok());
    assert_eq!(v.verify(&token, T0.saturating_add(Duration::from_secs(60 + 31))), Err(AuthError::Expired));
}

#[test]
fn forged_and_malformed_tokens_are_refused() {
    let v = verifier();
    let good = mint("u1", &[], HOUR, T0);
    let other = TokenSigner::new(&hs_key("main", &[8u8; 32]), &options()).unwrap();
    let wrong_key =
        other.mint(TokenRequest { user_id: "u1".into(), ttl: HOUR, ..Default::default() }, T0, &mut rng()).unwrap();
    assert_eq!(v.verify(&wrong_key, T0), Err(AuthError::BadSignature));
    assert_eq!(v.verify("garbage", T0), Err(AuthError::Malformed));
    assert_eq!(v.verify("", T0), Err(AuthError::Malformed));
    assert_eq!(v.verify(&"a".repeat(9000), T0), Err(AuthError::Malformed));

    // alg:none with the real payload and no signature.
    let payload = good.split('.').nth(1).unwrap();
    let none = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
    assert!(v.verify(&none, T0).is_err());

    // Algorithm confusion: the HS256 key pinned, the header claims HS512.
    let (_, rest) = good.split_once('.').unwrap();
    let confused = format!("{}.{rest}", b64(r#"{"alg":"HS512","kid":"main"}"#));
    assert_eq!(v.verify(&confused, T0), Err(AuthError::WrongAlgorithm));

    // Unknown kid.
    let unknown = format!("{}.{rest}", b64(r#"{"alg":"HS256","kid":"other"}"#));
    assert_eq!(v.verify(&unknown, T0), Err(AuthError::UnknownKey));
}

#[test]
fn issuer_audience_and_nbf_are_checked() {
    let mut opts = options();
    opts.audience = Some("someone-else".into());
    let v = TokenVerifier::new(&[key()], opts).unwrap();
    assert_eq!(v.verify(&mint("u1", &[], HOUR, T0), T0), Err(AuthError::WrongAudience));

    let mut opts = options();
    opts.issuer = Some("elsewhere".into());
    let v = TokenVerifier::new(&[key()], opts).unwrap();
    assert_eq!(v.verify(&mint("u1", &[], HOUR, T0), T0), Err(AuthError::WrongIssuer));

    // A token minted in the future is not yet valid.
    let mut opts = options();
    opts.issuer = None;
    opts.audience = None;
    let secret = [7u8; 32];
    let claims = format!(r#"{{"sub":"u1","exp":{},"nbf":{}}}"#, T0.as_secs() + 7200, T0.as_secs() + 3600);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::from_str::<serde_json::Value>(&claims).unwrap(),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let v = TokenVerifier::new(&[key()], opts).unwrap();
    assert_eq!(v.verify(&token, T0), Err(AuthError::NotYetValid));
    assert!(v.verify(&token, T0.saturating_add(HOUR)).is_ok());
}

#[test]
fn claims_of_the_wrong_shape_are_refused() {
    let mut opts = options();
    opts.issuer = None;
    opts.audience = None;
    let v = TokenVerifier::new(&[key()], opts).unwrap();
    let sign = |claims: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::from_str::<serde_json::Value>(claims).unwrap(),
            &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap()
    };
    let exp = T0.as_secs() + 60;
    assert_eq!(v.verify(&sign(r#"{"sub":"u1"}"#), T0), Err(AuthError::BadClaims));
    assert_eq!(v.verify(&sign(&format!(r#"{{"exp":{exp}}}"#)), T0), Err(AuthError::BadClaims));
    assert_eq!(
        v.verify(&sign(&format!(r#"{{"sub":"","exp":{exp}}}"#)), T0),
        Err(AuthError::BadIdentity(IdentityError::Length("sub")))
    );
    assert_eq!(
        v.verify(&sign(&format!(r#"{{"sub":"a\nb","exp":{exp}}}"#)), T0),
        Err(AuthError::BadIdentity(IdentityError::NotAscii))
    );
    assert_eq!(
        v.verify(&sign(&format!(r#"{{"sub":"u","exp":{exp},"roles":"admin"}}"#)), T0),
        Err(AuthError::BadClaims)
    );
}

#[test]
fn every_hmac_size_checks_its_own_mac_over_the_header_and_claims() {
    let secret = [9u8; 64];
    for (ours, theirs) in [
        (Algorithm::HS256, jsonwebtoken::Algorithm::HS256),
        (Algorithm::HS384, jsonwebtoken::Algorithm::HS384),
        (Algorithm::HS512, jsonwebtoken::Algorithm::HS512),
    ] {
        let key = KeyMaterial { algorithm: ours, ..hs_key("k", &secret) };
        let v = TokenVerifier::new(&[key], options()).unwrap();
        let mut header = jsonwebtoken::Header::new(theirs);
        header.kid = Some("k".into());
        let claims = format!(r#"{{"sub":"u1","exp":{},"iss":"palisade","aud":"palisade"}}"#, T0.as_secs() + 60);
        let claims = serde_json::from_str::<serde_json::Value>(&claims).unwrap();
        let good = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(v.verify(&good, T0).unwrap().user_id, "u1", "{ours:?}");
        let [h, p, sig]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
        // Another payload under the same signature, a short signature, a
        // signature that is not base64url, and an extra part.
        let other = b64(&format!(r#"{{"sub":"admin","exp":{}}}"#, T0.as_secs() + 60));
        assert_eq!(v.verify(&format!("{h}.{other}.{sig}"), T0), Err(AuthError::BadSignature), "{ours:?}");
        assert_eq!(v.verify(&format!("{h}.{p}.AAAA"), T0), Err(AuthError::BadSignature));
        assert_eq!(v.verify(&format!("{h}.{p}.{sig}!"), T0), Err(AuthError::Malformed));
        assert_eq!(v.verify(&format!("{h}.{p}.{p}.{sig}"), T0), Err(AuthError::Malformed));
        // Another key of the same size.
        let forged =
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&[8u8; 64])).unwrap();
        assert_eq!(v.verify(&forged, T0), Err(AuthError::BadSignature), "{ours:?}");
    }
}

#[test]
fn identity_claims_with_markup_or_bidi_overrides_are_refused() {
    let mut opts = options();
    opts.issuer = None;
    opts.audience = None;
    let v = TokenVerifier::new(&[key()], opts).unwrap();
    let exp = T0.as_secs() + 60;
    let with = |sub: &str, name: &str| {
        let claims = serde_json::json!({"sub": sub, "name": name, "exp": exp});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        v.verify(&token, T0)
    };
    assert_eq!(with("auth0|abc123", "José Müller").unwrap().name, "José Müller");
    assert_eq!(with("u1", "<img src=x onerror=alert(1)>"), Err(AuthError::BadIdentity(IdentityError::Markup("name"))));
    assert_eq!(with("u1", "admin\u{202E}gpj.exe"), Err(AuthError::BadIdentity(IdentityError::Invisible("name"))));
    assert_eq!(with("<b>u1</b>", "ok"), Err(AuthError::BadIdentity(IdentityError::Markup("sub"))));
    // `sub` is checked on its own, whatever `name` says.
    assert_eq!(with("u\u{202E}1", "ok"), Err(AuthError::BadIdentity(IdentityError::NotAscii)));
}

#[test]
fn weak_or_missing_key_material_is_refused_at_load() {
    assert!(matches!(TokenVerifier::new(&[hs_key("k", b"short")], options()), Err(KeyError::WeakSecret(_))));
    let ed =
        KeyMaterial { id: "ed".into(), algorithm: Algorithm::EdDSA, secret: None, public_pem: None, private_pem: None };
    assert!(matches!(TokenVerifier::new(std::slice::from_ref(&ed), options()), Err(KeyError::MissingPem(_))));
    let bad = KeyMaterial { public_pem: Some("not a pem".into()), ..ed };
    assert!(matches!(TokenVerifier::new(&[bad], options()), Err(KeyError::BadPem { .. })));
}

#[test]
fn eddsa_keys_sign_and_verify() {
    // Ed25519 test key pair (RFC 8410 example format), for tests only.
    let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    let key = KeyMaterial {
        id: "ed".into(),
        algorithm: Algorithm::EdDSA,
        secret: None,
        public_pem: Some(public.into()),
        private_pem: Some(private.into()),
    };
    let signer = TokenSigner::new(&key, &options()).unwrap();
    let token =
        signer.mint(TokenRequest { user_id: "u9".into(), ttl: HOUR, ..Default::default() }, T0, &mut rng()).unwrap();
    let v = TokenVerifier::new(&[key, crate::testkit::key()], options()).unwrap();
    assert_eq!(v.verify(&token, T0).unwrap().user_id, "u9");
    // An HS256 token naming the EdDSA key's kid is refused.
    let (_, rest) = mint("u1", &[], HOUR, T0).split_once('.').map(|(a, b)| (a.to_string(), b.to_string())).unwrap();
    let confused = format!("{}.{rest}", b64(r#"{"alg":"HS256","kid":"ed"}"#));
    assert_eq!(v.verify(&confused, T0), Err(AuthError::WrongAlgorithm));
}
