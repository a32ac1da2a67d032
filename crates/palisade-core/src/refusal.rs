//! The one refusal type of Palisade, for handshakes and messages alike.
//!
//! Each check keeps its own error (the policy's `Denied`, the payload's
//! `PayloadError`, replay's `ReplayError`, the envelope's [`FrameError`],
//! the handshake's origin and token errors) and converts into [`Refusal`]
//! with a `From` impl beside that error, so this module, a leaf, imports
//! nothing of the checks above it. A refusal carries its [`Kind`], and everything a
//! refusal causes is read off that kind: the wire code or HTTP status, the
//! anomaly score's weight, the metric label and the log line
//! (docs/ARCHITECTURE.md, "Refusals"). There is no second list of
//! violation kinds to keep in step.

use std::borrow::Cow;
use std::time::Duration;

use palisade_protocol::{ErrorCode, FrameError};

/// What kind of violation a refusal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Handshake: the address or the user is banned (403).
    Banned,
    /// Handshake: too many connection attempts from one address (429): a
    /// reconnect storm.
    RapidReconnect,
    /// Handshake: the address or the user holds its most open connections
    /// (429).
    TooManyConnections,
    /// Handshake: the server holds `limits.max_connections` (503).
    AtCapacity,
    /// Handshake: the Origin is not allowed (403).
    Origin,
    /// Handshake: no valid credential (401).
    AuthFailure,
    /// `/auth/login`: unknown user or wrong password (401, one body for
    /// both).
    LoginFailure,
    /// A frame that is not a valid request, or that breaks the WebSocket
    /// protocol.
    Protocol,
    /// An event the policy does not declare.
    UnknownEvent,
    /// `data` fails the event's schema.
    Schema,
    /// `data` looks like spam (long runs of one character, many links).
    Spam,
    /// Not allowed by the user's roles or the token's `rooms` claim.
    Forbidden,
    /// A room the connection has not joined.
    NotMember,
    /// The CSRF token is missing or wrong.
    Csrf,
    /// A replayed or stale nonce.
    Replay,
    /// Over a message, event or control-frame rate.
    RateExcess,
    /// Over a size limit (a frame, `data`, or its sanitized copy).
    Oversize,
    /// The guard closed the connection (4008): its score reached
    /// `abuse.disconnect_at`. Weighs on the user and the address, so a
    /// client disconnected again and again ends up banned.
    TooManyViolations,
    /// A `refresh` with an expired token.
    Expired,
    /// The server failed.
    Internal,
    /// State the server shares with other nodes cannot be reached, so it
    /// will not act on its own copy (cluster mode's `store.fail_mode`,
    /// `/auth/*`): 503, try again soon.
    Unavailable,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 21] = [
        Self::Banned,
        Self::RapidReconnect,
        Self::TooManyConnections,
        Self::AtCapacity,
        Self::Origin,
        Self::AuthFailure,
        Self::LoginFailure,
        Self::Protocol,
        Self::UnknownEvent,
        Self::Schema,
        Self::Spam,
        Self::Forbidden,
        Self::NotMember,
        Self::Csrf,
        Self::Replay,
        Self::RateExcess,
        Self::Oversize,
        Self::TooManyViolations,
        Self::Expired,
        Self::Internal,
        Self::Unavailable,
    ];

    /// Stable snake_case name: the metric label, the `abuse.weights` key,
    /// and the log field.
    pub fn name(self) -> &'static str {
        match self {
            Self::Banned => "banned",
            Self::RapidReconnect => "rapid_reconnect",
            Self::TooManyConnections => "too_many_connections",
            Self::AtCapacity => "at_capacity",
            Self::Origin => "origin",
            Self::AuthFailure => "auth_failure",
            Self::LoginFailure => "login_failure",
            Self::Protocol => "protocol",
            Self::UnknownEvent => "unknown_event",
            Self::Schema => "schema",
            Self::Spam => "spam",
            Self::Forbidden => "forbidden",
            Self::NotMember => "not_member",
            Self::Csrf => "csrf",
            Self::Replay => "replay",
            Self::RateExcess => "rate_excess",
            Self::Oversize => "oversize",
            Self::TooManyViolations => "too_many_violations",
            Self::Expired => "expired",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }

    /// How much one such refusal adds to the anomaly score unless
    /// `abuse.weights` says otherwise. Mistakes an honest client makes
    /// (a stale room, an expired token) weigh little or nothing; what only
    /// a hostile or broken client does weighs more; the server's own
    /// failures and its capacity weigh nothing.
    pub fn default_weight(self) -> u32 {
        match self {
            Self::Banned | Self::AtCapacity | Self::Internal | Self::Unavailable | Self::Expired => 0,
            Self::NotMember | Self::UnknownEvent | Self::RateExcess | Self::TooManyConnections | Self::LoginFailure => {
                1
            }
            Self::Schema | Self::Forbidden | Self::Spam | Self::RapidReconnect | Self::AuthFailure => 2,
            Self::Origin | Self::Csrf | Self::Replay | Self::Oversize | Self::Protocol => 3,
            Self::TooManyViolations => 10,
        }
    }

    /// The error code a client sees for a refused request.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Protocol => ErrorCode::BadRequest,
            Self::UnknownEvent => ErrorCode::UnknownEvent,
            Self::Schema | Self::Spam => ErrorCode::InvalidPayload,
            Self::Banned | Self::Forbidden | Self::Origin | Self::AuthFailure | Self::LoginFailure => {
                ErrorCode::Forbidden
            }
            Self::NotMember => ErrorCode::NotMember,
            Self::Csrf => ErrorCode::CsrfFailed,
            Self::Replay => ErrorCode::Replay,
            Self::RateExcess | Self::RapidReconnect | Self::TooManyConnections | Self::TooManyViolations => {
                ErrorCode::RateLimited
            }
            Self::Oversize => ErrorCode::TooLarge,
            Self::Expired => ErrorCode::Expired,
            Self::AtCapacity | Self::Internal | Self::Unavailable => ErrorCode::Internal,
        }
    }

    /// The HTTP status of a refused handshake.
    pub fn status(self) -> u16 {
        match self {
            Self::AuthFailure | Self::LoginFailure | Self::Expired => 401,
            Self::RapidReconnect | Self::TooManyConnections | Self::RateExcess | Self::TooManyViolations => 429,
            Self::AtCapacity | Self::Unavailable => 503,
            Self::Internal => 500,
            Self::Protocol | Self::Schema | Self::Spam | Self::UnknownEvent | Self::Oversize => 400,
            Self::Banned | Self::Origin | Self::Forbidden | Self::NotMember | Self::Csrf | Self::Replay => 403,
        }
    }

    /// The JSON body of a refused handshake: one per status, so the body
    /// says no more than the status does (every authentication failure
    /// looks the same; a banned client learns it is refused, not why),
    /// except that a refused Origin says so: it names the page's own
    /// origin, which helps whoever deploys a web client and tells an
    /// attacker nothing.
    pub fn body(self) -> &'static str {
        match self {
            Self::Origin => return r#"{"error":"forbidden","message":"origin not allowed"}"#,
            Self::LoginFailure => return r#"{"error":"invalid_credentials","message":"invalid user name or password"}"#,
            _ => {}
        }
        match self.status() {
            401 => r#"{"error":"unauthorized","message":"authentication required"}"#,
            429 => r#"{"error":"rate_limited","message":"too many requests"}"#,
            503 => r#"{"error":"unavailable","message":"temporarily unavailable"}"#,
            400 => r#"{"error":"bad_request","message":"bad request"}"#,
            500 => r#"{"error":"internal","message":"internal error"}"#,
            _ => r#"{"error":"forbidden","message":"not allowed"}"#,
        }
    }

    /// Whether the refusal is the abuse guard's own (a rate, a cap, a ban),
    /// which `abuse.dry_run` reports instead of enforcing.
    pub fn is_guard(self) -> bool {
        matches!(
            self,
            Self::Banned
                | Self::RapidReconnect
                | Self::TooManyConnections
                | Self::RateExcess
                | Self::Spam
                | Self::TooManyViolations
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<ErrorCode> for Kind {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::BadRequest => Self::Protocol,
            ErrorCode::UnknownEvent => Self::UnknownEvent,
            ErrorCode::InvalidPayload => Self::Schema,
            ErrorCode::Forbidden => Self::Forbidden,
            ErrorCode::NotMember => Self::NotMember,
            ErrorCode::RateLimited => Self::RateExcess,
            ErrorCode::CsrfFailed => Self::Csrf,
            ErrorCode::Replay => Self::Replay,
            ErrorCode::TooLarge => Self::Oversize,
            ErrorCode::Expired => Self::Expired,
            ErrorCode::Internal => Self::Internal,
        }
    }
}

/// A refused handshake or request: what the client sees and what the log
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of violation it is.
    pub kind: Kind,
    /// Correlation id, when readable (requests only).
    pub id: Option<String>,
    /// Detail for the operator's log only; may quote client text, so the
    /// server writes it clipped (docs/ARCHITECTURE.md, "Logs").
    pub reason: Cow<'static, str>,
    /// JSON Pointer of the field at fault, for `invalid_payload` (safe to
    /// show: it names the client's own field, not the schema).
    pub path: Option<String>,
    /// When the client may try again (rates and caps).
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal of `kind` for `reason`.
    pub fn new(kind: Kind, reason: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, id: None, reason: reason.into(), path: None, retry_after: None }
    }

    /// The same refusal, telling the client when to try again.
    pub fn retry_after(self, after: Duration) -> Self {
        Self { retry_after: Some(after), ..self }
    }

    /// The error code the client sees.
    pub fn code(&self) -> ErrorCode {
        self.kind.code()
    }

    /// The same refusal, answering the request `id`.
    pub fn answering(self, id: Cow<'_, str>) -> Self {
        Self { id: Some(id.into_owned()), ..self }
    }
}

impl From<FrameError> for Refusal {
    fn from(e: FrameError) -> Self {
        Self { id: e.id, ..Self::new(Kind::Protocol, e.reason) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_code_maps_back_to_its_kind() {
        let names: std::collections::BTreeSet<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
        for kind in Kind::ALL {
            // The kind a wire code converts into reports that same code.
            assert_eq!(Kind::from(kind.code()).code(), kind.code(), "{kind}");
        }
    }

    #[test]
    fn a_handshake_body_says_no_more_than_its_status() {
        // Only Origin (the page learns nothing about tokens) and a login's
        // failure (no handshake has one) say more.
        let by_status: std::collections::BTreeMap<u16, std::collections::BTreeSet<&str>> = Kind::ALL
            .iter()
            .filter(|k| !matches!(k, Kind::Origin | Kind::LoginFailure))
            .fold(Default::default(), |mut m, k| {
                m.entry(k.status()).or_default().insert(k.body());
                m
            });
        assert!(by_status.values().all(|bodies| bodies.len() == 1), "{by_status:?}");
    }
}
