//! One connection's state and the pipeline every client frame goes through
//! (docs/ARCHITECTURE.md, "The pipeline for one message"). The server feeds
//! frames and timer ticks in; the session says what to do.
//! `Session::publish` reads like that list; the rate steps (2 and 8)
//! belong to the guard and slot in where marked.

use std::borrow::Cow;
use std::time::Duration;

use palisade_protocol::{ClientFrame, CloseCode, ErrorCode};
use serde_json::value::RawValue;

use crate::Timestamp;
use crate::auth::{AuthError, Identity, TokenVerifier};
use crate::csrf::{CsrfSettings, CsrfToken};
use crate::policy::{Denied, Policy};
use crate::replay;
use crate::store::NonceStore;

mod timer;

pub use crate::refusal::{Kind, Refusal};

use timer::{Beat, Heartbeat};

/// What the pipeline consults besides the session itself.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The policy in force for this message.
    pub policy: &'a Policy,
    /// Verifies `refresh` tokens.
    pub verifier: &'a TokenVerifier,
    /// Remembers replay nonces.
    pub nonces: &'a dyn NonceStore,
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Rooms one connection may be in at once.
    pub max_rooms: usize,
    /// How long before `exp` the `expiring` notice is sent.
    pub expiry_notice: Duration,
    /// Grace after `exp` before the connection is closed (the token leeway).
    pub expiry_grace: Duration,
    /// CSRF token rotation.
    pub csrf: CsrfSettings,
    /// Interval between the server's pings.
    pub heartbeat_interval: Duration,
    /// A peer heard from for this long is gone (heartbeat interval plus
    /// timeout).
    pub silence_limit: Duration,
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
        /// Payload after validation and sanitizing, serialized once.
        data: Box<RawValue>,
    },
    /// The token was replaced: remove the connection from `removed` (rooms
    /// the new token may not be in), tell the client, then acknowledge.
    Refreshed {
        /// Correlation id.
        id: Cow<'a, str>,
        /// Rooms the session left because the new token lacks the right.
        removed: Vec<Box<str>>,
    },
    /// Refuse the request with an error frame.
    Reject(Refusal),
}

/// What a timer tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Send `{"type":"expiring","expires_at":…}`.
    Expiring(Timestamp),
    /// The CSRF token rotated: send `{"type":"csrf","csrf":…}` with
    /// [`Session::csrf`].
    CsrfRotated,
    /// Send a WebSocket ping.
    Ping,
    /// Nothing was heard for [`SessionLimits::silence_limit`]: drop the
    /// connection without a close frame (a peer that does not answer pings
    /// would not answer a close either).
    Silent,
    /// Close the connection.
    Close(CloseCode),
}

/// One authenticated connection.
#[derive(Debug)]
pub struct Session {
    id: String,
    identity: Identity,
    csrf: CsrfToken,
    rooms: Vec<Box<str>>,
    limits: SessionLimits,
    expiry_noticed: bool,
    heartbeat: Heartbeat,
}

impl Session {
    /// Starts a session for a verified identity at `now`.
    pub fn new(identity: Identity, limits: SessionLimits, now: Timestamp) -> Self {
        Self {
            id: crate::random_id("s_"),
            identity,
            csrf: CsrfToken::new(limits.csrf, now),
            rooms: Vec::new(),
            limits,
            expiry_noticed: false,
            heartbeat: Heartbeat::new(limits.heartbeat_interval, limits.silence_limit, now),
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

    /// The CSRF token clients must echo now.
    pub fn csrf(&self) -> &str {
        self.csrf.current()
    }

    /// Rooms the connection is in.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.iter().map(|r| &**r)
    }

    /// Runs one text frame through the pipeline.
    pub fn on_text<'a>(&mut self, cx: Context<'_>, text: &'a str, now: Timestamp) -> Decision<'a> {
        // Frame size was enforced by the transport before buffering, and the
        // connection's message rate belongs here once the guard exists.
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(e) => return Decision::Reject(e.into()),
        };
        let policy = cx.policy;
        match frame {
            ClientFrame::Join { id, room } => match self.join(policy, &room) {
                Ok(()) => Decision::Join { id, room },
                Err(d) => reject(id, d),
            },
            ClientFrame::Leave { id, room } => match self.rooms.iter().position(|r| **r == *room) {
                Some(i) => {
                    self.rooms.swap_remove(i);
                    Decision::Leave { id, room }
                }
                None => reject(id, Denied::new(ErrorCode::NotMember, "leave without join")),
            },
            ClientFrame::Send { id, room, event, data, csrf, nonce, ts } => {
                let request =
                    Publish { room: &room, event: &event, data, csrf: csrf.as_deref(), nonce: nonce.as_deref(), ts };
                match self.publish(cx, &request, now) {
                    Ok(data) => Decision::Publish { id, room, event, data },
                    Err(refusal) => reject(id, refusal),
                }
            }
            ClientFrame::Refresh { id, token } => match self.refresh(cx, &token, now) {
                Ok(removed) => Decision::Refreshed { id, removed },
                Err(denied) => reject(id, denied),
            },
            ClientFrame::Recover { id, .. } => {
                reject(id, Denied::new(ErrorCode::BadRequest, "room history is not kept"))
            }
        }
    }

    /// A binary frame: refused until a policy allows binary data.
    pub fn on_binary(&self) -> CloseCode {
        CloseCode::Unsupported
    }

    /// Any frame (text, binary, ping, pong, close) arrived at `now`: the
    /// peer is alive.
    pub fn on_heard(&mut self, now: Timestamp) {
        self.heartbeat.heard(now);
    }

    /// When [`Session::on_timer`] next has something to do; the only
    /// deadline the server waits on.
    pub fn next_timer(&self) -> Timestamp {
        let expiry = if self.expiry_noticed { self.close_at() } else { self.notice_at() };
        expiry.min(self.csrf.next_rotation()).min(self.heartbeat.next())
    }

    /// Called at or after [`Session::next_timer`]; call again until it
    /// returns `None`, as several things can fall due at once.
    pub fn on_timer(&mut self, now: Timestamp) -> Option<TimerAction> {
        if now >= self.close_at() {
            return Some(TimerAction::Close(CloseCode::TokenExpired));
        }
        match self.heartbeat.poll(now) {
            Some(Beat::Silent) => return Some(TimerAction::Silent),
            Some(Beat::Ping) => return Some(TimerAction::Ping),
            None => {}
        }
        if !self.expiry_noticed && now >= self.notice_at() {
            self.expiry_noticed = true;
            return Some(TimerAction::Expiring(self.identity.expires_at));
        }
        if now >= self.csrf.next_rotation() {
            self.csrf.rotate(now);
            return Some(TimerAction::CsrfRotated);
        }
        None
    }

    /// Pipeline steps 4 to 11 for one `send`; frame size (1) and the
    /// envelope (3) are done, rates (2, 8) belong to the guard.
    fn publish(&self, cx: Context<'_>, req: &Publish<'_>, now: Timestamp) -> Result<Box<RawValue>, Refusal> {
        let policy = cx.policy;
        // 4. The event is declared (and its data within its size).
        let rule = policy.event(req.event)?;
        rule.check_size(req.data)?;
        // 5. Replay, stateless part: nonce well formed, `ts` in the window.
        //    Recording the nonce waits for step 11.
        let fresh = if rule.requires_replay_check() {
            Some(replay::check_fresh(req.nonce, req.ts, policy.replay_window(), now)?)
        } else {
            None
        };
        // 6. CSRF, where the event requires it.
        if rule.requires_csrf() && !self.csrf.verify(req.csrf, now) {
            return Err(Denied::new(ErrorCode::CsrfFailed, "csrf token missing or wrong").into());
        }
        // 7. Authorization: the token's rooms claim, permissions for the
        //    room and the event, and membership.
        policy.authorize_publish(&self.identity, req.room, rule)?;
        if !self.is_member(req.room) {
            return Err(Denied::new(ErrorCode::NotMember, "send to a room not joined").into());
        }
        // 9–10. Bounded parse, schema, sanitizers; one serialization.
        let data = rule.shape(req.data, policy.sanitizers())?;
        // 11. Replay, stateful part: record the nonce, last, so a refused
        //     message consumes nothing (docs/ARCHITECTURE.md).
        if let Some(fresh) = fresh {
            fresh.record(cx.nonces, &self.identity.user_id, now)?;
        }
        Ok(data)
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

    /// Leaves every room `policy` no longer lets this identity join (a
    /// reload removed a permission, or a refresh narrowed the roles or the
    /// `rooms` claim); returns them so the server leaves them too and tells
    /// the client. Membership must never outlive the right to it.
    pub fn recheck_rooms(&mut self, policy: &Policy) -> Vec<Box<str>> {
        let mut removed = Vec::new();
        self.rooms.retain(|room| {
            let keep = policy.check_join(&self.identity, room).is_ok();
            if !keep {
                removed.push(room.clone());
            }
            keep
        });
        removed
    }

    fn refresh(&mut self, cx: Context<'_>, token: &str, now: Timestamp) -> Result<Vec<Box<str>>, Denied> {
        let fresh = cx.verifier.verify(token, now).map_err(|e| match e {
            AuthError::Expired => Denied::new(ErrorCode::Expired, "refresh token expired"),
            _ => Denied::new(ErrorCode::Forbidden, "refresh token invalid"),
        })?;
        if fresh.user_id != self.identity.user_id {
            return Err(Denied::new(ErrorCode::Forbidden, "refresh token is for another user"));
        }
        self.identity = fresh;
        self.expiry_noticed = false;
        Ok(self.recheck_rooms(cx.policy))
    }
}

/// The parts of a `send` the pipeline checks.
struct Publish<'a> {
    room: &'a str,
    event: &'a str,
    data: &'a RawValue,
    csrf: Option<&'a str>,
    nonce: Option<&'a str>,
    ts: Option<u64>,
}

/// Refuses the request `id` for `why`.
fn reject<'a>(id: Cow<'_, str>, why: impl Into<Refusal>) -> Decision<'a> {
    Decision::Reject(why.into().answering(id))
}

#[cfg(test)]
mod tests;
