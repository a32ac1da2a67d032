use super::*;
use crate::Timestamp;

fn spec() -> PolicySpec {
    let mut s = PolicySpec::default();
    s.roles.insert("user".into(), RoleSpec { permissions: vec!["chat:send".into()] });
    s.roles.insert("teacher".into(), RoleSpec { permissions: vec!["course:*".into(), "announce:send".into()] });
    s.roles.insert("admin".into(), RoleSpec { permissions: vec!["*".into()] });
    s.default_roles = vec!["user".into()];
    s.rooms.insert("lobby".into(), RoomSpec::default());
    s.rooms.insert("course:*".into(), RoomSpec { join: Some("course:join".into()), publish: None });
    s.rooms.insert("course:secret".into(), RoomSpec { join: Some("admin:join".into()), publish: None });
    s.rooms.insert("news".into(), RoomSpec { join: None, publish: Some("announce:send".into()) });
    s.events.insert("chat.message".into(), EventSpec { permission: Some("chat:send".into()), ..EventSpec::default() });
    s.events.insert(
        "admin.broadcast".into(),
        EventSpec { permission: Some("admin:broadcast".into()), ..EventSpec::default() },
    );
    s
}

fn who(roles: &[&str]) -> Identity {
    Identity {
        user_id: "u1".into(),
        name: "alice".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        rooms: None,
        expires_at: Timestamp::from_secs(0),
        token_id: None,
    }
}

#[test]
fn permissions_match_exact_resource_wildcards_and_star() {
    let p = |s| Permission::parse(s).unwrap();
    assert!(p("chat:send").grants(&p("chat:send")));
    assert!(p("chat:*").grants(&p("chat:send")));
    assert!(!p("chat:*").grants(&p("chatroom:send")));
    assert!(p("*").grants(&p("anything:goes")));
    assert!(!p("chat:send").grants(&p("chat:delete")));
    for bad in ["", "chat", "Chat:send", "chat:", ":send", "chat:se nd", "*:send", "chat:s*"] {
        assert!(Permission::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn room_patterns_pick_the_most_specific_rule() {
    let policy = Policy::compile(&spec()).unwrap();
    assert!(policy.check_join(&who(&[]), "lobby").is_ok());
    assert_eq!(policy.check_join(&who(&[]), "course:101").unwrap_err().code, ErrorCode::Forbidden);
    assert!(policy.check_join(&who(&["teacher"]), "course:101").is_ok());
    // The exact rule for course:secret beats the course:* prefix.
    assert!(policy.check_join(&who(&["teacher"]), "course:secret").is_err());
    assert!(policy.check_join(&who(&["admin"]), "course:secret").is_ok());
    // `course:` alone is not covered by `course:*`.
    assert_eq!(policy.check_join(&who(&["admin"]), "course:").unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(policy.check_join(&who(&[]), "nowhere").unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(policy.check_join(&who(&[]), "bad room").unwrap_err().code, ErrorCode::BadRequest);
    assert_eq!(policy.check_join(&who(&[]), &"x".repeat(129)).unwrap_err().code, ErrorCode::BadRequest);
}

#[test]
fn the_rooms_claim_narrows_what_a_token_may_join() {
    let policy = Policy::compile(&spec()).unwrap();
    let mut id = who(&["teacher"]);
    id.rooms = Some(vec!["course:1*".into()]);
    assert!(policy.check_join(&id, "course:101").is_ok());
    assert!(policy.check_join(&id, "course:201").is_err());
    assert!(policy.check_join(&id, "lobby").is_err());
}

#[test]
fn the_rooms_claim_also_narrows_where_a_token_may_publish() {
    let policy = Policy::compile(&spec()).unwrap();
    let mut id = who(&["teacher"]);
    id.rooms = Some(vec!["course:1*".into()]);
    assert!(check_publish(&policy, &id, "course:101", "chat.message").is_ok());
    let refused = check_publish(&policy, &id, "lobby", "chat.message").unwrap_err();
    assert_eq!((refused.code, refused.reason), (ErrorCode::Forbidden, "room not in token's rooms claim"));
}

fn check_publish(p: &Policy, who: &Identity, room: &str, event: &str) -> Result<(), Denied> {
    let rule = p.event(event)?;
    p.authorize_publish(who, room, rule)
}

#[test]
fn publishing_needs_a_declared_event_and_both_permissions() {
    let policy = Policy::compile(&spec()).unwrap();
    assert!(check_publish(&policy, &who(&[]), "lobby", "chat.message").is_ok());
    assert_eq!(check_publish(&policy, &who(&[]), "lobby", "nope").unwrap_err().code, ErrorCode::UnknownEvent);
    assert_eq!(check_publish(&policy, &who(&[]), "lobby", "admin.broadcast").unwrap_err().code, ErrorCode::Forbidden);
    assert!(check_publish(&policy, &who(&["admin"]), "lobby", "admin.broadcast").is_ok());
    assert_eq!(check_publish(&policy, &who(&[]), "news", "chat.message").unwrap_err().code, ErrorCode::Forbidden);
    assert!(check_publish(&policy, &who(&["teacher"]), "news", "chat.message").is_ok());
}

#[test]
fn compile_errors_name_the_key() {
    let mut s = spec();
    s.rooms.insert("course:*".into(), RoomSpec { join: Some("Bad Perm".into()), publish: None });
    assert_eq!(Policy::compile(&s).unwrap_err().key, "rooms.\"course:*\".join");

    let mut s = spec();
    s.default_roles.push("ghost".into());
    assert_eq!(Policy::compile(&s).unwrap_err().key, "auth.default_roles[1]");

    let mut s = spec();
    s.rooms.insert("a*b*".into(), RoomSpec::default());
    assert_eq!(Policy::compile(&s).unwrap_err().key, "rooms.\"a*b*\"");

    let mut s = spec();
    s.events.insert("bad event".into(), EventSpec::default());
    assert_eq!(Policy::compile(&s).unwrap_err().key, "events.\"bad event\"");

    let mut s = spec();
    s.roles.get_mut("user").unwrap().permissions.push("x".into());
    assert_eq!(Policy::compile(&s).unwrap_err().key, "roles.user.permissions[1]");
}
