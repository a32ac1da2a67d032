use std::time::Duration;

use super::*;
use crate::policy::{EventSpec, PolicySpec, RoleSpec, RoomSpec};
use crate::testkit::{T0, mint, verifier};

fn policy() -> Policy {
    let mut s = PolicySpec::default();
    s.roles.insert("user".into(), RoleSpec { permissions: vec!["chat:send".into()] });
    s.default_roles = vec!["user".into()];
    s.rooms.insert("lobby".into(), RoomSpec::default());
    s.rooms.insert("staff".into(), RoomSpec { join: Some("staff:join".into()), publish: None });
    s.events.insert("chat.message".into(), EventSpec { permission: Some("chat:send".into()) });
    s.events.insert("admin.broadcast".into(), EventSpec { permission: Some("admin:broadcast".into()) });
    Policy::compile(&s).unwrap()
}

const LIMITS: SessionLimits =
    SessionLimits { max_rooms: 2, expiry_notice: Duration::from_secs(60), expiry_grace: Duration::from_secs(30) };

fn session(ttl: Duration) -> Session {
    let identity = verifier().verify(&mint("u1", &[], ttl, T0), T0).unwrap();
    Session::new(identity, LIMITS)
}

fn code_of<'a>(d: &'a Decision<'_>) -> Option<(Option<&'a str>, ErrorCode)> {
    match d {
        Decision::Reject(r) => Some((r.id.as_deref(), r.code)),
        _ => None,
    }
}

#[test]
fn join_send_leave_round_trip() {
    let (p, v) = (policy(), verifier());
    let mut s = session(Duration::from_secs(3600));
    assert!(matches!(s.on_text(&p, &v, r#"{"type":"join","id":"1","room":"lobby"}"#, T0), Decision::Join { .. }));
    assert_eq!(s.rooms().collect::<Vec<_>>(), ["lobby"]);
    let send = r#"{"type":"send","id":"2","room":"lobby","event":"chat.message","data":{"content":"hi"}}"#;
    match s.on_text(&p, &v, send, T0) {
        Decision::Publish { id, room, event, data } => {
            assert_eq!((&*id, &*room, &*event, data.get()), ("2", "lobby", "chat.message", r#"{"content":"hi"}"#));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.on_text(&p, &v, r#"{"type":"leave","id":"3","room":"lobby"}"#, T0), Decision::Leave { .. }));
    let again = s.on_text(&p, &v, r#"{"type":"leave","id":"4","room":"lobby"}"#, T0);
    assert_eq!(code_of(&again), Some((Some("4"), ErrorCode::NotMember)));
}

#[test]
fn each_refusal_carries_the_request_id_and_its_code() {
    let (p, v) = (policy(), verifier());
    let mut s = session(Duration::from_secs(3600));
    let cases = [
        (r#"{"type":"send","id":"a","room":"lobby","event":"chat.message","data":{}}"#, ErrorCode::NotMember),
        (r#"{"type":"join","id":"b","room":"staff"}"#, ErrorCode::Forbidden),
        (r#"{"type":"join","id":"c","room":"no such"}"#, ErrorCode::BadRequest),
        (r#"{"type":"send","id":"d","room":"lobby","event":"nope","data":{}}"#, ErrorCode::UnknownEvent),
        (r#"{"type":"send","id":"e","room":"lobby","event":"admin.broadcast","data":{}}"#, ErrorCode::Forbidden),
        (r#"{"type":"recover","id":"f","room":"lobby","since":1}"#, ErrorCode::BadRequest),
        (r#"{"type":"refresh","id":"g","token":"nope"}"#, ErrorCode::Forbidden),
    ];
    for (frame, code) in cases {
        let id = frame.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(code_of(&s.on_text(&p, &v, frame, T0)), Some((Some(id), code)), "{frame}");
    }
    assert_eq!(code_of(&s.on_text(&p, &v, "{", T0)), Some((None, ErrorCode::BadRequest)));
}

#[test]
fn room_count_is_capped_and_rejoining_is_idempotent() {
    let mut s = PolicySpec::default();
    s.rooms.insert("r*".into(), RoomSpec::default());
    let p = Policy::compile(&s).unwrap();
    let v = verifier();
    let mut sess = session(Duration::from_secs(3600));
    for room in ["r1", "r2", "r1"] {
        let frame = format!(r#"{{"type":"join","id":"x","room":"{room}"}}"#);
        assert!(matches!(sess.on_text(&p, &v, &frame, T0), Decision::Join { .. }));
    }
    let d = sess.on_text(&p, &v, r#"{"type":"join","id":"y","room":"r3"}"#, T0);
    assert_eq!(code_of(&d), Some((Some("y"), ErrorCode::Forbidden)));
}

#[test]
fn expiry_notice_then_close_unless_refreshed() {
    let (p, v) = (policy(), verifier());
    let ttl = Duration::from_secs(600);
    let mut s = session(ttl);
    let exp = T0.saturating_add(ttl);
    assert_eq!(s.next_timer(), exp.saturating_sub(Duration::from_secs(60)));
    assert_eq!(s.on_timer(T0), None);
    assert_eq!(s.on_timer(s.next_timer()), Some(TimerAction::Expiring(exp)));
    assert_eq!(s.next_timer(), exp.saturating_add(Duration::from_secs(30)));
    assert_eq!(s.on_timer(exp), None);

    // A refresh for the same user moves both deadlines.
    let later = exp.saturating_sub(Duration::from_secs(10));
    let fresh = mint("u1", &[], ttl, later);
    let frame = format!(r#"{{"type":"refresh","id":"r","token":"{fresh}"}}"#);
    assert!(matches!(s.on_text(&p, &v, &frame, later), Decision::Refreshed { .. }));
    assert_eq!(s.on_timer(exp.saturating_add(Duration::from_secs(31))), None);
    assert_eq!(s.next_timer(), later.saturating_add(ttl).saturating_sub(Duration::from_secs(60)));

    // Without a refresh the connection closes with 4001 after the grace.
    let close_at = later.saturating_add(ttl).saturating_add(Duration::from_secs(30));
    s.on_timer(s.next_timer());
    assert_eq!(s.on_timer(close_at), Some(TimerAction::Close(CloseCode::TokenExpired)));
}

#[test]
fn refresh_for_another_user_is_refused() {
    let (p, v) = (policy(), verifier());
    let mut s = session(Duration::from_secs(600));
    let other = mint("u2", &[], Duration::from_secs(600), T0);
    let frame = format!(r#"{{"type":"refresh","id":"r","token":"{other}"}}"#);
    assert_eq!(code_of(&s.on_text(&p, &v, &frame, T0)), Some((Some("r"), ErrorCode::Forbidden)));
    assert_eq!(s.identity().user_id, "u1");
    let stale = mint("u1", &[], Duration::from_secs(60), T0);
    let frame = format!(r#"{{"type":"refresh","id":"x","token":"{stale}"}}"#);
    let later = T0.saturating_add(Duration::from_secs(3600));
    assert_eq!(code_of(&s.on_text(&p, &v, &frame, later)), Some((Some("x"), ErrorCode::Expired)));
}
