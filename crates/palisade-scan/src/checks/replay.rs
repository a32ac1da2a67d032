//! Replay: the same message twice, byte for byte, on an event the operator
//! names (`--replay-event ROOM:EVENT`) as one that must not be taken twice
//! (a vote, an answer, a payment). The second copy must be refused
//! (docs/SCAN.md, "replay").

use serde_json::json;

use crate::checks::Scan;
use crate::checks::talk;
use crate::finding::{Rule, Severity};
use crate::{Options, ScanError};

/// The second, identical copy is accepted.
pub(crate) const DUPLICATE: Rule = Rule {
    id: "replay.duplicate-accepted",
    severity: Severity::Medium,
    title: "the same message sent twice is accepted twice (replay)",
    fix: "make the event carry a nonce and a timestamp; refuse a nonce seen before within the window, and a timestamp outside it",
};

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some((room, event)) = scan.options.replay_event.clone() else {
        scan.report.skip("replay", "needs --replay-event ROOM:EVENT (an event that must not be accepted twice)");
        return Ok(());
    };
    let template = scan.options.replay_data.as_deref().or(scan.options.data.as_deref());
    let data = talk::data(template, &talk::unique("replay"))?;
    let mut ws = match scan.open_authenticated().await? {
        Ok(ws) => ws,
        Err(why) => {
            scan.report.skip("replay", format!("cannot open a connection with the credentials given: {why}"));
            return Ok(());
        }
    };
    let joined = talk::request(&mut ws, &talk::join("palisade-scan-replay-1", &room)).await;
    if !joined.accepted() {
        scan.report.skip("replay", format!("cannot join {room}: {}", joined.describe()));
        return Ok(());
    }
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut body = talk::send("palisade-scan-replay-2", &room, &event, data);
    body["nonce"] = json!(talk::unique("nonce"));
    body["ts"] = json!(u64::try_from(now_ms).unwrap_or(u64::MAX));
    let first = talk::request_patiently(&mut ws, &body).await;
    if !first.accepted() {
        let why =
            format!("the first copy of {event} in {room} was not accepted ({}): check --replay-data", first.describe());
        scan.report.skip(DUPLICATE.id, why);
        return Ok(());
    }
    let second = talk::request_patiently(&mut ws, &body).await;
    if second.accepted() {
        let evidence = format!(
            "sent {event} to {room} with a nonce and ts; {}; sent the same bytes again; {}",
            first.describe(),
            second.describe()
        );
        scan.found(&DUPLICATE, &evidence);
    }
    Ok(())
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let target =
        options.replay_event.as_ref().map_or_else(|| "<--replay-event>".to_owned(), |(r, e)| format!("{e} in {r}"));
    vec![format!(
        "send {target} with a nonce and ts, then the same bytes again; a second acceptance is {}",
        DUPLICATE.id
    )]
}
