//! Transport: frames RFC 6455 says a server must refuse: one far larger than
//! any message needs, and a client frame without a mask (docs/SCAN.md,
//! "transport"; Palisade's own answers are in docs/PROTOCOL.md, close codes
//! 1002 and 1009).

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::ScanError;
use crate::checks::Scan;
use crate::checks::message::{Reply, send_and_wait, still_up};
use crate::finding::{Rule, Severity};
use crate::net::{READ_TIMEOUT, websocket};

/// A 2 MiB message is taken.
pub(crate) const OVERSIZE: Rule = Rule {
    id: "transport.oversize-accepted",
    severity: Severity::Medium,
    title: "a 2 MiB message is accepted (no message size limit: memory exhaustion)",
    fix: "cap the frame and message size (tens of KiB for chat) and close with 1009 above it, before reading the payload",
};
/// An unmasked client frame is taken.
pub(crate) const UNMASKED: Rule = Rule {
    id: "transport.unmasked-accepted",
    severity: Severity::Medium,
    title: "an unmasked client frame is accepted (RFC 6455 §5.1: the server must close)",
    fix: "use a WebSocket library that enforces client masking, and close with 1002",
};
/// Closed, but not with 1002.
pub(crate) const UNMASKED_CODE: Rule = Rule {
    id: "transport.unmasked-closed-without-1002",
    severity: Severity::Low,
    title: "an unmasked client frame closes the connection, but not with 1002 (protocol error)",
    fix: "close with 1002 so a client can tell a protocol error from a shutdown",
};

/// Size of the oversize message.
const OVERSIZE_BYTES: usize = 2 * 1024 * 1024;
/// The unmasked frame's payload.
const UNMASKED_PAYLOAD: &[u8] = b"palisade-scan unmasked";
/// Most messages read while waiting for the close.
const MAX_MESSAGES: usize = 16;

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let mut ws = match scan.open_authenticated().await? {
        Ok(ws) => ws,
        Err(why) => {
            scan.report.skip("transport", format!("cannot open a connection with the credentials given: {why}"));
            return Ok(());
        }
    };
    scan.budget.spend(OVERSIZE_BYTES)?;
    let sent = format!("sent one text message of {OVERSIZE_BYTES} bytes");
    match send_and_wait(&mut ws, Message::text("a".repeat(OVERSIZE_BYTES))).await {
        Reply::Refused => {}
        Reply::Relayed => scan.found(&OVERSIZE, &format!("{sent}; got it back whole")),
        Reply::Nothing => scan.found(&OVERSIZE, &format!("{sent}; no close and no error in {READ_TIMEOUT:?}")),
    }
    drop(ws);
    still_up(scan, &sent).await?;
    unmasked(scan).await
}

/// Writes one unmasked text frame right after the 101 and reads for the
/// close.
async fn unmasked(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let mut headers = scan.credentials().await?;
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let path = scan.path();
    let (mut io, answer) = scan.budget.upgrade(&path, &headers).await?;
    if answer.status != 101 {
        scan.report.skip(UNMASKED.id, format!("the handshake with the credentials got {}", answer.status));
        return Ok(());
    }
    // FIN + text opcode, then a length under 126 with the mask bit clear.
    let mut frame = vec![0x81, u8::try_from(UNMASKED_PAYLOAD.len()).unwrap_or(0)];
    frame.extend_from_slice(UNMASKED_PAYLOAD);
    scan.budget.spend(frame.len())?;
    if io.write_all(&frame).await.is_err() {
        return Ok(());
    }
    let mut ws = websocket(io).await;
    let sent = "sent a text frame without a mask after the 101";
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..MAX_MESSAGES {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(close))))) if u16::from(close.code) == 1002 => return Ok(()),
            Ok(Some(Ok(Message::Close(close)))) => {
                let code = close.map_or_else(|| "no code".to_owned(), |c| u16::from(c.code).to_string());
                scan.found(&UNMASKED_CODE, &format!("{sent}; got a close with {code}"));
                return Ok(());
            }
            Ok(None | Some(Err(_))) => {
                scan.found(&UNMASKED_CODE, &format!("{sent}; the connection was dropped without a close frame"));
                return Ok(());
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => break,
        }
    }
    scan.found(&UNMASKED, &format!("{sent}; the connection stayed open"));
    Ok(())
}

pub(crate) fn plan() -> Vec<String> {
    vec![
        format!("with the credentials, send one {OVERSIZE_BYTES}-byte text message; expect a close (1009) or an error"),
        "with the credentials, send one unmasked text frame; expect a close with 1002".to_owned(),
    ]
}
