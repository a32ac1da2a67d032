//! CSRF: a connection authenticated by a cookie (`--cookie`, which a browser
//! attaches on its own) publishes without the session's CSRF token, and with
//! a wrong one. Both must be refused (docs/SCAN.md, "csrf").

use crate::checks::talk::{self, Outcome};
use crate::checks::{Scan, describe};
use crate::finding::{Rule, Severity};
use crate::{Options, ScanError};

/// A send without a CSRF token is accepted on a cookie session.
pub(crate) const MISSING: Rule = Rule {
    id: "csrf.missing-token-accepted",
    severity: Severity::Medium,
    title: "a cookie-authenticated connection publishes without a CSRF token",
    fix: "on a connection a cookie authenticated, require the session's CSRF token (sent in the first frame) on every message that changes state",
};
/// A send with a made-up CSRF token is accepted on a cookie session.
pub(crate) const WRONG: Rule = Rule {
    id: "csrf.wrong-token-accepted",
    severity: Severity::Medium,
    title: "a cookie-authenticated connection publishes with a made-up CSRF token",
    fix: "compare the CSRF token with the session's own, in constant time; refuse any other value",
};

/// The made-up token.
const WRONG_TOKEN: &str = "palisade-scan-wrong-csrf-token";

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some(cookie) = scan.options.cookie.clone() else {
        scan.report.skip("csrf", "needs --cookie (a session cookie)");
        return Ok(());
    };
    let Some(room) = scan.options.room.clone() else {
        scan.report.skip("csrf", "needs --room (a room the cookie's user may publish in)");
        return Ok(());
    };
    // The cookie alone, as a browser sends it: no bearer token to win over it.
    let mut headers = scan.options.headers.clone();
    headers.extend(scan.anonymous());
    headers.push(("Cookie".into(), cookie));
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let shown = describe(&headers);
    let path = scan.path();
    let mut ws = match scan.budget.open(&path, &headers).await? {
        Ok(ws) => ws,
        Err(answer) => {
            scan.report.skip("csrf", format!("the handshake with the cookie got {}", answer.status));
            return Ok(());
        }
    };
    let joined = talk::request(&mut ws, &talk::join("palisade-scan-csrf-1", &room)).await;
    if !joined.accepted() {
        scan.report.skip("csrf", format!("the cookie's user cannot join {room}: {}", joined.describe()));
        return Ok(());
    }
    let event = talk::event(scan.options).to_owned();
    for (rule, token, id) in
        [(&MISSING, None, "palisade-scan-csrf-2"), (&WRONG, Some(WRONG_TOKEN), "palisade-scan-csrf-3")]
    {
        let mut body = talk::send(id, &room, &event, talk::data(scan.options.data.as_deref(), &talk::unique("csrf"))?);
        if let Some(token) = token {
            body["csrf"] = token.into();
        }
        let outcome = talk::request_patiently(&mut ws, &body).await;
        if outcome.accepted() {
            let with = token.map_or_else(|| "no csrf field".to_owned(), |t| format!("\"csrf\":\"{t}\""));
            scan.found(
                rule,
                &format!("opened {path} with {shown}; sent {event} to {room} with {with}; {}", outcome.describe()),
            );
        }
        if outcome == Outcome::Closed {
            break;
        }
    }
    Ok(())
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let room = options.room.as_deref().unwrap_or("<--room>");
    vec![
        format!(
            "with --cookie only, join {room} and send {} without csrf; accepted is {}",
            talk::event(options),
            MISSING.id
        ),
        format!("the same with \"csrf\":\"{WRONG_TOKEN}\"; accepted is {}", WRONG.id),
    ]
}
