use std::borrow::Cow;

use super::*;
use crate::refusal;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn entry(n: u64) -> Entry {
    Entry::new(Timestamp::from_millis(1_700_000_000_000 + n), Kind::Refused(refusal::Kind::Origin), "origin refused")
        .ip("127.0.0.1")
        .user(Some("alice"))
}

fn chain(n: u64) -> Vec<Record> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let record = entry(seq).chain(seq, prev);
            prev = record.hash;
            record
        })
        .collect()
}

fn verify(records: &[Record]) -> Result<(u64, Hash), Broken> {
    let mut verifier = Verifier::new();
    for record in records {
        verifier.push(record)?;
    }
    Ok(verifier.head())
}

#[test]
fn kinds_round_trip_by_name_and_names_are_unique() {
    let names: Vec<_> = Kind::names().collect();
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    for name in names {
        let kind = Kind::from_name(name).unwrap();
        assert_eq!(kind.name(), name);
    }
    assert_eq!(Kind::from_name("auth_failure"), Some(Kind::Refused(refusal::Kind::AuthFailure)));
    assert_eq!(Kind::from_name("ban"), Some(Kind::Ban));
    assert_eq!(Kind::from_name("nope"), None);
    assert_eq!(Kind::Ban.default_severity(), Severity::Critical);
    assert_eq!(Kind::Refused(refusal::Kind::AtCapacity).default_severity(), Severity::Info);
    assert_eq!(Kind::Refused(refusal::Kind::Csrf).default_severity(), Severity::Warning);
}

#[test]
fn a_chain_verifies_and_its_head_is_the_last_record() {
    let records = chain(5);
    assert_eq!(records[0].prev_hash, GENESIS);
    assert_eq!(verify(&records), Ok((5, records[4].hash)));
    assert_eq!(verify(&[]), Ok((0, GENESIS)));
}

#[test]
fn every_field_is_covered_by_the_hash() {
    let base = entry(1);
    let edits: Vec<Entry> = vec![
        Entry { ts: Timestamp::from_millis(1), ..base.clone() },
        Entry { kind: Kind::Ban, ..base.clone() },
        Entry { severity: Severity::Critical, ..base.clone() },
        Entry { ip: None, ..base.clone() },
        Entry { user: Some("alicf".into()), ..base.clone() },
        Entry { session: Some(String::new()), ..base.clone() },
        Entry { detail: "origin refusee".into(), ..base.clone() },
    ];
    let original = base.chain(1, GENESIS).hash;
    for edited in edits {
        assert_ne!(edited.clone().chain(1, GENESIS).hash, original, "{edited:?}");
    }
    assert_ne!(entry(1).chain(2, GENESIS).hash, original, "seq is covered");
    assert_ne!(entry(1).chain(1, [1; 32]).hash, original, "the link is covered");
}

#[test]
fn the_encoding_is_unambiguous() {
    // The same characters split differently between fields, and an absent
    // field against an empty one, encode differently.
    let a = Entry { user: Some("ab".into()), session: Some("c".into()), ..entry(1) };
    let b = Entry { user: Some("a".into()), session: Some("bc".into()), ..entry(1) };
    assert_ne!(canonical_bytes(1, &a), canonical_bytes(1, &b));
    let none = Entry { session: None, ..entry(1) };
    let empty = Entry { session: Some(String::new()), ..entry(1) };
    assert_ne!(canonical_bytes(1, &none), canonical_bytes(1, &empty));
}

#[test]
fn the_encoding_is_fixed() {
    // Changing the layout would break every stored chain: this pins it.
    let e = Entry::new(Timestamp::from_millis(2), Kind::Ban, "d");
    let mut want = b"palisade-audit-v1\0".to_vec();
    want.extend_from_slice(&7u64.to_be_bytes());
    want.extend_from_slice(&2u64.to_be_bytes());
    want.extend_from_slice(b"\0\0\0\x03ban\0\0\0\x08critical\0\0\0\0\0\0\x01d");
    assert_eq!(canonical_bytes(7, &e), want);
    let record = e.chain(7, GENESIS);
    assert_eq!(hex(&record.hash), hex(&record_hash(&GENESIS, &want)), "hash = SHA-256(prev_hash ‖ canonical bytes)");
}

#[test]
fn verify_names_the_first_broken_record() {
    let mut edited = chain(5);
    edited[2].entry.detail.push('!');
    assert_eq!(verify(&edited), Err(Broken { seq: 3, breakage: Breakage::Hash }));

    let mut rehashed = chain(5);
    // Edited and its own hash recomputed: the next record's link breaks…
    rehashed[2].entry.detail.push('!');
    rehashed[2].hash = rehashed[2].expected_hash();
    assert_eq!(verify(&rehashed), Err(Broken { seq: 4, breakage: Breakage::Link }));

    let mut removed = chain(5);
    removed.remove(1);
    assert_eq!(verify(&removed), Err(Broken { seq: 3, breakage: Breakage::Seq { expected: 2 } }));

    let mut relinked = chain(5);
    relinked[0].prev_hash = [9; 32];
    assert_eq!(verify(&relinked), Err(Broken { seq: 1, breakage: Breakage::Link }));
    assert!(Broken { seq: 3, breakage: Breakage::Hash }.to_string().contains("seq=3"));
}

#[test]
fn checkpoints_sign_print_parse_and_verify() {
    let records = chain(3);
    let cp = Checkpoint::sign(KEY, 3, records[2].hash).unwrap();
    assert!(cp.is_signed_by(KEY));
    assert!(!cp.is_signed_by(b"another key of thirty-two bytes!"));
    let line = cp.to_string();
    assert!(line.starts_with("seq=3 hash="), "{line}");
    assert_eq!(Checkpoint::parse(&line), Ok(cp));
    // As found at the end of a log line.
    assert_eq!(Checkpoint::parse(&format!("2026-01-01T00:00:00Z INFO audit checkpoint {line}")), Ok(cp));
    // Any change to what is signed makes the MAC wrong.
    assert!(!Checkpoint { seq: 2, ..cp }.is_signed_by(KEY));
    assert!(!Checkpoint { hash: records[1].hash, ..cp }.is_signed_by(KEY));
    let mut mac = cp.mac;
    mac[31] ^= 1;
    assert!(!Checkpoint { mac, ..cp }.is_signed_by(KEY));
    assert_eq!(Checkpoint::sign(b"short", 1, GENESIS), Err(CheckpointError::ShortKey));
    assert!(Checkpoint::parse("seq=1 hash=00").is_err());
    assert!(Checkpoint::parse(&format!("seq=x hash={0} mac={0}", hex(&GENESIS))).is_err());
    assert!(parse_hash(&"+f".repeat(32)).is_none());
    assert_eq!(parse_hash(&hex(&[0xab; 32])), Some([0xab; 32]));
}

#[test]
fn details_are_bounded_and_escaped() {
    assert_eq!(safe_detail("auth: bad signature"), "auth: bad signature");
    assert_eq!(safe_detail("a\nb\u{202e}c"), "a\\u{a}b\\u{202e}c");
    let exact = "x".repeat(MAX_DETAIL_BYTES);
    assert_eq!(safe_detail(&exact), exact, "what fits is kept whole");
    let long = "é".repeat(MAX_DETAIL_BYTES);
    let cut = safe_detail(&long);
    assert!(cut.len() <= MAX_DETAIL_BYTES, "{}", cut.len());
    assert!(cut.ends_with(CUT_MARKER));
    let escapes = safe_detail(&"\n".repeat(MAX_DETAIL_BYTES));
    assert!(escapes.len() <= MAX_DETAIL_BYTES && escapes.ends_with(&format!("\\u{{a}}{CUT_MARKER}")), "{escapes}");
    assert_eq!(Entry::new(Timestamp::from_millis(0), Kind::Ban, &long).detail, cut);
}

#[test]
fn a_message_refusal_never_records_text_built_from_the_message() {
    let fixed = refusal::Refusal::new(refusal::Kind::RateExcess, "message rate exceeded");
    assert_eq!(message_refusal_detail(&fixed), "message rate exceeded");
    let quoted: Cow<'static, str> = Cow::Owned("schema: \"my secret text\" is not of type integer".into());
    assert_eq!(message_refusal_detail(&refusal::Refusal::new(refusal::Kind::Schema, quoted)), "schema");
}

#[test]
fn a_chain_rewritten_under_the_signed_record_is_noticed() {
    let honest = chain(5);
    let signed = (4, honest[3].hash);
    assert_eq!(Rewritten::check(signed, Some(honest[3].hash)), Ok(()));
    // Record 2 deleted and the rest chained again without a key: seq 4 is
    // now what was record 5, with another hash; or the log is shorter.
    let mut kept: Vec<Entry> = honest.iter().map(|r| r.entry.clone()).collect();
    kept.remove(1);
    let mut prev = GENESIS;
    let forged: Vec<Record> = kept
        .into_iter()
        .zip(1..)
        .map(|(entry, seq)| {
            let record = entry.chain(seq, prev);
            prev = record.hash;
            record
        })
        .collect();
    assert!(verify(&forged).is_ok(), "a keyless chain verifies on its own");
    let err = Rewritten::check(signed, Some(forged[3].hash)).unwrap_err();
    assert_eq!(err, Rewritten { seq: 4, found: Some(forged[3].hash) });
    assert!(err.to_string().contains("seq=4"), "{err}");
    assert_eq!(Rewritten::check(signed, None), Err(Rewritten { seq: 4, found: None }));
}

#[test]
fn a_pruned_chain_verifies_from_its_anchor() {
    let records = chain(6);
    let mut verifier = Verifier::after(3, records[2].hash);
    for record in &records[3..] {
        verifier.push(record).unwrap();
    }
    assert_eq!(verifier.head(), (6, records[5].hash));
    // The anchor must be the kept records' predecessor.
    let mut wrong = Verifier::after(3, records[1].hash);
    assert_eq!(wrong.push(&records[3]).unwrap_err().breakage, Breakage::Link);
    let mut gap = Verifier::after(2, records[1].hash);
    assert_eq!(gap.push(&records[3]).unwrap_err().breakage, Breakage::Seq { expected: 3 });
}
