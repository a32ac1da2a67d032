//! Auth: the token lifecycle on a live connection. A client swaps its
//! token in place (Palisade's `refresh`, docs/PROTOCOL.md §6); the new
//! token must be verified like a handshake's and be for the same user; and
//! the connection must end when its token expires ([`expiry`]).
//! docs/SCAN.md, "auth".

use serde_json::json;

use crate::checks::handshake::{GARBAGE_TOKEN, unsigned};
use crate::checks::talk::{self, Outcome};
use crate::checks::{Scan, expiry};
use crate::finding::{Rule, Severity};
use crate::{Options, ScanError};

/// A garbage token is taken in a refresh.
pub(crate) const GARBAGE: Rule = Rule {
    id: "auth.refresh-garbage-accepted",
    severity: Severity::High,
    title: "a live connection takes a garbage token in place of its own",
    fix: "verify a refreshed token exactly as at the handshake (signature, exp, iss, aud) and refuse it otherwise",
};
/// An unsigned token is taken in a refresh.
pub(crate) const UNSIGNED: Rule = Rule {
    id: "auth.refresh-unsigned-accepted",
    severity: Severity::Critical,
    title: "a live connection takes an unsigned (alg=none) token in place of its own",
    fix: "pin the algorithm to the key on refresh too, and never accept alg=none",
};
/// Another user's token is taken in a refresh.
pub(crate) const OTHER_USER: Rule = Rule {
    id: "auth.refresh-other-identity-accepted",
    severity: Severity::Critical,
    title: "a live connection takes another user's token in place of its own (the connection changes hands)",
    fix: "refuse a refreshed token whose subject (and issuer) differs from the connection's",
};
/// An expired token is taken in a refresh.
pub(crate) const EXPIRED: Rule = Rule {
    id: "auth.refresh-expired-accepted",
    severity: Severity::High,
    title: "a live connection takes an expired token in place of its own (it never has to end)",
    fix: "check exp (with a small leeway) on every refreshed token",
};

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    // First: a short-lived --token may not outlast the probes below.
    expiry::run(scan).await?;
    let token = scan.token().await?;
    let mut probes = vec![(&GARBAGE, GARBAGE_TOKEN.to_owned()), (&UNSIGNED, unsigned(token.as_deref()))];
    match scan.token2().await? {
        Some(token2) => probes.push((&OTHER_USER, token2)),
        None => scan.report.skip(OTHER_USER.id, "needs --token2 or --token2-cmd (a second identity)"),
    }
    match scan.options.expired_token.clone() {
        Some(expired) => probes.push((&EXPIRED, expired)),
        None => scan.report.skip(EXPIRED.id, "needs --expired-token"),
    }
    // One connection per probe: a refusal may end the connection it came on.
    for (rule, value) in probes {
        let mut ws = match scan.open_authenticated().await? {
            Ok(ws) => ws,
            Err(why) => {
                scan.report.skip("auth", format!("cannot open a connection with the credentials given: {why}"));
                return Ok(());
            }
        };
        let outcome =
            talk::request(&mut ws, &json!({"type": "refresh", "id": "palisade-scan-refresh", "token": value})).await;
        // Only an ack: an echo server relays a refresh without taking it.
        if outcome == Outcome::Ack {
            let sent = scan.redacted(&value);
            scan.found(
                rule,
                &format!("on a live connection, sent {{\"type\":\"refresh\",\"token\":\"{sent}\"}}; got an ack"),
            );
        }
    }
    Ok(())
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let mut out = vec![
        expiry::plan(),
        format!("on a live connection, refresh with {GARBAGE_TOKEN}; an ack is {}", GARBAGE.id),
        format!("the same with an alg=none token of the --token claims; an ack is {}", UNSIGNED.id),
    ];
    if options.token2.is_some() || options.token2_cmd.is_some() {
        out.push(format!("the same with --token2; an ack is {}", OTHER_USER.id));
    }
    if options.expired_token.is_some() {
        out.push(format!("the same with --expired-token; an ack is {}", EXPIRED.id));
    }
    out
}
