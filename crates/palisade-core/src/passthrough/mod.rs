//! Gateway mode's message rules (docs/GATEWAY.md): Palisade in front of an
//! existing WebSocket backend, reading the backend's own JSON.
//!
//! A [`RawFormat`] says where a message keeps its event name, room, data,
//! CSRF token, nonce and timestamp (JSON Pointers), and how frames are
//! framed (plain JSON, or Socket.IO's Engine.IO packets). The session runs
//! every client→backend message through the same pipeline steps as a
//! native `send` (`Session::on_raw`); [`outbound`] applies the optional
//! checks to backend→client messages; [`identity`] signs who the client
//! is for the backend. The server's `upstream` module holds the sockets.

pub mod identity;
mod socketio;

use std::borrow::Cow;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::json::{self, JsonLimits};
use crate::policy::Policy;
use crate::refusal::{Kind, Refusal};

/// How frames carry messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON value per text frame.
    Json,
    /// Socket.IO v5 over Engine.IO v4 (`42["event",{…}]`).
    SocketIo,
}

/// What one text frame is, as the framing reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// The transport's housekeeping (Engine.IO pings, Socket.IO connect):
    /// no event, forwarded as is once the frame passed the message rate.
    Control,
    /// A message: `prefix` frames the JSON `body` the pointers read.
    Message {
        /// Framing before the JSON ("" for plain JSON).
        prefix: &'a str,
        /// The JSON.
        body: &'a str,
    },
    /// A Socket.IO acknowledgement: a reply to the other side's event.
    Ack,
    /// A frame the framing refuses (for the log).
    Refused(&'static str),
}

/// Where the fields are, as JSON Pointers into a message (RFC 6901; ""
/// is the whole message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPointers {
    /// The event name (a string).
    pub event: String,
    /// The room, when the backend has rooms the policy should know of.
    pub room: Option<String>,
    /// The data the event's schema and sanitizers apply to.
    pub data: String,
    /// The CSRF token.
    pub csrf: String,
    /// The replay nonce.
    pub nonce: String,
    /// The replay timestamp (Unix milliseconds).
    pub ts: String,
}

/// The message format of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFormat {
    framing: Framing,
    fields: FieldPointers,
}

impl FieldPointers {
    /// A framing's own pointers: `/type`, `/data`, `/csrf`, `/nonce` and
    /// `/ts` for JSON; the event array's `/0` and its first argument's
    /// `/1`, `/1/csrf`, `/1/nonce`, `/1/ts` for Socket.IO.
    pub fn preset(framing: Framing) -> Self {
        let p = match framing {
            Framing::Json => ["/type", "/data", "/csrf", "/nonce", "/ts"],
            Framing::SocketIo => ["/0", "/1", "/1/csrf", "/1/nonce", "/1/ts"],
        };
        let [event, data, csrf, nonce, ts] = p.map(str::to_owned);
        Self { event, room: None, data, csrf, nonce, ts }
    }
}

impl RawFormat {
    /// A format; the error names the field whose pointer is malformed.
    pub fn new(framing: Framing, fields: FieldPointers) -> Result<Self, (&'static str, String)> {
        let all = [
            ("event_field", Some(&fields.event)),
            ("room_field", fields.room.as_ref()),
            ("data_field", Some(&fields.data)),
            ("csrf_field", Some(&fields.csrf)),
            ("nonce_field", Some(&fields.nonce)),
            ("ts_field", Some(&fields.ts)),
        ];
        for (name, pointer) in all {
            if let Some(p) = pointer.filter(|p| !p.is_empty() && !p.starts_with('/')) {
                return Err((name, format!("{p:?} is not a JSON Pointer (it starts with /, or is \"\")")));
            }
        }
        if fields.event.is_empty() {
            return Err(("event_field", "the event name cannot be the whole message".to_owned()));
        }
        Ok(Self { framing, fields })
    }

    /// The framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Reads one text frame's framing.
    pub fn decode<'a>(&self, text: &'a str) -> Packet<'a> {
        match self.framing {
            Framing::Json => Packet::Message { prefix: "", body: text },
            Framing::SocketIo => socketio::decode(text),
        }
    }

    /// One of Palisade's own frames (`{"type":kind,…}`: an `error`, and
    /// with `gateway.welcome` the `welcome`, `csrf` and `expiring` ones) as
    /// this framing delivers it: as is, or as the Socket.IO event
    /// `palisade:<kind>`.
    pub fn palisade_frame(&self, kind: &str, frame: &str) -> String {
        match self.framing {
            Framing::Json => frame.to_owned(),
            Framing::SocketIo => socketio::event(&format!(r#"["palisade:{kind}",{frame}]"#)),
        }
    }

    /// The fields of a parsed message. A missing data field is `null`; a
    /// field of the wrong type is a malformed request.
    pub fn fields<'v>(&self, message: &'v Value) -> Result<Fields<'v>, Refusal> {
        let f = &self.fields;
        let text = |pointer: &str, name: &'static str| match message.pointer(pointer) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Refusal::new(Kind::Protocol, format!("gateway: {name} is not a string"))),
        };
        let event = text(&f.event, "event")?
            .ok_or_else(|| Refusal::new(Kind::Protocol, "gateway: message without an event name"))?;
        let room = match &f.room {
            Some(pointer) => Some(
                text(pointer, "room")?
                    .ok_or_else(|| Refusal::new(Kind::Protocol, "gateway: message without a room"))?,
            ),
            None => None,
        };
        let ts = match message.pointer(&f.ts) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| Refusal::new(Kind::Protocol, "gateway: ts is not an integer"))?),
        };
        Ok(Fields {
            event,
            room,
            data: message.pointer(&f.data).unwrap_or(&Value::Null),
            csrf: text(&f.csrf, "csrf")?,
            nonce: text(&f.nonce, "nonce")?,
            ts,
        })
    }

    /// `message` with its data replaced by `data`, framed again with
    /// `prefix`.
    pub fn rewrite(&self, prefix: &str, mut message: Value, data: Value) -> String {
        // A message without the data field read as `null`, which
        // normalizing keeps as it is: nothing to put back.
        if let Some(slot) = message.pointer_mut(&self.fields.data) {
            *slot = data;
        }
        format!("{prefix}{message}")
    }
}

/// A message's fields, borrowed from its parsed JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fields<'v> {
    /// The event name.
    pub event: &'v str,
    /// The room, when the format names one.
    pub room: Option<&'v str>,
    /// The data.
    pub data: &'v Value,
    /// The CSRF token.
    pub csrf: Option<&'v str>,
    /// The replay nonce.
    pub nonce: Option<&'v str>,
    /// The replay timestamp.
    pub ts: Option<u64>,
}

/// Parses a message body within `limits` (pipeline step 3).
pub fn parse(body: &str, limits: JsonLimits) -> Result<Value, Refusal> {
    json::parse(body, limits).map_err(|e| Refusal::new(Kind::Protocol, format!("gateway: {e}")))
}

/// `data` as the event's checks take it.
pub fn raw(data: &Value) -> Result<Box<RawValue>, Refusal> {
    serde_json::value::to_raw_value(data).map_err(|e| Refusal::new(Kind::Internal, format!("gateway: {e}")))
}

/// What the outbound checks make of a backend→client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound<'a> {
    /// Send this (the frame as it came, or its sanitized copy).
    Send(Cow<'a, str>),
    /// Do not send it; why, for the log.
    Drop(Cow<'static, str>),
}

/// Checks on backend→client messages (`gateway.outbound_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundRules {
    /// Longest message passed on.
    pub max_bytes: usize,
    /// Run a declared event's schema and sanitizers on its data.
    pub check_events: bool,
    /// Parse bounds.
    pub json: JsonLimits,
}

/// Applies `rules` to one backend→client text frame: the size, then, for
/// an event the policy declares, its schema and sanitizers (a backend that
/// echoes one user's input to others is covered like a native room).
/// Housekeeping frames pass; a message of an undeclared event passes
/// unchecked (the backend's own events are its business); a frame that is
/// not the format's JSON is dropped when events are checked.
pub fn outbound<'a>(format: &RawFormat, policy: &Policy, rules: OutboundRules, text: &'a str) -> Outbound<'a> {
    if text.len() > rules.max_bytes {
        return Outbound::Drop(Cow::Owned(format!("{} bytes, over gateway.outbound_max_bytes", text.len())));
    }
    if !rules.check_events {
        return Outbound::Send(Cow::Borrowed(text));
    }
    let (prefix, body) = match format.decode(text) {
        Packet::Control | Packet::Ack => return Outbound::Send(Cow::Borrowed(text)),
        Packet::Refused(why) => return Outbound::Drop(Cow::Borrowed(why)),
        Packet::Message { prefix, body } => (prefix, body),
    };
    let checked = parse(body, rules.json).and_then(|message| {
        let fields = format.fields(&message)?;
        let Ok(rule) = policy.event(fields.event) else { return Ok(None) };
        let data = raw(fields.data)?;
        rule.check_size(&data)?;
        let shaped = rule.shape(&data, policy.sanitizers())?;
        let shaped: Value = serde_json::from_str(shaped.get())
            .map_err(|e| Refusal::new(Kind::Internal, format!("gateway: reparse: {e}")))?;
        Ok((shaped != *fields.data).then(|| format.rewrite(prefix, message.clone(), shaped)))
    });
    match checked {
        Ok(None) => Outbound::Send(Cow::Borrowed(text)),
        Ok(Some(copy)) => Outbound::Send(Cow::Owned(copy)),
        Err(refusal) => Outbound::Drop(Cow::Owned(refusal.reason.into_owned())),
    }
}

/// The close code a client gets when the backend closes with `code`: the
/// same where the client may be sent it (1000, 1001, 1003, 1007 to 1009,
/// 1011 to 1014, and the application range 3000–4999), else 1011. A
/// backend that hung up without a close frame (`None`) is 1011 too.
pub fn relay_close(code: Option<u16>) -> u16 {
    code.filter(|c| matches!(c, 1000 | 1001 | 1003 | 1007..=1009 | 1011..=1014 | 3000..=4999)).unwrap_or(1011)
}

#[cfg(test)]
pub(crate) mod tests;
