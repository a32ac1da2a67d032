//! The message pipeline for a typical `chat.message` under the shipped
//! default policy (read from the server's config template, so the bench
//! measures what ships), and its parts.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::auth::{Algorithm, KeyMaterial, TokenRequest, TokenSigner, TokenVerifier, VerifyOptions};
use palisade_core::csrf::CsrfSettings;
use palisade_core::guard::{BanTerms, Guard, GuardSettings, Rate, SpamRules, Standing, Weights};
use palisade_core::policy::{Policy, PolicySpec};
use palisade_core::refusal::Kind;
use palisade_core::sanitize::Rule;
use palisade_core::session::{Context, Decision, Session, SessionLimits};
use palisade_core::store::MemoryNonces;
use palisade_protocol::ClientFrame;
use serde_json::value::RawValue;

const TEMPLATE: &str = include_str!("../../palisade-server/src/config/palisade.toml");
const FRAME: &str = r#"{"type":"send","id":"42","room":"lobby","event":"chat.message","data":{"content":"Hello <b>world</b>, see <a href=\"https://example.com/docs\">the docs</a> and reply soon!","mentions":["bob","carol"]}}"#;
const PLAIN: &str = r#"{"type":"send","id":"43","room":"lobby","event":"chat.message","data":{"content":"Hello world, see you at the docs meeting and reply soon!","mentions":["bob","carol"]}}"#;

fn default_policy() -> Policy {
    let t: toml::Table = toml::from_str(TEMPLATE).unwrap();
    let take = |k: &str| t[k].clone();
    let spec = PolicySpec {
        roles: take("roles").try_into().unwrap(),
        rooms: take("rooms").try_into().unwrap(),
        events: take("events").try_into().unwrap(),
        default_roles: vec!["user".into()],
        ..PolicySpec::default()
    };
    Policy::compile(&spec).unwrap()
}

/// The guard as the template configures it.
fn default_guard() -> Guard {
    let t: toml::Table = toml::from_str(TEMPLATE).unwrap();
    let abuse = &t["abuse"];
    let rate = |k: &str| Rate::parse(abuse[k].as_str().unwrap()).unwrap();
    let number = |k: &str| abuse[k].as_integer().unwrap();
    let count = |k: &str| u32::try_from(number(k)).unwrap();
    let hour = Duration::from_secs(3600);
    Guard::new(GuardSettings {
        dry_run: false,
        connect_rate: rate("connect_rate"),
        max_connections_per_ip: count("max_connections_per_ip"),
        max_connections_per_user: count("max_connections_per_user"),
        connection_rate: rate("connection_rate"),
        user_rate: rate("user_rate"),
        ip_rate: rate("ip_rate"),
        control_rate: rate("control_rate"),
        restrict_divisor: count("restrict_divisor"),
        // Durations do not change what a check costs; a half-life as short
        // as the bench's tick keeps the score update benched below from
        // ever reaching a ban, so it measures the update alone.
        score_half_life: Duration::from_secs(1),
        restrict_at: number("restrict_at") as f64,
        disconnect_at: number("disconnect_at") as f64,
        ban_at: number("ban_at") as f64,
        ban_users: false,
        ban_terms: BanTerms { first: hour, factor: 2, max: hour * 24, memory: hour * 24 * 7 },
        weights: Weights::default(),
        max_tracked_keys: usize::try_from(number("max_tracked_keys")).unwrap(),
        spam: SpamRules {
            max_repeat: usize::try_from(number("spam_max_repeat")).unwrap(),
            max_links: usize::try_from(number("spam_max_links")).unwrap(),
        },
    })
}

fn bench(c: &mut Criterion) {
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
    let token = TokenSigner::new(&key, &options)
        .unwrap()
        .mint(TokenRequest { user_id: "alice".into(), ttl: Duration::from_secs(3600), ..Default::default() }, now)
        .unwrap();
    let policy = default_policy();
    let nonces = MemoryNonces::new(1024, 1024);
    let guard = default_guard();
    let cx = Context { policy: &policy, verifier: &verifier, nonces: &nonces, guard: &guard };
    let ip = IpKey::of(std::net::Ipv4Addr::LOCALHOST.into());
    let limits = SessionLimits {
        max_rooms: 8,
        expiry_notice: Duration::from_secs(60),
        expiry_grace: Duration::from_secs(30),
        csrf: CsrfSettings { rotate_every: Duration::from_secs(900), grace: Duration::from_secs(60) },
        heartbeat_interval: Duration::from_secs(20),
        silence_limit: Duration::from_secs(30),
    };
    let mut session = Session::new(verifier.verify(&token, now).unwrap(), limits, Standing::new(ip), now);
    assert!(matches!(session.on_text(cx, r#"{"type":"join","id":"1","room":"lobby"}"#, now), Decision::Join { .. }));
    assert!(matches!(session.on_text(cx, FRAME, now), Decision::Publish { .. }));

    // A second apart, so the shipped rates never refuse: the bench
    // measures the accepted path, the guard's checks included.
    let mut t = now;
    let mut tick = || {
        t = t.saturating_add(Duration::from_secs(1));
        t
    };
    c.bench_function("pipeline/chat.message (with markup)", |b| {
        b.iter(|| black_box(matches!(session.on_text(cx, black_box(FRAME), tick()), Decision::Publish { .. })))
    });
    c.bench_function("pipeline/chat.message (plain text)", |b| {
        b.iter(|| black_box(matches!(session.on_text(cx, black_box(PLAIN), tick()), Decision::Publish { .. })))
    });
    let mut standing = Standing::new(ip);
    c.bench_function("guard/message rates (connection, user, address)", |b| {
        b.iter(|| black_box(guard.message(&mut standing, black_box("alice"), tick())))
    });
    c.bench_function("guard/score update (penalize)", |b| {
        b.iter(|| black_box(guard.penalize(Some(&mut standing), ip, Some("alice"), Kind::NotMember, tick())))
    });
    c.bench_function("parts/envelope", |b| b.iter(|| black_box(ClientFrame::parse(black_box(FRAME)).is_ok())));
    let Ok(ClientFrame::Send { data, .. }) = ClientFrame::parse(FRAME) else { panic!("send frame") };
    let rule = policy.event("chat.message").unwrap();
    c.bench_function("parts/shape (parse + schema + sanitize)", |b| {
        b.iter(|| black_box(rule.shape(black_box(data), policy.sanitizers()).unwrap()))
    });
    let value: serde_json::Value = serde_json::from_str(data.get()).unwrap();
    let content = value["content"].as_str().unwrap();
    c.bench_function("parts/html sanitizer", |b| {
        b.iter(|| black_box(policy.sanitizers().apply(Rule::Html, black_box(content))))
    });
    c.bench_function("parts/token verify (handshake)", |b| b.iter(|| black_box(verifier.verify(&token, now).is_ok())));
    let raw: &RawValue = data;
    c.bench_function("parts/json parse (bounded)", |b| {
        b.iter(|| black_box(palisade_core::json::parse(raw.get(), palisade_core::json::JsonLimits::default())))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
