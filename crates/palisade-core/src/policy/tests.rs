use super::*;

fn spec() -> PolicySpec {
    let mut s = PolicySpec::default();
    s.roles.insert("user".into(), RoleSpec { permissions: vec!["chat:send".into()] });
    s.roles.insert("teacher".into(), RoleSpec { permissions: vec!["course:*".into(), "announce:send".into()] });
    s.roles.insert("admin".into(), RoleSpec { permissions: vec!["*".into()] });
    s.default_roles = vec!["user".into()];
    s.rooms.insert("lobby".into(), RoomSpec::default());
    s.rooms
        .insert("course:*".into(), RoomSpec { join: Some("course:join".into()), publish: None, ..RoomSpec::default() });
    s.rooms.insert(
        "course:secret".into(),
        RoomSpec { join: Some("admin:join".into()), publish: None, ..RoomSpec::default() },
    );
    s.rooms
        .insert("news".into(), RoomSpec { join: None, publish: Some("announce:send".into()), ..RoomSpec::default() });
    s.events.insert("chat.message".into(), EventSpec { permission: Some("chat:send".into()), ..EventSpec::default() });
    s.events.insert(
        "admin.broadcast".into(),
        EventSpec { permission: Some("admin:broadcast".into()), ..EventSpec::default() },
    );
    s
}

fn who(roles: &[&str]) -> Identity {
    crate::testkit::identity(roles)
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
    s.rooms.insert("course:*".into(), RoomSpec { join: Some("Bad Perm".into()), publish: None, ..RoomSpec::default() });
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

/// The shipped default policy, from the server's config template.
fn shipped() -> PolicySpec {
    let t: toml::Table = toml::from_str(include_str!("../../../palisade-server/src/config/palisade.toml")).unwrap();
    PolicySpec {
        roles: t["roles"].clone().try_into().unwrap(),
        rooms: t["rooms"].clone().try_into().unwrap(),
        events: t["events"].clone().try_into().unwrap(),
        default_roles: vec!["user".into()],
        ..PolicySpec::default()
    }
}

fn shape(policy: &Policy, event: &str, data: &serde_json::Value) -> Result<serde_json::Value, PayloadError> {
    let raw = serde_json::value::to_raw_value(data).unwrap();
    let rule = policy.event(event).unwrap();
    rule.check_size(&raw).map_err(|d| PayloadError { code: d.code, reason: d.reason.into(), path: None })?;
    rule.shape(&raw, policy.sanitizers()).map(|out| serde_json::from_str(out.get()).unwrap())
}

#[test]
fn a_chat_message_that_amplifies_in_html_is_refused_too_large() {
    let policy = Policy::compile(&shipped()).unwrap();
    let attack = crate::sanitize::tests::amplifier();
    let err = shape(&policy, "chat.message", &serde_json::json!({ "content": attack })).unwrap_err();
    assert_eq!(err.code, ErrorCode::TooLarge, "{err:?}");
}

#[test]
fn a_sanitized_copy_over_the_event_limit_is_refused() {
    use crate::sanitize::Rule;
    let mut s = PolicySpec { max_message_bytes: 1000, ..PolicySpec::default() };
    let mut quoted = EventSpec { max_bytes: Some(600), ..EventSpec::default() };
    quoted.sanitize.insert("/q".into(), RuleList::One(Rule::Text));
    s.events.insert("quoted".into(), quoted.clone());
    quoted.max_bytes = None;
    s.events.insert("unbounded".into(), quoted);
    let policy = Policy::compile(&s).unwrap();
    // `'` becomes `&#x27;`: 100 quotes are 600 bytes once escaped.
    let data = |n: usize| serde_json::json!({ "q": "'".repeat(n) });
    assert!(shape(&policy, "quoted", &data(97)).is_ok());
    assert_eq!(shape(&policy, "quoted", &data(100)).unwrap_err().code, ErrorCode::TooLarge);
    // Without `max_bytes`, `limits.max_message_bytes` bounds the copy.
    assert!(shape(&policy, "unbounded", &data(160)).is_ok());
    assert_eq!(shape(&policy, "unbounded", &data(170)).unwrap_err().code, ErrorCode::TooLarge);
}

#[test]
fn what_the_schema_checked_is_what_is_sent() {
    let policy = Policy::compile(&shipped()).unwrap();
    // The schema passed `minLength: 1`; the copy would be "".
    let err = shape(&policy, "chat.message", &serde_json::json!({"content": "<script>x</script>"})).unwrap_err();
    assert_eq!((err.code, err.path.as_deref()), (ErrorCode::InvalidPayload, Some("/content")), "{err:?}");
    assert!(err.reason.starts_with("schema, after sanitizing:"), "{}", err.reason);
    // Escaping lengthens a field past `maxLength: 64`.
    let err =
        shape(&policy, "chat.message", &serde_json::json!({"content": "hi", "replyTo": "'".repeat(20)})).unwrap_err();
    assert_eq!((err.code, err.path.as_deref()), (ErrorCode::InvalidPayload, Some("/replyTo")), "{err:?}");
    // HTML output is normalized again: the decoded accent is composed.
    let out = shape(&policy, "chat.message", &serde_json::json!({"content": "caf<b>e&#x301;</b>"})).unwrap();
    assert_eq!(out, serde_json::json!({"content": "caf<b>\u{e9}</b>"}));
    let ok = shape(&policy, "chat.message", &serde_json::json!({"content": "<b>hi</b>", "mentions": ["bob"]}));
    assert_eq!(ok.unwrap(), serde_json::json!({"content": "<b>hi</b>", "mentions": ["bob"]}));
}

#[test]
fn formats_are_validated_and_unknown_ones_refused() {
    let mut s = PolicySpec::default();
    let schema = serde_json::json!({"type": "object", "properties": {"mail": {"type": "string", "format": "email"}}});
    s.events.insert("contact".into(), EventSpec { schema: Some(schema), ..EventSpec::default() });
    let policy = Policy::compile(&s).unwrap();
    assert!(shape(&policy, "contact", &serde_json::json!({"mail": "a@example.com"})).is_ok());
    let err = shape(&policy, "contact", &serde_json::json!({"mail": "not an address"})).unwrap_err();
    assert_eq!((err.code, err.path.as_deref()), (ErrorCode::InvalidPayload, Some("/mail")));

    let schema = serde_json::json!({"type": "string", "format": "frobnicate"});
    s.events.insert("odd".into(), EventSpec { schema: Some(schema), ..EventSpec::default() });
    let err = Policy::compile(&s).unwrap_err();
    assert_eq!(err.key, "events.\"odd\".schema");
    assert!(err.why.contains("frobnicate"), "{}", err.why);
}

#[test]
fn a_zero_message_limit_is_refused() {
    let s = PolicySpec { max_message_bytes: 0, ..spec() };
    assert_eq!(Policy::compile(&s).unwrap_err().key, "limits.max_message_bytes");
}

/// Pointers (with `*` for "any element or value") at which a string in
/// `data` is broadcast with no sanitizer and no pattern, enum, const or
/// format to constrain it. Unknown schema shapes count as uncovered.
fn uncovered_strings(schema: &serde_json::Value, at: &str, sanitized: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
    let fixed = ["enum", "const"].iter().any(|k| schema.get(k).is_some());
    if fixed {
        return;
    }
    let branches = ["oneOf", "anyOf"].iter().find_map(|k| schema.get(k).and_then(|b| b.as_array()));
    let types: Vec<&str> = match schema.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => match branches {
            Some(branches) => {
                // A value matches one branch, so every branch must be covered.
                branches.iter().for_each(|b| uncovered_strings(b, at, sanitized, out));
                return;
            }
            None => vec!["string", "object", "array"],
        },
    };
    if types.contains(&"string") && !sanitized(at) && schema.get("pattern").is_none() && schema.get("format").is_none()
    {
        out.push(at.to_owned());
    }
    if types.contains(&"object") {
        if schema.get("additionalProperties") != Some(&serde_json::Value::Bool(false)) {
            out.push(format!("{at}/* (additionalProperties)"));
        }
        for (name, property) in schema.get("properties").and_then(|p| p.as_object()).into_iter().flatten() {
            uncovered_strings(property, &format!("{at}/{name}"), sanitized, out);
        }
    }
    if types.contains(&"array") {
        match schema.get("items") {
            Some(items) => uncovered_strings(items, &format!("{at}/*"), sanitized, out),
            None => out.push(format!("{at}/* (items)")),
        }
    }
}

#[test]
fn every_string_the_default_policy_broadcasts_is_sanitized_or_patterned() {
    use crate::sanitize::Rule;
    let spec = shipped();
    assert_eq!(spec.events.len(), 3);
    for (name, event) in &spec.events {
        let schema: serde_json::Value = match event.schema.as_ref().expect("every shipped event has a schema") {
            serde_json::Value::String(text) => serde_json::from_str(text).unwrap(),
            table => table.clone(),
        };
        // Rules that make any string inert; `profanity` alone does not.
        let sanitized = |at: &str| {
            event.sanitize.iter().any(|(pointer, rules)| {
                let (p, a): (Vec<_>, Vec<_>) = (pointer.split('/').collect(), at.split('/').collect());
                let matches = p.len() == a.len() && p.iter().zip(&a).all(|(p, a)| p == a || *p == "*");
                matches
                    && rules.to_vec().iter().any(|r| matches!(r, Rule::Html | Rule::Text | Rule::Url | Rule::Filename))
            })
        };
        let mut uncovered = Vec::new();
        uncovered_strings(&schema, "", &sanitized, &mut uncovered);
        assert!(uncovered.is_empty(), "{name} broadcasts unconstrained strings at {uncovered:?}");
    }
    // The walk does find what it looks for.
    let mut found = Vec::new();
    let open = serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"oneOf": [{"type": "integer"}, {"type": "string"}]}}});
    uncovered_strings(&open, "", &|at| at == "/b", &mut found);
    assert_eq!(found, ["/* (additionalProperties)", "/a"]);
}

#[test]
fn quiz_ids_must_match_their_pattern() {
    let policy = Policy::compile(&shipped()).unwrap();
    let answer = |id: &str| serde_json::json!({"sessionId": id, "questionId": "q-1", "answer": 2});
    assert!(shape(&policy, "quiz.answer", &answer("s_42-A")).is_ok());
    for bad in ["<img src=x onerror=alert(1)>", "s 1", "s1\n", "\u{202e}s1", "", "s".repeat(65).as_str()] {
        let err = shape(&policy, "quiz.answer", &answer(bad)).unwrap_err();
        assert_eq!((err.code, err.path.as_deref()), (ErrorCode::InvalidPayload, Some("/sessionId")), "{bad:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 256, failure_persistence: None, ..Default::default() })]

    /// No accepted payload yields a broadcast copy over the event's limit,
    /// whatever the markup: the copy is refused instead.
    #[test]
    fn no_sanitized_copy_exceeds_the_event_limit(content in crate::sanitize::tests::markup(), quote in crate::sanitize::tests::markup()) {
        use crate::sanitize::Rule;
        let mut s = PolicySpec { max_message_bytes: 3000, ..PolicySpec::default() };
        let mut chat = EventSpec { max_bytes: Some(2500), ..EventSpec::default() };
        chat.sanitize.insert("/content".into(), RuleList::Many(vec![Rule::Html, Rule::Profanity]));
        chat.sanitize.insert("/quote".into(), RuleList::One(Rule::Text));
        s.events.insert("bounded".into(), chat.clone());
        chat.max_bytes = None;
        s.events.insert("unbounded".into(), chat);
        let policy = Policy::compile(&s).unwrap();
        let data = serde_json::value::to_raw_value(&serde_json::json!({"content": content, "quote": quote})).unwrap();
        for (event, limit) in [("bounded", 2500), ("unbounded", 3000)] {
            let rule = policy.event(event).unwrap();
            if rule.check_size(&data).is_ok()
                && let Ok(out) = rule.shape(&data, policy.sanitizers())
            {
                proptest::prop_assert!(out.get().len() <= limit, "{} bytes from {}", out.get().len(), data.get());
            }
        }
    }
}

#[test]
fn a_backend_event_goes_through_the_same_declaration_schema_and_sanitizers() {
    let policy = Policy::compile(&shipped()).unwrap();
    let raw = |v: serde_json::Value| serde_json::value::to_raw_value(&v).unwrap();
    let out = policy
        .shape_backend_event(
            "lobby",
            "chat.message",
            &raw(serde_json::json!({"content": "hi <script>x</script>there"})),
        )
        .unwrap();
    let out: serde_json::Value = serde_json::from_str(out.get()).unwrap();
    assert!(!out["content"].as_str().unwrap().contains("script"), "{out}");
    let err = policy.shape_backend_event("lobby", "chat.message", &raw(serde_json::json!({"content": 5}))).unwrap_err();
    assert_eq!((err.code(), err.path.as_deref()), (ErrorCode::InvalidPayload, Some("/content")), "{err:?}");
    let err = policy.shape_backend_event("lobby", "no.such.event", &raw(serde_json::json!({}))).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownEvent);
    let err = policy.shape_backend_event("bad room!", "chat.message", &raw(serde_json::json!({"content": "x"})));
    assert_eq!(err.unwrap_err().code(), ErrorCode::BadRequest);
    // No permission is consulted: the backend is not a user.
    assert!(policy.shape_backend_event("lobby", "chat.message", &raw(serde_json::json!({"content": "x"}))).is_ok());
}

#[test]
fn history_is_per_room_rule_bounded_and_off_by_default() {
    let mut s = PolicySpec::default();
    s.rooms.insert(
        "chat:*".into(),
        RoomSpec { history: Some(50), history_ttl: Some("15m".into()), ..RoomSpec::default() },
    );
    s.rooms.insert("quiet".into(), RoomSpec { history: Some(5), ..RoomSpec::default() });
    s.rooms.insert("lobby".into(), RoomSpec::default());
    let p = Policy::compile(&s).unwrap();
    assert_eq!(p.history("chat:a"), HistoryRule { keep: 50, ttl: Duration::from_secs(900) });
    assert_eq!(p.history("quiet"), HistoryRule { keep: 5, ttl: DEFAULT_HISTORY_TTL });
    assert_eq!(p.history("lobby").keep, 0);
    assert_eq!(p.history("nowhere").keep, 0, "no rule, no history");
    for (room, key) in [
        (RoomSpec { history: Some(MAX_HISTORY + 1), ..RoomSpec::default() }, "rooms.\"r\".history"),
        (
            RoomSpec { history: Some(1), history_ttl: Some("soon".into()), ..RoomSpec::default() },
            "rooms.\"r\".history_ttl",
        ),
        (
            RoomSpec { history: Some(1), history_ttl: Some("0s".into()), ..RoomSpec::default() },
            "rooms.\"r\".history_ttl",
        ),
    ] {
        let mut s = PolicySpec::default();
        s.rooms.insert("r".into(), room);
        assert_eq!(Policy::compile(&s).unwrap_err().key, key);
    }
}

#[test]
fn owner_rules_name_the_key_at_fault_and_create_needs_created_rooms() {
    for (room, key) in [
        (RoomSpec { owners: Some("whoever".into()), ..RoomSpec::default() }, "rooms.\"r\".owners"),
        (RoomSpec { create: Some("r:create".into()), ..RoomSpec::default() }, "rooms.\"r\".create"),
        (
            RoomSpec { owners: Some("first_join".into()), create: Some("r:create".into()), ..RoomSpec::default() },
            "rooms.\"r\".create",
        ),
        (RoomSpec { moderate: Some("Not A Perm".into()), ..RoomSpec::default() }, "rooms.\"r\".moderate"),
        (RoomSpec { allow_countries: vec!["France".into()], ..RoomSpec::default() }, "rooms.\"r\".allow_countries"),
        (RoomSpec { deny_countries: vec!["u1".into()], ..RoomSpec::default() }, "rooms.\"r\".deny_countries"),
        (
            RoomSpec { allow_countries: vec!["FR".into()], deny_countries: vec!["US".into()], ..RoomSpec::default() },
            "rooms.\"r\".allow_countries",
        ),
    ] {
        let mut s = PolicySpec::default();
        s.rooms.insert("r".into(), room);
        assert_eq!(Policy::compile(&s).unwrap_err().key, key);
    }
    let mut s = PolicySpec::default();
    s.roles.insert("maker".into(), RoleSpec { permissions: vec!["r:create".into()] });
    let created = RoomSpec { owners: Some("create".into()), create: Some("r:create".into()), ..RoomSpec::default() };
    s.rooms.insert("r:*".into(), created);
    s.rooms.insert("plain".into(), RoomSpec::default());
    let p = Policy::compile(&s).unwrap();
    assert_eq!(p.owner_mode("r:1"), Some(OwnerMode::Create));
    assert_eq!(p.owner_mode("plain"), None);
    assert!(p.check_create(&who(&["maker"]), "r:1").is_ok());
    assert_eq!(p.check_create(&who(&[]), "r:1").unwrap_err().reason, "missing room create permission");
    assert_eq!(p.check_create(&who(&["maker"]), "plain").unwrap_err().code, ErrorCode::BadRequest);
    assert!(p.check_owner(&who(&[]), "plain", None).is_err(), "no owner, no moderator: nobody");
}

#[test]
fn opaque_events_take_ciphertext_only_and_no_schema_of_their_own() {
    let mut s = PolicySpec::default();
    s.events.insert("secret".into(), EventSpec { opaque: true, ..EventSpec::default() });
    let p = Policy::compile(&s).unwrap();
    let rule = p.event("secret").unwrap();
    let shaped =
        |data: &str| rule.shape(&serde_json::value::RawValue::from_string(data.to_owned()).unwrap(), p.sanitizers());
    let sealed = r#"{"iv":"AAAAAAAAAAAAAAAA","ct":"c2VjcmV0LWNpcGhlcnRleHQtYW5kLXRhZw","kid":"k1"}"#;
    let value = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(value(shaped(sealed).unwrap().get()), value(sealed), "passed through unchanged");
    for leaky in [
        r#"{"iv":"AAAAAAAAAAAAAAAA","ct":"c2VjcmV0LWNpcGhlcnRleHQtYW5kLXRhZw","text":"plain"}"#,
        r#"{"iv":"short","ct":"c2VjcmV0LWNpcGhlcnRleHQtYW5kLXRhZw"}"#,
        r#"{"iv":"AAAAAAAAAAAAAAAA","ct":"<script>alert(1)</script>"}"#,
        r#""just text""#,
    ] {
        assert_eq!(shaped(leaky).unwrap_err().code, ErrorCode::InvalidPayload, "{leaky}");
    }
    let with_schema =
        EventSpec { opaque: true, schema: Some(serde_json::json!({"type":"object"})), ..EventSpec::default() };
    s.events.insert("secret".into(), with_schema);
    assert_eq!(Policy::compile(&s).unwrap_err().key, "events.\"secret\".opaque");
}
