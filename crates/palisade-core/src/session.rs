//! One connection's state and the pipeline every client frame goes through
//! (docs/ARCHITECTURE.md, "The pipeline for one message"). The server feeds
//! frames and timer ticks in; the session says what to do.
//! `Session::publish` (`publish.rs`) reads like that list; the rate steps
//! (2 and 8) ask the [`Guard`], and every refusal feeds the guard's scores.
//! Here: the session's state, the frame dispatch, rooms, `refresh` and the
//! timers.

use std::borrow::Cow;
use std::time::Duration;

use palisade_protocol::{ClientFrame, CloseCode, ErrorCode};
use rand::CryptoRng;

use crate::Timestamp;
use crate::auth::{AuthError, Identity, Revocations, TokenVerifier};
use crate::client_ids::ClientIds;
use crate::csrf::{CsrfSettings, CsrfToken};
use crate::guard::{Escalation, Guard, Standing, Verdict};
use crate::ownership::{OwnerClaim, Owners};
use crate::policy::{Denied, OwnerMode, Policy};
use crate::refusal::Kind;
use crate::threat::geo::Locale;

mod decision;
mod publish;
mod raw;
mod timer;

pub use crate::refusal::Refusal;
pub use decision::Decision;
pub use raw::{RawDecision, RawGate};

use publish::{EventRequest, Publish, Published};
use timer::{Beat, Heartbeat};

/// What the pipeline consults besides the session itself.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The policy in force for this message.
    pub policy: &'a Policy,
    /// Verifies `refresh` tokens.
    pub verifier: &'a TokenVerifier,
    /// Rates, scores and bans.
    pub guard: &'a Guard,
    /// Revoked tokens, for `refresh`.
    pub revocations: &'a Revocations,
    /// Rooms' owners.
    pub owners: &'a Owners,
    /// Recent client message ids (`send.cid`).
    pub client_ids: &'a ClientIds,
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

/// Which pass over a frame the pipeline makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The frame as it arrived: every step, and keys may be asked for.
    First,
    /// The frame again after the keys it asked for were fetched: its rate
    /// was counted on the first pass, and it never asks twice.
    Resumed,
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
    standing: Standing,
    /// Authenticated by the session cookie: every `send` needs the CSRF
    /// token, whatever its event says.
    csrf_every_send: bool,
    /// The connection's country, looked up at the handshake, for room
    /// rules' countries.
    locale: Locale,
    /// Under `abuse.dry_run`: the last refusal the guard did not enforce.
    /// Boxed: it is rare, and every idle connection would carry its size.
    unenforced: Option<Box<(Refusal, Escalation)>>,
}

impl Session {
    /// Starts a session for a verified identity, connected as `standing`
    /// says, at `now`; its id and CSRF token come from `rng`.
    pub fn new(
        identity: Identity,
        limits: SessionLimits,
        standing: Standing,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Self {
        Self {
            id: crate::random_id("s_", rng),
            identity,
            csrf: CsrfToken::new(limits.csrf, now, rng),
            rooms: Vec::new(),
            limits,
            expiry_noticed: false,
            heartbeat: Heartbeat::new(limits.heartbeat_interval, limits.silence_limit, now),
            standing,
            csrf_every_send: false,
            locale: Locale::Exempt,
            unenforced: None,
        }
    }

    /// A session from `locale` (the handshake's lookup), which room rules'
    /// countries judge.
    pub fn with_locale(mut self, locale: Locale) -> Self {
        self.locale = locale;
        self
    }

    /// A session authenticated by a cookie, which a browser sends on its
    /// own: from now on every `send` must carry the CSRF token.
    pub fn with_csrf_on_every_send(mut self) -> Self {
        self.csrf_every_send = true;
        self
    }

    /// Whether the token the connection runs on has been revoked since
    /// (the server asks when the revocations change, and closes with 4003).
    pub fn is_revoked(&self, revocations: &Revocations) -> bool {
        revocations.is_revoked(&self.identity)
    }

    /// The connection's standing with the guard (its address).
    pub fn standing(&self) -> &Standing {
        &self.standing
    }

    /// Under `abuse.dry_run`, what the guard would have refused during the
    /// last call, and what it would have escalated to: for the server to
    /// log and count.
    pub fn take_unenforced(&mut self) -> Option<(Refusal, Escalation)> {
        self.unenforced.take().map(|b| *b)
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

    /// Runs one text frame through the pipeline; a refusal is fed to the
    /// guard's scores and comes back with what it escalated to.
    pub fn on_text<'a>(&mut self, cx: Context<'_>, text: &'a str, now: Timestamp) -> Decision<'a> {
        self.run(cx, text, now, Pass::First)
    }

    /// Runs again a frame that [`Decision::KeysWanted`], once the server has
    /// fetched what was due: the same steps but the rate (already counted),
    /// and never [`Decision::KeysWanted`] again.
    pub fn resume<'a>(&mut self, cx: Context<'_>, text: &'a str, now: Timestamp) -> Decision<'a> {
        self.run(cx, text, now, Pass::Resumed)
    }

    fn run<'a>(&mut self, cx: Context<'_>, text: &'a str, now: Timestamp, pass: Pass) -> Decision<'a> {
        match self.decide(cx, text, now, pass) {
            Ok(decision) => decision,
            Err(refusal) => {
                let escalation = self.penalize(cx.guard, &refusal, now);
                Decision::Reject(refusal, escalation)
            }
        }
    }

    /// A ping or pong from the client: counted against
    /// `abuse.control_rate`. A ping has no reply to refuse, so an excess
    /// only feeds the score; `Some` is what that escalated to.
    pub fn on_control(&mut self, guard: &Guard, now: Timestamp) -> Option<Escalation> {
        let verdict = guard.control(&mut self.standing, now);
        self.judge(guard, verdict, now).err().map(|refusal| self.penalize(guard, &refusal, now))
    }

    /// A violation the transport saw (an oversized frame, bad UTF-8, a
    /// protocol error, a binary frame): the connection is closing anyway,
    /// but the user and the address keep the score.
    pub fn on_transport_violation(&mut self, guard: &Guard, kind: Kind, now: Timestamp) -> Escalation {
        self.penalize(guard, &Refusal::new(kind, "transport"), now)
    }

    fn penalize(&mut self, guard: &Guard, refusal: &Refusal, now: Timestamp) -> Escalation {
        let ip = self.standing.ip();
        guard.penalize(Some(&mut self.standing), ip, Some(&self.identity.user_id), refusal.kind, now)
    }

    /// What a guard verdict means here: a refusal, or (dry run) a note for
    /// the server and a pass.
    fn judge(&mut self, guard: &Guard, verdict: Verdict, now: Timestamp) -> Result<(), Refusal> {
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Refuse(refusal) => Err(refusal),
            Verdict::WouldRefuse(refusal) => {
                let escalation = self.penalize(guard, &refusal, now);
                self.unenforced = Some(Box::new((refusal, escalation)));
                Ok(())
            }
        }
    }

    fn decide<'a>(
        &mut self,
        cx: Context<'_>,
        text: &'a str,
        now: Timestamp,
        pass: Pass,
    ) -> Result<Decision<'a>, Refusal> {
        // 1. Frame size was enforced by the transport before buffering.
        // 2. Message rates, before any parsing; a refused frame is parsed
        //    only to answer its id.
        if pass == Pass::First {
            let verdict = cx.guard.message(&mut self.standing, &self.identity.user_id, now);
            if let Err(refusal) = self.judge(cx.guard, verdict, now) {
                return Err(match ClientFrame::parse(text) {
                    Ok(frame) => refusal.answering(Cow::Borrowed(frame.id())),
                    Err(e) => Refusal { id: e.id, ..refusal },
                });
            }
        }
        // 3. The envelope.
        let frame = ClientFrame::parse(text)?;
        let policy = cx.policy;
        match frame {
            ClientFrame::Join { id, room } => match self.join(cx, &room, now) {
                Ok(claimed) => Ok(Decision::Join { id, room, claimed }),
                Err(refusal) => Err(refusal.answering(id)),
            },
            ClientFrame::Create { id, room } => match self.create(cx, &room, now) {
                Ok(claimed) => Ok(Decision::Create { id, room, claimed }),
                Err(refusal) => Err(refusal.answering(id)),
            },
            ClientFrame::DeleteRoom { id, room } => {
                match policy.check_owner(&self.identity, &room, cx.owners.owner(&room).as_deref()) {
                    Ok(()) => {
                        let owner = cx.owners.release(&room);
                        self.forget(&room);
                        Ok(Decision::DeleteRoom { id, room, owner })
                    }
                    Err(d) => Err(Refusal::from(d).answering(id)),
                }
            }
            ClientFrame::RemoveMember { id, room, user } => {
                match policy.check_owner(&self.identity, &room, cx.owners.owner(&room).as_deref()) {
                    Ok(()) => Ok(Decision::RemoveMember { id, room, user }),
                    Err(d) => Err(Refusal::from(d).answering(id)),
                }
            }
            ClientFrame::Leave { id, room } => match self.rooms.iter().position(|r| **r == *room) {
                Some(i) => {
                    self.rooms.swap_remove(i);
                    Ok(Decision::Leave { id, room })
                }
                None => Err(Refusal::from(Denied::new(ErrorCode::NotMember, "leave without join")).answering(id)),
            },
            ClientFrame::Send { id, room, event, data, csrf, nonce, ts, cid } => {
                let event_request = EventRequest { event: &event, data, csrf: csrf.as_deref(), nonce, ts };
                let request = Publish { room: &room, event: event_request, cid: cid.as_deref() };
                match self.publish(cx, &request, now) {
                    Ok(Published::Fresh { data, recorded, rate, nonce }) => Ok(Decision::Publish {
                        history: policy.history(&room),
                        cid: if recorded { cid } else { None },
                        rate,
                        nonce,
                        id,
                        room,
                        event,
                        data,
                    }),
                    Ok(Published::Duplicate(seq)) => Ok(Decision::Duplicate { id, seq }),
                    Err(refusal) => Err(refusal.answering(id)),
                }
            }
            ClientFrame::Refresh { token, .. }
                if pass == Pass::First && cx.verifier.issuers().key_wanted(&token, now).is_some() =>
            {
                Ok(Decision::KeysWanted { token })
            }
            ClientFrame::Refresh { id, token } => match self.refresh(cx, &token, now) {
                Ok(removed) => Ok(Decision::Refreshed { id, removed }),
                Err(denied) => Err(Refusal::from(denied).answering(id)),
            },
            // The same rights as `join`, and it joins: a client back from
            // a reconnect asks for what it missed and for what comes next.
            ClientFrame::Recover { id, room, since } => {
                let verdict = cx.guard.recover(&self.standing, &self.identity.user_id, now);
                if let Err(refusal) = self.judge(cx.guard, verdict, now) {
                    return Err(refusal.answering(id));
                }
                match self.join(cx, &room, now) {
                    Ok(claimed) => Ok(Decision::Recover { id, room, since, claimed }),
                    Err(refusal) => Err(refusal.answering(id)),
                }
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
    /// returns `None`, as several things can fall due at once. A CSRF
    /// rotation draws its new token from `rng`.
    pub fn on_timer(&mut self, now: Timestamp, rng: &mut impl CryptoRng) -> Option<TimerAction> {
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
            self.csrf.rotate(now, rng);
            return Some(TimerAction::CsrfRotated);
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

    /// Joins `room` if the policy allows; whether the join made the user
    /// its owner.
    fn join(&mut self, cx: Context<'_>, room: &str, now: Timestamp) -> Result<bool, Refusal> {
        may_enter(&self.identity, self.locale, cx.policy, room)?;
        if self.is_member(room) {
            return Ok(false);
        }
        if self.rooms.len() >= self.limits.max_rooms {
            return Err(Denied::new(ErrorCode::Forbidden, "too many rooms on one connection").into());
        }
        let claimed = match cx.policy.owner_mode(room) {
            None => false,
            Some(_) if cx.owners.owner(room).is_some() => false,
            // Joining never depends on owning: a user at its quota (or a
            // race lost to another joiner) joins a room it does not own.
            Some(OwnerMode::FirstJoin) => cx.owners.claim(room, &self.identity.user_id, now) == Ok(OwnerClaim::Claimed),
            Some(OwnerMode::Create) => return Err(Denied::new(ErrorCode::Forbidden, "room not created").into()),
        };
        self.rooms.push(room.into());
        Ok(claimed)
    }

    /// Claims `room` for the user, then joins it; whether the room had no
    /// owner before.
    fn create(&mut self, cx: Context<'_>, room: &str, now: Timestamp) -> Result<bool, Refusal> {
        cx.policy.check_create(&self.identity, room)?;
        // Before the claim: a refused country never owns the room.
        cx.policy.check_locale(room, self.locale)?;
        if !self.is_member(room) && self.rooms.len() >= self.limits.max_rooms {
            return Err(Denied::new(ErrorCode::Forbidden, "too many rooms on one connection").into());
        }
        let claimed = cx.owners.claim(room, &self.identity.user_id, now)? == OwnerClaim::Claimed;
        self.join(cx, room, now)?;
        Ok(claimed)
    }

    /// A cluster's shared record did not give `room` to the user whose
    /// `join` or `create` claimed it here (another node's user holds it,
    /// or the owner limits are reached): a join stands, since joining
    /// never depends on owning; a create is refused and leaves the room,
    /// as when the owner is known here.
    pub fn claim_lost(&mut self, room: &str, creating: bool) -> Result<(), Denied> {
        if !creating {
            return Ok(());
        }
        self.forget(room);
        Err(Denied::new(ErrorCode::Forbidden, "room claimed elsewhere in the cluster, or owner limits reached"))
    }

    /// Takes `room` out of the rooms the connection is in (the room was
    /// deleted, or its owner removed the user); whether it was in it.
    pub fn forget(&mut self, room: &str) -> bool {
        let before = self.rooms.len();
        self.rooms.retain(|r| **r != *room);
        self.rooms.len() != before
    }

    /// Leaves every room `policy` no longer lets this identity join (a
    /// reload removed a permission, or a refresh narrowed the roles or the
    /// `rooms` claim); returns them so the server leaves them too and tells
    /// the client. Membership must never outlive the right to it.
    pub fn recheck_rooms(&mut self, policy: &Policy) -> Vec<Box<str>> {
        let mut removed = Vec::new();
        self.rooms.retain(|room| {
            let keep = may_enter(&self.identity, self.locale, policy, room).is_ok();
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
        if fresh.user_id != self.identity.user_id || fresh.external_issuer != self.identity.external_issuer {
            return Err(Denied::new(ErrorCode::Forbidden, "refresh token is for another user"));
        }
        if cx.revocations.is_revoked(&fresh) {
            return Err(Denied::new(ErrorCode::Forbidden, "refresh token revoked"));
        }
        self.identity = fresh;
        self.expiry_noticed = false;
        Ok(self.recheck_rooms(cx.policy))
    }
}

/// The policy's rights to be in `room`: the roles' and the token's, and
/// the room rule's countries for the connection's `locale`.
fn may_enter(who: &Identity, locale: Locale, policy: &Policy, room: &str) -> Result<(), Refusal> {
    policy.check_join(who, room)?;
    policy.check_locale(room, locale)
}

#[cfg(test)]
mod raw_tests;
#[cfg(test)]
mod tests;
