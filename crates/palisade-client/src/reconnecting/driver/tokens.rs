//! The credentials a connection proves itself with: the token (a bearer
//! token, or a cookie session's `palisade_session` value) refreshed in-band
//! on `expiring`, and what every `send` carries: the CSRF token of the
//! latest `welcome` or `csrf` frame (a cookie session needs it on every
//! `send`, PROTOCOL.md §11.4), a replay nonce and a timestamp.

use serde_json::{Value, json};

use super::{Driver, Pending};
use crate::ClientError;
use crate::reconnecting::{Notification, TokenError};

impl Driver {
    /// One refresh per `expiring`, never two at once.
    pub(super) fn refresh(&mut self, expires_at: u64) {
        if self.fetching.is_some() || self.refreshing || expires_at <= self.refreshed_for {
            return;
        }
        self.refreshed_for = expires_at;
        let tokens = self.tokens.clone();
        self.fetching = Some(Box::pin(async move { tokens.token().await }));
    }

    pub(super) async fn fetched(&mut self, token: Result<String, TokenError>) {
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                self.notify(Notification::Error(ClientError::Token(e.to_string()))).await;
                return;
            }
        };
        if !self.ready {
            return;
        }
        // A token that does not outlive this notice would only be warned
        // again at once: let 4001 come, and the reconnect ask again.
        let outlives = jwt_exp_ms(&token).is_none_or(|exp| exp > self.refreshed_for);
        if token.is_empty() || self.token.as_deref() == Some(token.as_str()) || !outlives {
            return;
        }
        let id = self.id();
        self.refreshing = true;
        let frame = json!({"type": "refresh", "id": id, "token": token});
        self.pending.insert(id, Pending::Refresh(token));
        self.raw(frame).await;
    }

    /// Stamps a `send` with what it proves itself with, from the current
    /// socket's session: the frame is built at each (re)send, so a message
    /// queued or resent across a rotation or a reconnect carries the token
    /// of now, never the one of when it was published.
    pub(super) fn stamp(&mut self, frame: &mut Value) {
        if let Some(csrf) = &self.csrf {
            frame["csrf"] = Value::String(csrf.clone());
        }
        // For events with `replay = true`; ignored by the others.
        frame["nonce"] = Value::String(format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64()));
        frame["ts"] = json!(unix_ms());
    }
}

/// A JWT's `exp` in Unix ms, if it reads as one (never verified: the
/// server does that).
pub(in crate::reconnecting) fn jwt_exp_ms(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()?.checked_mul(1000)
}

fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}
