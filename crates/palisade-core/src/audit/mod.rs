//! The tamper-evident audit log (DESIGN §6; docs/ARCHITECTURE.md, "Audit
//! log"): what a record is, its canonical bytes, how records chain, how a
//! chain is verified, and the HMAC-signed checkpoints that anchor its head.
//!
//! Pure: no I/O and no clock. The store assigns `seq` and chains a batch of
//! [`Entry`]s inside one write transaction ([`Entry::chain`]), so every
//! process that appends (the server's writer, the CLI) continues the one
//! chain instead of forking it.

mod checkpoint;
mod fold;
pub mod siem;
mod verify;

use std::fmt::{self, Write as _};

use sha2::{Digest as _, Sha256};

use crate::Timestamp;
use crate::refusal;

pub use checkpoint::{Checkpoint, CheckpointError, MIN_KEY_BYTES};
pub use fold::{Admitted, Fold};
pub use verify::{Breakage, Broken, Rewritten, Verifier};

/// A SHA-256 digest: a record's hash and the link to its predecessor.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first record: 32 zero bytes.
pub const GENESIS: Hash = [0; 32];

/// Longest `detail`, in bytes; longer text is cut (at a character
/// boundary) and ends with [`CUT_MARKER`].
pub const MAX_DETAIL_BYTES: usize = 512;

/// What ends a `detail` that was cut.
pub const CUT_MARKER: &str = "…(cut)";

/// What a record records. Refusals reuse [`refusal::Kind`], so there is no
/// second list of violation kinds to keep in step; the rest are decisions
/// that are not refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A refused handshake, `/auth/*` request or message: authentication
    /// and login failures, origin, limits, schema, CSRF, replay, forbidden.
    Refused(refusal::Kind),
    /// A ban imposed, by the guard or an operator.
    Ban,
    /// A ban lifted by an operator.
    Unban,
    /// A token, a session or a user's tokens revoked by an operator.
    Revocation,
    /// A refresh token presented a second time: its session ended.
    RefreshReuse,
    /// A login session ended (logout, logout of all sessions).
    SessionEnded,
    /// Another operator action (a user added, removed or given roles).
    AdminAction,
    /// The policy reloaded, or a reload refused.
    ConfigReload,
    /// Records the writer could not write (a full queue, a failed write):
    /// how many, so a hole in what was recorded shows in the chain itself.
    Gap,
    /// The record the writer last signed was gone or changed: someone
    /// rewrote the chain; the writer stopped signing checkpoints.
    ChainBreak,
    /// Retention removed the oldest records; the signed checkpoint of the
    /// last one removed anchors what is kept ([`retention_entry`]).
    Retention,
}

impl Kind {
    /// The kinds that are not refusals, with their names.
    const OTHERS: [(Kind, &'static str); 10] = [
        (Self::Ban, "ban"),
        (Self::Unban, "unban"),
        (Self::Revocation, "revocation"),
        (Self::RefreshReuse, "refresh_reuse"),
        (Self::SessionEnded, "session_ended"),
        (Self::AdminAction, "admin_action"),
        (Self::ConfigReload, "config_reload"),
        (Self::Gap, "gap"),
        (Self::ChainBreak, "chain_break"),
        (Self::Retention, "retention"),
    ];

    /// Stable snake_case name, stored and hashed: a refusal's is its
    /// [`refusal::Kind::name`] (none of which collides with the others').
    pub fn name(self) -> &'static str {
        match self {
            Self::Refused(kind) => kind.name(),
            other => Self::OTHERS.iter().find(|(k, _)| *k == other).map_or("unknown", |(_, name)| name),
        }
    }

    /// The kind named `name`, as [`Kind::name`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        refusal::Kind::ALL
            .iter()
            .find(|k| k.name() == name)
            .map(|k| Self::Refused(*k))
            .or_else(|| Self::OTHERS.iter().find(|(_, n)| *n == name).map(|(k, _)| *k))
    }

    /// Every name, refusals first, for help texts and the docs.
    pub fn names() -> impl Iterator<Item = &'static str> {
        refusal::Kind::ALL.iter().map(|k| k.name()).chain(Self::OTHERS.iter().map(|(_, n)| *n))
    }

    /// How serious a record of this kind is unless its writer says
    /// otherwise: what an operator must look at is `critical`; refusals an
    /// honest client can cause (weight 0) are `info`.
    pub fn default_severity(self) -> Severity {
        match self {
            Self::Ban | Self::RefreshReuse | Self::ChainBreak => Severity::Critical,
            Self::Gap => Severity::Warning,
            Self::Refused(kind) if kind.default_weight() == 0 => Severity::Info,
            Self::Refused(_) => Severity::Warning,
            Self::Unban
            | Self::Revocation
            | Self::SessionEnded
            | Self::AdminAction
            | Self::ConfigReload
            | Self::Retention => Severity::Info,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How serious a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Routine: an operator action, a refusal an honest client causes.
    Info,
    /// A refusal only a broken or hostile client causes.
    Warning,
    /// A ban, a stolen refresh token.
    Critical,
}

impl Severity {
    /// Stable name, stored and hashed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// The severity named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Info, Self::Warning, Self::Critical].into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A record before it is chained: what happened, not yet where in the log.
///
/// `detail` must hold only refusal reasons, ids and operator text, never a
/// token, a password or a message body; [`Entry::new`] bounds and escapes
/// it, so one record cannot carry a flood's worth of text or forge a line
/// where it is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it happened.
    pub ts: Timestamp,
    /// What happened.
    pub kind: Kind,
    /// How serious it is.
    pub severity: Severity,
    /// The client's address (an IPv4 address or an IPv6 /64), if known.
    pub ip: Option<String>,
    /// The user, if known.
    pub user: Option<String>,
    /// The login session or connection session, if known.
    pub session: Option<String>,
    /// Why, bounded by [`MAX_DETAIL_BYTES`].
    pub detail: String,
}

impl Entry {
    /// An entry of `kind` at `ts` with its default severity and `detail`
    /// made safe ([`safe_detail`]).
    pub fn new(ts: Timestamp, kind: Kind, detail: &str) -> Self {
        Self {
            ts,
            kind,
            severity: kind.default_severity(),
            ip: None,
            user: None,
            session: None,
            detail: safe_detail(detail),
        }
    }

    /// The same entry from `ip`.
    #[must_use]
    pub fn ip(self, ip: impl fmt::Display) -> Self {
        Self { ip: Some(ip.to_string()), ..self }
    }

    /// The same entry about `user`, if any.
    #[must_use]
    pub fn user(self, user: Option<&str>) -> Self {
        Self { user: user.map(str::to_owned), ..self }
    }

    /// The same entry in `session`.
    #[must_use]
    pub fn session(self, session: &str) -> Self {
        Self { session: Some(session.to_owned()), ..self }
    }

    /// The same entry with `severity`.
    #[must_use]
    pub fn severity(self, severity: Severity) -> Self {
        Self { severity, ..self }
    }

    /// The record this entry becomes at `seq` after a record whose hash is
    /// `prev_hash` ([`GENESIS`] for the first).
    pub fn chain(self, seq: u64, prev_hash: Hash) -> Record {
        let hash = record_hash(&prev_hash, &canonical_bytes(seq, &self));
        Record { seq, entry: self, prev_hash, hash }
    }
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the log: 1 for the first record, then one more each.
    pub seq: u64,
    /// What it records.
    pub entry: Entry,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: Hash,
    /// `SHA-256(prev_hash ‖ canonical bytes)`.
    pub hash: Hash,
}

impl Record {
    /// The hash this record's fields and link give, which `hash` must equal.
    pub fn expected_hash(&self) -> Hash {
        record_hash(&self.prev_hash, &canonical_bytes(self.seq, &self.entry))
    }
}

/// The canonical bytes of a record: what its hash covers besides the link.
///
/// Why length prefixes rather than JSON: there is exactly one encoding of
/// each record, with nothing to escape or normalize and no float, key-order
/// or Unicode question a JSON library could answer differently in another
/// version, and no two different records share one (a field can hold any
/// bytes without being read as the next field). The layout, fixed forever
/// for version 1 (a change is a new version tag):
///
/// ```text
/// "palisade-audit-v1" 0x00
/// seq  u64 big-endian
/// ts   u64 big-endian (Unix milliseconds)
/// kind, severity       each: u32 big-endian length, UTF-8 bytes
/// ip, user, session    each: 0x00 if absent, or 0x01 and a length-prefixed string
/// detail               length-prefixed string
/// ```
pub fn canonical_bytes(seq: u64, entry: &Entry) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        // A detail is bounded and ids are short; a longer field could not
        // come from this code, and saturating keeps the encoding total.
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn optional(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                string(out, s);
            }
        }
    }
    let mut out = Vec::with_capacity(64 + entry.detail.len());
    out.extend_from_slice(b"palisade-audit-v1\0");
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&entry.ts.as_millis().to_be_bytes());
    string(&mut out, entry.kind.name());
    string(&mut out, entry.severity.name());
    optional(&mut out, entry.ip.as_deref());
    optional(&mut out, entry.user.as_deref());
    optional(&mut out, entry.session.as_deref());
    string(&mut out, &entry.detail);
    out
}

/// `SHA-256(prev_hash ‖ canonical)`.
pub fn record_hash(prev_hash: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// `text` as a record may hold it: control, format and bidi characters
/// written as `\u{…}` (so printing a record cannot forge a line or reverse
/// what an operator reads), cut to at most [`MAX_DETAIL_BYTES`] bytes
/// ending with [`CUT_MARKER`].
pub fn safe_detail(text: &str) -> String {
    let room = MAX_DETAIL_BYTES - CUT_MARKER.len();
    let mut out = String::with_capacity(text.len().min(MAX_DETAIL_BYTES));
    // Where to cut if the whole does not fit: after the last character
    // that leaves room for the marker, never inside an escape.
    let mut fits = 0;
    for c in text.chars() {
        if crate::log::needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
        if out.len() <= room {
            fits = out.len();
        }
        if out.len() > MAX_DETAIL_BYTES {
            out.truncate(fits);
            out.push_str(CUT_MARKER);
            return out;
        }
    }
    out
}

/// What a refused message's record may say about why: the reason when it
/// is text written into this program (`Cow::Borrowed`), else only what
/// precedes its first `:` (`"schema"` of `"schema: \"…\" is not …"`),
/// because an owned reason may quote the message's body, and a body never
/// goes into the log.
pub fn message_refusal_detail(refusal: &refusal::Refusal) -> String {
    match &refusal.reason {
        std::borrow::Cow::Borrowed(text) => (*text).to_owned(),
        std::borrow::Cow::Owned(text) => text.split(':').next().unwrap_or_default().to_owned(),
    }
}

/// The record retention appends after removing every record up to
/// `anchor.seq`: it carries the checkpoint of the last record removed, so
/// `palisade audit verify` can start from there (the first kept record's
/// `prev_hash` is `anchor.hash`) and prove, with the key, that nothing
/// more was cut off the start.
pub fn retention_entry(ts: Timestamp, anchor: &Checkpoint) -> Entry {
    Entry::new(ts, Kind::Retention, &format!("records up to the anchor removed by audit.retention; anchor {anchor}"))
}

/// The signed anchor a retention record carries, if `record` is one.
pub fn retention_anchor(record: &Record) -> Option<Checkpoint> {
    if record.entry.kind != Kind::Retention {
        return None;
    }
    Checkpoint::parse(&record.entry.detail).ok()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The 32 bytes a 64-digit hex string spells (either case), or `None`.
pub fn parse_hash(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let digit = |d: u8| char::from(d).to_digit(16);
        let (high, low) = (digit(pair[0])?, digit(pair[1])?);
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
