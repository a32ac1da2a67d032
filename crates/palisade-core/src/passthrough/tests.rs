use serde_json::json;

use super::*;
use crate::policy::{EventSpec, PolicySpec, RoleSpec, RoomSpec, RuleList};
use crate::sanitize::Rule;

pub(crate) const JSON: JsonLimits = JsonLimits { max_depth: 16, max_bytes: 64 * 1024 };

/// The events gateway mode's tests check messages against.
pub(crate) fn policy() -> Policy {
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

pub(crate) fn json_format() -> RawFormat {
    RawFormat::new(Framing::Json, FieldPointers::preset(Framing::Json)).unwrap()
}

pub(crate) fn socketio_format() -> RawFormat {
    RawFormat::new(Framing::SocketIo, FieldPointers::preset(Framing::SocketIo)).unwrap()
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
