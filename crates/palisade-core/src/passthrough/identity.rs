//! The verified identity gateway mode forwards to the backend, in headers
//! signed with a shared secret, so the backend trusts it without parsing
//! tokens (docs/GATEWAY.md, "Identity headers").
//!
//! `X-Palisade-Signature` is `sha256=<hex HMAC-SHA256(secret, user "\n"
//! roles "\n" session "\n" expires)>` over the other four headers' values
//! exactly as sent: the signature format of [`crate::signature`], the one
//! operator webhooks use too.

use crate::Timestamp;
use crate::auth::Identity;
use crate::signature;

/// The header names, in the order their values are signed.
pub const USER: &str = "x-palisade-user";
/// Roles, comma-separated.
pub const ROLES: &str = "x-palisade-roles";
/// Palisade's session id of the client connection (`s_…`).
pub const SESSION: &str = "x-palisade-session";
/// When the client's token expires, Unix milliseconds.
pub const EXPIRES: &str = "x-palisade-expires";
/// The signature over the four above.
pub const SIGNATURE: &str = "x-palisade-signature";

/// The identity headers for one upstream connection: name and value
/// pairs, every value visible ASCII (a header can carry it as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// `X-Palisade-User`.
    pub user: String,
    /// `X-Palisade-Roles`.
    pub roles: String,
    /// `X-Palisade-Session`.
    pub session: String,
    /// `X-Palisade-Expires`.
    pub expires: String,
    /// `X-Palisade-Signature`.
    pub signature: String,
}

impl IdentityHeaders {
    /// The signed headers for `who`'s connection `session`. A `sub` is
    /// visible ASCII already (`auth::check_sub`); roles and session are
    /// percent-encoded where they are not, and where they hold `,` or `%`,
    /// so the roles list splits on `,` unambiguously.
    pub fn sign(secret: &[u8], who: &Identity, session: &str) -> Self {
        let user = encode(&who.user_id);
        let roles = who.roles.iter().map(|r| encode(r)).collect::<Vec<_>>().join(",");
        let session = encode(session);
        let expires = who.expires_at.as_millis().to_string();
        let signature = signature::sign(secret, &parts(&user, &roles, &session, &expires));
        Self { user, roles, session, expires, signature }
    }

    /// Whether the headers are unchanged since they were signed with
    /// `secret`, and not expired at `now`: what a backend checks (the Node
    /// and Python snippets in docs/GATEWAY.md do the same).
    pub fn verify(&self, secret: &[u8], now: Timestamp) -> bool {
        let parts = parts(&self.user, &self.roles, &self.session, &self.expires);
        let fresh = self.expires.parse::<u64>().is_ok_and(|ms| ms > now.as_millis());
        signature::verify(secret, &parts, &self.signature) && fresh
    }

    /// `(name, value)` pairs, to set on the upstream request.
    pub fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            (USER, &self.user),
            (ROLES, &self.roles),
            (SESSION, &self.session),
            (EXPIRES, &self.expires),
            (SIGNATURE, &self.signature),
        ]
    }
}

fn parts<'a>(user: &'a str, roles: &'a str, session: &'a str, expires: &'a str) -> [&'a [u8]; 7] {
    [user.as_bytes(), b"\n", roles.as_bytes(), b"\n", session.as_bytes(), b"\n", expires.as_bytes()]
}

/// Visible ASCII but `%` and `,` as is; every other byte as `%XX`.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_graphic() && b != b'%' && b != b',' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testkit::T0;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn alice() -> Identity {
        Identity {
            user_id: "alice".into(),
            expires_at: T0.saturating_add(Duration::from_secs(900)),
            ..crate::testkit::identity(&["student", "a,b", "é"])
        }
    }

    #[test]
    fn the_signature_covers_every_value_as_sent() {
        let h = IdentityHeaders::sign(SECRET, &alice(), "s_abc");
        assert_eq!(h.user, "alice");
        assert_eq!(h.roles, "student,a%2Cb,%C3%A9", "a comma or a non-ASCII byte in a role is encoded");
        assert_eq!(h.expires, T0.saturating_add(Duration::from_secs(900)).as_millis().to_string());
        // Computed independently: printf 'alice\nstudent,a%2Cb,%C3%A9\ns_abc\n<expires>' | openssl dgst -sha256 -hmac <SECRET>
        let text = format!("alice\nstudent,a%2Cb,%C3%A9\ns_abc\n{}", h.expires);
        assert_eq!(h.signature, signature::sign(SECRET, &[text.as_bytes()]));
        assert!(h.verify(SECRET, T0));
        for tampered in [
            IdentityHeaders { user: "mallory".into(), ..h.clone() },
            IdentityHeaders { roles: "student,admin".into(), ..h.clone() },
            IdentityHeaders { session: "s_other".into(), ..h.clone() },
            IdentityHeaders { expires: "99999999999999".into(), ..h.clone() },
        ] {
            assert!(!tampered.verify(SECRET, T0), "{tampered:?}");
        }
        assert!(!h.verify(b"another secret of thirty-two byte", T0));
        assert!(!h.verify(SECRET, T0.saturating_add(Duration::from_secs(901))), "expired");
        assert!(h.pairs().iter().all(|(_, v)| v.bytes().all(|b| b.is_ascii_graphic())));
    }
}
