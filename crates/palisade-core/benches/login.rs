//! What a login and a refresh cost in `core`, and the revocation check
//! every handshake pays: argon2id (the whole of a login's CPU), then the
//! cheap parts both share (refresh token, its hash, device fingerprint,
//! access token). Store writes and HTTP are measured end to end by
//! `palisade-bench login` (docs/BENCHMARKS.md).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod shipped;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_core::Timestamp;
use palisade_core::auth::{
    Revocation, Revocations, TokenRequest, TokenSigner, TokenVerifier, hash_password, verify_password,
};
use palisade_core::login::device::fingerprint;
use palisade_core::login::refresh::{NewRefreshToken, refresh_token_hash};

const PASSWORD: &str = "correct horse battery staple";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// argon2id: tens of milliseconds a call, so few samples; the shipped
/// parameters (m=19 MiB, t=2, p=1) are constants in `auth::password`.
fn argon2(c: &mut Criterion) {
    let stored = hash_password(PASSWORD, [7; 16]).unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "parameters changed: {stored}");
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(20).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    g.bench_function("hash_password (user add)", |b| {
        b.iter(|| black_box(hash_password(black_box(PASSWORD), [7; 16]).is_ok()))
    });
    // A login checks one hash, right or wrong (an unknown user is checked
    // against a decoy): both cost the same.
    g.bench_function("verify_password (login, right password)", |b| {
        b.iter(|| black_box(verify_password(black_box(PASSWORD), &stored)))
    });
    g.bench_function("verify_password (login, wrong password)", |b| {
        b.iter(|| black_box(verify_password(black_box("correct horse battery stapler"), &stored)))
    });
    g.finish();
}

fn session_parts(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_800_000_000);
    let (key, options) = shipped::hs256_key();
    let signer = TokenSigner::new(&key, &options).unwrap();
    let verifier = TokenVerifier::new(std::slice::from_ref(&key), options).unwrap();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let request = || TokenRequest {
        user_id: "alice".into(),
        roles: vec!["user".into()],
        ttl: Duration::from_secs(900),
        session_id: Some("sid_Jd8vQ2mZk1xR0aBc".into()),
        ..Default::default()
    };

    let mut g = c.benchmark_group("session");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    // Login and refresh each draw one new refresh token (the server's
    // generator, base64url, SHA-256 of it).
    let mut rng = rand::rng();
    g.bench_function("NewRefreshToken::generate", |b| b.iter(|| black_box(NewRefreshToken::generate(&mut rng))));
    let presented = NewRefreshToken::generate(&mut rng).token;
    // A refresh hashes the presented token to find it in the store.
    g.bench_function("refresh_token_hash", |b| b.iter(|| black_box(refresh_token_hash(black_box(&presented)))));
    // Login and refresh fingerprint the caller once each.
    g.bench_function("device::fingerprint", |b| b.iter(|| black_box(fingerprint(black_box(USER_AGENT), ip))));
    // Each answer carries a new access token.
    g.bench_function("access token mint (HS256, with sid)", |b| {
        b.iter(|| black_box(signer.mint(request(), now, &mut rng).is_ok()))
    });
    g.finish();

    // The check at every handshake, against a list the size bench.sh gives
    // the server: 1,000 revoked token ids and 100 revoked users. The token
    // passes (not on the list), which is the common case and does every
    // lookup.
    let revocations = Revocations::default();
    let mut list: Vec<Revocation> = (0..1000).map(|n| Revocation::Token(format!("t_bench{n}"))).collect();
    list.extend((0..100).map(|n| Revocation::User { user: format!("gone{n}"), before: now }));
    revocations.replace(list);
    let token = signer.mint(request(), now, &mut rng).unwrap();
    let identity = verifier.verify(&token, now).unwrap();
    assert!(identity.token_id.is_some() && !revocations.is_revoked(&identity));
    let mut g = c.benchmark_group("revocation");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.bench_function("is_revoked (1,000 tokens + 100 users listed)", |b| {
        b.iter(|| black_box(revocations.is_revoked(black_box(&identity))))
    });
    g.bench_function("token verify + is_revoked (handshake)", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&token), now).is_ok_and(|id| !revocations.is_revoked(&id))))
    });
    g.finish();
}

criterion_group!(benches, argon2, session_parts);
criterion_main!(benches);
