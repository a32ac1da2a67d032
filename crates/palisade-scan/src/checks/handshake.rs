//! Handshake: what the endpoint accepts instead of a valid credential: none
//! at all, garbage, an unsigned `alg=none` token made from the real
//! token's claims, and the real token in the query string (where proxies
//! and access logs keep it). docs/SCAN.md, "handshake".

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ScanError;
use crate::finding::{Rule, Severity};
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

/// Value of the garbage credential.
const GARBAGE_TOKEN: &str = "palisade-scan-garbage-credential";

/// An `alg=none` token with the claims of `token` (or a made-up user when
/// none is given or it is not a JWT).
fn unsigned(token: Option<&str>) -> String {
    let claims = token
        .and_then(|t| t.split('.').nth(1))
        .and_then(|c| URL_SAFE_NO_PAD.decode(c.trim_end_matches('=')).ok())
        .filter(|c| serde_json::from_slice::<serde_json::Value>(c).is_ok_and(|v| v.is_object()));
    let claims = claims.unwrap_or_else(|| {
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
    if answer.status == 101 {
        scan.found(&NO_CREDENTIAL, &format!("sent GET {path} with {}; got 101", describe(&base)));
        scan.report.skip("handshake", "garbage, alg=none and query-token probes mean nothing: no credential is needed");
        return Ok(());
    }
    let token = scan.token().await?;
    let forged = unsigned(token.as_deref());
    for (rule, value) in [(&GARBAGE, GARBAGE_TOKEN.to_owned()), (&ALG_NONE, forged)] {
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

pub(crate) fn plan(options: &Options) -> Vec<String> {
    let mut out = vec![
        format!("handshake with no credential; a 101 is {}", NO_CREDENTIAL.id),
        format!("handshake with Authorization: Bearer {GARBAGE_TOKEN}; a 101 is {}", GARBAGE.id),
        format!("handshake with an alg=none token (the --token claims, unsigned); a 101 is {}", ALG_NONE.id),
    ];
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
