use std::time::Duration;

use serde_json::json;

use super::*;
use crate::csrf::CsrfSettings;
use crate::guard::Guard;
use crate::policy::{EventSpec, PolicySpec, RoleSpec, RoomSpec, RuleList};
use crate::sanitize::Rule;
use crate::session::{Context, RawDecision, RawGate, Session, SessionLimits};
use crate::store::MemoryNonces;
use crate::testkit::{T0, lenient_guard, mint, rng, standing, verifier};

const JSON: JsonLimits = JsonLimits { max_depth: 16, max_bytes: 64 * 1024 };

fn policy() -> Policy {
    let mut s = PolicySpec::default();
    s.roles.insert("user".into(), RoleSpec { permissions: vec!["chat:send".into()] });
    s.default_roles = vec!["user".into()];
    s.rooms.insert("lobby".into(), RoomSpec::default());
    let mut chat = EventSpec {
        permission: Some("chat:send".into()),
        schema: Some(
            json!({"type":"object","properties":{"content":{"type":"string","maxLength":200}},"required":["content"]}),
        ),
        max_bytes: Some(1000),
        ..EventSpec::default()
    };
    chat.sanitize.insert("/content".into(), RuleList::One(Rule::Html));
    s.events.insert("chat".into(), chat);
    s.events.insert("admin.say".into(), EventSpec { permission: Some("admin:say".into()), ..EventSpec::default() });
    s.events.insert("vote".into(), EventSpec { replay: true, csrf: true, ..EventSpec::default() });
    Policy::compile(&s).unwrap()
}

fn json_format() -> RawFormat {
    RawFormat::new(Framing::Json, FieldPointers::preset(Framing::Json)).unwrap()
}

fn socketio_format() -> RawFormat {
    RawFormat::new(Framing::SocketIo, FieldPointers::preset(Framing::SocketIo)).unwrap()
}

struct Env {
    policy: Policy,
    verifier: crate::auth::TokenVerifier,
    guard: Guard,
    nonces: MemoryNonces,
    revocations: crate::auth::Revocations,
    owners: crate::ownership::Owners,
    client_ids: crate::client_ids::ClientIds,
}

impl Env {
    fn new() -> Self {
        Self {
            policy: policy(),
            verifier: verifier(),
            guard: lenient_guard(),
            nonces: MemoryNonces::new(100, 10),
            revocations: Default::default(),
            owners: Default::default(),
            client_ids: Default::default(),
        }
    }

    fn session(&self) -> Session {
        let identity = self.verifier.verify(&mint("u1", &[], Duration::from_secs(900), T0), T0).unwrap();
        let limits = SessionLimits {
            max_rooms: 2,
            expiry_notice: Duration::from_secs(60),
            expiry_grace: Duration::from_secs(30),
            csrf: CsrfSettings { rotate_every: Duration::from_secs(86_400), grace: Duration::from_secs(60) },
            heartbeat_interval: Duration::from_secs(86_400),
            silence_limit: Duration::from_secs(2 * 86_400),
        };
        Session::new(identity, limits, standing(), T0, &mut rng())
    }

    fn run<'t>(&self, s: &mut Session, format: &RawFormat, text: &'t str) -> RawDecision<'t> {
        let cx = Context {
            policy: &self.policy,
            verifier: &self.verifier,
            guard: &self.guard,
            revocations: &self.revocations,
            owners: &self.owners,
            client_ids: &self.client_ids,
        };
        s.on_raw(cx, RawGate { format, nonces: &self.nonces, json: JSON }, text, T0)
    }
}

fn forwarded(d: RawDecision<'_>) -> Cow<'_, str> {
    match d {
        RawDecision::Forward(out) => out,
        RawDecision::Reject(r, _) => panic!("refused: {r:?}"),
    }
}

fn refused(d: RawDecision<'_>) -> Kind {
    match d {
        RawDecision::Forward(out) => panic!("forwarded: {out}"),
        RawDecision::Reject(r, _) => r.kind,
    }
}

#[test]
fn a_clean_message_is_forwarded_byte_for_byte_and_markup_is_rewritten() {
    let env = Env::new();
    let mut s = env.session();
    let f = json_format();
    // Spacing and key order a re-serialization would not keep.
    let clean = r#"{ "data": {"content":"hi"},  "type":"chat", "extra": [1, 2] }"#;
    assert!(matches!(forwarded(env.run(&mut s, &f, clean)), Cow::Borrowed(b) if b == clean));
    let xss = r#"{"type":"chat","data":{"content":"<img src=x onerror=alert(1)>hi"},"extra":1}"#;
    let out = forwarded(env.run(&mut s, &f, xss));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["content"], "hi", "{out}");
    assert_eq!(v["extra"], 1, "the rest of the message is kept");
}

#[test]
fn the_native_refusals_apply_to_a_backends_messages() {
    let env = Env::new();
    let mut s = env.session();
    let f = json_format();
    assert_eq!(refused(env.run(&mut s, &f, r#"{"type":"nope","data":{}}"#)), Kind::UnknownEvent);
    assert_eq!(refused(env.run(&mut s, &f, r#"{"type":"admin.say","data":{}}"#)), Kind::Forbidden);
    assert_eq!(refused(env.run(&mut s, &f, r#"{"type":"chat","data":{"content":5}}"#)), Kind::Schema);
    let big = format!(r#"{{"type":"chat","data":{{"content":"{}"}}}}"#, "a".repeat(1200));
    assert_eq!(refused(env.run(&mut s, &f, &big)), Kind::Oversize);
    assert_eq!(refused(env.run(&mut s, &f, r#"{"data":{}}"#)), Kind::Protocol, "no event name");
    assert_eq!(refused(env.run(&mut s, &f, r#"{"type":"chat","type":"chat"}"#)), Kind::Protocol, "duplicate key");
    assert_eq!(refused(env.run(&mut s, &f, "not json")), Kind::Protocol);
    let deep = format!(r#"{{"type":"chat","data":{}{}}}"#, "[".repeat(40), "]".repeat(40));
    assert_eq!(refused(env.run(&mut s, &f, &deep)), Kind::Protocol, "parse bounds");
}

#[test]
fn csrf_and_replay_read_the_formats_fields_and_a_nonce_is_spent_once() {
    let env = Env::new();
    let mut s = env.session();
    let f = json_format();
    let vote = |csrf: &str, nonce: &str| {
        format!(r#"{{"type":"vote","data":{{}},"csrf":"{csrf}","nonce":"{nonce}","ts":{}}}"#, T0.as_millis())
    };
    assert_eq!(refused(env.run(&mut s, &f, &vote("wrong", "n1"))), Kind::Csrf);
    let csrf = s.csrf().to_owned();
    let first = vote(&csrf, "n1");
    forwarded(env.run(&mut s, &f, &first));
    assert_eq!(refused(env.run(&mut s, &f, &first)), Kind::Replay);
    let stale = r#"{"type":"vote","data":{},"csrf":"CSRF","nonce":"n2","ts":1}"#.replace("CSRF", &csrf);
    assert_eq!(refused(env.run(&mut s, &f, &stale)), Kind::Replay);
}

#[test]
fn socket_io_events_are_checked_through_the_preset_and_housekeeping_passes() {
    let env = Env::new();
    let mut s = env.session();
    let f = socketio_format();
    let clean = r#"42["chat",{"content":"hi"}]"#;
    assert_eq!(forwarded(env.run(&mut s, &f, clean)), clean);
    let out = forwarded(env.run(&mut s, &f, r#"4207["chat",{"content":"<b>x</b><script>1</script>"}]"#));
    assert!(out.starts_with("4207[\"chat\","), "ack id kept: {out}");
    assert!(!out.contains("<script>"), "{out}");
    assert_eq!(forwarded(env.run(&mut s, &f, "3")), "3", "pong");
    assert_eq!(forwarded(env.run(&mut s, &f, "40")), "40", "connect");
    assert_eq!(refused(env.run(&mut s, &f, r#"42["nope",{}]"#)), Kind::UnknownEvent);
    assert_eq!(refused(env.run(&mut s, &f, "43[1]")), Kind::UnknownEvent, "a client ack is no declared event");
    assert_eq!(refused(env.run(&mut s, &f, r#"451-["chat",{"_placeholder":true,"num":0}]"#)), Kind::Protocol);
    assert_eq!(
        f.palisade_frame("error", r#"{"type":"error","code":"unknown_event"}"#),
        r#"42["palisade:error",{"type":"error","code":"unknown_event"}]"#
    );
}

#[test]
fn a_room_field_is_authorized_like_a_native_room() {
    let env = Env::new();
    let mut s = env.session();
    let fields = FieldPointers { room: Some("/room".into()), ..FieldPointers::preset(Framing::Json) };
    let f = RawFormat::new(Framing::Json, fields).unwrap();
    forwarded(env.run(&mut s, &f, r#"{"type":"chat","room":"lobby","data":{"content":"hi"}}"#));
    assert_eq!(
        refused(env.run(&mut s, &f, r#"{"type":"chat","room":"nowhere","data":{"content":"x"}}"#)),
        Kind::Forbidden
    );
    assert_eq!(refused(env.run(&mut s, &f, r#"{"type":"chat","data":{"content":"x"}}"#)), Kind::Protocol);
}

#[test]
fn outbound_checks_sanitize_declared_events_and_bound_the_size() {
    let f = json_format();
    let policy = policy();
    let rules = OutboundRules { max_bytes: 200, check_events: true, json: JSON };
    let echo = r#"{"type":"chat","data":{"content":"<img src=x onerror=alert(1)>hi"}}"#;
    let Outbound::Send(out) = outbound(&f, &policy, rules, echo) else { panic!() };
    assert!(!out.contains("onerror"), "{out}");
    let own = r#"{"type":"backend.status","data":{"html":"<b>trusted</b>"}}"#;
    assert_eq!(outbound(&f, &policy, rules, own), Outbound::Send(Cow::Borrowed(own)), "undeclared: the backend's own");
    assert!(matches!(outbound(&f, &policy, rules, r#"{"type":"chat","data":{"content":1}}"#), Outbound::Drop(_)));
    assert!(matches!(outbound(&f, &policy, rules, &"x".repeat(201)), Outbound::Drop(_)));
    let off = OutboundRules { check_events: false, ..rules };
    assert_eq!(outbound(&f, &policy, off, echo), Outbound::Send(Cow::Borrowed(echo)));
    let sio = socketio_format();
    assert_eq!(outbound(&sio, &policy, rules, "2"), Outbound::Send(Cow::Borrowed("2")), "engine.io ping");
    let Outbound::Send(out) = outbound(&sio, &policy, rules, r#"42["chat",{"content":"<script>x</script>ok"}]"#) else {
        panic!()
    };
    assert_eq!(out, r#"42["chat",{"content":"ok"}]"#);
}

#[test]
fn pointers_are_validated_and_backend_close_codes_relayed_where_allowed() {
    let bad = FieldPointers { event: "type".into(), ..FieldPointers::preset(Framing::Json) };
    assert_eq!(RawFormat::new(Framing::Json, bad).unwrap_err().0, "event_field");
    let whole = FieldPointers { event: String::new(), ..FieldPointers::preset(Framing::Json) };
    assert!(RawFormat::new(Framing::Json, whole).is_err());
    for (from, to) in [(Some(1000), 1000), (Some(4321), 4321), (Some(1008), 1008), (Some(1002), 1011)] {
        assert_eq!(relay_close(from), to);
    }
    assert_eq!(relay_close(Some(1006)), 1011);
    assert_eq!(relay_close(Some(1015)), 1011);
    assert_eq!(relay_close(None), 1011);
}
