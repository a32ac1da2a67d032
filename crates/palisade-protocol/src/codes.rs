use std::fmt;

use serde::{Deserialize, Serialize};

/// Stable error codes carried by `{"type":"error"}` frames.
///
/// Clients branch on these; their meaning never changes within protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a valid v1 request (bad JSON, missing field, bad name).
    BadRequest,
    /// The event name is not declared in the policy.
    UnknownEvent,
    /// The event's `data` does not match its schema.
    InvalidPayload,
    /// The user lacks the permission the request needs.
    Forbidden,
    /// The request names a room the connection has not joined.
    NotMember,
    /// Too many requests; `retry_after_ms` says when to try again.
    RateLimited,
    /// The CSRF token is missing or wrong.
    CsrfFailed,
    /// The nonce was seen before or the timestamp is outside the window.
    Replay,
    /// The request or its payload is larger than allowed.
    TooLarge,
    /// The session's token has expired.
    Expired,
    /// The server failed; the `ref` identifies the log line.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, as in `"code":"bad_request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownEvent => "unknown_event",
            Self::InvalidPayload => "invalid_payload",
            Self::Forbidden => "forbidden",
            Self::NotMember => "not_member",
            Self::RateLimited => "rate_limited",
            Self::CsrfFailed => "csrf_failed",
            Self::Replay => "replay",
            Self::TooLarge => "too_large",
            Self::Expired => "expired",
            Self::Internal => "internal",
        }
    }

    /// The short, generic message sent with this code. It never varies with
    /// the input, so it cannot leak limits, paths or internal names.
    pub fn message(self) -> &'static str {
        match self {
            Self::BadRequest => "malformed request",
            Self::UnknownEvent => "unknown event",
            Self::InvalidPayload => "invalid payload",
            Self::Forbidden => "not allowed",
            Self::NotMember => "not a member of this room",
            Self::RateLimited => "slow down",
            Self::CsrfFailed => "csrf check failed",
            Self::Replay => "replayed or stale request",
            Self::TooLarge => "request too large",
            Self::Expired => "session expired",
            Self::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes used by Palisade (RFC 6455 codes plus the 4xxx
/// application range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: normal closure.
    Normal,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1002: the peer broke the WebSocket protocol.
    Protocol,
    /// 1003: a data type the server does not accept (binary frames).
    Unsupported,
    /// 1007: a text frame that is not valid UTF-8.
    InvalidPayload,
    /// 1008: a policy violation.
    Policy,
    /// 1009: a frame or message larger than allowed.
    TooBig,
    /// 1011: the server failed.
    Internal,
    /// 4001: the token expired and was not refreshed.
    TokenExpired,
    /// 4003: the session was revoked or the user banned.
    Revoked,
    /// 4008: too many violations.
    TooManyViolations,
    /// 4009: the client does not read fast enough.
    SlowConsumer,
    /// 4029: rate limited.
    RateLimited,
}

impl CloseCode {
    /// The numeric code sent in the close frame.
    pub fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::Protocol => 1002,
            Self::Unsupported => 1003,
            Self::InvalidPayload => 1007,
            Self::Policy => 1008,
            Self::TooBig => 1009,
            Self::Internal => 1011,
            Self::TokenExpired => 4001,
            Self::Revoked => 4003,
            Self::TooManyViolations => 4008,
            Self::SlowConsumer => 4009,
            Self::RateLimited => 4029,
        }
    }

    /// The close code with this number, if Palisade uses it.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The short reason sent with the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Normal => "bye",
            Self::GoingAway => "server shutting down",
            Self::Protocol => "protocol error",
            Self::Unsupported => "unsupported data",
            Self::InvalidPayload => "invalid utf-8",
            Self::Policy => "policy violation",
            Self::TooBig => "message too big",
            Self::Internal => "internal error",
            Self::TokenExpired => "token expired",
            Self::Revoked => "session revoked",
            Self::TooManyViolations => "too many violations",
            Self::SlowConsumer => "slow consumer",
            Self::RateLimited => "rate limited",
        }
    }

    /// Every close code, for documentation tests.
    pub const ALL: [CloseCode; 13] = [
        Self::Normal,
        Self::GoingAway,
        Self::Protocol,
        Self::Unsupported,
        Self::InvalidPayload,
        Self::Policy,
        Self::TooBig,
        Self::Internal,
        Self::TokenExpired,
        Self::Revoked,
        Self::TooManyViolations,
        Self::SlowConsumer,
        Self::RateLimited,
    ];
}

impl ErrorCode {
    /// Every error code, for documentation tests.
    pub const ALL: [ErrorCode; 11] = [
        Self::BadRequest,
        Self::UnknownEvent,
        Self::InvalidPayload,
        Self::Forbidden,
        Self::NotMember,
        Self::RateLimited,
        Self::CsrfFailed,
        Self::Replay,
        Self::TooLarge,
        Self::Expired,
        Self::Internal,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_serializes_as_its_wire_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn close_codes_are_unique_and_in_allowed_ranges() {
        let mut seen = std::collections::HashSet::new();
        for c in CloseCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            assert!((1000..=1011).contains(&c.code()) || (4000..5000).contains(&c.code()));
            assert!(c.reason().len() <= 123, "close reasons must fit a control frame");
        }
    }
}
