//! `Session::on_raw` (gateway mode's pass) on the session tests' pipeline:
//! the native refusals apply to a backend's messages, and what passes is
//! forwarded byte for byte unless a check changed it.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;

use super::tests::{Env, session};
use super::{RawDecision, RawGate, Session};
use crate::passthrough::tests::{JSON, json_format, policy, socketio_format};
use crate::passthrough::{FieldPointers, Framing, RawFormat};
use crate::refusal::Kind;
use crate::testkit::T0;

fn env() -> Env {
    Env::new(policy())
}

fn user() -> Session {
    session(Duration::from_secs(900))
}

fn run<'t>(env: &Env, s: &mut Session, format: &RawFormat, text: &'t str) -> RawDecision<'t> {
    s.on_raw(env.cx(), RawGate { format, nonces: &env.nonces, json: JSON }, text, T0)
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
    let env = env();
    let mut s = user();
    let f = json_format();
    // Spacing and key order a re-serialization would not keep.
    let clean = r#"{ "data": {"content":"hi"},  "type":"chat", "extra": [1, 2] }"#;
    assert!(matches!(forwarded(run(&env, &mut s, &f, clean)), Cow::Borrowed(b) if b == clean));
    let xss = r#"{"type":"chat","data":{"content":"<img src=x onerror=alert(1)>hi"},"extra":1}"#;
    let out = forwarded(run(&env, &mut s, &f, xss));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["content"], "hi", "{out}");
    assert_eq!(v["extra"], 1, "the rest of the message is kept");
}

#[test]
fn the_native_refusals_apply_to_a_backends_messages() {
    let env = env();
    let mut s = user();
    let f = json_format();
    assert_eq!(refused(run(&env, &mut s, &f, r#"{"type":"nope","data":{}}"#)), Kind::UnknownEvent);
    assert_eq!(refused(run(&env, &mut s, &f, r#"{"type":"admin.say","data":{}}"#)), Kind::Forbidden);
    assert_eq!(refused(run(&env, &mut s, &f, r#"{"type":"chat","data":{"content":5}}"#)), Kind::Schema);
    let big = format!(r#"{{"type":"chat","data":{{"content":"{}"}}}}"#, "a".repeat(1200));
    assert_eq!(refused(run(&env, &mut s, &f, &big)), Kind::Oversize);
    assert_eq!(refused(run(&env, &mut s, &f, r#"{"data":{}}"#)), Kind::Protocol, "no event name");
    assert_eq!(refused(run(&env, &mut s, &f, r#"{"type":"chat","type":"chat"}"#)), Kind::Protocol, "duplicate key");
    assert_eq!(refused(run(&env, &mut s, &f, "not json")), Kind::Protocol);
    let deep = format!(r#"{{"type":"chat","data":{}{}}}"#, "[".repeat(40), "]".repeat(40));
    assert_eq!(refused(run(&env, &mut s, &f, &deep)), Kind::Protocol, "parse bounds");
}

#[test]
fn csrf_and_replay_read_the_formats_fields_and_a_nonce_is_spent_once() {
    let env = env();
    let mut s = user();
    let f = json_format();
    let vote = |csrf: &str, nonce: &str| {
        format!(r#"{{"type":"vote","data":{{}},"csrf":"{csrf}","nonce":"{nonce}","ts":{}}}"#, T0.as_millis())
    };
    assert_eq!(refused(run(&env, &mut s, &f, &vote("wrong", "n1"))), Kind::Csrf);
    let csrf = s.csrf().to_owned();
    let first = vote(&csrf, "n1");
    forwarded(run(&env, &mut s, &f, &first));
    assert_eq!(refused(run(&env, &mut s, &f, &first)), Kind::Replay);
    let stale = r#"{"type":"vote","data":{},"csrf":"CSRF","nonce":"n2","ts":1}"#.replace("CSRF", &csrf);
    assert_eq!(refused(run(&env, &mut s, &f, &stale)), Kind::Replay);
}

#[test]
fn socket_io_events_are_checked_through_the_preset_and_housekeeping_passes() {
    let env = env();
    let mut s = user();
    let f = socketio_format();
    let clean = r#"42["chat",{"content":"hi"}]"#;
    assert_eq!(forwarded(run(&env, &mut s, &f, clean)), clean);
    let out = forwarded(run(&env, &mut s, &f, r#"4207["chat",{"content":"<b>x</b><script>1</script>"}]"#));
    assert!(out.starts_with("4207[\"chat\","), "ack id kept: {out}");
    assert!(!out.contains("<script>"), "{out}");
    assert_eq!(forwarded(run(&env, &mut s, &f, "3")), "3", "pong");
    assert_eq!(forwarded(run(&env, &mut s, &f, "40")), "40", "connect");
    assert_eq!(refused(run(&env, &mut s, &f, r#"42["nope",{}]"#)), Kind::UnknownEvent);
    assert_eq!(refused(run(&env, &mut s, &f, "43[1]")), Kind::UnknownEvent, "a client ack is no declared event");
    assert_eq!(refused(run(&env, &mut s, &f, r#"451-["chat",{"_placeholder":true,"num":0}]"#)), Kind::Protocol);
    assert_eq!(
        f.palisade_frame("error", r#"{"type":"error","code":"unknown_event"}"#),
        r#"42["palisade:error",{"type":"error","code":"unknown_event"}]"#
    );
}

#[test]
fn a_room_field_is_authorized_like_a_native_room() {
    let env = env();
    let mut s = user();
    let fields = FieldPointers { room: Some("/room".into()), ..FieldPointers::preset(Framing::Json) };
    let f = RawFormat::new(Framing::Json, fields).unwrap();
    forwarded(run(&env, &mut s, &f, r#"{"type":"chat","room":"lobby","data":{"content":"hi"}}"#));
    assert_eq!(
        refused(run(&env, &mut s, &f, r#"{"type":"chat","room":"nowhere","data":{"content":"x"}}"#)),
        Kind::Forbidden
    );
    assert_eq!(refused(run(&env, &mut s, &f, r#"{"type":"chat","data":{"content":"x"}}"#)), Kind::Protocol);
}
