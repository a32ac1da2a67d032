//! Handshake: what the endpoint accepts instead of a valid credential: none
//! at all, garbage, an unsigned `alg=none` token made from the real
//! token's claims, and the real token in the query string (where proxies
//! and access logs keep it). docs/SCAN.md, "handshake".

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ScanError;
use crate::finding::{Rule, Severity};
use crate::net::READ_TIMEOUT;
use crate::{Options, checks::Scan, checks::describe};

/// No credential.
pub(crate) const NO_CREDENTIAL: Rule = Rule {
    id: "handshake.no-credential-accepted",
    severity: Severity::High,
    title: "a handshake without any credential is accepted",
    fix: "authenticate before the 101: refuse a handshake without a credential with 401",
};
/// `Authorization: Bearer` with a value that is no token.
pub(crate) const GARBAGE: Rule = Rule {
    id: "handshake.garbage-credential-accepted",
    severity: Severity::High,
    title: "a handshake with a garbage bearer token is accepted",
    fix: "verify the token (signature, expiry, issuer) before the 101, and refuse with 401",
};
/// An unsigned token.
pub(crate) const ALG_NONE: Rule = Rule {
    id: "handshake.alg-none-accepted",
    severity: Severity::Critical,
    title: "an unsigned token (alg=none) is accepted: anyone can be anyone",
    fix: "pin the algorithm to the key and never accept alg=none",
};
/// `?access_token=…` with no other credential.
pub(crate) const QUERY_TOKEN: Rule = Rule {
    id: "handshake.query-token-accepted",
    severity: Severity::Medium,
    title: "a token in the query string is accepted (URLs end up in logs and Referer headers)",
    fix: "take tokens from the Authorization header or the subprotocol only",
};

/// A token whose `exp` has passed (`--expired-token`).
pub(crate) const EXPIRED: Rule = Rule {
    id: "handshake.expired-token-accepted",
    severity: Severity::High,
    title: "a handshake with an expired token is accepted (a stolen token never stops working)",
    fix: "check exp (with a small leeway) at the handshake, and close live connections when it passes",
};
/// The server picks a subprotocol only the scanner offered.
pub(crate) const UNKNOWN_SUBPROTOCOL: Rule = Rule {
    id: "handshake.unknown-subprotocol-selected",
    severity: Severity::Low,
    title: "the server selects a subprotocol it cannot speak (it echoes whatever the client offers)",
    fix: "answer Sec-WebSocket-Protocol only with a protocol the server implements, from those offered",
};
/// One handshake with 64 KiB of headers gets a 101.
pub(crate) const HEADER_FLOOD: Rule = Rule {
    id: "handshake.header-flood-accepted",
    severity: Severity::Medium,
    title: "a handshake with 64 KiB of headers is accepted (no bound on the request head: memory exhaustion)",
    fix: "bound the request head (8-16 KiB, and a header count) and refuse more with 431 or by closing",
};

/// A request head sent one byte a second is still waited for after 12 s.
pub(crate) const SLOWLORIS: Rule = Rule {
    id: "handshake.slowloris-held",
    severity: Severity::Medium,
    title: "a handshake sent one byte a second is still waited for after 12 s (slowloris: a few clients hold every slot)",
    fix: "give the whole request head a deadline (10 s or less) from accept, and bound the sockets waiting per address",
};

/// Slowloris: connections, how long they drip, and their client address
/// against a loopback target (`127.0.104.1`, apart from every family's).
const SLOW_CONNECTIONS: usize = 3;
const SLOW_FOR: std::time::Duration = std::time::Duration::from_secs(12);
const SLOW_FAMILY: u8 = 104;

/// The subprotocol no server speaks.
const SCAN_SUBPROTOCOL: &str = "palisade-scan.unknown";
/// Headers of the header flood, and the length of each value.
const FLOOD_HEADERS: usize = 512;
const FLOOD_VALUE_BYTES: usize = 100;

/// Value of the garbage credential.
pub(crate) const GARBAGE_TOKEN: &str = "palisade-scan-garbage-credential";

/// The payload of `token`, byte for byte, when it is a JWT whose claims
/// are a JSON object (read, not verified: the scanner has no key).
fn payload(token: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v.is_object()).then_some(bytes)
}

/// The claims of `token` when it is a JWT (see [`payload`]).
pub(crate) fn claims(token: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&payload(token)?).ok()
}

/// An `alg=none` token with the claims of `token` (or a made-up user when
/// none is given or it is not a JWT).
pub(crate) fn unsigned(token: Option<&str>) -> String {
    let claims = token.and_then(payload).unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        serde_json::json!({"sub": "palisade-scan", "iat": now, "exp": now + 600}).to_string().into_bytes()
    });
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims))
}

pub(crate) async fn run(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let path = scan.path();
    let mut base = scan.anonymous();
    if let Some(origin) = &scan.options.origin {
        base.push(("Origin".into(), origin.clone()));
    }
    let (_io, answer) = scan.budget.upgrade(&path, &base).await?;
    let open = answer.status == 101;
    if open {
        scan.found(&NO_CREDENTIAL, &format!("sent GET {path} with {}; got 101", describe(&base)));
    }
    subprotocol(scan).await?;
    header_flood(scan).await?;
    slowloris(scan).await?;
    if open {
        let why = "garbage, alg=none, expired and query-token probes mean nothing: no credential is needed";
        scan.report.skip("handshake", why);
        return Ok(());
    }
    let token = scan.token().await?;
    let forged = unsigned(token.as_deref());
    let mut probes = vec![(&GARBAGE, GARBAGE_TOKEN.to_owned()), (&ALG_NONE, forged)];
    match scan.options.expired_token.clone() {
        Some(expired) => probes.push((&EXPIRED, expired)),
        None => scan.report.skip(
            EXPIRED.id,
            "needs --expired-token (a token whose exp has passed: the scanner cannot mint one without the key)",
        ),
    }
    for (rule, value) in probes {
        let mut headers = base.clone();
        headers.push(("Authorization".into(), format!("Bearer {value}")));
        let (_io, answer) = scan.budget.upgrade(&path, &headers).await?;
        if answer.status == 101 {
            scan.found(rule, &format!("sent GET {path} with {}; got 101", describe(&headers)));
        }
    }
    let Some(token) = token else {
        scan.report.skip(QUERY_TOKEN.id, "needs --token or --token-cmd");
        return Ok(());
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let with_query = format!("{path}{sep}access_token={token}");
    let (_io, answer) = scan.budget.upgrade(&with_query, &base).await?;
    if answer.status == 101 {
        scan.found(&QUERY_TOKEN, &format!("sent GET {with_query} with no other credential; got 101"));
    }
    Ok(())
}

/// Offers only [`SCAN_SUBPROTOCOL`], with the credentials: a 101 that
/// selects it is [`UNKNOWN_SUBPROTOCOL`].
async fn subprotocol(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    let mut headers = scan.credentials().await?;
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("sec-websocket-protocol"));
    headers.push(("Sec-WebSocket-Protocol".into(), SCAN_SUBPROTOCOL.into()));
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let path = scan.path();
    let (_io, answer) = scan.budget.upgrade(&path, &headers).await?;
    let selected = answer.header("sec-websocket-protocol").unwrap_or_default();
    if answer.status == 101 && selected.split(',').any(|p| p.trim() == SCAN_SUBPROTOCOL) {
        let evidence = format!("offered only Sec-WebSocket-Protocol: {SCAN_SUBPROTOCOL}; got 101 selecting {selected}");
        scan.found(&UNKNOWN_SUBPROTOCOL, &evidence);
    }
    Ok(())
}

/// One handshake with the credentials and [`FLOOD_HEADERS`] extra headers
/// (64 KiB in all): a 101 is [`HEADER_FLOOD`]. Loopback only, unless
/// `--i-own-this-target`.
async fn header_flood(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    if !scan.may_flood() {
        scan.report.skip(HEADER_FLOOD.id, "floods run against loopback only, unless --i-own-this-target");
        return Ok(());
    }
    let mut headers = scan.credentials().await?;
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let filler = "a".repeat(FLOOD_VALUE_BYTES);
    headers.extend((0..FLOOD_HEADERS).map(|i| (format!("X-Palisade-Scan-{i}"), filler.clone())));
    let path = scan.path();
    let (_io, answer) = scan.budget.upgrade(&path, &headers).await?;
    if answer.status == 101 {
        let evidence = format!(
            "sent GET {path} with the credentials and {FLOOD_HEADERS} headers X-Palisade-Scan-N of {FLOOD_VALUE_BYTES} bytes each; got 101"
        );
        scan.found(&HEADER_FLOOD, &evidence);
    }
    Ok(())
}

/// [`SLOW_CONNECTIONS`] connections each send the upgrade request one
/// byte a second for [`SLOW_FOR`]: one the server has not closed by then is
/// [`SLOWLORIS`]. Loopback only, unless `--i-own-this-target`.
async fn slowloris(scan: &mut Scan<'_>) -> Result<(), ScanError> {
    use tokio::io::AsyncWriteExt as _;
    if !scan.may_flood() {
        scan.report.skip(SLOWLORIS.id, "floods run against loopback only, unless --i-own-this-target");
        return Ok(());
    }
    let mut headers = scan.credentials().await?;
    if let Some(origin) = &scan.options.origin {
        headers.push(("Origin".into(), origin.clone()));
    }
    let path = scan.path();
    let request = scan.budget.upgrade_request(&path, &headers).into_bytes();
    let family = scan.budget.source();
    scan.budget.speak_from(SLOW_FAMILY);
    let mut open = Vec::new();
    for _ in 0..SLOW_CONNECTIONS {
        open.push(scan.budget.dial().await?);
    }
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 64];
    while started.elapsed() < SLOW_FOR && !open.is_empty() && sent < request.len() {
        scan.budget.spend(open.len())?;
        let byte = &request[sent..=sent];
        let mut still = Vec::new();
        for mut io in open {
            // A write that fails, an end of stream or any answer (a 408, a
            // 400) means the server stopped waiting.
            let written = matches!(tokio::time::timeout(READ_TIMEOUT, io.write_all(byte)).await, Ok(Ok(())));
            if written && !answered(&mut io, &mut buf).await {
                still.push(io);
            }
        }
        open = still;
        sent += 1;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let mut still = Vec::new();
    for mut io in open {
        if !answered(&mut io, &mut buf).await {
            still.push(io);
        }
    }
    let open = still;
    scan.budget.set_source(family);
    if !open.is_empty() && sent < request.len() {
        let evidence = format!(
            "{SLOW_CONNECTIONS} connections sent the upgrade request one byte a second; after {} s and {sent} bytes, {} of them were still open",
            SLOW_FOR.as_secs(),
            open.len()
        );
        scan.found(&SLOWLORIS, &evidence);
    }
    Ok(())
}

/// Whether the server has answered or closed `io` (a read that does not
/// wait).
async fn answered(io: &mut Box<dyn crate::net::Io>, buf: &mut [u8]) -> bool {
    use tokio::io::AsyncReadExt as _;
    tokio::time::timeout(std::time::Duration::from_millis(5), io.read(buf)).await.is_ok()
}

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let mut out = vec![
        format!("handshake with no credential; a 101 is {}", NO_CREDENTIAL.id),
        format!(
            "handshake offering only Sec-WebSocket-Protocol: {SCAN_SUBPROTOCOL}; a 101 selecting it is {}",
            UNKNOWN_SUBPROTOCOL.id
        ),
        format!("handshake with {FLOOD_HEADERS} extra headers (64 KiB; loopback only); a 101 is {}", HEADER_FLOOD.id),
        format!(
            "{SLOW_CONNECTIONS} connections send the upgrade one byte a second for {} s (loopback only); one still open is {}",
            SLOW_FOR.as_secs(),
            SLOWLORIS.id
        ),
        format!("handshake with Authorization: Bearer {GARBAGE_TOKEN}; a 101 is {}", GARBAGE.id),
        format!("handshake with an alg=none token (the --token claims, unsigned); a 101 is {}", ALG_NONE.id),
    ];
    if options.expired_token.is_some() {
        out.push(format!("handshake with Authorization: Bearer <--expired-token>; a 101 is {}", EXPIRED.id));
    }
    if options.token.is_some() || options.token_cmd.is_some() {
        out.push(format!("handshake with ?access_token=<token> and no other credential; a 101 is {}", QUERY_TOKEN.id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsigned_token_keeps_the_claims_and_drops_the_signature() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","roles":["admin"]}"#);
        let forged = unsigned(Some(&format!("eyJhbGciOiJIUzI1NiJ9.{claims}.c2ln")));
        let parts: Vec<&str> = forged.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], claims);
        assert_eq!(parts[2], "");
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).ok(), Some(br#"{"alg":"none","typ":"JWT"}"#.to_vec()));
        let made_up = unsigned(Some("not-a-jwt"));
        assert!(made_up.split('.').nth(1).is_some_and(|c| !c.is_empty()));
    }
}
