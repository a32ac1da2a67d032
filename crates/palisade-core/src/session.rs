//! One connection's state and the pipeline every client frame goes through
//! (DESIGN §3). The server feeds frames and timer ticks in; the session says
//! what to do. Steps not yet built (rate, replay, CSRF, schema, sanitizers)
//! slot in where the comments in [`Session::on_text`] say.

use std::borrow::Cow;
use std::time::Duration;

use palisade_protocol::{ClientFrame, CloseCode, ErrorCode};
use serde_json::value::RawValue;

use crate::Timestamp;
use crate::auth::{AuthError, Identity, TokenVerifier};
use crate::policy::{Denied, Policy};

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Rooms one connection may be in at once.
    pub max_rooms: usize,
    /// How long before `exp` the `expiring` notice is sent.
    pub expiry_notice: Duration,
    /// Grace after `exp` before the connection is closed (the token leeway).
    pub expiry_grace: Duration,
}

/// What one client frame becomes.
#[derive(Debug)]
pub enum Decision<'a> {
    /// Add the connection to `room`, then acknowledge. Idempotent.
    Join {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name (validated).
        room: Cow<'a, str>,
    },
    /// Remove the connection from `room`, then acknowledge.
    Leave {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name.
        room: Cow<'a, str>,
    },
    /// Broadcast `data` as `event` in `room`, then acknowledge with the seq.
    Publish {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Room name (the connection is a member).
        room: Cow<'a, str>,
        /// Event name (declared).
        event: Cow<'a, str>,
        /// Payload, after every check.
        data: &'a RawValue,
    },
    /// The token was replaced; acknowledge.
    Refreshed {
        /// Correlation id.
        id: Cow<'a, str>,
    },
    /// Refuse the request with an error frame.
    Reject(Refusal),
}

/// A refused request: what the client sees and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Correlation id, when readable.
    pub id: Option<String>,
    /// Wire error code.
    pub code: ErrorCode,
    /// Detail for the operator's log only.
    pub reason: &'static str,
}

/// What a timer tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Send `{"type":"expiring","expires_at":…}`.
    Expiring(Timestamp),
    /// Close the connection.
    Close(CloseCode),
}

/// One authenticated connection.
#[derive(Debug)]
pub struct Session {
    id: String,
    identity: Identity,
    csrf: String,
    rooms: Vec<Box<str>>,
    limits: SessionLimits,
    expiry_noticed: bool,
}

impl Session {
    /// Starts a session for a verified identity.
    pub fn new(identity: Identity, limits: SessionLimits) -> Self {
        Self {
            id: crate::random_id("s_"),
            identity,
            csrf: crate::random_id(""),
            rooms: Vec::new(),
            limits,
            expiry_noticed: false,
        }
    }

    /// Session id (`s_…`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The verified user.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The CSRF token announced in `welcome`.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Rooms the connection is in.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.iter().map(|r| &**r)
    }

    /// Runs one text frame through the pipeline.
    pub fn on_text<'a>(
        &mut self,
        policy: &Policy,
        verifier: &TokenVerifier,
        text: &'a str,
        now: Timestamp,
    ) -> Decision<'a> {
        // Frame size was enforced by the transport before buffering, and the
        // connection's message rate belongs here once the guard exists.
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(e) => return reject(e.id, Denied::new(ErrorCode::BadRequest, e.reason)),
        };
        match frame {
            ClientFrame::Join { id, room } => match self.join(policy, &room) {
                Ok(()) => Decision::Join { id, room },
                Err(d) => reject(Some(id.into_owned()), d),
            },
            ClientFrame::Leave { id, room } => match self.rooms.iter().position(|r| **r == *room) {
                Some(i) => {
                    self.rooms.swap_remove(i);
                    Decision::Leave { id, room }
                }
                None => reject(Some(id.into_owned()), Denied::new(ErrorCode::NotMember, "leave without join")),
            },
            ClientFrame::Send { id, room, event, data, .. } => {
                // Event known → (replay, CSRF) → authorization → (event
                // rate, schema, sanitizers): DESIGN §3 steps 4 to 10.
                let checked = policy.check_publish(&self.identity, &room, &event).and_then(|_| {
                    if self.is_member(&room) {
                        Ok(())
                    } else {
                        Err(Denied::new(ErrorCode::NotMember, "send to a room not joined"))
                    }
                });
                match checked {
                    Ok(()) => Decision::Publish { id, room, event, data },
                    Err(d) => reject(Some(id.into_owned()), d),
                }
            }
            ClientFrame::Refresh { id, token } => match self.refresh(verifier, &token, now) {
                Ok(()) => Decision::Refreshed { id },
                Err(denied) => reject(Some(id.into_owned()), denied),
            },
            ClientFrame::Recover { id, .. } => {
                reject(Some(id.into_owned()), Denied::new(ErrorCode::BadRequest, "room history is not kept"))
            }
        }
    }

    /// A binary frame: refused until a policy allows binary data.
    pub fn on_binary(&self) -> CloseCode {
        CloseCode::Unsupported
    }

    /// When [`Session::on_timer`] next has something to do.
    pub fn next_timer(&self) -> Timestamp {
        if self.expiry_noticed { self.close_at() } else { self.notice_at() }
    }

    /// Called at or after [`Session::next_timer`].
    pub fn on_timer(&mut self, now: Timestamp) -> Option<TimerAction> {
        if now >= self.close_at() {
            return Some(TimerAction::Close(CloseCode::TokenExpired));
        }
        if !self.expiry_noticed && now >= self.notice_at() {
            self.expiry_noticed = true;
            return Some(TimerAction::Expiring(self.identity.expires_at));
        }
        None
    }

    fn notice_at(&self) -> Timestamp {
        self.identity.expires_at.saturating_sub(self.limits.expiry_notice)
    }

    fn close_at(&self) -> Timestamp {
        self.identity.expires_at.saturating_add(self.limits.expiry_grace)
    }

    fn is_member(&self, room: &str) -> bool {
        self.rooms.iter().any(|r| **r == *room)
    }

    fn join(&mut self, policy: &Policy, room: &str) -> Result<(), Denied> {
        policy.check_join(&self.identity, room)?;
        if self.is_member(room) {
            return Ok(());
        }
        if self.rooms.len() >= self.limits.max_rooms {
            return Err(Denied::new(ErrorCode::Forbidden, "too many rooms on one connection"));
        }
        self.rooms.push(room.into());
        Ok(())
    }

    fn refresh(&mut self, verifier: &TokenVerifier, token: &str, now: Timestamp) -> Result<(), Denied> {
        let fresh = verifier.verify(token, now).map_err(|e| match e {
            AuthError::Expired => Denied::new(ErrorCode::Expired, "refresh token expired"),
            _ => Denied::new(ErrorCode::Forbidden, "refresh token invalid"),
        })?;
        if fresh.user_id != self.identity.user_id {
            return Err(Denied::new(ErrorCode::Forbidden, "refresh token is for another user"));
        }
        self.identity = fresh;
        self.expiry_noticed = false;
        Ok(())
    }
}

fn reject<'a>(id: Option<String>, d: Denied) -> Decision<'a> {
    Decision::Reject(Refusal { id, code: d.code, reason: d.reason })
}

#[cfg(test)]
mod tests;
