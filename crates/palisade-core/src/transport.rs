//! Transport checks at the HTTP edge, each failure named:
//! - whether a request came over a transport production may serve
//!   (docs/OPERATIONS.md, "Behind a proxy"): TLS this server terminated,
//!   or a trusted proxy's `X-Forwarded-Proto: https`; the server answers
//!   426 with one fixed body and sets `Strict-Transport-Security` on what
//!   is secure;
//! - whether a request is an RFC 6455 upgrade at all ([`check_upgrade`]),
//!   as axum's `WebSocketUpgrade` rejections name the missing part: the
//!   log says which, the client gets one generic 400.

use std::fmt;

/// What a request offers toward a WebSocket upgrade (header values as
/// sent; the server reads them).
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeRequest<'a> {
    /// The method is GET.
    pub is_get: bool,
    /// Every `Connection` header value.
    pub connection: &'a [&'a str],
    /// Every `Upgrade` header value.
    pub upgrade: &'a [&'a str],
    /// `Sec-WebSocket-Version`.
    pub version: Option<&'a str>,
    /// `Sec-WebSocket-Key`.
    pub key: Option<&'a str>,
}

/// Which part of an upgrade was missing or wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeRejection {
    /// Not a GET.
    MethodNotGet,
    /// `Connection` does not list `upgrade`.
    ConnectionNotUpgrade,
    /// `Upgrade` does not list `websocket`.
    UpgradeNotWebSocket,
    /// `Sec-WebSocket-Version` is not 13.
    BadVersion,
    /// `Sec-WebSocket-Key` is missing or not 16 bytes in base64.
    BadKey,
}

impl UpgradeRejection {
    /// The name the log writes.
    pub fn name(self) -> &'static str {
        match self {
            Self::MethodNotGet => "method_not_get",
            Self::ConnectionNotUpgrade => "connection_not_upgrade",
            Self::UpgradeNotWebSocket => "upgrade_not_websocket",
            Self::BadVersion => "bad_websocket_version",
            Self::BadKey => "bad_websocket_key",
        }
    }
}

impl fmt::Display for UpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks an upgrade request in the order a reader of RFC 6455 §4.2.1
/// would; returns the key to derive the accept value from.
pub fn check_upgrade<'a>(req: &UpgradeRequest<'a>) -> Result<&'a str, UpgradeRejection> {
    let lists = |values: &[&str], token: &str| {
        values.iter().flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !req.is_get {
        return Err(UpgradeRejection::MethodNotGet);
    }
    if !lists(req.connection, "upgrade") {
        return Err(UpgradeRejection::ConnectionNotUpgrade);
    }
    if !lists(req.upgrade, "websocket") {
        return Err(UpgradeRejection::UpgradeNotWebSocket);
    }
    if req.version.map(str::trim) != Some("13") {
        return Err(UpgradeRejection::BadVersion);
    }
    // 16 random bytes in base64 are always 24 characters ending in "==".
    match req.key {
        Some(key) if key.len() == 24 && key.ends_with("==") => Ok(key),
        _ => Err(UpgradeRejection::BadKey),
    }
}

/// What the server knows of a request's transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransportFacts<'a> {
    /// It arrived over TLS this server terminated.
    pub tls: bool,
    /// The dev profile, which serves plain http and ws.
    pub dev: bool,
    /// `server.allow_plaintext`.
    pub allow_plaintext: bool,
    /// The TCP peer is one of `server.trusted_proxies`.
    pub trusted_peer: bool,
    /// Every `X-Forwarded-Proto` value, as sent.
    pub forwarded_proto: &'a [&'a str],
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportVerdict {
    /// Encrypted to the client: serve, with HSTS.
    Secure,
    /// Plain text this config allows (dev, or `allow_plaintext`): serve.
    Plain,
    /// Plain text where TLS is required: 426.
    UpgradeRequired,
}

/// Judges one request. A proxy's word counts only from a trusted peer, and
/// only its last hop's value (the proxy appends its own); a trusted proxy
/// that says the client spoke plain `http` is refused outside dev, even
/// with `allow_plaintext`, because the client's own hop was then clear.
pub fn judge(facts: TransportFacts<'_>) -> TransportVerdict {
    if facts.tls {
        return TransportVerdict::Secure;
    }
    if facts.trusted_peer {
        let last = facts.forwarded_proto.iter().flat_map(|h| h.split(',')).map(str::trim).next_back();
        match last {
            Some(p) if p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("wss") => {
                return TransportVerdict::Secure;
            }
            Some(p) if !facts.dev && (p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("ws")) => {
                return TransportVerdict::UpgradeRequired;
            }
            _ => {}
        }
    }
    if facts.dev || facts.allow_plaintext { TransportVerdict::Plain } else { TransportVerdict::UpgradeRequired }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransportVerdict::{Plain, Secure, UpgradeRequired};

    #[test]
    fn each_missing_part_of_an_upgrade_is_named() {
        let good = UpgradeRequest {
            is_get: true,
            connection: &["keep-alive, Upgrade"],
            upgrade: &["websocket"],
            version: Some("13"),
            key: Some("dGhlIHNhbXBsZSBub25jZQ=="),
        };
        assert_eq!(check_upgrade(&good), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
        let cases = [
            (UpgradeRequest { is_get: false, ..good }, UpgradeRejection::MethodNotGet),
            (UpgradeRequest { connection: &["keep-alive"], ..good }, UpgradeRejection::ConnectionNotUpgrade),
            (UpgradeRequest { upgrade: &["h2c"], ..good }, UpgradeRejection::UpgradeNotWebSocket),
            (UpgradeRequest { version: Some("8"), ..good }, UpgradeRejection::BadVersion),
            (UpgradeRequest { version: None, ..good }, UpgradeRejection::BadVersion),
            (UpgradeRequest { key: Some("short"), ..good }, UpgradeRejection::BadKey),
            (UpgradeRequest { key: None, ..good }, UpgradeRejection::BadKey),
        ];
        for (request, rejection) in cases {
            assert_eq!(check_upgrade(&request), Err(rejection), "{}", rejection.name());
        }
    }

    fn facts<'a>(proto: &'a [&'a str]) -> TransportFacts<'a> {
        TransportFacts { forwarded_proto: proto, ..TransportFacts::default() }
    }

    #[test]
    fn tls_is_secure_whatever_a_header_says() {
        assert_eq!(judge(TransportFacts { tls: true, ..facts(&["http"]) }), Secure);
    }

    #[test]
    fn production_plain_text_needs_allow_plaintext() {
        assert_eq!(judge(facts(&[])), UpgradeRequired);
        assert_eq!(judge(TransportFacts { allow_plaintext: true, ..facts(&[]) }), Plain);
        assert_eq!(judge(TransportFacts { dev: true, ..facts(&[]) }), Plain);
    }

    #[test]
    fn only_a_trusted_peer_may_vouch_for_https() {
        assert_eq!(judge(facts(&["https"])), UpgradeRequired, "an untrusted peer's header is ignored");
        let trusted = |proto| TransportFacts { trusted_peer: true, ..facts(proto) };
        assert_eq!(judge(trusted(&["https"])), Secure);
        assert_eq!(judge(trusted(&["HTTPS"])), Secure);
        assert_eq!(judge(trusted(&["http, https"])), Secure, "the last hop, which the proxy wrote");
        assert_eq!(judge(trusted(&["https", "http"])), UpgradeRequired, "the client spoke plain text");
        assert_eq!(judge(trusted(&[])), UpgradeRequired);
        assert_eq!(judge(trusted(&["gopher"])), UpgradeRequired);
    }

    #[test]
    fn allow_plaintext_does_not_overrule_a_proxy_that_saw_plain_text() {
        let facts = TransportFacts { trusted_peer: true, allow_plaintext: true, ..facts(&["http"]) };
        assert_eq!(judge(facts), UpgradeRequired);
        assert_eq!(judge(TransportFacts { dev: true, ..facts }), Plain, "dev serves plain text");
        let unsaid = TransportFacts { trusted_peer: true, allow_plaintext: true, ..TransportFacts::default() };
        assert_eq!(judge(unsaid), Plain, "a proxy that says nothing, with allow_plaintext");
    }
}
