use super::*;
use crate::audit::{GENESIS, Severity};

fn record(kind: Kind, detail: &str) -> Record {
    Entry::new(Timestamp::from_millis(1_764_900_000_123), kind, detail)
        .ip("127.0.0.1")
        .user(Some("alice"))
        .session("s_1")
        .chain(7, GENESIS)
}

const ORIGIN: Origin<'static> = Origin { hostname: "n1", app_name: "palisade", procid: 42 };

#[test]
fn a_syslog_message_has_the_rfc5424_header_and_the_record_as_json() {
    let r = record(Kind::Refused(refusal::Kind::Origin), "origin refused");
    let line = syslog(&r, ORIGIN, Body::Json);
    // authpriv (10) * 8 + warning (4): an origin refusal is a hostile client's.
    let (header, msg) = line.split_once(" - ").unwrap();
    assert_eq!(header, "<84>1 2025-12-05T02:00:00.123Z n1 palisade 42 origin");
    let body: Value = serde_json::from_str(msg).unwrap();
    assert_eq!(body, record_json(&r));
    assert_eq!(body["seq"], 7);
    assert_eq!(body["hash"], hex(&r.hash));
}

#[test]
fn severities_follow_the_kind_and_a_refusals_own_severity() {
    let sev = |kind, severity| syslog_severity(&Entry::new(Timestamp::from_millis(0), kind, "").severity(severity)).0;
    let refused = Kind::Refused(refusal::Kind::Expired);
    assert_eq!(sev(refused, Severity::Info), 6, "an honest client's refusal is info");
    assert_eq!(sev(refused, Severity::Warning), 4);
    assert_eq!(sev(Kind::Ban, Severity::Critical), 4, "a ban is a warning, whatever the record says");
    assert_eq!(sev(Kind::AdminAction, Severity::Info), 5);
    assert_eq!(sev(Kind::Gap, Severity::Warning), 3);
    assert_eq!(sev(Kind::ChainBreak, Severity::Critical), 2);
    assert_eq!(sev(Kind::RefreshReuse, Severity::Critical), 2);
    assert_eq!(priority(&Entry::new(Timestamp::from_millis(0), Kind::SessionEnded, "")), 86);
}

#[test]
fn header_fields_are_printable_ascii_or_nil() {
    assert_eq!(header_field("node one\u{e9}", 48), "node_one_");
    assert_eq!(header_field("", 48), "-");
    assert_eq!(header_field(&"x".repeat(60), 48).len(), 48);
    assert!(is_header_field("palisade", MAX_APP_NAME));
    for bad in ["", "-", "has space", "caf\u{e9}", &"x".repeat(49)] {
        assert!(!is_header_field(bad, MAX_APP_NAME), "{bad:?}");
    }
    // A MSGID is at most 32 characters; every kind's name fits.
    assert!(Kind::names().all(|n| is_header_field(n, MAX_MSGID)));
}

#[test]
fn octet_counting_counts_bytes_not_characters() {
    assert_eq!(octet_counted("<84>1 x"), b"7 <84>1 x".to_vec());
    assert_eq!(octet_counted("\u{e9}"), "2 \u{e9}".as_bytes().to_vec());
}

#[test]
fn a_datagram_is_cut_at_a_character_boundary() {
    assert_eq!(datagram("abc", 8), "abc");
    assert_eq!(datagram("ab\u{e9}", 3), "ab", "never half a character");
    assert_eq!(datagram("abcd", 3), "abc");
}

#[test]
fn cef_escapes_its_separators_and_carries_every_field() {
    let r = record(Kind::Ban, "a|b=c\\d\ne");
    let line = cef(&r);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        line.starts_with(&format!("CEF:0|Palisade|palisade|{version}|ban|Ban imposed|6|rt=1764900000123 ")),
        "{line}"
    );
    assert!(line.contains(" src=127.0.0.1 suser=alice cs1Label=session cs1=s_1 externalId=7 "), "{line}");
    // The record already wrote the line break as `\u{a}`; its backslash
    // is escaped like any other.
    assert!(line.ends_with("msg=a|b\\=c\\\\d\\\\u{a}e"), "{line}");
    assert_eq!(cef_value("a\nb\rc=\\"), "a\\nb\\rc\\=\\\\");
    assert_eq!(cef_header("a|b\\c\nd"), "a\\|b\\\\c d");
    // An IPv6 /64 is no address: it goes in a custom string.
    let v6 = Entry::new(Timestamp::from_millis(0), Kind::Ban, "").ip("2001:db8::/64").chain(1, GENESIS);
    let line = cef(&v6);
    assert!(line.contains("cs3Label=sourceNetwork cs3=2001:db8::/64") && !line.contains("src="), "{line}");
    // The same line is the body of a `format = "cef"` syslog message.
    let body = syslog(&r, ORIGIN, Body::Cef);
    assert!(body.ends_with(&cef(&r)) && body.starts_with("<84>1 "), "{body}");
}

#[test]
fn ecs_documents_have_the_fields_elastic_expects() {
    let login = record(Kind::Refused(refusal::Kind::LoginFailure), "login: bad password");
    let doc = ecs(&login);
    assert_eq!(doc["@timestamp"], "2025-12-05T02:00:00.123Z");
    assert_eq!(doc["ecs"]["version"], ECS_VERSION);
    assert_eq!(doc["event"]["kind"], "event");
    assert_eq!(doc["event"]["category"], json!(["authentication"]));
    assert_eq!(doc["event"]["type"], json!(["start"]));
    assert_eq!(doc["event"]["action"], "login_failure");
    assert_eq!(doc["event"]["outcome"], "failure");
    assert_eq!(doc["event"]["sequence"], 7);
    assert_eq!(doc["source"]["ip"], "127.0.0.1");
    assert_eq!(doc["user"]["id"], "alice");
    assert_eq!(doc["labels"]["session"], "s_1");
    assert_eq!(doc["message"], "login: bad password");
    assert_eq!(doc["palisade"]["audit"], record_json(&login));
    let v6 = Entry::new(Timestamp::from_millis(0), Kind::Ban, "").ip("2001:db8::/64").chain(1, GENESIS);
    let doc = ecs(&v6);
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["source"], json!({ "address": "2001:db8::/64" }), "a /64 is no source.ip");
    assert!(doc.get("user").is_none() && doc.get("labels").is_none());
    // Every kind maps to ECS's allowed values.
    let kinds = ["alert", "event"];
    let categories =
        ["authentication", "configuration", "database", "iam", "intrusion_detection", "network", "session"];
    let types = ["admin", "change", "connection", "denied", "end", "error", "start"];
    for name in Kind::names() {
        let (kind, category, ty, outcome) = ecs_event(Kind::from_name(name).unwrap());
        assert!(kinds.contains(&kind) && ["success", "failure", "unknown"].contains(&outcome), "{name}");
        assert!(category.iter().all(|c| categories.contains(c)) && ty.iter().all(|t| types.contains(t)), "{name}");
    }
}

#[test]
fn timestamps_past_year_9999_stay_rfc3339() {
    assert_eq!(rfc3339(Timestamp::from_millis(u64::MAX)), "9999-12-31T23:59:59.000Z");
    assert_eq!(rfc3339(Timestamp::from_millis(0)), "1970-01-01T00:00:00.000Z");
}
