use std::time::Duration;

use super::*;
use crate::auth::TokenVerifier;
use crate::guard::Guard;
use crate::policy::{EventSpec, PolicySpec, RoleSpec, RoomSpec};
use crate::store::MemoryNonces;
use crate::testkit::{T0, lenient_guard, mint, rng, standing, verifier};

pub(super) fn policy() -> Policy {
    let mut s = PolicySpec::default();
    s.roles.insert("user".into(), RoleSpec { permissions: vec!["chat:send".into()] });
    s.default_roles = vec!["user".into()];
    s.rooms.insert("lobby".into(), RoomSpec::default());
    s.rooms.insert("staff".into(), RoomSpec { join: Some("staff:join".into()), publish: None, ..RoomSpec::default() });
    s.events.insert("chat.message".into(), EventSpec { permission: Some("chat:send".into()), ..EventSpec::default() });
    s.events.insert(
        "admin.broadcast".into(),
        EventSpec { permission: Some("admin:broadcast".into()), ..EventSpec::default() },
    );
    Policy::compile(&s).unwrap()
}

const LIMITS: SessionLimits = SessionLimits {
    max_rooms: 2,
    expiry_notice: Duration::from_secs(60),
    expiry_grace: Duration::from_secs(30),
    // Far enough out not to interleave with the expiry timers below.
    csrf: crate::csrf::CsrfSettings { rotate_every: Duration::from_secs(86_400), grace: Duration::from_secs(60) },
    // Beyond every token below: the heartbeat has tests of its own.
    heartbeat_interval: Duration::from_secs(30 * 86_400),
    silence_limit: Duration::from_secs(31 * 86_400),
};

pub(super) fn session(ttl: Duration) -> Session {
    let identity = verifier().verify(&mint("u1", &[], ttl, T0), T0).unwrap();
    Session::new(identity, LIMITS, standing(), T0, &mut rng())
}

/// Everything a test pipeline needs, owned.
pub(super) struct Env {
    policy: Policy,
    verifier: TokenVerifier,
    pub(super) nonces: MemoryNonces,
    guard: Guard,
    revocations: crate::auth::Revocations,
    owners: Owners,
    client_ids: crate::client_ids::ClientIds,
}

impl Env {
    pub(super) fn new(policy: Policy) -> Self {
        Self {
            policy,
            verifier: verifier(),
            nonces: MemoryNonces::new(1000, 100),
            guard: lenient_guard(),
            revocations: Default::default(),
            owners: Owners::default(),
            client_ids: Default::default(),
        }
    }

    pub(super) fn cx(&self) -> Context<'_> {
        Context {
            policy: &self.policy,
            verifier: &self.verifier,
            guard: &self.guard,
            revocations: &self.revocations,
            owners: &self.owners,
            client_ids: &self.client_ids,
        }
    }
}

impl Env {
    /// Runs `frame` through `s` and, for a publish, the commit step's
    /// checks as the memory commit makes them: what a connection does.
    fn run<'t>(&self, s: &mut Session, frame: &'t str, now: Timestamp) -> Decision<'t> {
        let decision = s.on_text(self.cx(), frame, now);
        let Decision::Publish { ref room, ref event, rate, ref nonce, history, ref id, .. } = decision else {
            return decision;
        };
        let claim = s.claim(room, event, rate, nonce.clone(), history);
        match crate::seams::commit::check(&claim, &self.guard, &self.nonces, now) {
            Ok(unenforced) => {
                let committed = crate::seams::Committed { seq: 1, unenforced };
                assert!(s.committed(&self.guard, Ok(&committed), now).is_none());
                decision
            }
            Err(refusal) => {
                let escalation = s.committed(&self.guard, Err(&refusal), now).unwrap();
                Decision::Reject(refusal.answering(id.clone()), escalation)
            }
        }
    }
}

fn code_of<'a>(d: &'a Decision<'_>) -> Option<(Option<&'a str>, ErrorCode)> {
    match d {
        Decision::Reject(r, _) => Some((r.id.as_deref(), r.code())),
        _ => None,
    }
}

#[test]
fn join_send_leave_round_trip() {
    let env = Env::new(policy());
    let mut s = session(Duration::from_secs(3600));
    assert!(matches!(s.on_text(env.cx(), r#"{"type":"join","id":"1","room":"lobby"}"#, T0), Decision::Join { .. }));
    assert_eq!(s.rooms().collect::<Vec<_>>(), ["lobby"]);
    let send = r#"{"type":"send","id":"2","room":"lobby","event":"chat.message","data":{"content":"hi"}}"#;
    match s.on_text(env.cx(), send, T0) {
        Decision::Publish { id, room, event, data, .. } => {
            assert_eq!((&*id, &*room, &*event, data.get()), ("2", "lobby", "chat.message", r#"{"content":"hi"}"#));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.on_text(env.cx(), r#"{"type":"leave","id":"3","room":"lobby"}"#, T0), Decision::Leave { .. }));
    let again = s.on_text(env.cx(), r#"{"type":"leave","id":"4","room":"lobby"}"#, T0);
    assert_eq!(code_of(&again), Some((Some("4"), ErrorCode::NotMember)));
}

#[test]
fn each_refusal_carries_the_request_id_and_its_code() {
    let env = Env::new(policy());
    let mut s = session(Duration::from_secs(3600));
    let cases = [
        (r#"{"type":"send","id":"a","room":"lobby","event":"chat.message","data":{}}"#, ErrorCode::NotMember),
        (r#"{"type":"join","id":"b","room":"staff"}"#, ErrorCode::Forbidden),
        (r#"{"type":"join","id":"c","room":"no such"}"#, ErrorCode::BadRequest),
        (r#"{"type":"send","id":"d","room":"lobby","event":"nope","data":{}}"#, ErrorCode::UnknownEvent),
        (r#"{"type":"send","id":"e","room":"lobby","event":"admin.broadcast","data":{}}"#, ErrorCode::Forbidden),
        (r#"{"type":"recover","id":"f","room":"staff","since":1}"#, ErrorCode::Forbidden),
        (r#"{"type":"refresh","id":"g","token":"nope"}"#, ErrorCode::Forbidden),
    ];
    for (frame, code) in cases {
        let id = frame.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(code_of(&s.on_text(env.cx(), frame, T0)), Some((Some(id), code)), "{frame}");
    }
    assert_eq!(code_of(&s.on_text(env.cx(), "{", T0)), Some((None, ErrorCode::BadRequest)));
}

#[test]
fn recover_needs_the_rights_of_join_and_joins() {
    let env = Env::new(policy());
    let mut s = session(Duration::from_secs(3600));
    let frame = r#"{"type":"recover","id":"r","room":"lobby","since":41}"#;
    assert!(matches!(s.on_text(env.cx(), frame, T0), Decision::Recover { since: 41, .. }));
    assert_eq!(s.rooms().collect::<Vec<_>>(), ["lobby"], "a recover joins");
    let send = r#"{"type":"send","id":"s","room":"lobby","event":"chat.message","data":{"content":"hi"}}"#;
    assert!(matches!(s.on_text(env.cx(), send, T0), Decision::Publish { .. }), "as a member");
}

#[test]
fn room_count_is_capped_and_rejoining_is_idempotent() {
    let mut s = PolicySpec::default();
    s.rooms.insert("r*".into(), RoomSpec::default());
    let env = Env::new(Policy::compile(&s).unwrap());
    let mut sess = session(Duration::from_secs(3600));
    for room in ["r1", "r2", "r1"] {
        let frame = format!(r#"{{"type":"join","id":"x","room":"{room}"}}"#);
        assert!(matches!(sess.on_text(env.cx(), &frame, T0), Decision::Join { .. }));
    }
    let d = sess.on_text(env.cx(), r#"{"type":"join","id":"y","room":"r3"}"#, T0);
    assert_eq!(code_of(&d), Some((Some("y"), ErrorCode::Forbidden)));
}

#[test]
fn expiry_notice_then_close_unless_refreshed() {
    let env = Env::new(policy());
    let ttl = Duration::from_secs(600);
    let mut s = session(ttl);
    let exp = T0.saturating_add(ttl);
    assert_eq!(s.next_timer(), exp.saturating_sub(Duration::from_secs(60)));
    assert_eq!(s.on_timer(T0, &mut rng()), None);
    assert_eq!(s.on_timer(s.next_timer(), &mut rng()), Some(TimerAction::Expiring(exp)));
    assert_eq!(s.next_timer(), exp.saturating_add(Duration::from_secs(30)));
    assert_eq!(s.on_timer(exp, &mut rng()), None);

    // A refresh for the same user moves both deadlines.
    let later = exp.saturating_sub(Duration::from_secs(10));
    let fresh = mint("u1", &[], ttl, later);
    let frame = format!(r#"{{"type":"refresh","id":"r","token":"{fresh}"}}"#);
    assert!(matches!(s.on_text(env.cx(), &frame, later), Decision::Refreshed { .. }));
    assert_eq!(s.on_timer(exp.saturating_add(Duration::from_secs(31)), &mut rng()), None);
    assert_eq!(s.next_timer(), later.saturating_add(ttl).saturating_sub(Duration::from_secs(60)));

    // Without a refresh the connection closes with 4001 after the grace.
    let close_at = later.saturating_add(ttl).saturating_add(Duration::from_secs(30));
    s.on_timer(s.next_timer(), &mut rng());
    assert_eq!(s.on_timer(close_at, &mut rng()), Some(TimerAction::Close(CloseCode::TokenExpired)));
}

/// A session pinging every 20 s and dropped after 30 s of silence, with
/// a token and CSRF rotation far beyond the test.
fn heartbeat_session() -> Session {
    let limits =
        SessionLimits { heartbeat_interval: Duration::from_secs(20), silence_limit: Duration::from_secs(30), ..LIMITS };
    let identity = verifier().verify(&mint("u1", &[], Duration::from_secs(3600), T0), T0).unwrap();
    Session::new(identity, limits, standing(), T0, &mut rng())
}

fn at(secs: u64) -> Timestamp {
    T0.saturating_add(Duration::from_secs(secs))
}

#[test]
fn a_silent_peer_is_pinged_at_the_interval_and_dropped_at_interval_plus_timeout() {
    let mut s = heartbeat_session();
    assert_eq!(s.next_timer(), at(20));
    assert_eq!(s.on_timer(at(19), &mut rng()), None);
    assert_eq!(s.on_timer(at(20), &mut rng()), Some(TimerAction::Ping));
    assert_eq!(s.on_timer(at(20), &mut rng()), None, "one ping per interval");
    // The silence deadline (20 + 10) comes before the next ping (40).
    assert_eq!(s.next_timer(), at(30));
    assert_eq!(s.on_timer(at(30).saturating_sub(Duration::from_millis(1)), &mut rng()), None);
    assert_eq!(s.on_timer(at(30), &mut rng()), Some(TimerAction::Silent));
    // Silence is final: the driver drops the connection, and asking again
    // gives the same answer rather than a ping.
    assert_eq!(s.on_timer(at(40), &mut rng()), Some(TimerAction::Silent));
}

#[test]
fn any_frame_rearms_the_silence_deadline_and_pings_keep_their_rhythm() {
    let mut s = heartbeat_session();
    assert_eq!(s.on_timer(at(20), &mut rng()), Some(TimerAction::Ping));
    // The pong to that ping.
    s.on_heard(at(25));
    assert_eq!(s.next_timer(), at(40));
    assert_eq!(s.on_timer(at(30), &mut rng()), None, "heard 5 s ago: not silent");
    assert_eq!(s.on_timer(at(40), &mut rng()), Some(TimerAction::Ping));
    // No answer to the second ping: gone 30 s after the last frame.
    assert_eq!(s.next_timer(), at(55));
    assert_eq!(s.on_timer(at(55), &mut rng()), Some(TimerAction::Silent));
}

#[test]
fn a_late_tick_sends_one_ping_and_the_next_one_an_interval_later() {
    let mut s = heartbeat_session();
    s.on_heard(at(26));
    // The driver woke late (a busy runtime): still one ping, not two.
    assert_eq!(s.on_timer(at(27), &mut rng()), Some(TimerAction::Ping));
    assert_eq!(s.on_timer(at(27), &mut rng()), None);
    assert_eq!(s.next_timer(), at(47));
}

#[test]
fn refresh_for_another_user_is_refused() {
    let env = Env::new(policy());
    let mut s = session(Duration::from_secs(600));
    let other = mint("u2", &[], Duration::from_secs(600), T0);
    let frame = format!(r#"{{"type":"refresh","id":"r","token":"{other}"}}"#);
    assert_eq!(code_of(&s.on_text(env.cx(), &frame, T0)), Some((Some("r"), ErrorCode::Forbidden)));
    assert_eq!(s.identity().user_id, "u1");
    let stale = mint("u1", &[], Duration::from_secs(60), T0);
    let frame = format!(r#"{{"type":"refresh","id":"x","token":"{stale}"}}"#);
    let later = T0.saturating_add(Duration::from_secs(3600));
    assert_eq!(code_of(&s.on_text(env.cx(), &frame, later)), Some((Some("x"), ErrorCode::Expired)));
}

#[test]
fn a_refresh_with_fewer_roles_leaves_the_rooms_it_no_longer_grants() {
    let env = Env::new(policy());
    let staff = verifier().verify(&mint("u1", &["staff"], Duration::from_secs(600), T0), T0).unwrap();
    let mut s = Session::new(staff, LIMITS, standing(), T0, &mut rng());
    let mut spec_with_staff = PolicySpec::default();
    spec_with_staff.roles.insert("staff".into(), RoleSpec { permissions: vec!["staff:join".into()] });
    spec_with_staff.rooms.insert("lobby".into(), RoomSpec::default());
    spec_with_staff
        .rooms
        .insert("staff".into(), RoomSpec { join: Some("staff:join".into()), publish: None, ..RoomSpec::default() });
    let env_staff = Env::new(Policy::compile(&spec_with_staff).unwrap());
    for room in ["lobby", "staff"] {
        let frame = format!(r#"{{"type":"join","id":"j","room":"{room}"}}"#);
        assert!(matches!(s.on_text(env_staff.cx(), &frame, T0), Decision::Join { .. }), "{room}");
    }
    // Same user, the staff role gone: the staff room is left, lobby kept.
    let demoted = mint("u1", &[], Duration::from_secs(600), T0);
    let frame = format!(r#"{{"type":"refresh","id":"r","token":"{demoted}"}}"#);
    match s.on_text(env_staff.cx(), &frame, T0) {
        Decision::Refreshed { id, removed } => {
            assert_eq!((&*id, removed), ("r", vec![Box::from("staff")]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.rooms().collect::<Vec<_>>(), ["lobby"]);
    // So publishing there is refused: it is no longer a member.
    let send = r#"{"type":"send","id":"s","room":"staff","event":"chat.message","data":{}}"#;
    assert_eq!(code_of(&s.on_text(env.cx(), send, T0)), Some((Some("s"), ErrorCode::NotMember)));
}

#[test]
fn a_narrower_rooms_claim_on_refresh_leaves_the_rooms_outside_it() {
    let env = Env::new(policy());
    let mut s = session(Duration::from_secs(600));
    assert!(matches!(s.on_text(env.cx(), r#"{"type":"join","id":"j","room":"lobby"}"#, T0), Decision::Join { .. }));
    let signer = crate::auth::TokenSigner::new(&crate::testkit::key(), &crate::testkit::options()).unwrap();
    let request = crate::auth::TokenRequest {
        user_id: "u1".into(),
        name: None,
        roles: Vec::new(),
        rooms: Some(vec!["course:*".into()]),
        ttl: Duration::from_secs(600),
        ..Default::default()
    };
    let narrowed = signer.mint(request, T0, &mut rng()).unwrap();
    let frame = format!(r#"{{"type":"refresh","id":"r","token":"{narrowed}"}}"#);
    assert!(
        matches!(s.on_text(env.cx(), &frame, T0), Decision::Refreshed { removed, .. } if removed == [Box::from("lobby")])
    );
    assert_eq!(s.rooms().count(), 0);
}

#[test]
fn a_reload_that_removes_a_permission_removes_the_membership() {
    let mut spec = PolicySpec::default();
    spec.roles.insert("user".into(), RoleSpec { permissions: vec!["staff:join".into()] });
    spec.default_roles = vec!["user".into()];
    spec.rooms.insert("lobby".into(), RoomSpec::default());
    spec.rooms
        .insert("staff".into(), RoomSpec { join: Some("staff:join".into()), publish: None, ..RoomSpec::default() });
    let before = Env::new(Policy::compile(&spec).unwrap());
    let mut s = session(Duration::from_secs(600));
    for room in ["lobby", "staff"] {
        let frame = format!(r#"{{"type":"join","id":"j","room":"{room}"}}"#);
        assert!(matches!(s.on_text(before.cx(), &frame, T0), Decision::Join { .. }), "{room}");
    }
    assert!(s.recheck_rooms(&before.policy).is_empty(), "nothing changed, nothing removed");
    spec.roles.insert("user".into(), RoleSpec::default());
    let after = Policy::compile(&spec).unwrap();
    assert_eq!(s.recheck_rooms(&after), vec![Box::from("staff")]);
    assert_eq!(s.rooms().collect::<Vec<_>>(), ["lobby"]);
}

/// A policy with one event per pipeline feature.
fn strict_policy() -> Policy {
    use crate::policy::RuleList;
    use crate::sanitize::Rule;
    let mut s = PolicySpec::default();
    s.rooms.insert("r".into(), RoomSpec::default());
    s.rooms.insert("r2".into(), RoomSpec::default());
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "content": { "type": "string", "maxLength": 40 }, "n": { "type": "integer" } },
        "required": ["content"],
        "additionalProperties": false
    });
    let mut chat = EventSpec { schema: Some(schema), max_bytes: Some(200), ..EventSpec::default() };
    chat.sanitize.insert("/content".into(), RuleList::One(Rule::Html));
    s.events.insert("chat".into(), chat);
    s.events.insert("guarded".into(), EventSpec { csrf: true, ..EventSpec::default() });
    s.events.insert("once".into(), EventSpec { replay: true, ..EventSpec::default() });
    s.events.insert("raw".into(), EventSpec::default());
    Policy::compile(&s).unwrap()
}

fn send(event: &str, data: &str, extra: &str) -> String {
    format!(r#"{{"type":"send","id":"s","room":"r","event":"{event}","data":{data}{extra}}}"#)
}

fn joined(env: &Env) -> Session {
    // The token outlives the CSRF rotation, so rotation is the first timer.
    let mut s = session(Duration::from_secs(7 * 86_400));
    assert!(matches!(s.on_text(env.cx(), r#"{"type":"join","id":"j","room":"r"}"#, T0), Decision::Join { .. }));
    s
}

fn refusal_of(d: Decision<'_>) -> Refusal {
    match d {
        Decision::Reject(r, _) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn data_is_validated_then_sanitized_and_broadcast_as_cleaned() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    match s.on_text(env.cx(), &send("chat", r#"{"content":"<b>hi</b><script>x()</script>"}"#, ""), T0) {
        Decision::Publish { data, .. } => assert_eq!(data.get(), r#"{"content":"<b>hi</b>"}"#),
        other => panic!("{other:?}"),
    }
    // Schema failures name the client's field, never the schema.
    let r = refusal_of(s.on_text(env.cx(), &send("chat", r#"{"content":"x","n":"one"}"#, ""), T0));
    assert_eq!((r.code(), r.path.as_deref()), (ErrorCode::InvalidPayload, Some("/n")));
    let r = refusal_of(s.on_text(env.cx(), &send("chat", r#"{"content":"x","user_id":"admin"}"#, ""), T0));
    assert_eq!(r.code(), ErrorCode::InvalidPayload);
    let r = refusal_of(s.on_text(
        env.cx(),
        &send("chat", r#"{"content":"this is far, far longer than forty characters"}"#, ""),
        T0,
    ));
    assert_eq!((r.code(), r.path.as_deref()), (ErrorCode::InvalidPayload, Some("/content")));
}

#[test]
fn oversized_deep_and_duplicate_key_data_are_refused_before_the_schema() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    let big = format!(r#"{{"content":"{}"}}"#, "x".repeat(300));
    assert_eq!(refusal_of(s.on_text(env.cx(), &send("chat", &big, ""), T0)).code(), ErrorCode::TooLarge);
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    assert_eq!(refusal_of(s.on_text(env.cx(), &send("raw", &deep, ""), T0)).code(), ErrorCode::BadRequest);
    let dup = r#"{"content":"a","content":"b"}"#;
    assert_eq!(refusal_of(s.on_text(env.cx(), &send("chat", dup, ""), T0)).code(), ErrorCode::BadRequest);
}

#[test]
fn prototype_keys_are_dropped_from_every_payload() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    let data = r#"{"a":{"__proto__":{"admin":true},"b":[{"constructor":1,"c":2}]},"prototype":0}"#;
    match s.on_text(env.cx(), &send("raw", data, ""), T0) {
        Decision::Publish { data, .. } => assert_eq!(data.get(), r#"{"a":{"b":[{"c":2}]}}"#),
        other => panic!("{other:?}"),
    }
}

#[test]
fn csrf_events_need_the_current_or_just_rotated_token() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    assert_eq!(refusal_of(s.on_text(env.cx(), &send("guarded", "{}", ""), T0)).code(), ErrorCode::CsrfFailed);
    let wrong = r#","csrf":"nope""#;
    assert_eq!(refusal_of(s.on_text(env.cx(), &send("guarded", "{}", wrong), T0)).code(), ErrorCode::CsrfFailed);
    let old = s.csrf().to_owned();
    let with = |t: &str| format!(r#","csrf":"{t}""#);
    assert!(matches!(s.on_text(env.cx(), &send("guarded", "{}", &with(&old)), T0), Decision::Publish { .. }));

    // Rotation is a timer action; the old token then has a grace period.
    let at = s.next_timer();
    // Another seed than the session's, so the new token differs.
    let mut other = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    assert_eq!(s.on_timer(at, &mut other), Some(TimerAction::CsrfRotated));
    assert_ne!(s.csrf(), old);
    assert!(matches!(s.on_text(env.cx(), &send("guarded", "{}", &with(&old)), at), Decision::Publish { .. }));
    let late = at.saturating_add(Duration::from_secs(61));
    assert_eq!(
        refusal_of(s.on_text(env.cx(), &send("guarded", "{}", &with(&old)), late)).code(),
        ErrorCode::CsrfFailed
    );
    let new = s.csrf().to_owned();
    assert!(matches!(s.on_text(env.cx(), &send("guarded", "{}", &with(&new)), late), Decision::Publish { .. }));
}

#[test]
fn the_callers_seed_decides_the_session_id_and_csrf_token() {
    let seeded = |seed| {
        let identity = verifier().verify(&mint("u1", &[], Duration::from_secs(3600), T0), T0).unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        Session::new(identity, LIMITS, standing(), T0, &mut rng)
    };
    let (a, again, other) = (seeded(1), seeded(1), seeded(2));
    assert!(a.id().starts_with("s_"));
    assert_eq!((a.id(), a.csrf()), (again.id(), again.csrf()), "same seed, same session");
    assert_ne!(a.id(), other.id());
    assert_ne!(a.csrf(), other.csrf());
    assert_ne!(a.id().trim_start_matches("s_"), a.csrf(), "one generator, two draws");
}

#[test]
fn replay_events_need_a_fresh_nonce_and_timestamp() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    let extra = |nonce: &str, ts: u64| format!(r#","nonce":"{nonce}","ts":{ts}"#);
    let now = T0.as_millis();
    assert!(matches!(env.run(&mut s, &send("once", "{}", &extra("n1", now)), T0), Decision::Publish { .. }));
    assert_eq!(refusal_of(env.run(&mut s, &send("once", "{}", &extra("n1", now)), T0)).code(), ErrorCode::Replay);
    assert_eq!(
        refusal_of(s.on_text(env.cx(), &send("once", "{}", &extra("n2", now - 31_000)), T0)).code(),
        ErrorCode::Replay
    );
    assert_eq!(refusal_of(s.on_text(env.cx(), &send("once", "{}", ""), T0)).code(), ErrorCode::Replay);
}

#[test]
fn a_refused_message_spends_no_nonce() {
    // Refused after the replay step (not a member), the nonce is not
    // recorded: the same message is accepted once the sender has joined.
    let env = Env::new(strict_policy());
    let mut s = session(Duration::from_secs(7 * 86_400));
    let frame = send("once", "{}", &format!(r#","nonce":"n1","ts":{}"#, T0.as_millis()));
    assert_eq!(refusal_of(s.on_text(env.cx(), &frame, T0)).code(), ErrorCode::NotMember);
    assert!(matches!(s.on_text(env.cx(), r#"{"type":"join","id":"j","room":"r"}"#, T0), Decision::Join { .. }));
    assert!(matches!(env.run(&mut s, &frame, T0), Decision::Publish { .. }));
    assert_eq!(refusal_of(env.run(&mut s, &frame, T0)).code(), ErrorCode::Replay);
}

#[test]
fn refusals_come_in_pipeline_order() {
    // Unknown event beats everything after it; CSRF beats authorization
    // and membership; membership beats the schema.
    let env = Env::new(strict_policy());
    let mut s = session(Duration::from_secs(3600));
    let r = refusal_of(s.on_text(env.cx(), &send("nope", "{}", ""), T0));
    assert_eq!(r.code(), ErrorCode::UnknownEvent);
    let r = refusal_of(s.on_text(env.cx(), &send("guarded", "{}", ""), T0));
    assert_eq!(r.code(), ErrorCode::CsrfFailed);
    let r = refusal_of(s.on_text(env.cx(), &send("chat", r#"{"bad":1}"#, ""), T0));
    assert_eq!(r.code(), ErrorCode::NotMember);
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".{0,12}", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn on_arbitrary_payloads(data in json_value(), event in prop_oneof![Just("chat"), Just("raw"), Just("once"), Just("guarded")]) {
            let env = Env::new(strict_policy());
            let mut s = joined(&env);
            let frame = send(event, &data.to_string(), "");
            // Any decision is fine; it must not panic, and a publish must
            // carry valid JSON.
            if let Decision::Publish { data, .. } = s.on_text(env.cx(), &frame, T0) {
                prop_assert!(serde_json::from_str::<serde_json::Value>(data.get()).is_ok());
            }
        }

        #[test]
        fn on_arbitrary_frames(text in ".{0,200}") {
            let env = Env::new(strict_policy());
            let mut s = joined(&env);
            let _ = s.on_text(env.cx(), &text, T0);
        }
    }
}

#[test]
fn the_schema_judges_normalized_data_so_control_characters_cannot_hide_a_key() {
    // "ro\u0000le" becomes "role" when control characters are stripped; the
    // schema must see that, or an unvalidated key would be broadcast.
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    let r = refusal_of(s.on_text(env.cx(), &send("chat", r#"{"content":"x","ro\u0000le":"admin"}"#, ""), T0));
    assert_eq!(r.code(), ErrorCode::InvalidPayload);
}

mod guarded {
    //! The pipeline with a real guard: step 2 and the scores.
    use super::*;
    use crate::guard::{GuardSettings, Rate, Step};
    use crate::refusal::Kind;
    use crate::testkit::guard_settings;

    fn env_with(settings: GuardSettings) -> Env {
        Env { guard: Guard::new(settings), ..Env::new(policy()) }
    }

    fn chat(id: usize) -> String {
        format!(r#"{{"type":"send","id":"{id}","room":"lobby","event":"chat.message","data":{{}}}}"#)
    }

    #[test]
    fn a_message_over_the_rate_is_refused_with_its_id_and_a_retry_hint() {
        let env = env_with(GuardSettings { connection_rate: Rate::parse("2/s").unwrap(), ..guard_settings() });
        let mut s = session(Duration::from_secs(3600));
        assert!(matches!(s.on_text(env.cx(), r#"{"type":"join","id":"j","room":"lobby"}"#, T0), Decision::Join { .. }));
        assert!(matches!(s.on_text(env.cx(), &chat(1), T0), Decision::Publish { .. }));
        let Decision::Reject(r, escalation) = s.on_text(env.cx(), &chat(2), T0) else { panic!("over 2/s") };
        assert_eq!(
            (r.id.as_deref(), r.code(), r.retry_after),
            (Some("2"), ErrorCode::RateLimited, Some(Duration::from_millis(500)))
        );
        assert_eq!(escalation.step, Step::None);
        // Unparseable frames over the rate are refused without an id.
        let Decision::Reject(r, _) = s.on_text(env.cx(), "not json", T0) else { panic!("refused") };
        assert_eq!((r.id, r.kind), (None, Kind::RateExcess));
    }

    #[test]
    fn repeated_refusals_escalate_to_a_disconnect() {
        // Rates out of the way, so only the refusals' own weight counts.
        let many = Rate { count: 1000, per: Duration::from_secs(1) };
        let env = env_with(GuardSettings { connection_rate: many, user_rate: many, ip_rate: many, ..guard_settings() });
        let mut s = session(Duration::from_secs(3600));
        let steps: Vec<Step> = (0..10)
            .map(|_| match s.on_text(env.cx(), r#"{"type":"nope","id":"x"}"#, T0) {
                Decision::Reject(r, escalation) => {
                    assert_eq!(r.kind, Kind::Protocol);
                    escalation.step
                }
                other => panic!("{other:?}"),
            })
            .collect();
        // Protocol errors weigh 3: restricted at 10 (the 4th), closed at 30.
        assert_eq!(steps[3], Step::Restrict);
        assert_eq!(steps[9], Step::Disconnect);
    }

    #[test]
    fn a_refresh_asks_for_keys_only_after_its_rate_and_only_once() {
        use crate::auth::{Algorithm, IssuerKeys, IssuerSpec, Issuers, JwksSpec};
        use crate::testkit::{key, options};
        use base64::Engine as _;
        const IDP: &str = "https://idp.example";
        let jwks = JwksSpec {
            url: format!("{IDP}/jwks.json"),
            max_bytes: 4096,
            min_refresh: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(3600),
        };
        let idp = IssuerSpec {
            issuer: IDP.into(),
            audience: None,
            algorithms: vec![Algorithm::EdDSA],
            keys: IssuerKeys::Jwks(jwks),
        };
        let issuers = Issuers::new(&[idp], &options()).unwrap();
        let env = Env {
            verifier: TokenVerifier::new(&[key()], options()).unwrap().with_issuers(issuers),
            ..env_with(GuardSettings { connection_rate: Rate::parse("2/s").unwrap(), ..guard_settings() })
        };
        // Routing reads the header and `iss` only, so an unsigned token
        // naming a key the cache lacks is enough to be asked about.
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"EdDSA","kid":"k9"}"#),
            b64(&format!(r#"{{"iss":"{IDP}","sub":"u1","exp":{}}}"#, T0.as_secs() + 600))
        );
        let frame = format!(r#"{{"type":"refresh","id":"r","token":"{token}"}}"#);
        let mut s = session(Duration::from_secs(3600));
        let Decision::KeysWanted { token: wanted } = s.on_text(env.cx(), &frame, T0) else { panic!("keys asked for") };
        assert_eq!(wanted, token);
        // Resumed: the rate (1 of 2 used) is not counted again, and the
        // frame is judged, not asked about twice.
        assert_eq!(code_of(&s.resume(env.cx(), &frame, T0)), Some((Some("r"), ErrorCode::Forbidden)));
        assert!(matches!(s.on_text(env.cx(), &frame, T0), Decision::KeysWanted { .. }), "the 2nd of 2/s");
        // Over the rate, a refresh is refused before anything is asked.
        assert_eq!(code_of(&s.on_text(env.cx(), &frame, T0)), Some((Some("r"), ErrorCode::RateLimited)));
    }

    #[test]
    fn dry_run_lets_the_message_through_and_reports_it() {
        let env =
            env_with(GuardSettings { dry_run: true, connection_rate: Rate::parse("1/s").unwrap(), ..guard_settings() });
        let mut s = session(Duration::from_secs(3600));
        assert!(matches!(s.on_text(env.cx(), r#"{"type":"join","id":"j","room":"lobby"}"#, T0), Decision::Join { .. }));
        assert!(s.take_unenforced().is_none());
        assert!(matches!(s.on_text(env.cx(), &chat(1), T0), Decision::Publish { .. }));
        let (refusal, escalation) = s.take_unenforced().expect("reported");
        assert_eq!(refusal.kind, Kind::RateExcess);
        assert!(!escalation.enforced);
        assert!(s.take_unenforced().is_none(), "reported once");
    }
}

#[test]
fn a_revoked_token_cannot_refresh_and_the_session_knows_it_is_revoked() {
    use crate::auth::{Revocation, user_revocation};
    let env = Env::new(policy());
    let mut s = session(Duration::from_secs(3600));
    assert!(!s.is_revoked(&env.revocations));
    // `mint` gives every token `iat` = T0 and no `jti`: revoking u1.s
    // tokens before T0 covers the session's token and any new one.
    env.revocations.replace(vec![user_revocation("u1", T0).unwrap()]);
    assert!(s.is_revoked(&env.revocations));
    let fresh = mint("u1", &[], Duration::from_secs(7200), T0);
    let frame = format!(r#"{{"type":"refresh","id":"r","token":"{fresh}"}}"#);
    assert_eq!(code_of(&s.on_text(env.cx(), &frame, T0)), Some((Some("r"), ErrorCode::Forbidden)));
    env.revocations.replace(vec![Revocation::Token("other".into())]);
    assert!(!s.is_revoked(&env.revocations));
}

#[test]
fn a_cookie_session_needs_the_csrf_token_on_every_send() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env).with_csrf_on_every_send();
    // `raw` asks for no CSRF token; on a cookie session it needs one anyway.
    assert_eq!(refusal_of(s.on_text(env.cx(), &send("raw", "{}", ""), T0)).code(), ErrorCode::CsrfFailed);
    let with = format!(r#","csrf":"{}""#, s.csrf());
    assert!(matches!(s.on_text(env.cx(), &send("raw", "{}", &with), T0), Decision::Publish { .. }));
    // The same event on a bearer session passes without it.
    let mut bearer = joined(&env);
    assert!(matches!(bearer.on_text(env.cx(), &send("raw", "{}", ""), T0), Decision::Publish { .. }));
}

fn owned_policy() -> Policy {
    let mut s = PolicySpec::default();
    s.roles.insert("user".into(), RoleSpec { permissions: vec!["chat:send".into()] });
    s.roles.insert("mod".into(), RoleSpec { permissions: vec!["rooms:moderate".into()] });
    s.default_roles = vec!["user".into()];
    let first_join = RoomSpec { owners: Some("first_join".into()), ..RoomSpec::default() };
    s.rooms.insert("team:*".into(), first_join);
    let created =
        RoomSpec { owners: Some("create".into()), moderate: Some("rooms:moderate".into()), ..RoomSpec::default() };
    s.rooms.insert("club:*".into(), created);
    s.events.insert("chat.message".into(), EventSpec::default());
    s.events.insert("room.topic".into(), EventSpec { owner: true, ..EventSpec::default() });
    Policy::compile(&s).unwrap()
}

fn user(name: &str, roles: &[&str]) -> Session {
    let identity = verifier().verify(&mint(name, roles, Duration::from_secs(3600), T0), T0).unwrap();
    Session::new(identity, LIMITS, standing(), T0, &mut rng())
}

#[test]
fn the_first_joiner_owns_the_room_and_only_the_owner_acts_as_one() {
    let env = Env::new(owned_policy());
    let (mut alice, mut bob) = (user("alice", &[]), user("bob", &[]));
    let join = r#"{"type":"join","id":"j","room":"team:a"}"#;
    assert!(matches!(alice.on_text(env.cx(), join, T0), Decision::Join { claimed: true, .. }));
    assert!(matches!(bob.on_text(env.cx(), join, T0), Decision::Join { claimed: false, .. }));
    assert_eq!(env.owners.owner("team:a").as_deref(), Some("alice"));
    let topic = r#"{"type":"send","id":"t","room":"team:a","event":"room.topic","data":{}}"#;
    assert_eq!(code_of(&bob.on_text(env.cx(), topic, T0)), Some((Some("t"), ErrorCode::Forbidden)));
    assert!(matches!(alice.on_text(env.cx(), topic, T0), Decision::Publish { .. }));
    let chat = r#"{"type":"send","id":"c","room":"team:a","event":"chat.message","data":{}}"#;
    assert!(matches!(bob.on_text(env.cx(), chat, T0), Decision::Publish { .. }), "other events stay open");
    let remove = r#"{"type":"room.remove_member","id":"r","room":"team:a","user":"alice"}"#;
    assert_eq!(code_of(&bob.on_text(env.cx(), remove, T0)), Some((Some("r"), ErrorCode::Forbidden)));
    let remove = r#"{"type":"room.remove_member","id":"r","room":"team:a","user":"bob"}"#;
    assert!(matches!(alice.on_text(env.cx(), remove, T0), Decision::RemoveMember { ref user, .. } if user == "bob"));
    let delete = r#"{"type":"room.delete","id":"d","room":"team:a"}"#;
    assert_eq!(code_of(&bob.on_text(env.cx(), delete, T0)), Some((Some("d"), ErrorCode::Forbidden)));
    assert!(matches!(alice.on_text(env.cx(), delete, T0), Decision::DeleteRoom { .. }));
    assert_eq!(env.owners.owner("team:a"), None, "a deleted room has no owner");
    assert_eq!(alice.rooms().count(), 0, "and the deleter left it");
}

#[test]
fn a_created_room_cannot_be_joined_before_it_is_created_or_created_twice() {
    let env = Env::new(owned_policy());
    let (mut alice, mut bob, mut moderator) = (user("alice", &[]), user("bob", &[]), user("mo", &["mod"]));
    let join = r#"{"type":"join","id":"j","room":"club:x"}"#;
    assert_eq!(code_of(&bob.on_text(env.cx(), join, T0)), Some((Some("j"), ErrorCode::Forbidden)), "not created");
    let create = r#"{"type":"create","id":"c","room":"club:x"}"#;
    assert!(matches!(alice.on_text(env.cx(), create, T0), Decision::Create { claimed: true, .. }));
    assert_eq!(alice.rooms().collect::<Vec<_>>(), ["club:x"], "create joins");
    assert!(matches!(alice.on_text(env.cx(), create, T0), Decision::Create { claimed: false, .. }), "idempotent");
    assert_eq!(code_of(&bob.on_text(env.cx(), create, T0)), Some((Some("c"), ErrorCode::Forbidden)));
    assert!(matches!(bob.on_text(env.cx(), join, T0), Decision::Join { claimed: false, .. }));
    let delete = r#"{"type":"room.delete","id":"d","room":"club:x"}"#;
    assert!(matches!(moderator.on_text(env.cx(), delete, T0), Decision::DeleteRoom { .. }), "moderate overrides");
    // A cluster's record gave the rooms to others: bob's join stands, a
    // create is refused and leaves the room.
    assert_eq!(bob.claim_lost("club:x", false), Ok(()));
    assert_eq!(bob.rooms().collect::<Vec<_>>(), ["club:x"]);
    assert!(matches!(alice.on_text(env.cx(), create, T0), Decision::Create { claimed: true, .. }));
    assert_eq!(alice.claim_lost("club:x", true).unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(alice.rooms().count(), 0, "the refused create joined nothing");
    let create_team = r#"{"type":"create","id":"c","room":"team:y"}"#;
    assert_eq!(
        code_of(&alice.on_text(env.cx(), create_team, T0)),
        Some((Some("c"), ErrorCode::BadRequest)),
        "first_join rooms are not created"
    );
}

#[test]
fn recover_has_its_own_rate_because_each_may_replay_a_whole_history() {
    // recover_rate 3/min, message rates far above.
    let env = Env { guard: Guard::new(crate::testkit::guard_settings()), ..Env::new(policy()) };
    let mut s = session(Duration::from_secs(3600));
    let recover = r#"{"type":"recover","id":"r","room":"lobby","since":1}"#;
    for _ in 0..3 {
        assert!(matches!(s.on_text(env.cx(), recover, T0), Decision::Recover { .. }));
    }
    match s.on_text(env.cx(), recover, T0) {
        Decision::Reject(refusal, _) => {
            assert_eq!((refusal.id.as_deref(), refusal.code()), (Some("r"), ErrorCode::RateLimited));
            assert!(refusal.retry_after.is_some());
        }
        other => panic!("{other:?}"),
    }
    let join = r#"{"type":"join","id":"j","room":"lobby"}"#;
    assert!(matches!(s.on_text(env.cx(), join, T0), Decision::Join { .. }), "other requests go on");
}

#[test]
fn a_resent_cid_is_answered_with_the_first_seq_and_costs_no_nonce() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    let fresh_nonce = format!(r#","nonce":"n1","ts":{},"cid":"c1""#, T0.as_millis());
    let first = send("once", "{}", &fresh_nonce);
    let Decision::Publish { cid, .. } = s.on_text(env.cx(), &first, T0) else { panic!("published") };
    assert_eq!(cid.as_deref(), Some("c1"), "to be marked sent");
    assert!(
        matches!(s.on_text(env.cx(), &first, T0), Decision::Duplicate { seq: None, .. }),
        "in flight until the server marks it sent"
    );
    env.client_ids.sent("u1", "c1", "r", 7);
    // The same nonce again would be a replay: the cid answers first.
    assert!(matches!(s.on_text(env.cx(), &first, T0), Decision::Duplicate { seq: Some(7), .. }));
    let elsewhere = r#"{"type":"send","id":"x","room":"r2","event":"raw","data":{},"cid":"c1"}"#;
    assert!(matches!(s.on_text(env.cx(), r#"{"type":"join","id":"j","room":"r2"}"#, T0), Decision::Join { .. }));
    assert_eq!(code_of(&s.on_text(env.cx(), elsewhere, T0)), Some((Some("x"), ErrorCode::BadRequest)));
}

#[test]
fn a_refused_cid_can_be_sent_again() {
    let env = Env::new(strict_policy());
    let mut s = joined(&env);
    let bad = send("once", "{}", r#","cid":"c2""#);
    assert_eq!(code_of(&s.on_text(env.cx(), &bad, T0)).map(|c| c.1), Some(ErrorCode::Replay), "no nonce");
    let good = send("once", "{}", &format!(r#","nonce":"n2","ts":{},"cid":"c2""#, T0.as_millis()));
    assert!(matches!(s.on_text(env.cx(), &good, T0), Decision::Publish { .. }), "the refusal forgot c2");
    let long = send("raw", "{}", &format!(r#","cid":"{}""#, "c".repeat(65)));
    assert_eq!(code_of(&s.on_text(env.cx(), &long, T0)).map(|c| c.1), Some(ErrorCode::BadRequest));
}

fn country_policy(unknown: crate::threat::geo::Unknown) -> Policy {
    let mut s = PolicySpec { geo_unknown: unknown, ..PolicySpec::default() };
    s.rooms.insert("lobby".into(), RoomSpec::default());
    s.rooms.insert("fr:*".into(), RoomSpec { allow_countries: vec!["fr".into()], ..RoomSpec::default() });
    let created = RoomSpec { owners: Some("create".into()), deny_countries: vec!["US".into()], ..RoomSpec::default() };
    s.rooms.insert("club:*".into(), created);
    Policy::compile(&s).unwrap()
}

#[test]
fn room_countries_refuse_join_create_and_recover_with_forbidden_and_spare_the_exempt() {
    use crate::threat::geo::{Locale, Unknown};
    let env = Env::new(country_policy(Unknown::Deny));
    let (fr, us) = (Locale::Country(*b"FR"), Locale::Country(*b"US"));
    let frames = [
        r#"{"type":"join","id":"j","room":"fr:1"}"#,
        r#"{"type":"recover","id":"j","room":"fr:1","since":1}"#,
        r#"{"type":"create","id":"j","room":"club:1"}"#,
    ];
    for frame in frames {
        let mut s = session(Duration::from_secs(3600)).with_locale(us);
        match s.on_text(env.cx(), frame, T0) {
            Decision::Reject(r, _) => {
                assert_eq!((r.id.as_deref(), r.code()), (Some("j"), ErrorCode::Forbidden), "{frame}");
                assert!(r.reason.contains("country US"), "{}", r.reason);
            }
            other => panic!("{frame}: {other:?}"),
        }
        assert_eq!(s.rooms().count(), 0, "{frame}");
    }
    assert_eq!(env.owners.owner("club:1"), None, "a refused create claims nothing");
    let mut s = session(Duration::from_secs(3600)).with_locale(fr);
    assert!(matches!(s.on_text(env.cx(), frames[0], T0), Decision::Join { .. }));
    assert!(matches!(s.on_text(env.cx(), frames[2], T0), Decision::Create { claimed: true, .. }));
    // Unknown follows geo.unknown; exempt (threat.allow, or no database)
    // is never refused; rooms without countries are open to all.
    let mut unknown = session(Duration::from_secs(3600)).with_locale(Locale::Unknown);
    assert_eq!(code_of(&unknown.on_text(env.cx(), frames[0], T0)), Some((Some("j"), ErrorCode::Forbidden)));
    assert!(matches!(
        unknown.on_text(env.cx(), r#"{"type":"join","id":"l","room":"lobby"}"#, T0),
        Decision::Join { .. }
    ));
    let mut exempt = session(Duration::from_secs(3600));
    assert!(matches!(exempt.on_text(env.cx(), frames[0], T0), Decision::Join { .. }));
    let lenient = Env::new(country_policy(Unknown::Allow));
    let mut unknown = session(Duration::from_secs(3600)).with_locale(Locale::Unknown);
    assert!(matches!(unknown.on_text(lenient.cx(), frames[0], T0), Decision::Join { .. }));
}

#[test]
fn a_reload_that_narrows_a_rooms_countries_removes_the_membership() {
    use crate::threat::geo::{Locale, Unknown};
    let mut spec = PolicySpec::default();
    spec.rooms.insert("r".into(), RoomSpec::default());
    let before = Env::new(Policy::compile(&spec).unwrap());
    let mut s = session(Duration::from_secs(600)).with_locale(Locale::Country(*b"DE"));
    assert!(matches!(s.on_text(before.cx(), r#"{"type":"join","id":"j","room":"r"}"#, T0), Decision::Join { .. }));
    spec.rooms.insert("r".into(), RoomSpec { deny_countries: vec!["DE".into()], ..RoomSpec::default() });
    spec.geo_unknown = Unknown::Allow;
    let after = Policy::compile(&spec).unwrap();
    assert_eq!(s.recheck_rooms(&after), vec![Box::from("r")]);
}
