//! The message pipeline for a typical `chat.message` under the shipped
//! default policy (read from the server's config template, so the bench
//! measures what ships), and its parts.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::auth::{Revocations, TokenRequest, TokenSigner, TokenVerifier};
use palisade_core::client_ids::ClientIds;
use palisade_core::csrf::CsrfSettings;
use palisade_core::guard::{Guard, GuardSettings, Standing};
use palisade_core::ownership::Owners;
use palisade_core::policy::{Policy, PolicySpec};
use palisade_core::refusal::Kind;
use palisade_core::sanitize::Rule;
use palisade_core::seams::commit;
use palisade_core::session::{Context, Decision, Session, SessionLimits};
use palisade_core::store::MemoryNonces;
use palisade_protocol::ClientFrame;
use serde_json::value::RawValue;

mod shipped;

use shipped::TEMPLATE;

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

fn bench(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_800_000_000);
    let (key, options) = shipped::hs256_key();
    let verifier = TokenVerifier::new(std::slice::from_ref(&key), options.clone()).unwrap();
    let token = TokenSigner::new(&key, &options)
        .unwrap()
        .mint(
            TokenRequest { user_id: "alice".into(), ttl: Duration::from_secs(3600), ..Default::default() },
            now,
            &mut rand::rng(),
        )
        .unwrap();
    let policy = default_policy();
    let nonces = MemoryNonces::new(1024, 1024);
    // A half-life as short as the bench's tick keeps the score update
    // benched below from ever reaching a ban, so it measures the update
    // alone (durations do not change what a check costs).
    let guard = Guard::new(GuardSettings { score_half_life: Duration::from_secs(1), ..shipped::guard_settings() });
    let revocations = Revocations::default();
    let owners = Owners::default();
    let client_ids = ClientIds::default();
    let cx = Context {
        policy: &policy,
        verifier: &verifier,
        guard: &guard,
        revocations: &revocations,
        owners: &owners,
        client_ids: &client_ids,
    };
    let ip = IpKey::of(std::net::Ipv4Addr::LOCALHOST.into());
    let limits = SessionLimits {
        max_rooms: 8,
        expiry_notice: Duration::from_secs(60),
        expiry_grace: Duration::from_secs(30),
        csrf: CsrfSettings { rotate_every: Duration::from_secs(900), grace: Duration::from_secs(60) },
        heartbeat_interval: Duration::from_secs(20),
        silence_limit: Duration::from_secs(30),
    };
    let mut session =
        Session::new(verifier.verify(&token, now).unwrap(), limits, Standing::new(ip), now, &mut rand::rng());
    assert!(matches!(session.on_text(cx, r#"{"type":"join","id":"1","room":"lobby"}"#, now), Decision::Join { .. }));
    assert!(accept(&mut session, cx, &nonces, FRAME, now));

    // A second apart, so the shipped rates never refuse: the bench
    // measures the accepted path, the guard's checks included.
    let mut t = now;
    let mut tick = || {
        t = t.saturating_add(Duration::from_secs(1));
        t
    };
    c.bench_function("pipeline/chat.message (with markup)", |b| {
        b.iter(|| black_box(accept(&mut session, cx, &nonces, black_box(FRAME), tick())))
    });
    c.bench_function("pipeline/chat.message (plain text)", |b| {
        b.iter(|| black_box(accept(&mut session, cx, &nonces, black_box(PLAIN), tick())))
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

/// The session's pipeline and the memory commit step's checks (the event's
/// rate, the nonce): everything but the fan-out.
fn accept(session: &mut Session, cx: Context<'_>, nonces: &MemoryNonces, frame: &str, now: Timestamp) -> bool {
    let Decision::Publish { room, event, rate, nonce, history, .. } = session.on_text(cx, frame, now) else {
        return false;
    };
    let claim = session.claim(&room, &event, rate, nonce, history);
    commit::check(&claim, cx.guard, nonces, now).is_ok()
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
