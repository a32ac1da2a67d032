//! The audit record codec: entries, their canonical bytes and chain, and
//! checkpoint lines.

use palisade_core::Timestamp;
use palisade_core::audit::{
    CUT_MARKER, Checkpoint, Entry, GENESIS, Kind, MAX_DETAIL_BYTES, Severity, Verifier, canonical_bytes, hex,
    parse_hash, safe_detail,
};

/// Records chained per input.
const MAX_RECORDS: usize = 8;

/// The input split at NUL bytes into records of `kind severity ip user
/// session detail` fields (kinds and severities by name, or by index when
/// not a name), chained and verified; and each field read as a checkpoint
/// line and a hash. Invariants: details are bounded, printable and
/// idempotent under `safe_detail`; canonical bytes decode back to the
/// entry; a chain verifies and breaks when a detail changes; a checkpoint
/// round-trips through its display.
pub fn audit_record(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let fields: Vec<&str> = text.split('\0').collect();
    let kinds: Vec<&str> = Kind::names().collect();
    let mut records = Vec::new();
    let mut prev = GENESIS;
    for (i, chunk) in fields.chunks(6).take(MAX_RECORDS).enumerate() {
        let field = |n: usize| chunk.get(n).copied();
        let name = field(0).unwrap_or("");
        let kind = Kind::from_name(name).or_else(|| Kind::from_name(kinds[name.len() % kinds.len()]));
        let Some(kind) = kind else { return };
        let detail = field(5).unwrap_or("");
        let mut entry = Entry::new(Timestamp::from_secs(1_800_000_000 + i as u64), kind, detail);
        if let Some(severity) = field(1).and_then(Severity::from_name) {
            entry = entry.severity(severity);
        }
        if let Some(ip) = field(2).filter(|s| !s.is_empty()) {
            entry = entry.ip(ip);
        }
        entry = entry.user(field(3).filter(|s| !s.is_empty()));
        if let Some(session) = field(4).filter(|s| !s.is_empty()) {
            entry = entry.session(session);
        }
        check_detail(detail, &entry.detail);
        let seq = i as u64 + 1;
        assert_eq!(decode(&canonical_bytes(seq, &entry)).as_ref(), Some(&(seq, entry.clone())), "canonical bytes");
        let record = entry.chain(seq, prev);
        prev = record.hash;
        records.push(record);
    }
    let mut verifier = Verifier::new();
    for record in &records {
        assert!(verifier.push(record).is_ok(), "a fresh chain breaks at {}", record.seq);
    }
    if let Some(first) = records.first_mut() {
        first.entry.detail.push('x');
        assert!(Verifier::new().push(first).is_err(), "a changed detail still verifies");
    }
    for field in &fields {
        if let Ok(checkpoint) = Checkpoint::parse(field) {
            assert_eq!(Checkpoint::parse(&checkpoint.to_string()), Ok(checkpoint), "checkpoint round trip");
        }
        if let Some(hash) = parse_hash(field) {
            assert_eq!(parse_hash(&hex(&hash)), Some(hash), "hash round trip");
        }
    }
}

fn check_detail(input: &str, detail: &str) {
    assert!(detail.len() <= MAX_DETAIL_BYTES, "detail of {} bytes", detail.len());
    assert!(!detail.chars().any(char::is_control), "control character in a detail");
    if input.len() > MAX_DETAIL_BYTES {
        assert!(detail.ends_with(CUT_MARKER), "a long detail is cut visibly");
    }
    assert_eq!(safe_detail(detail), detail, "safe_detail is not idempotent");
}

/// The canonical layout of crates/palisade-core/src/audit/mod.rs, read
/// back: an independent decoder, so a layout where two entries share bytes
/// would fail to round-trip.
fn decode(bytes: &[u8]) -> Option<(u64, Entry)> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
            self.0 = tail;
            Some(head)
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
        }
        fn string(&mut self) -> Option<String> {
            let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
            String::from_utf8(self.take(usize::try_from(len).ok()?)?.to_vec()).ok()
        }
        fn optional(&mut self) -> Option<Option<String>> {
            match self.take(1)? {
                [0] => Some(None),
                [1] => Some(Some(self.string()?)),
                _ => None,
            }
        }
    }
    let mut r = Reader(bytes.strip_prefix(b"palisade-audit-v1\0")?);
    let seq = r.u64()?;
    let ts = Timestamp::from_millis(r.u64()?);
    let kind = Kind::from_name(&r.string()?)?;
    let severity = Severity::from_name(&r.string()?)?;
    let (ip, user, session) = (r.optional()?, r.optional()?, r.optional()?);
    let detail = r.string()?;
    r.0.is_empty().then_some((seq, Entry { ts, kind, severity, ip, user, session, detail }))
}
