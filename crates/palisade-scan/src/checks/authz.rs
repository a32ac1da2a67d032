//! Authz: a second identity (`--token2`) and a room only the first may use
//! (`--room`). The second must not join it, read what is published in it,
//! or publish to it (docs/SCAN.md, "authz").

use crate::checks::Scan;
use crate::checks::talk::{self, Outcome};
use crate::finding::{Rule, Severity};
use crate::{Options, ScanError};

/// The second identity's `join` is acknowledged.
pub(crate) const JOIN: Rule = Rule {
    id: "authz.join-accepted",
    severity: Severity::High,
    title: "a second identity joins a room it has no right to",
    fix: "check the user's right to the room (role, room claim) on every join, not only in the client",
};
/// The second identity receives what the first publishes in the room.
pub(crate) const READ: Rule = Rule {
    id: "authz.read-leaked",
    severity: Severity::High,
    title: "a second identity that is no member of a room receives its messages",
    fix: "deliver an event only to the room's members; never broadcast to every connection",
};
/// What the second identity publishes to the room reaches its members.
pub(crate) const SEND: Rule = Rule {
    id: "authz.send-accepted",
    severity: Severity::High,
    title: "a second identity publishes to a room it has no right to",
    fix: "check membership and the publish right of the room on every send",
};

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some(room) = scan.options.room.clone() else {
        scan.report.skip("authz", "needs --room (a room the first identity may use and the second may not)");
        return Ok(());
    };
    let Some(token2) = scan.token2().await? else {
        scan.report.skip("authz", "needs --token2 or --token2-cmd (a second identity)");
        return Ok(());
    };
    let mut first = match scan.open_authenticated().await? {
        Ok(ws) => ws,
        Err(why) => {
            scan.report.skip("authz", format!("cannot open a connection with the credentials given: {why}"));
            return Ok(());
        }
    };
    let joined = talk::request(&mut first, &talk::join("palisade-scan-authz-1", &room)).await;
    if !joined.accepted() {
        let why = format!("the first identity cannot join {room}: {}", joined.describe());
        scan.report.skip("authz", why);
        return Ok(());
    }
    let mut headers = scan.anonymous();
    headers.push(("Authorization".into(), format!("Bearer {token2}")));
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let path = scan.path();
    let mut second = match scan.budget.open(&path, &headers).await? {
        Ok(ws) => ws,
        Err(answer) => {
            scan.report.skip("authz", format!("the second identity's handshake got {}", answer.status));
            return Ok(());
        }
    };
    let joined = talk::request(&mut second, &talk::join("palisade-scan-authz-2", &room)).await;
    if joined == Outcome::Ack {
        scan.found(&JOIN, &format!("the second identity sent join {room}; {}", joined.describe()));
        return Ok(());
    }
    let event = talk::event(scan.options).to_owned();
    let mark = talk::unique("authz-read");
    let data = talk::data(scan.options.data.as_deref(), &mark)?;
    let sent = talk::request(&mut first, &talk::send("palisade-scan-authz-3", &room, &event, data)).await;
    if !sent.accepted() {
        scan.report.skip(READ.id, format!("the first identity cannot publish {event} in {room}: {}", sent.describe()));
    } else if talk::receives(&mut second, &mark).await {
        let evidence = format!(
            "the second identity's join {room} {}; the first published {event} with {mark}; the second received it",
            joined.describe()
        );
        scan.found(&READ, &evidence);
    }
    let mark = talk::unique("authz-send");
    let data = talk::data(scan.options.data.as_deref(), &mark)?;
    let sent = talk::request(&mut second, &talk::send("palisade-scan-authz-4", &room, &event, data)).await;
    if talk::receives(&mut first, &mark).await {
        let evidence = format!(
            "the second identity published {event} with {mark} in {room} ({}); the first received it",
            sent.describe()
        );
        scan.found(&SEND, &evidence);
    }
    Ok(())
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let room = options.room.as_deref().unwrap_or("<--room>");
    vec![
        format!("first identity joins {room}; the second identity (--token2) sends join {room}; an ack is {}", JOIN.id),
        format!("first identity publishes {} in {room}; the second receiving it is {}", talk::event(options), READ.id),
        format!("second identity publishes in {room}; the first receiving it is {}", SEND.id),
    ]
}
