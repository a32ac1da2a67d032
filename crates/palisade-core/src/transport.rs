//! Whether a request came over a transport production may serve
//! (docs/OPERATIONS.md, "Behind a proxy"): TLS this server terminated, or
//! a trusted proxy's `X-Forwarded-Proto: https`. The server attaches the
//! facts; this decides; the server answers (426 with one fixed body) and
//! sets `Strict-Transport-Security` on what is secure.

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
