//! What an audit record becomes for a SIEM (docs/OPERATIONS.md, "Sending
//! the audit trail to a SIEM"): the export's JSON object, an RFC 5424
//! syslog message carrying it or a CEF line, and an Elastic Common Schema
//! document. One mapping for the server's syslog stream and the CLI's
//! export, so the two never disagree about a record.
//!
//! Pure: records in, text out; framing for a byte stream included, sockets
//! not.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Entry, Kind, Record, hex};
use crate::Timestamp;
use crate::refusal;

/// The syslog facility every record is sent with: 10, `authpriv`
/// (security and authorization messages, RFC 5424 §6.2.1).
pub const FACILITY: u8 = 10;

/// The ECS version the documents of [`ecs`] follow.
pub const ECS_VERSION: &str = "8.11.0";

/// Longest APP-NAME RFC 5424 allows.
pub const MAX_APP_NAME: usize = 48;

/// Longest HOSTNAME RFC 5424 allows.
pub const MAX_HOSTNAME: usize = 255;

/// Longest MSGID RFC 5424 allows.
const MAX_MSGID: usize = 32;

/// A syslog severity (RFC 5424 §6.2.1): 2 `crit` … 6 `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyslogSeverity(pub u8);

impl SyslogSeverity {
    /// `crit`: the chain was rewritten, a stolen refresh token was used.
    pub const CRITICAL: Self = Self(2);
    /// `err`: records were lost.
    pub const ERROR: Self = Self(3);
    /// `warning`: a refusal only a broken or hostile client causes, a ban.
    pub const WARNING: Self = Self(4);
    /// `notice`: an operator's action, a reload, retention.
    pub const NOTICE: Self = Self(5);
    /// `info`: a refusal an honest client causes, a session that ended.
    pub const INFO: Self = Self(6);
}

/// How serious `entry` is for a SIEM. By kind, so a SIEM's rules can key
/// on it; refusals by the severity their writer gave them (refusals an
/// honest client causes are `info`, the rest `warning`).
pub fn syslog_severity(entry: &Entry) -> SyslogSeverity {
    match entry.kind {
        Kind::ChainBreak | Kind::RefreshReuse => SyslogSeverity::CRITICAL,
        Kind::Gap => SyslogSeverity::ERROR,
        Kind::Ban => SyslogSeverity::WARNING,
        Kind::Refused(_) => match entry.severity {
            super::Severity::Info => SyslogSeverity::INFO,
            super::Severity::Warning => SyslogSeverity::WARNING,
            super::Severity::Critical => SyslogSeverity::CRITICAL,
        },
        Kind::Unban | Kind::Revocation | Kind::AdminAction | Kind::ConfigReload | Kind::Retention => {
            SyslogSeverity::NOTICE
        }
        Kind::SessionEnded => SyslogSeverity::INFO,
    }
}

/// The PRI value of `entry`: `facility * 8 + severity`.
pub fn priority(entry: &Entry) -> u8 {
    FACILITY * 8 + syslog_severity(entry).0
}

/// `ts` in RFC 3339, UTC, to the millisecond (years past 9999 are shown
/// as the last second of 9999: RFC 3339 has four year digits).
pub fn rfc3339(ts: Timestamp) -> String {
    let ms = ts.as_millis().min(253_402_300_799_000);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// One record as a JSON object: every stored field, hashes in hex. The
/// export's `jsonl` line and the body of a `format = "json"` syslog
/// message.
pub fn record_json(record: &Record) -> Value {
    let e = &record.entry;
    json!({
        "seq": record.seq,
        "ts": e.ts.as_millis(),
        "time": rfc3339(e.ts),
        "kind": e.kind.name(),
        "severity": e.severity.name(),
        "ip": e.ip,
        "user": e.user,
        "session": e.session,
        "detail": e.detail,
        "prev_hash": hex(&record.prev_hash),
        "hash": hex(&record.hash),
    })
}

/// What a syslog message's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// [`record_json`].
    Json,
    /// [`cef`].
    Cef,
}

/// The header fields that do not come from the record.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// HOSTNAME: who sends (the node).
    pub hostname: &'a str,
    /// APP-NAME.
    pub app_name: &'a str,
    /// PROCID: the server's process id.
    pub procid: u32,
}

/// `record` as one RFC 5424 message:
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, with the
/// record's kind as MSGID, no structured data, and `body` as MSG. Header
/// fields are made PRINTUSASCII ([`header_field`]).
pub fn syslog(record: &Record, origin: Origin<'_>, body: Body) -> String {
    let e = &record.entry;
    let msg = match body {
        Body::Json => record_json(record).to_string(),
        Body::Cef => cef(record),
    };
    format!(
        "<{}>1 {} {} {} {} {} - {msg}",
        priority(e),
        rfc3339(e.ts),
        header_field(origin.hostname, MAX_HOSTNAME),
        header_field(origin.app_name, MAX_APP_NAME),
        origin.procid,
        header_field(e.kind.name(), MAX_MSGID),
    )
}

/// `text` as an RFC 5424 header field: every character outside
/// PRINTUSASCII (`!` to `~`) becomes `_`, cut to `max`, and `-` (the nil
/// value) when empty.
pub fn header_field(text: &str, max: usize) -> String {
    let field: String = text.chars().take(max).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    if field.is_empty() { "-".to_owned() } else { field }
}

/// Whether `text` may stand as a header field unchanged: 1 to `max`
/// PRINTUSASCII characters, and not the nil value `-`.
pub fn is_header_field(text: &str, max: usize) -> bool {
    !text.is_empty() && text != "-" && text.len() <= max && text.chars().all(|c| c.is_ascii_graphic())
}

/// `msg` framed for a stream by octet counting (RFC 6587 §3.4.1, RFC 5425
/// §4.3): its length in bytes, a space, the message.
pub fn octet_counted(msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 8);
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg.as_bytes());
    out
}

/// `msg` cut to at most `max` bytes at a character boundary: a datagram
/// larger than a receiver reads is cut by the network or the receiver
/// anyway, so it is cut here, where it still ends on a whole character.
pub fn datagram(msg: &str, max: usize) -> &str {
    if msg.len() <= max {
        return msg;
    }
    let end = (0..=max).rev().find(|&i| msg.is_char_boundary(i)).unwrap_or(0);
    &msg[..end]
}

/// `record` as an ArcSight CEF line:
/// `CEF:0|Palisade|palisade|<version>|<kind>|<name>|<severity>|<extension>`,
/// severity 0–10 from [`syslog_severity`]; the extension carries `rt`
/// (Unix milliseconds), `src` (an address) or `cs3` (an IPv6 /64),
/// `suser`, `cs1` (session), `externalId` (seq), `cs2` (hash) and `msg`
/// (detail).
pub fn cef(record: &Record) -> String {
    let e = &record.entry;
    let severity = match syslog_severity(e).0 {
        0..=2 => 10,
        3 => 8,
        4 => 6,
        5 => 4,
        _ => 2,
    };
    let mut ext: Vec<(&str, String)> = vec![("rt", e.ts.as_millis().to_string())];
    match e.ip.as_deref() {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => ext.push(("src", ip.to_owned())),
        Some(network) => ext.extend([("cs3Label", "sourceNetwork".to_owned()), ("cs3", network.to_owned())]),
        None => {}
    }
    if let Some(user) = &e.user {
        ext.push(("suser", user.clone()));
    }
    if let Some(session) = &e.session {
        ext.extend([("cs1Label", "session".to_owned()), ("cs1", session.clone())]);
    }
    ext.extend([
        ("externalId", record.seq.to_string()),
        ("cs2Label", "hash".to_owned()),
        ("cs2", hex(&record.hash)),
        ("msg", e.detail.clone()),
    ]);
    let extension: Vec<String> = ext.iter().map(|(k, v)| format!("{k}={}", cef_value(v))).collect();
    format!(
        "CEF:0|Palisade|palisade|{}|{}|{}|{severity}|{}",
        cef_header(env!("CARGO_PKG_VERSION")),
        cef_header(e.kind.name()),
        cef_header(&title(e.kind)),
        extension.join(" ")
    )
}

/// A CEF header field: `\` and `|` escaped, line breaks as spaces (a
/// header has no escape for them).
pub fn cef_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A CEF extension value: `\`, `=` and line breaks escaped.
pub fn cef_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// What a kind is called for a person (CEF's Name).
fn title(kind: Kind) -> String {
    match kind {
        Kind::Refused(refused) => format!("Refused: {}", refused.name()),
        Kind::Ban => "Ban imposed".to_owned(),
        Kind::Unban => "Ban lifted".to_owned(),
        Kind::Revocation => "Credentials revoked".to_owned(),
        Kind::RefreshReuse => "Refresh token reused".to_owned(),
        Kind::SessionEnded => "Login session ended".to_owned(),
        Kind::AdminAction => "Operator action".to_owned(),
        Kind::ConfigReload => "Configuration reload".to_owned(),
        Kind::Gap => "Audit records lost".to_owned(),
        Kind::ChainBreak => "Audit chain rewritten".to_owned(),
        Kind::Retention => "Audit records removed by retention".to_owned(),
    }
}

/// ECS `event.kind`, `event.category`, `event.type` and `event.outcome`
/// of a kind (the values ECS allows for each).
fn ecs_event(kind: Kind) -> (&'static str, &'static [&'static str], &'static [&'static str], &'static str) {
    match kind {
        Kind::Refused(refusal::Kind::AuthFailure | refusal::Kind::LoginFailure | refusal::Kind::Expired) => {
            ("event", &["authentication"], &["start"], "failure")
        }
        Kind::Refused(_) => ("event", &["network"], &["connection", "denied"], "failure"),
        Kind::Ban => ("alert", &["intrusion_detection"], &["denied"], "success"),
        Kind::Unban => ("event", &["configuration"], &["change"], "success"),
        Kind::Revocation | Kind::SessionEnded => ("event", &["session"], &["end"], "success"),
        Kind::RefreshReuse => ("alert", &["authentication", "session"], &["end"], "failure"),
        Kind::AdminAction => ("event", &["iam"], &["admin", "change"], "success"),
        Kind::ConfigReload => ("event", &["configuration"], &["change"], "unknown"),
        Kind::Gap => ("event", &["database"], &["error"], "failure"),
        Kind::ChainBreak => ("alert", &["database"], &["change"], "failure"),
        Kind::Retention => ("event", &["database"], &["change"], "success"),
    }
}

/// `record` as one Elastic Common Schema document: `@timestamp`,
/// `event.*` (its kind as `action`, its seq as `sequence`),
/// `source.address` always and `source.ip` when it is one address (not an
/// IPv6 /64), `user.id`, `message`, `log.level`, and the record's own
/// fields under `palisade.audit` (with the hashes, so an imported trail
/// can still be checked).
pub fn ecs(record: &Record) -> Value {
    let e = &record.entry;
    let (kind, category, types, outcome) = ecs_event(e.kind);
    let mut doc = json!({
        "@timestamp": rfc3339(e.ts),
        "ecs": { "version": ECS_VERSION },
        "event": {
            "kind": kind,
            "category": category,
            "type": types,
            "action": e.kind.name(),
            "outcome": outcome,
            "severity": syslog_severity(e).0,
            "sequence": record.seq,
            "dataset": "palisade.audit",
            "module": "palisade",
        },
        "message": e.detail,
        "log": { "level": e.severity.name(), "syslog": { "facility": { "code": FACILITY } } },
        "palisade": { "audit": record_json(record) },
    });
    if let Some(ip) = &e.ip {
        let mut source = json!({ "address": ip });
        if ip.parse::<std::net::IpAddr>().is_ok() {
            source["ip"] = json!(ip);
        }
        doc["source"] = source;
    }
    if let Some(user) = &e.user {
        doc["user"] = json!({ "id": user });
    }
    if let Some(session) = &e.session {
        doc["labels"] = json!({ "session": session });
    }
    doc
}

#[cfg(test)]
mod tests;
