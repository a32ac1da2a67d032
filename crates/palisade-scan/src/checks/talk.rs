//! Talking to an application over an open socket, for the checks that need
//! one (`authz`, `csrf`, `replay`): requests in Palisade's envelope
//! (`{"type":"join"|"send","id",…}`, answered by an `ack` or an `error`
//! with the same `id`, docs/PROTOCOL.md §2), and an echo server's answer,
//! the request itself coming back, read as accepted too.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::finding::excerpt;
use crate::net::{READ_TIMEOUT, Ws};
use crate::{DEFAULT_DATA, DEFAULT_EVENT, MARK, Options, ScanError};

/// Most messages read while waiting for one answer.
const MAX_MESSAGES: usize = 32;

/// What came back to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An `ack` with the request's id.
    Ack,
    /// The request itself (an echo server relays it).
    Relayed,
    /// An `error` with the request's id (or none): its `code`, and its
    /// `retry_after_ms` when it has one.
    Error(String, Option<u64>),
    /// A close, or the connection dropped.
    Closed,
    /// Nothing that answers it within [`READ_TIMEOUT`].
    Nothing,
}

impl Outcome {
    /// Whether the request went through: acknowledged, or relayed.
    pub(crate) fn accepted(&self) -> bool {
        matches!(self, Self::Ack | Self::Relayed)
    }

    /// For evidence.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Ack => "got an ack".into(),
            Self::Relayed => "got it back unchanged (relayed)".into(),
            Self::Error(code, _) => format!("got an error ({code})"),
            Self::Closed => "the connection was closed".into(),
            Self::Nothing => format!("got no answer in {READ_TIMEOUT:?}"),
        }
    }
}

/// Sends `request` (an object with an `id`) and reads until it is answered.
pub(crate) async fn request(ws: &mut Ws, request: &Value) -> Outcome {
    let text = request.to_string();
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    if ws.send(Message::text(text.clone())).await.is_err() {
        return Outcome::Closed;
    }
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..MAX_MESSAGES {
        let message = match timeout_at(deadline, ws.next()).await {
            Err(_) => return Outcome::Nothing,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Outcome::Closed,
            Ok(Some(Ok(Message::Text(t)))) => t.as_str().to_owned(),
            Ok(Some(Ok(_))) => continue,
        };
        if message == text {
            return Outcome::Relayed;
        }
        let Ok(answer) = serde_json::from_str::<Value>(&message) else { continue };
        let same_id = answer.get("id").and_then(Value::as_str) == Some(id.as_str());
        match answer.get("type").and_then(Value::as_str) {
            Some("ack") if same_id => return Outcome::Ack,
            Some("error") if same_id || answer.get("id").is_none() => {
                let code = answer.get("code").and_then(Value::as_str).unwrap_or("no code").to_owned();
                return Outcome::Error(code, answer.get("retry_after_ms").and_then(Value::as_u64));
            }
            _ => {}
        }
    }
    Outcome::Nothing
}

/// Like [`request`], but a `rate_limited` error with a short
/// `retry_after_ms` is waited out and the request sent again, once: the
/// target's rate limit is not what the check asks about.
pub(crate) async fn request_patiently(ws: &mut Ws, body: &Value) -> Outcome {
    let outcome = request(ws, body).await;
    match outcome {
        Outcome::Error(ref code, Some(ms)) if code == "rate_limited" && ms <= 3000 => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            request(ws, body).await
        }
        other => other,
    }
}

/// A `join` of `room`.
pub(crate) fn join(id: &str, room: &str) -> Value {
    json!({"type": "join", "id": id, "room": room})
}

/// A `send` to `room` of `event` with `data`.
pub(crate) fn send(id: &str, room: &str, event: &str, data: Value) -> Value {
    let mut body = json!({"type": "send", "id": id, "room": room, "event": event});
    body["data"] = data;
    body
}

/// Reads until a text message holding `mark` arrives (bounded in count
/// and time): whether it did.
pub(crate) async fn receives(ws: &mut Ws, mark: &str) -> bool {
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..MAX_MESSAGES {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(mark) => return true,
            Ok(Some(Ok(_))) => {}
            _ => return false,
        }
    }
    false
}

/// A string no other message holds: `palisade-scan-<what>-<clock>`.
pub(crate) fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("palisade-scan-{what}-{:x}", nanos % (1 << 48))
}

/// `--data` (or `template`) with [`MARK`] replaced by `mark`, parsed.
pub(crate) fn data(template: Option<&str>, mark: &str) -> Result<Value, ScanError> {
    let template = template.unwrap_or(DEFAULT_DATA);
    serde_json::from_str(&template.replace(MARK, mark))
        .map_err(|e| ScanError::Usage(format!("--data {}: not JSON: {e}", excerpt(template))))
}

/// The event `--room` messages are sent as.
pub(crate) fn event(options: &Options) -> &str {
    options.event.as_deref().unwrap_or(DEFAULT_EVENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_takes_the_mark_and_must_be_json() {
        let v = data(None, "m-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, json!({"content": "m-1"}));
        let v = data(Some(r#"{"a":1,"b":"x @mark@"}"#), "m-2").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["b"], "x m-2");
        assert!(matches!(data(Some("{nope"), "m"), Err(ScanError::Usage(_))));
        assert_ne!(unique("a"), unique("b"));
    }
}
