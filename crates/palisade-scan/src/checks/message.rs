//! Message: what the endpoint does with a message it cannot understand.
//! It should answer with an error or close; relaying it unvalidated, saying
//! nothing, or dying are findings (docs/SCAN.md, "message").

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::ScanError;
use crate::checks::Scan;
use crate::finding::{Rule, Severity, excerpt};
use crate::net::{READ_TIMEOUT, Ws};

/// After a probe, the next connection fails.
pub(crate) const DOWN: Rule = Rule {
    id: "message.server-down-after-probe",
    severity: Severity::Critical,
    title: "after one bad message the endpoint accepts no connection (a one-message denial of service)",
    fix: "treat every parse failure as a refusal of that message, never as a crash of the server",
};
/// Malformed JSON comes back as it was sent.
pub(crate) const MALFORMED_RELAYED: Rule = Rule {
    id: "message.malformed-json-relayed",
    severity: Severity::Medium,
    title: "malformed JSON is relayed back unvalidated",
    fix: "parse and validate every message before it is relayed; answer an invalid one with an error",
};
/// Malformed JSON gets no answer.
pub(crate) const MALFORMED_UNANSWERED: Rule = Rule {
    id: "message.malformed-json-unanswered",
    severity: Severity::Low,
    title: "malformed JSON gets neither an error nor a close",
    fix: "answer a message that does not parse with an error (or close the connection)",
};
/// An unknown event type comes back as it was sent.
pub(crate) const UNKNOWN_RELAYED: Rule = Rule {
    id: "message.unknown-type-relayed",
    severity: Severity::Medium,
    title: "a message of an unknown type is relayed unvalidated",
    fix: "allow only the event types the application defines; refuse others with an error",
};
/// An unknown event type gets no answer.
pub(crate) const UNKNOWN_UNANSWERED: Rule = Rule {
    id: "message.unknown-type-unanswered",
    severity: Severity::Low,
    title: "a message of an unknown type gets neither an error nor a close",
    fix: "answer an unknown type with an error so a client knows it was refused",
};

/// Malformed JSON: an object cut short.
const MALFORMED: &str = r#"{"type":"send","id":"palisade-scan-1","data":{"#;
/// A well-formed message of a type no server defines.
const UNKNOWN: &str = r#"{"type":"palisade-scan.unknown","id":"palisade-scan-2","room":"palisade-scan"}"#;
/// Most messages read while waiting for the answer to one probe.
const MAX_MESSAGES: usize = 16;

/// What came back to a probe.
pub(crate) enum Reply {
    /// An error message, or a close.
    Refused,
    /// The probe itself.
    Relayed,
    /// Nothing that answers it.
    Nothing,
}

/// Sends `probe` and reads until it is answered (bounded in count and
/// time).
pub(crate) async fn send_and_wait(ws: &mut Ws, probe: Message) -> Reply {
    let sent = probe.clone();
    if ws.send(probe).await.is_err() {
        return Reply::Refused;
    }
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..MAX_MESSAGES {
        match timeout_at(deadline, ws.next()).await {
            Err(_) => return Reply::Nothing,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Reply::Refused,
            Ok(Some(Ok(m))) if m == sent => return Reply::Relayed,
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"error\"") => return Reply::Refused,
            Ok(Some(Ok(_))) => {}
        }
    }
    Reply::Nothing
}

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let probes =
        [(MALFORMED, &MALFORMED_RELAYED, &MALFORMED_UNANSWERED), (UNKNOWN, &UNKNOWN_RELAYED, &UNKNOWN_UNANSWERED)];
    for (probe, relayed, unanswered) in probes {
        let mut ws = match scan.open_authenticated().await? {
            Ok(ws) => ws,
            Err(why) => {
                scan.report.skip("message", format!("cannot open a connection with the credentials given: {why}"));
                return Ok(());
            }
        };
        let sent = format!("sent the text message {}", excerpt(probe));
        match send_and_wait(&mut ws, Message::text(probe)).await {
            Reply::Refused => {}
            Reply::Relayed => scan.found(relayed, &format!("{sent}; got it back unchanged")),
            Reply::Nothing => scan.found(unanswered, &format!("{sent}; got no error and no close in {READ_TIMEOUT:?}")),
        }
        drop(ws);
        still_up(scan, &sent).await?;
    }
    Ok(())
}

/// Opens a new connection after a probe: one that fails is [`DOWN`].
pub(crate) async fn still_up(scan: &mut Scan<'_>, sent: &str) -> Result<(), ScanError> {
    match scan.open_authenticated().await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => {
            scan.found(&DOWN, &format!("{sent}; then a new connection: {why}"));
            Ok(())
        }
        Err(ScanError::Connect(why)) => {
            scan.found(&DOWN, &format!("{sent}; then a new connection: {why}"));
            Err(ScanError::Connect(why))
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn plan() -> Vec<String> {
    [MALFORMED, UNKNOWN]
        .iter()
        .map(|p| format!("with the credentials, send {p} and wait for an error or a close; then connect again"))
        .collect()
}
