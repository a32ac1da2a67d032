//! The scenarios. Each takes a [`Target`](crate::target::Target) and its
//! parameters, runs for a bounded count and time, and returns a report.

pub mod connect;
pub mod echo;
pub mod fanout;
pub mod history;
pub mod idle;
pub mod login;
pub mod mixed;

use std::borrow::Cow;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use palisade_client::{ClientError, Reply, Stream};
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::target::{MAX_CONNECTIONS_PER_PROCESS, MAX_DURATION, Target};

/// Connects as `user` (the `n`th connection), joins `room` and insists on
/// an ack: a scenario against a server whose policy refuses the room would
/// otherwise measure error replies.
pub(crate) async fn joined(
    target: &Target,
    user: &str,
    n: usize,
    room: &str,
    recv_buffer: Option<u32>,
) -> Result<Stream, ScenarioError> {
    let mut opts = target.options(user, n);
    opts.recv_buffer = recv_buffer;
    let mut client = target.connect(&opts).await?;
    match client.join(room).await? {
        Reply::Ack { .. } => Ok(client.into_stream()),
        Reply::Error { code, .. } => Err(ScenarioError::Refused { room: room.to_owned(), code }),
    }
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Parameters out of bounds.
    #[error("{0}")]
    Bounds(String),
    /// Setting up connections failed.
    #[error("setup failed: {0}")]
    Setup(#[from] ClientError),
    /// The server refused to let the scenario join its room.
    #[error("joining `{room}` was refused with `{code}`: does the server's policy have a rule for it?")]
    Refused {
        /// Room.
        room: String,
        /// Error code.
        code: String,
    },
    /// Reading the server's memory failed.
    #[error("cannot read /proc/{pid}/status: {source}")]
    Proc {
        /// Server pid.
        pid: u32,
        /// Cause.
        source: std::io::Error,
    },
}

/// Checks the bounds every scenario shares.
pub(crate) fn check_bounds(connections: usize, duration: Duration) -> Result<(), ScenarioError> {
    if connections > MAX_CONNECTIONS_PER_PROCESS {
        return Err(ScenarioError::Bounds(format!(
            "{connections} connections exceed {MAX_CONNECTIONS_PER_PROCESS} per process (the file limit is 20,000): run several processes"
        )));
    }
    if duration > MAX_DURATION {
        return Err(ScenarioError::Bounds(format!("duration is capped at {} s", MAX_DURATION.as_secs())));
    }
    Ok(())
}

/// The few fields the generator reads from server frames, borrowed so the
/// generator spends its CPU on load rather than on parsing.
#[derive(Debug, Deserialize)]
pub(crate) struct Lite<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) data: Option<LiteData<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LiteData<'a> {
    #[serde(default, borrow)]
    pub(crate) content: Option<Cow<'a, str>>,
}

/// What reading one frame gave.
pub(crate) enum Read {
    /// A text frame (parsed lightly; `None` if not JSON).
    Text(String),
    /// The server closed (with this close code, if it sent one) or the
    /// socket failed.
    Closed(Option<u16>),
    /// The deadline passed.
    Deadline,
}

/// Reads the next text frame before `deadline`.
pub(crate) async fn read_text(ws: &mut Stream, deadline: Instant) -> Read {
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Read::Deadline,
            Ok(Some(Ok(Message::Close(frame)))) => return Read::Closed(frame.map(|f| u16::from(f.code))),
            Ok(None | Some(Err(_))) => return Read::Closed(None),
            Ok(Some(Ok(Message::Text(t)))) => return Read::Text(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Sends one text frame.
pub(crate) async fn send_text(ws: &mut Stream, text: String) -> bool {
    ws.send(Message::Text(text.into())).await.is_ok()
}

/// A `send` frame for `chat.message` with `content`.
pub(crate) fn chat(id: u64, room: &str, content: &str) -> String {
    serde_json::json!({"type":"send","id":id.to_string(),"room":room,"event":"chat.message","data":{"content":content}})
        .to_string()
}

/// Events per second over `elapsed`.
pub(crate) fn rate(count: u64, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
    let count = count as f64;
    count / elapsed.as_secs_f64().max(f64::EPSILON)
}
