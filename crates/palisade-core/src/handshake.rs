//! The checks of the credential run before a WebSocket upgrade is answered
//! (docs/PROTOCOL.md §1.2): Origin, then exactly one valid token. They come
//! after the guard's ban and rate checks and before its per-user cap
//! (docs/ARCHITECTURE.md, "Handshake").

use palisade_protocol::{BEARER_PROTOCOL_PREFIX, SUBPROTOCOL};

use crate::Timestamp;
use crate::auth::{AuthError, Identity, TokenVerifier};
use crate::origin::{CredentialKind, OriginPolicy};
use crate::refusal::{Kind, Refusal};

/// The parts of an upgrade request the decision needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct HandshakeRequest<'a> {
    /// `Origin` header.
    pub origin: Option<&'a str>,
    /// Every `Authorization` header, in order: more than one is two
    /// credentials, not a first one and noise.
    pub authorization: &'a [&'a str],
    /// All `Sec-WebSocket-Protocol` values, comma-joined.
    pub protocols: Option<&'a str>,
    /// `access_token` query parameter.
    pub query_token: Option<&'a str>,
    /// The `palisade_session` cookie ([`session_cookie`]): used only when
    /// no other credential is offered.
    pub cookie: Option<&'a str>,
}

/// A request that may be upgraded.
#[derive(Debug)]
pub struct Admitted {
    /// The verified user.
    pub identity: Identity,
    /// Whether to answer with `Sec-WebSocket-Protocol: palisade.v1`.
    pub select_subprotocol: bool,
    /// Whether the token came from the session cookie: then every `send`
    /// must carry the CSRF token (docs/PROTOCOL.md §11.4).
    pub via_cookie: bool,
}

/// The handshake rules.
#[derive(Debug, Clone)]
pub struct Gate {
    origins: OriginPolicy,
    verifier: TokenVerifier,
    allow_query_token: bool,
}

impl Gate {
    /// Builds the gate.
    pub fn new(origins: OriginPolicy, verifier: TokenVerifier, allow_query_token: bool) -> Self {
        Self { origins, verifier, allow_query_token }
    }

    /// The origin rules, for the `/auth/*` endpoints.
    pub fn origins(&self) -> &OriginPolicy {
        &self.origins
    }

    /// The token verifier, for `refresh` frames.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Decides an upgrade request at `now`.
    /// A refusal is [`Kind::Origin`] (403) or [`Kind::AuthFailure`] (401,
    /// one body for every cause); its reason says which check, for the log.
    pub fn admit(&self, req: &HandshakeRequest<'_>, now: Timestamp) -> Result<Admitted, Refusal> {
        let auth = |e: AuthError| Refusal::new(Kind::AuthFailure, format!("auth: {e}"));
        let offered = offered_protocols(req.protocols);
        let explicit = self.credential(req, &offered);
        // A cookie counts only when nothing else is offered: the browser
        // attaches it on its own, so it is never a second credential the
        // client chose to send, and never preferred over one it did.
        let (token, kind) = match (explicit, req.cookie) {
            (Err(AuthError::Missing), Some(cookie)) => (Ok(cookie), CredentialKind::Ambient),
            (explicit, _) => (explicit, CredentialKind::Bearer),
        };
        // The origin is judged before the token is, so a cross-site page
        // learns nothing about tokens. A cookie needs an allowed Origin:
        // without one, any page could open a socket on the user's behalf.
        self.origins.check(req.origin, kind).map_err(|e| Refusal::new(Kind::Origin, format!("origin: {e}")))?;
        let identity = self.verifier.verify(token.map_err(auth)?, now).map_err(auth)?;
        let via_cookie = kind == CredentialKind::Ambient;
        Ok(Admitted { identity, select_subprotocol: offered.contains(&SUBPROTOCOL), via_cookie })
    }

    /// The one token the request presents, when its Origin passes: the
    /// server fetches an external issuer's key set for it before
    /// [`Gate::admit`] (docs/ARCHITECTURE.md, "External issuers"). `None`
    /// when `admit` would refuse before looking at the token.
    pub fn presented_token<'a>(&self, req: &HandshakeRequest<'a>) -> Option<&'a str> {
        self.origins.check(req.origin, CredentialKind::Bearer).ok()?;
        self.credential(req, &offered_protocols(req.protocols)).ok()
    }

    /// Finds exactly one credential: every `Authorization` header, every
    /// `palisade.bearer.*` subprotocol and the query token each count.
    fn credential<'a>(&self, req: &HandshakeRequest<'a>, offered: &[&'a str]) -> Result<&'a str, AuthError> {
        let headers = req.authorization.iter().copied().map(|h| {
            let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h, ""));
            if scheme.eq_ignore_ascii_case("bearer") { rest.trim() } else { "" }
        });
        let protocols = offered.iter().filter_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX));
        let query = req.query_token.filter(|_| self.allow_query_token);
        let mut found = headers.chain(protocols).chain(query);
        match (found.next(), found.next()) {
            (None, _) => Err(AuthError::Missing),
            (Some(_), Some(_)) => Err(AuthError::Ambiguous),
            (Some(""), None) => Err(AuthError::Malformed),
            (Some(token), None) => Ok(token),
        }
    }
}

/// Name of the cookie that carries a browser session's access token.
pub const SESSION_COOKIE: &str = "palisade_session";

/// The value of the cookie `name` among every `Cookie` header of a request.
/// The same name twice is [`AuthError::Ambiguous`]: a subdomain can plant a
/// second cookie, and guessing which one is meant would let it choose.
pub fn cookie<'a>(headers: &[&'a str], name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut found = headers.iter().flat_map(|h| h.split(';')).filter_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    });
    match (found.next(), found.next()) {
        (Some(_), Some(_)) => Err(AuthError::Ambiguous),
        (value, _) => Ok(value),
    }
}

/// The [`SESSION_COOKIE`] of a request, for [`HandshakeRequest::cookie`].
pub fn session_cookie<'a>(headers: &[&'a str]) -> Result<Option<&'a str>, AuthError> {
    cookie(headers, SESSION_COOKIE)
}

fn offered_protocols(raw: Option<&str>) -> Vec<&str> {
    raw.map(|r| r.split(',').map(str::trim).filter(|p| !p.is_empty()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testkit::{T0, mint, verifier};

    fn auth(e: AuthError) -> Refusal {
        Refusal::new(Kind::AuthFailure, format!("auth: {e}"))
    }

    fn gate(allow_query: bool) -> Gate {
        Gate::new(OriginPolicy::new(&["https://app.example.com"]).unwrap(), verifier(), allow_query)
    }

    #[test]
    fn token_from_header_or_subprotocol_exactly_once() {
        let t = mint("u1", &[], Duration::from_secs(60), T0);
        let bearer = format!("Bearer {t}");
        let proto = format!("palisade.v1, palisade.bearer.{t}");
        let g = gate(false);
        let a = g.admit(&HandshakeRequest { authorization: &[bearer.as_str()], ..Default::default() }, T0).unwrap();
        assert!(!a.select_subprotocol);
        let a = g.admit(&HandshakeRequest { protocols: Some(&proto), ..Default::default() }, T0).unwrap();
        assert!(a.select_subprotocol);
        let both =
            HandshakeRequest { authorization: &[bearer.as_str()], protocols: Some(&proto), ..Default::default() };
        assert_eq!(g.admit(&both, T0).unwrap_err(), auth(AuthError::Ambiguous));
        assert_eq!(g.admit(&HandshakeRequest::default(), T0).unwrap_err(), auth(AuthError::Missing));
        let basic = HandshakeRequest { authorization: &["Basic abc"], ..Default::default() };
        assert_eq!(g.admit(&basic, T0).unwrap_err(), auth(AuthError::Malformed));
    }

    #[test]
    fn two_bearer_headers_or_two_bearer_subprotocols_are_ambiguous() {
        let t = mint("u1", &[], Duration::from_secs(60), T0);
        let bearer = format!("Bearer {t}");
        let g = gate(false);
        // The same valid token twice is still two credentials.
        let headers = HandshakeRequest { authorization: &[bearer.as_str(), bearer.as_str()], ..Default::default() };
        assert_eq!(g.admit(&headers, T0).unwrap_err(), auth(AuthError::Ambiguous));
        let with_junk = HandshakeRequest { authorization: &[bearer.as_str(), "Bearer junk"], ..Default::default() };
        assert_eq!(g.admit(&with_junk, T0).unwrap_err(), auth(AuthError::Ambiguous));
        let proto = format!("palisade.v1, palisade.bearer.{t}, palisade.bearer.{t}");
        let protocols = HandshakeRequest { protocols: Some(&proto), ..Default::default() };
        assert_eq!(g.admit(&protocols, T0).unwrap_err(), auth(AuthError::Ambiguous));
    }

    #[test]
    fn query_tokens_only_when_enabled() {
        let t = mint("u1", &[], Duration::from_secs(60), T0);
        let req = HandshakeRequest { query_token: Some(&t), ..Default::default() };
        assert_eq!(gate(false).admit(&req, T0).unwrap_err(), auth(AuthError::Missing));
        assert!(gate(true).admit(&req, T0).is_ok());
    }

    #[test]
    fn the_presented_token_is_the_one_admit_verifies() {
        let g = gate(false);
        let bearer = "Bearer abc.def.ghi";
        let one = HandshakeRequest { authorization: &[bearer], ..Default::default() };
        assert_eq!(g.presented_token(&one), Some("abc.def.ghi"));
        let two = HandshakeRequest { authorization: &[bearer, bearer], ..Default::default() };
        assert_eq!(g.presented_token(&two), None);
        let cross_site = HandshakeRequest { origin: Some("https://evil.example"), ..one };
        assert_eq!(g.presented_token(&cross_site), None);
    }

    #[test]
    fn origin_is_judged_before_the_token_and_bodies_do_not_leak() {
        let g = gate(false);
        let req = HandshakeRequest {
            origin: Some("https://evil.example"),
            authorization: &["Bearer x"],
            ..Default::default()
        };
        let r = g.admit(&req, T0).unwrap_err();
        assert_eq!((r.kind, r.kind.status()), (Kind::Origin, 403));
        // Every authentication failure is one kind, so one status and body.
        let bodies: std::collections::HashSet<_> =
            [HandshakeRequest::default(), HandshakeRequest { authorization: &["Bearer x"], ..Default::default() }]
                .iter()
                .map(|req| g.admit(req, T0).unwrap_err().kind.body())
                .collect();
        assert_eq!(bodies.len(), 1);
    }

    #[test]
    fn a_cookie_counts_only_alone_and_only_with_an_allowed_origin() {
        let t = mint("u1", &[], Duration::from_secs(60), T0);
        let g = gate(false);
        let app = Some("https://app.example.com");
        let with_cookie = HandshakeRequest { origin: app, cookie: Some(&t), ..Default::default() };
        let a = g.admit(&with_cookie, T0).unwrap();
        assert!(a.via_cookie);
        // No Origin: no cookie session, whatever the token.
        let r = g.admit(&HandshakeRequest { origin: None, ..with_cookie }, T0).unwrap_err();
        assert_eq!(r.kind, Kind::Origin);
        let r = g.admit(&HandshakeRequest { origin: Some("https://evil.example"), ..with_cookie }, T0).unwrap_err();
        assert_eq!(r.kind, Kind::Origin);
        // A bearer token beside the cookie wins, and is not ambiguous.
        let other = mint("u2", &[], Duration::from_secs(60), T0);
        let bearer = format!("Bearer {other}");
        let both = HandshakeRequest { authorization: &[bearer.as_str()], ..with_cookie };
        let a = g.admit(&both, T0).unwrap();
        assert_eq!((a.identity.user_id.as_str(), a.via_cookie), ("u2", false));
        // An empty or broken cookie is one more authentication failure.
        let r = g.admit(&HandshakeRequest { cookie: Some("x"), ..with_cookie }, T0).unwrap_err();
        assert_eq!(r.kind, Kind::AuthFailure);
    }

    #[test]
    fn the_session_cookie_is_read_once_from_every_cookie_header() {
        assert_eq!(session_cookie(&["a=1; palisade_session=tok; b=2"]), Ok(Some("tok")));
        assert_eq!(session_cookie(&["a=1", "palisade_session=\"tok\""]), Ok(Some("tok")));
        assert_eq!(session_cookie(&["a=1; palisade_sessionx=tok"]), Ok(None));
        assert_eq!(session_cookie(&[]), Ok(None));
        assert_eq!(session_cookie(&["palisade_session=a", "palisade_session=b"]), Err(AuthError::Ambiguous));
    }
}
