//! Expiry, part of the `auth` check: whether a connection ends when its
//! token does. A server that verifies the token only at the handshake lets
//! a connection run for ever, so a stolen or withdrawn identity keeps its
//! socket; Palisade closes it with 4001 once `exp` and its leeway have
//! passed (docs/PROTOCOL.md §6). The scanner cannot mint a short-lived
//! token, so the probe runs only when the token it has expires soon, and
//! the wait is bounded (docs/SCAN.md, "auth").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::ScanError;
use crate::checks::Scan;
use crate::checks::handshake::claims;
use crate::finding::{Rule, Severity};
use crate::net::{READ_TIMEOUT, Ws};

/// The connection is still open and served after `exp` and the grace.
pub(crate) const OUTLIVES_EXP: Rule = Rule {
    id: "auth.connection-outlives-exp",
    severity: Severity::Medium,
    title: "a connection stays open and served past its token's exp (the token is checked at the handshake only)",
    fix: "close each connection (Palisade uses 4001) once its token's exp, plus a small leeway, passes without a refresh",
};

/// Longest the token may still live for the probe to wait for it.
const MAX_EXPIRY_WAIT: Duration = Duration::from_secs(30);
/// How long past `exp` a connection may stay open before it is a finding:
/// Palisade's default leeway (30 s, `auth.leeway`) and 5 s more for clock
/// skew and the close to arrive.
const EXPIRY_GRACE: Duration = Duration::from_secs(35);
/// Most messages read while the connection is held (every loop is
/// bounded; a target that sends more is not read further).
const MAX_HELD_MESSAGES: usize = 1024;

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let Some(token) = scan.token().await? else {
        scan.report.skip(OUTLIVES_EXP.id, "needs --token or --token-cmd (a JWT with an exp)");
        return Ok(());
    };
    let Some(exp) = claims(&token).and_then(|c| c.get("exp").and_then(serde_json::Value::as_u64)) else {
        scan.report.skip(OUTLIVES_EXP.id, "the token is not a JWT with an exp the scanner can read");
        return Ok(());
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let Some(left) = Duration::from_secs(exp).checked_sub(now) else {
        scan.report.skip(OUTLIVES_EXP.id, "the token had expired before the probe");
        return Ok(());
    };
    if left > MAX_EXPIRY_WAIT {
        let wait = MAX_EXPIRY_WAIT.as_secs();
        let why = format!(
            "the token expires in {}s, later than the {wait}s the probe waits (a --token-cmd minting tokens \
             that live under {wait}s, or a --token that does, lets it run)",
            left.as_secs()
        );
        scan.report.skip(OUTLIVES_EXP.id, why);
        return Ok(());
    }
    let mut ws = match scan.open_with(Some(&token)).await? {
        Ok(ws) => ws,
        Err(why) => {
            scan.report.skip(OUTLIVES_EXP.id, format!("cannot open a connection with the token: {why}"));
            return Ok(());
        }
    };
    if closed_by(&mut ws, Instant::now() + left + EXPIRY_GRACE).await || !answers_ping(&mut ws).await {
        return Ok(());
    }
    let evidence = format!(
        "opened a connection with a token whose exp was {}s away and held it; {}s past exp it was still open, \
         and a ping sent then was answered",
        left.as_secs(),
        EXPIRY_GRACE.as_secs()
    );
    scan.found(&OUTLIVES_EXP, &evidence);
    Ok(())
}

/// Reads until `deadline`: whether the connection was closed (a close
/// frame, or the socket gone) by then.
async fn closed_by(ws: &mut Ws, deadline: Instant) -> bool {
    for _ in 0..MAX_HELD_MESSAGES {
        match timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_) | Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
    // A target this talkative is not read further; the ping decides.
    sleep_until(deadline).await;
    false
}

/// Sends a ping: whether its pong comes back within [`READ_TIMEOUT`] (the
/// connection is still served, not merely left half-open).
async fn answers_ping(ws: &mut Ws) -> bool {
    if ws.send(Message::Ping(b"palisade-scan-expiry".to_vec().into())).await.is_err() {
        return false;
    }
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..MAX_HELD_MESSAGES {
        match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => return true,
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return false,
            Ok(Some(Ok(_))) => {}
        }
    }
    false
}

pub(crate) fn plan() -> String {
    format!(
        "when the token is a JWT expiring within {}s, hold a connection with it until {}s past its exp; still open \
         and answering a ping is {}",
        MAX_EXPIRY_WAIT.as_secs(),
        EXPIRY_GRACE.as_secs(),
        OUTLIVES_EXP.id
    )
}
