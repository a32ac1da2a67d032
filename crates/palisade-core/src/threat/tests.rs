use std::net::IpAddr;
use std::sync::Arc;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn longest_prefix_wins_for_v4_and_v6() {
    let mut t = PrefixTable::new();
    t.insert("10.0.0.0/8".parse().unwrap());
    t.insert("10.1.0.0/16".parse().unwrap());
    t.insert("2001:db8::/32".parse().unwrap());
    t.insert("0.0.0.0/0".parse::<IpNet>().unwrap());
    assert_eq!(t.longest(ip("10.1.2.3")), Some("10.1.0.0/16".parse().unwrap()));
    assert_eq!(t.longest(ip("10.2.2.3")), Some("10.0.0.0/8".parse().unwrap()));
    assert_eq!(t.longest(ip("11.0.0.1")), Some("0.0.0.0/0".parse().unwrap()));
    assert_eq!(t.longest(ip("2001:db8::1")), Some("2001:db8::/32".parse().unwrap()));
    assert_eq!(t.longest(ip("2001:db9::1")), None);
    // IPv4-mapped addresses are their IPv4 address.
    assert_eq!(t.longest(ip("::ffff:10.1.0.1")), Some("10.1.0.0/16".parse().unwrap()));
    assert_eq!(t.len(), 4);
}

#[test]
fn host_bits_are_ignored_and_duplicates_counted_once() {
    let mut t = PrefixTable::new();
    assert!(t.insert("192.0.2.77/24".parse().unwrap()));
    assert!(!t.insert("192.0.2.0/24".parse().unwrap()));
    assert!(t.contains(ip("192.0.2.1")));
    assert_eq!(t.len(), 1);
}

#[test]
fn parses_plain_and_spamhaus_drop_lines_counting_bad_ones() {
    let text = "; Spamhaus DROP List\n1.10.16.0/20 ; SBL256894\n# comment\n\n203.0.113.5\n2001:db8::/48 # v6\nnot an address\n300.1.1.1/8\n";
    let p = parse(text, 100);
    assert_eq!(p.table.len(), 3);
    assert_eq!(p.malformed, 2);
    assert!(p.table.contains(ip("1.10.20.1")));
    assert!(p.table.contains(ip("203.0.113.5")));
    assert!(!p.table.contains(ip("203.0.113.6")));
}

#[test]
fn entries_past_the_cap_are_dropped_and_counted() {
    let p = parse("127.0.0.1\n127.0.0.2\n127.0.0.3\n", 2);
    assert_eq!(p.table.len(), 2);
    assert_eq!(p.dropped, 1);
}

fn feed(name: &str, action: Action, weight: u32, text: &str) -> FeedList {
    FeedList { name: name.into(), action, weight, table: Arc::new(parse(text, 100).table) }
}

#[test]
fn allow_wins_then_deny_then_scores_sum() {
    let mut allow = PrefixTable::new();
    allow.insert("127.9.0.0/16".parse().unwrap());
    let threats = Threats {
        feeds: vec![
            feed("rep", Action::Score, 3, "127.0.0.0/8\n"),
            feed("drop", Action::Deny, 0, "127.5.0.0/16\n127.9.0.1\n"),
            feed("rep2", Action::Score, 4, "127.6.0.1\n"),
        ],
        allow: Arc::new(allow),
    };
    assert!(matches!(threats.judge(ip("127.9.0.1")), Verdict::Allowed(_)));
    assert!(threats.allows(ip("127.9.0.1")) && !threats.allows(ip("127.5.1.1")));
    let deny = threats.judge(ip("127.5.1.1"));
    assert_eq!(deny, Verdict::Deny { feed: "drop".into(), prefix: "127.5.0.0/16".parse().unwrap() });
    let refusal = deny.refusal().unwrap();
    assert_eq!(refusal.kind, Kind::Banned);
    assert!(refusal.reason.contains("drop"));
    assert_eq!(threats.judge(ip("127.6.0.1")), Verdict::Score { weight: 7, feeds: vec!["rep".into(), "rep2".into()] });
    assert_eq!(threats.judge(ip("10.0.0.1")), Verdict::Clear);
    assert_eq!(threats.listings(ip("127.5.1.1")).len(), 2);
}

#[test]
fn a_refresh_replaces_one_feed_only() {
    let threats = Threats {
        feeds: vec![feed("a", Action::Deny, 0, "127.1.0.1\n"), feed("b", Action::Deny, 0, "127.2.0.1\n")],
        allow: Arc::default(),
    };
    let next = threats.with_table("a", Arc::new(parse("127.3.0.1\n", 10).table));
    assert_eq!(next.judge(ip("127.1.0.1")), Verdict::Clear);
    assert!(matches!(next.judge(ip("127.3.0.1")), Verdict::Deny { .. }));
    assert!(matches!(next.judge(ip("127.2.0.1")), Verdict::Deny { .. }));
}
