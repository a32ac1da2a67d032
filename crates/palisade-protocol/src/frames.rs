use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{ErrorCode, MAX_ID_LEN};

/// A request from a client, borrowed from the text frame it arrived in.
#[derive(Debug)]
pub enum ClientFrame<'a> {
    /// Join a room.
    Join {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
    },
    /// Leave a room.
    Leave {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
    },
    /// Publish an event to a room.
    Send {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
        /// Event name, declared in the policy.
        event: Cow<'a, str>,
        /// The event's payload, as the client wrote it.
        data: &'a RawValue,
        /// CSRF token echo, where the event or the session requires it.
        csrf: Option<Cow<'a, str>>,
        /// Replay nonce, where the event requires it.
        nonce: Option<Cow<'a, str>>,
        /// Client timestamp in Unix milliseconds, for replay checks.
        ts: Option<u64>,
        /// Client message id: a resend with the same one is answered with
        /// the first one's `seq`, not published twice.
        cid: Option<Cow<'a, str>>,
    },
    /// Replace the connection's access token with a fresh one.
    Refresh {
        /// Correlation id.
        id: Cow<'a, str>,
        /// The new access token.
        token: Cow<'a, str>,
    },
    /// Replay a room's history after `since`.
    Recover {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
        /// Last sequence number the client saw.
        since: u64,
    },
    /// Become the owner of a room that has none, and join it.
    Create {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
    },
    /// Delete a room (its owner or a moderator): every member is removed.
    DeleteRoom {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
    },
    /// Remove a user's connections from a room (its owner or a moderator).
    RemoveMember {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
        /// The user to remove.
        user: Cow<'a, str>,
    },
}

/// Why a text frame is not a valid request. `id` is the correlation id when
/// the frame carried a usable one, so the error can still be correlated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The request's correlation id, if it could be read.
    pub id: Option<String>,
    /// What was wrong, for the operator's log (never sent to the client).
    pub reason: &'static str,
}

// Every field of every request type, flat: serde's internally tagged enums
// buffer their input and cannot borrow a `RawValue`, so the envelope is read
// in one pass and checked per type below.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    room: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    csrf: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    nonce: Option<Cow<'a, str>>,
    #[serde(default)]
    ts: Option<u64>,
    #[serde(default, borrow)]
    token: Option<Cow<'a, str>>,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default, borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    cid: Option<Cow<'a, str>>,
}

/// The fields each request type takes besides `type` and `id`: the one
/// list the parser holds frames to (docs/PROTOCOL.md §2 shows the same).
const REQUEST_FIELDS: [(&str, &[&str]); 8] = [
    ("join", &["room"]),
    ("leave", &["room"]),
    ("send", &["room", "event", "data", "csrf", "nonce", "ts", "cid"]),
    ("refresh", &["token"]),
    ("recover", &["room", "since"]),
    ("create", &["room"]),
    ("room.delete", &["room"]),
    ("room.remove_member", &["room", "user"]),
];

impl Envelope<'_> {
    /// Names of the optional fields present, besides `type` and `id`.
    fn present(&self) -> impl Iterator<Item = &'static str> {
        [
            ("room", self.room.is_some()),
            ("event", self.event.is_some()),
            ("data", self.data.is_some()),
            ("csrf", self.csrf.is_some()),
            ("nonce", self.nonce.is_some()),
            ("ts", self.ts.is_some()),
            ("token", self.token.is_some()),
            ("since", self.since.is_some()),
            ("user", self.user.is_some()),
            ("cid", self.cid.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
    }
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
}

impl<'a> ClientFrame<'a> {
    /// Parses one text frame.
    pub fn parse(text: &'a str) -> Result<Self, FrameError> {
        let mut env: Envelope<'a> = serde_json::from_str(text)
            .map_err(|_| FrameError { id: salvage_id(text), reason: "not a valid request envelope" })?;
        let id = match env.id.take() {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => id,
            _ => {
                return Err(FrameError { id: None, reason: "missing or oversized id" });
            }
        };
        let fail = |reason| Err(FrameError { id: Some(id.to_string()), reason });
        // Each type takes exactly its own fields: a stray field is a client
        // bug (or a probe) worth refusing, not ignoring.
        let Some((_, allowed)) = REQUEST_FIELDS.iter().find(|(kind, _)| *kind == env.kind) else {
            return fail("unknown frame type");
        };
        if env.present().any(|field| !allowed.contains(&field)) {
            return fail("field not valid for this frame type");
        }
        let frame = match env.kind.as_ref() {
            "join" | "leave" | "create" | "room.delete" => {
                let Some(room) = env.room else {
                    return fail("missing room");
                };
                match env.kind.as_ref() {
                    "join" => ClientFrame::Join { id, room },
                    "leave" => ClientFrame::Leave { id, room },
                    "create" => ClientFrame::Create { id, room },
                    _ => ClientFrame::DeleteRoom { id, room },
                }
            }
            "room.remove_member" => {
                let (Some(room), Some(user)) = (env.room, env.user) else {
                    return fail("room.remove_member needs room and user");
                };
                ClientFrame::RemoveMember { id, room, user }
            }
            "send" => {
                let (Some(room), Some(event), Some(data)) = (env.room, env.event, env.data) else {
                    return fail("send needs room, event and data");
                };
                ClientFrame::Send { id, room, event, data, csrf: env.csrf, nonce: env.nonce, ts: env.ts, cid: env.cid }
            }
            "refresh" => {
                let Some(token) = env.token else {
                    return fail("missing token");
                };
                ClientFrame::Refresh { id, token }
            }
            _ => {
                let (Some(room), Some(since)) = (env.room, env.since) else {
                    return fail("recover needs room and since");
                };
                ClientFrame::Recover { id, room, since }
            }
        };
        Ok(frame)
    }

    /// The request's correlation id.
    pub fn id(&self) -> &str {
        match self {
            Self::Join { id, .. }
            | Self::Leave { id, .. }
            | Self::Send { id, .. }
            | Self::Refresh { id, .. }
            | Self::Recover { id, .. }
            | Self::Create { id, .. }
            | Self::DeleteRoom { id, .. }
            | Self::RemoveMember { id, .. } => id,
        }
    }
}

/// Reads just the `id` of a frame whose envelope is otherwise invalid, so the
/// error can still be correlated. Only a well-formed JSON object counts.
fn salvage_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Loose<'a> {
        #[serde(borrow, flatten)]
        inner: IdOnly<'a>,
        #[serde(flatten)]
        _rest: serde::de::IgnoredAny,
    }
    let loose: Loose<'_> = serde_json::from_str(text).ok()?;
    loose.inner.id.filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN).map(Cow::into_owned)
}

/// A message from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// First frame on every connection.
    Welcome(Welcome<'a>),
    /// A request succeeded.
    Ack {
        /// The request's correlation id.
        id: &'a str,
        /// The sequence number the room assigned, for `send`; the room's
        /// newest, for `join` and `recover`.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// For `recover`: whether every event after `since` was replayed.
        #[serde(skip_serializing_if = "Option::is_none")]
        complete: Option<bool>,
        /// For `send`: the `cid` was published before (as `seq`), not again.
        #[serde(skip_serializing_if = "Option::is_none")]
        duplicate: Option<bool>,
    },
    /// An event published in a room the connection has joined.
    Event(EventFrame<'a>),
    /// A request failed.
    Error(ErrorFrame<'a>),
    /// The token expires soon; send `refresh`.
    Expiring {
        /// Expiry, Unix milliseconds.
        expires_at: u64,
    },
    /// The CSRF token rotated.
    Csrf {
        /// The new token.
        csrf: &'a str,
    },
    /// The connection was taken out of a room: a `refresh` brought fewer
    /// rights or a policy reload removed them, the room was deleted, or
    /// its owner removed the user.
    Removed {
        /// The room.
        room: &'a str,
        /// As an error code (`forbidden`).
        code: ErrorCode,
        /// Which of the three.
        reason: RemovedReason,
    },
}

/// Why a connection was taken out of a room (`removed`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedReason {
    /// Its rights no longer cover the room.
    Rights,
    /// The room was deleted by its owner or a moderator.
    Deleted,
    /// The room's owner or a moderator removed the user.
    RemovedByOwner,
}

/// The `welcome` frame.
#[derive(Debug, Serialize)]
pub struct Welcome<'a> {
    /// Session id.
    pub session: &'a str,
    /// Who the server thinks the client is.
    pub user: UserInfo<'a>,
    /// CSRF token to echo on events that require it.
    pub csrf: &'a str,
    /// Interval of the server's pings.
    pub heartbeat_ms: u64,
    /// Largest text frame the server accepts.
    pub max_message_bytes: usize,
    /// When the access token expires, Unix milliseconds.
    pub expires_at: u64,
}

/// The verified identity of a user, as shown to that user.
#[derive(Debug, Serialize)]
pub struct UserInfo<'a> {
    /// User id (`sub`).
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Roles.
    pub roles: &'a [String],
}

/// The sender of an event, taken from the verified token only.
#[derive(Debug, Serialize)]
pub struct Identity<'a> {
    /// User id (`sub`).
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
}

/// The `event` frame.
#[derive(Debug, Serialize)]
pub struct EventFrame<'a> {
    /// Room name.
    pub room: &'a str,
    /// Per-room sequence number.
    pub seq: u64,
    /// Event name.
    pub event: &'a str,
    /// Sender.
    pub from: Identity<'a>,
    /// Payload after the policy's checks.
    pub data: &'a RawValue,
    /// Server time of publication, Unix milliseconds.
    pub ts: u64,
}

/// Longest room name (the core's room-name rule: ASCII, nothing to escape).
pub const MAX_ROOM_LEN: usize = 128;
/// Longest event name (the core's event-name rule: ASCII, nothing to escape).
pub const MAX_EVENT_LEN: usize = 64;
/// Longest user id or display name a token may carry, in bytes.
pub const MAX_IDENTITY_LEN: usize = 128;

/// The most bytes an `event` frame, with its WebSocket header, adds to its
/// `data`: the fixed keys, the longest room and event names, the sender's id
/// and name at the worst JSON escaping (a control character becomes
/// `\u00XX`, six bytes, so the bound holds whatever characters the identity
/// rules allow), and twenty digits each for `seq` and `ts`. A write buffer of
/// `max_message_bytes + ENVELOPE_HEADROOM` holds any event whose `data` is
/// within `max_message_bytes`.
pub const ENVELOPE_HEADROOM: usize =
    EVENT_KEYS.len() + MAX_ROOM_LEN + MAX_EVENT_LEN + 2 * WORST_ESCAPE * MAX_IDENTITY_LEN + 2 * U64_DIGITS + WS_HEADER;

/// Longest `path` an error frame carries, in bytes. A pointer quotes the
/// client's keys, and one key may be as long as the message: quoted whole
/// and escaped, it made an error frame larger than the write buffer, which
/// closed the connection instead of answering. With this bound every error
/// frame fits in [`ENVELOPE_HEADROOM`].
pub const MAX_ERROR_PATH_LEN: usize = 128;

/// `pointer` when it fits in [`MAX_ERROR_PATH_LEN`] bytes, else its nearest
/// ancestor that does (the fault is inside it): still a true JSON Pointer,
/// `""` (the whole value) when even the first segment is longer.
pub fn bounded_pointer(pointer: &str) -> &str {
    if pointer.len() <= MAX_ERROR_PATH_LEN {
        return pointer;
    }
    let end = pointer.match_indices('/').map(|(i, _)| i).take_while(|&i| i <= MAX_ERROR_PATH_LEN).last();
    &pointer[..end.unwrap_or(0)]
}

fn serialize_path<S: serde::Serializer>(path: &Option<&str>, s: S) -> Result<S::Ok, S::Error> {
    path.map(bounded_pointer).serialize(s)
}

/// An event frame with every variable part empty.
const EVENT_KEYS: &str = r#"{"type":"event","room":"","seq":,"event":"","from":{"id":"","name":""},"data":,"ts":}"#;
/// Bytes one input byte can become in a JSON string.
const WORST_ESCAPE: usize = 6;
/// Digits of `u64::MAX`.
const U64_DIGITS: usize = 20;
/// An unmasked server frame's header with a 64-bit length.
const WS_HEADER: usize = 10;

/// The `error` frame.
#[derive(Debug, Serialize)]
pub struct ErrorFrame<'a> {
    /// The failed request's id, when it had a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// Stable error code.
    pub code: ErrorCode,
    /// Short generic message.
    pub message: &'static str,
    /// JSON Pointer of the client's field at fault, for `invalid_payload`;
    /// written as [`bounded_pointer`] of it.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_path")]
    pub path: Option<&'a str>,
    /// When to retry, for `rate_limited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Reference to the server's log line.
    #[serde(rename = "ref")]
    pub reference: &'a str,
}

impl ServerFrame<'_> {
    /// Serializes the frame to JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every field is a string,
        // integer or already-valid raw JSON, and map keys are strings.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\",\"code\":\"internal\"}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_request_type() {
        let f = ClientFrame::parse(r#"{"type":"join","id":"1","room":"lobby"}"#).unwrap();
        assert!(matches!(f, ClientFrame::Join { ref id, ref room } if id == "1" && room == "lobby"));
        let f = ClientFrame::parse(
            r#"{"type":"send","id":"3","room":"lobby","event":"chat.message","data":{"content":"hi"},"ts":5}"#,
        )
        .unwrap();
        match f {
            ClientFrame::Send { data, ts, .. } => {
                assert_eq!(data.get(), r#"{"content":"hi"}"#);
                assert_eq!(ts, Some(5));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"recover","id":"5","room":"r","since":42}"#),
            Ok(ClientFrame::Recover { since: 42, .. })
        ));
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"refresh","id":"4","token":"t"}"#),
            Ok(ClientFrame::Refresh { .. })
        ));
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"create","id":"6","room":"team:a"}"#),
            Ok(ClientFrame::Create { ref room, .. }) if room == "team:a"
        ));
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"room.delete","id":"7","room":"team:a"}"#),
            Ok(ClientFrame::DeleteRoom { .. })
        ));
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"room.remove_member","id":"8","room":"team:a","user":"bob"}"#),
            Ok(ClientFrame::RemoveMember { ref user, .. }) if user == "bob"
        ));
        for incomplete in [
            r#"{"type":"room.remove_member","id":"9","room":"team:a"}"#,
            r#"{"type":"join","id":"9","room":"team:a","user":"bob"}"#,
        ] {
            assert_eq!(ClientFrame::parse(incomplete).unwrap_err().id.as_deref(), Some("9"), "{incomplete}");
        }
    }

    #[test]
    fn rejects_bad_envelopes_keeping_the_id_when_readable() {
        let e = ClientFrame::parse(r#"{"type":"join","id":"7"}"#).unwrap_err();
        assert_eq!(e.id.as_deref(), Some("7"));
        let e = ClientFrame::parse(r#"{"type":"nope","id":"8","room":"x"}"#).unwrap_err();
        assert_eq!(e.id.as_deref(), Some("8"));
        let e = ClientFrame::parse(r#"{"type":"join","id":"9","room":"x","extra":1}"#).unwrap_err();
        assert_eq!(e.id.as_deref(), Some("9"));
        for stray in [
            r#"{"type":"join","id":"9","room":"x","nonce":"n"}"#,
            r#"{"type":"leave","id":"9","room":"x","since":1}"#,
            r#"{"type":"refresh","id":"9","token":"t","room":"x"}"#,
            r#"{"type":"recover","id":"9","room":"x","since":1,"data":{}}"#,
        ] {
            assert_eq!(ClientFrame::parse(stray).unwrap_err().id.as_deref(), Some("9"), "{stray}");
        }
        let e = ClientFrame::parse(r#"{"type":"join","id":"9","id":"10","room":"x"}"#).unwrap_err();
        assert!(e.reason.contains("envelope"));
        assert!(ClientFrame::parse("not json").unwrap_err().id.is_none());
        assert!(ClientFrame::parse("[1,2]").unwrap_err().id.is_none());
        let long = "x".repeat(MAX_ID_LEN + 1);
        let e = ClientFrame::parse(&format!(r#"{{"type":"join","id":"{long}","room":"x"}}"#)).unwrap_err();
        assert!(e.id.is_none());
    }

    /// Every request type against every envelope field: a field is
    /// accepted exactly where `REQUEST_FIELDS` lists it.
    #[test]
    fn every_frame_type_takes_exactly_its_listed_fields() {
        let value = |field: &str| match field {
            "data" => "{}",
            "ts" | "since" => "1",
            _ => "\"x\"",
        };
        let all = ["room", "event", "data", "csrf", "nonce", "ts", "token", "since"];
        for (kind, allowed) in REQUEST_FIELDS {
            // The type's required fields: every listed one except the
            // optional replay and CSRF echoes of `send`.
            let required: Vec<&str> =
                allowed.iter().copied().filter(|f| !matches!(*f, "csrf" | "nonce" | "ts")).collect();
            let frame = |extra: Option<&str>| {
                let mut text = format!(r#"{{"type":"{kind}","id":"1""#);
                for f in required.iter().copied().chain(extra) {
                    text.push_str(&format!(r#","{f}":{}"#, value(f)));
                }
                text.push('}');
                text
            };
            assert!(ClientFrame::parse(&frame(None)).is_ok(), "{kind} with its required fields");
            for field in all.into_iter().filter(|f| !required.contains(f)) {
                let text = frame(Some(field));
                let parsed = ClientFrame::parse(&text);
                assert_eq!(parsed.is_ok(), allowed.contains(&field), "{kind} + {field}: {parsed:?}");
            }
        }
    }

    #[test]
    fn event_frame_embeds_raw_data_verbatim() {
        let data = RawValue::from_string(r#"{"content":"hi"}"#.to_string()).unwrap();
        let json = ServerFrame::Event(EventFrame {
            room: "lobby",
            seq: 43,
            event: "chat.message",
            from: Identity { id: "u1", name: "alice" },
            data: &data,
            ts: 1,
        })
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"event","room":"lobby","seq":43,"event":"chat.message","from":{"id":"u1","name":"alice"},"data":{"content":"hi"},"ts":1}"#
        );
    }

    #[test]
    fn error_frame_uses_ref_and_skips_absent_fields() {
        let json = ServerFrame::Error(ErrorFrame {
            id: None,
            code: ErrorCode::BadRequest,
            message: ErrorCode::BadRequest.message(),
            path: None,
            retry_after_ms: None,
            reference: "r_1",
        })
        .to_json();
        assert_eq!(json, r#"{"type":"error","code":"bad_request","message":"malformed request","ref":"r_1"}"#);
    }

    #[test]
    fn a_huge_key_becomes_the_nearest_pointer_that_fits() {
        let key = "k".repeat(60_000);
        assert_eq!(bounded_pointer("/a/b"), "/a/b");
        assert_eq!(bounded_pointer(&format!("/items/3/{key}")), "/items/3");
        assert_eq!(bounded_pointer(&format!("/{key}/x")), "");
        let at_limit = format!("/{}", "k".repeat(MAX_ERROR_PATH_LEN - 1));
        assert_eq!(bounded_pointer(&format!("{at_limit}/{key}")), at_limit);
    }

    #[test]
    fn the_largest_error_frame_fits_the_envelope_headroom() {
        let control = "\u{1}";
        let id = control.repeat(MAX_ID_LEN);
        // Every byte kept is one to escape in six.
        let path = format!("/{}/{}", control.repeat(MAX_ERROR_PATH_LEN - 1), "k".repeat(100_000));
        let reference = "r_".to_owned() + &"x".repeat(16);
        let longest = ErrorCode::ALL.iter().max_by_key(|c| c.as_str().len() + c.message().len()).unwrap();
        let json = ServerFrame::Error(ErrorFrame {
            id: Some(&id),
            code: *longest,
            message: longest.message(),
            path: Some(&path),
            retry_after_ms: Some(u64::MAX),
            reference: &reference,
        })
        .to_json();
        assert!(json.contains(&"\\u0001".repeat(MAX_ERROR_PATH_LEN - 1)), "{json}");
        assert!(json.len() + WS_HEADER <= ENVELOPE_HEADROOM, "{} bytes", json.len());
    }

    #[test]
    fn the_largest_event_frame_fits_the_envelope_headroom() {
        let max_message_bytes = 65_536;
        // `data` of exactly max_message_bytes: a string of escapes, already
        // serialized, as the pipeline hands it over.
        let data = format!("\"{}\"", "\\n".repeat((max_message_bytes - 2) / 2));
        assert_eq!(data.len(), max_message_bytes);
        let data = RawValue::from_string(data).unwrap();
        let control = "\u{1}".repeat(MAX_IDENTITY_LEN);
        let json = ServerFrame::Event(EventFrame {
            room: &"r".repeat(MAX_ROOM_LEN),
            seq: u64::MAX,
            event: &"e".repeat(MAX_EVENT_LEN),
            from: Identity { id: &control, name: &control },
            data: &data,
            ts: u64::MAX,
        })
        .to_json();
        // The frame on the wire: 10 header bytes for a payload this long.
        assert_eq!(json.len() + WS_HEADER, max_message_bytes + ENVELOPE_HEADROOM, "the bound is tight");
    }
}
