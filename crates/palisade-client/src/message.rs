//! Server messages as the client reads them (owned, deserializable).

use serde::Deserialize;
use serde_json::Value;

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First frame of every connection.
    Welcome(WelcomeInfo),
    /// An event in a joined room.
    Event {
        /// Room.
        room: String,
        /// Per-room sequence number.
        seq: u64,
        /// Event name.
        event: String,
        /// Sender, from the sender's token.
        from: Sender,
        /// Payload.
        data: Value,
        /// Server time, Unix ms.
        ts: u64,
    },
    /// The token expires soon.
    Expiring {
        /// Expiry, Unix ms.
        expires_at: u64,
    },
    /// The CSRF token rotated.
    Csrf {
        /// New token.
        csrf: String,
    },
    /// An ack or error (see [`Reply`]).
    #[serde(untagged)]
    Reply(Reply),
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// Success.
    Ack {
        /// Request id.
        id: String,
        /// Assigned sequence number, for `send`; the room's newest, for
        /// `join` and `recover`.
        #[serde(default)]
        seq: Option<u64>,
        /// For `recover`: whether every event after `since` was replayed.
        #[serde(default)]
        complete: Option<bool>,
    },
    /// Failure.
    Error {
        /// Request id, if the request had a readable one.
        #[serde(default)]
        id: Option<String>,
        /// Stable error code.
        code: String,
        /// Generic message.
        message: String,
        /// The field at fault, for `invalid_payload`.
        #[serde(default)]
        path: Option<String>,
        /// Retry hint.
        #[serde(default)]
        retry_after_ms: Option<u64>,
        /// Log reference.
        #[serde(rename = "ref")]
        reference: String,
    },
}

impl Reply {
    /// The request id this answers.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Ack { id, .. } => Some(id),
            Self::Error { id, .. } => id.as_deref(),
        }
    }

    /// The error code, for errors.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Ack { .. } => None,
            Self::Error { code, .. } => Some(code),
        }
    }
}

/// The sender of an event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sender {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The `welcome` frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WelcomeInfo {
    /// Session id.
    pub session: String,
    /// The user as the server sees them.
    pub user: UserInfo,
    /// CSRF token.
    pub csrf: String,
    /// Server ping interval.
    pub heartbeat_ms: u64,
    /// Largest frame the server accepts.
    pub max_message_bytes: usize,
    /// Token expiry, Unix ms.
    pub expires_at: u64,
}

/// A user, as in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
}

#[cfg(test)]
mod tests {
    use palisade_protocol::{ErrorCode, ErrorFrame, EventFrame, Identity, ServerFrame, UserInfo as WireUser, Welcome};
    use serde_json::value::RawValue;

    use super::*;

    // The server's serializer and this deserializer must agree on every
    // frame; round-trip each one.
    #[test]
    fn every_server_frame_round_trips() {
        let roles = vec!["r".to_owned()];
        let data = RawValue::from_string(r#"{"a":1}"#.to_owned()).unwrap();
        let frames = [
            ServerFrame::Welcome(Welcome {
                session: "s",
                user: WireUser { id: "u", name: "n", roles: &roles },
                csrf: "c",
                heartbeat_ms: 1,
                max_message_bytes: 2,
                expires_at: 3,
            }),
            ServerFrame::Ack { id: "1", seq: Some(4), complete: None, duplicate: None },
            ServerFrame::Ack { id: "2", seq: None, complete: None, duplicate: None },
            ServerFrame::Event(EventFrame {
                room: "r",
                seq: 5,
                event: "e",
                from: Identity { id: "u", name: "n" },
                data: &data,
                ts: 6,
            }),
            ServerFrame::Error(ErrorFrame {
                id: Some("3"),
                code: ErrorCode::Forbidden,
                message: "m",
                path: Some("/a"),
                retry_after_ms: Some(7),
                reference: "r_1",
            }),
            ServerFrame::Expiring { expires_at: 8 },
            ServerFrame::Csrf { csrf: "x" },
        ];
        let parsed: Vec<ServerMessage> = frames.iter().map(|f| serde_json::from_str(&f.to_json()).unwrap()).collect();
        assert!(matches!(&parsed[0], ServerMessage::Welcome(w) if w.user.roles == roles));
        assert_eq!(parsed[1], ServerMessage::Reply(Reply::Ack { id: "1".into(), seq: Some(4), complete: None }));
        assert_eq!(parsed[2], ServerMessage::Reply(Reply::Ack { id: "2".into(), seq: None, complete: None }));
        assert!(matches!(&parsed[3], ServerMessage::Event { seq: 5, data, .. } if data["a"] == 1));
        assert!(
            matches!(&parsed[4], ServerMessage::Reply(r) if r.error_code() == Some("forbidden") && r.id() == Some("3"))
        );
        assert_eq!(parsed[5], ServerMessage::Expiring { expires_at: 8 });
        assert_eq!(parsed[6], ServerMessage::Csrf { csrf: "x".into() });
    }
}
