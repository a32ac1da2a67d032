//! Message: what the endpoint does with a message it cannot understand
//! (malformed, of an unknown type, nested 10,000 deep). It should answer
//! with an error or close; relaying it unvalidated, saying nothing, or dying
//! are findings. With `--room`, also what a second connection in the room
//! receives: an identity the sender claimed in its message, or markup it
//! sent unchanged (docs/SCAN.md, "message").

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::ScanError;
use crate::checks::Scan;
use crate::checks::talk;
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

/// A message nested 10,000 deep comes back as it was sent.
pub(crate) const DEPTH_RELAYED: Rule = Rule {
    id: "message.depth-bomb-relayed",
    severity: Severity::Medium,
    title: "a message nested 10,000 levels deep is relayed unvalidated (a recursive parser downstream overflows its stack)",
    fix: "parse with a depth limit (32 is plenty) and refuse deeper messages with an error",
};
/// A message nested 10,000 deep gets no answer.
pub(crate) const DEPTH_UNANSWERED: Rule = Rule {
    id: "message.depth-bomb-unanswered",
    severity: Severity::Low,
    title: "a message nested 10,000 levels deep gets neither an error nor a close",
    fix: "parse with a depth limit and answer a deeper message with an error",
};
/// Identity fields the sender put in its message reach another member.
pub(crate) const IDENTITY: Rule = Rule {
    id: "message.identity-spoofed",
    severity: Severity::High,
    title: "identity fields a client puts in its message (from, user, sub) reach other members as sent (anyone can speak as anyone)",
    fix: "take the sender's identity from the authenticated connection only; refuse or overwrite identity fields in what clients send",
};
/// Markup reaches another member unchanged.
pub(crate) const XSS: Rule = Rule {
    id: "message.xss-reflected",
    severity: Severity::Medium,
    title: "a <script> element sent in a message reaches other members unchanged (stored XSS in every client that renders it)",
    fix: "sanitize or refuse markup in fields that clients render (an allowlist HTML sanitizer, or plain text only)",
};

/// Depth of the depth bomb.
const DEPTH: usize = 10_000;
/// The identity the spoofing probe claims.
const SPOOFED: &str = "palisade-scan-spoofed-admin";

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

/// A `send` whose `data` is an array nested [`DEPTH`] deep.
fn depth_bomb(scan: &Scan<'_>) -> String {
    let room = scan.options.room.as_deref().unwrap_or("palisade-scan");
    let head = talk::send("palisade-scan-3", room, talk::event(scan.options), serde_json::Value::Null).to_string();
    head.replace(r#""data":null"#, &format!(r#""data":{}{}"#, "[".repeat(DEPTH), "]".repeat(DEPTH)))
}

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let probes = [
        (MALFORMED.to_owned(), &MALFORMED_RELAYED, &MALFORMED_UNANSWERED),
        (UNKNOWN.to_owned(), &UNKNOWN_RELAYED, &UNKNOWN_UNANSWERED),
        (depth_bomb(scan), &DEPTH_RELAYED, &DEPTH_UNANSWERED),
    ];
    for (probe, relayed, unanswered) in probes {
        let mut ws = match scan.open_authenticated().await? {
            Ok(ws) => ws,
            Err(why) => {
                scan.report.skip("message", format!("cannot open a connection with the credentials given: {why}"));
                return Ok(());
            }
        };
        let sent = format!("sent the text message {}", excerpt(&probe));
        scan.budget.spend(probe.len())?;
        match send_and_wait(&mut ws, Message::text(probe)).await {
            Reply::Refused => {}
            Reply::Relayed => scan.found(relayed, &format!("{sent}; got it back unchanged")),
            Reply::Nothing => scan.found(unanswered, &format!("{sent}; got no error and no close in {READ_TIMEOUT:?}")),
        }
        drop(ws);
        still_up(scan, &sent).await?;
    }
    reflected(scan).await
}

/// With `--room`: two connections of the first identity join it; the first
/// sends a message claiming another identity, then one with a `<script>`;
/// what the second receives is judged.
async fn reflected(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some(room) = scan.options.room.clone() else {
        scan.report.skip("message", "the identity and XSS probes need --room (a room the identity may publish in)");
        return Ok(());
    };
    let mut pair = Vec::new();
    for id in ["palisade-scan-reflect-1", "palisade-scan-reflect-2"] {
        let mut ws = match scan.open_authenticated().await? {
            Ok(ws) => ws,
            Err(why) => {
                scan.report.skip("message", format!("cannot open a connection with the credentials given: {why}"));
                return Ok(());
            }
        };
        let joined = talk::request(&mut ws, &talk::join(id, &room)).await;
        if !joined.accepted() {
            scan.report.skip("message", format!("cannot join {room}: {}", joined.describe()));
            return Ok(());
        }
        pair.push(ws);
    }
    let (Some(mut receiver), Some(mut sender)) = (pair.pop(), pair.pop()) else { return Ok(()) };
    let event = talk::event(scan.options).to_owned();
    // Identity: claimed at the top, where a naive server reads its
    // envelope, with a fresh mark in data to know the message again.
    let mark = talk::unique("identity");
    let mut body =
        talk::send("palisade-scan-reflect-3", &room, &event, talk::data(scan.options.data.as_deref(), &mark)?);
    body["from"] = serde_json::json!({"id": SPOOFED, "name": SPOOFED});
    body["user"] = SPOOFED.into();
    body["sub"] = SPOOFED.into();
    let sent = talk::request(&mut sender, &body).await;
    if let Some(got) = received_with(&mut receiver, &mark).await {
        let claims = |v: &serde_json::Value| {
            v["from"]["id"] == SPOOFED || v["from"] == SPOOFED || v["user"] == SPOOFED || v["sub"] == SPOOFED
        };
        if serde_json::from_str::<serde_json::Value>(&got).is_ok_and(|v| claims(&v)) {
            let evidence = format!(
                "sent {event} to {room} with \"from\":{{\"id\":\"{SPOOFED}\"}}, \"user\" and \"sub\" set to it ({}); another member received {}",
                sent.describe(),
                excerpt(&got)
            );
            scan.found(&IDENTITY, &evidence);
        }
    }
    // Markup, single-quoted so JSON escaping leaves it alone.
    let mark = talk::unique("xss");
    let script = format!("<script>alert('{mark}')</script>");
    let body = talk::send("palisade-scan-reflect-4", &room, &event, talk::data(scan.options.data.as_deref(), &script)?);
    let sent = talk::request(&mut sender, &body).await;
    if let Some(got) = received_with(&mut receiver, &mark).await
        && got.contains(&script)
    {
        let evidence = format!(
            "sent {event} to {room} with {script} ({}); another member received {}",
            sent.describe(),
            excerpt(&got)
        );
        scan.found(&XSS, &evidence);
    }
    Ok(())
}

/// The first text message holding `mark` that arrives (bounded in count and
/// time).
async fn received_with(ws: &mut Ws, mark: &str) -> Option<String> {
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..MAX_MESSAGES * 2 {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(mark) => return Some(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
    None
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
    let mut out: Vec<String> = [MALFORMED, UNKNOWN]
        .iter()
        .map(|p| format!("with the credentials, send {p} and wait for an error or a close; then connect again"))
        .collect();
    out.push(format!(
        "with the credentials, send a send whose data is nested {DEPTH} deep; relayed is {}, no answer {}",
        DEPTH_RELAYED.id, DEPTH_UNANSWERED.id
    ));
    out.push(format!(
        "(with --room) two connections join it; one sends from/user/sub = {SPOOFED}: the other receiving it is {}",
        IDENTITY.id
    ));
    out.push(format!(
        "(with --room) one sends <script>alert('…')</script>: the other receiving it unchanged is {}",
        XSS.id
    ));
    out
}
