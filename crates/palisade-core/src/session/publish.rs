//! The publish path of [`Session`] (docs/ARCHITECTURE.md, "The pipeline
//! for one message"): steps 4 to 10a for one `send` ([`Session::publish`]),
//! the event checks gateway mode shares (`admit`, `shape`, used by
//! `raw.rs`), and the session's side of the commit step that follows
//! ([`Session::claim`], [`Session::committed`]).

use std::borrow::Cow;

use palisade_protocol::ErrorCode;
use serde_json::value::RawValue;

use super::{Context, Session};
use crate::Timestamp;
use crate::client_ids::{MAX_CID_LEN, Seen};
use crate::guard::{Escalation, Guard, Rate};
use crate::history::HistoryRule;
use crate::policy::{Denied, EventRule};
use crate::refusal::Refusal;
use crate::replay;
use crate::replay::NonceClaim;
use crate::seams::{Claim, Committed};

impl Session {
    /// Pipeline steps 4 to 10a for one `send`; frame size (1), the message
    /// rates (2) and the envelope (3) are done, and the rest (8, 11, the
    /// seq) is the commit step's, which the server performs
    /// (`seams::Commit`).
    pub(super) fn publish<'a>(
        &mut self,
        cx: Context<'_>,
        req: &Publish<'_, 'a>,
        now: Timestamp,
    ) -> Result<Published<'a>, Refusal> {
        let policy = cx.policy;
        // 4 to 7: declared, fresh, CSRF, permissions.
        let (rule, nonce) = self.admit(cx, &req.event, Some(req.room), now)?;
        // 7. ...and membership.
        if !self.is_member(req.room) {
            return Err(Denied::new(ErrorCode::NotMember, "send to a room not joined").into());
        }
        if rule.requires_owner() {
            policy.check_owner(&self.identity, req.room, cx.owners.owner(req.room).as_deref())?;
        }
        let data = req.event.data;
        // 7a. A resend (a `cid` already published) is answered with the
        //     first one's seq, before it costs a rate or a nonce.
        let Some(cid) = req.cid else {
            let data = self.shape(cx, data, rule, now)?;
            return Ok(Published::Fresh { data, recorded: false, rate: rule.rate(), nonce });
        };
        if cid.is_empty() || cid.len() > MAX_CID_LEN {
            return Err(Denied::new(ErrorCode::BadRequest, "cid must be 1 to 64 bytes").into());
        }
        let recorded = match cx.client_ids.check(&self.identity.user_id, cid, now) {
            Seen::New => true,
            Seen::Unrecorded => false,
            Seen::Sent { room, seq } if *room == *req.room => return Ok(Published::Duplicate(Some(seq))),
            Seen::Sent { .. } => {
                return Err(Denied::new(ErrorCode::BadRequest, "cid already used in another room").into());
            }
            Seen::InFlight => return Ok(Published::Duplicate(None)),
        };
        let shaped = self.shape(cx, data, rule, now);
        if shaped.is_err() && recorded {
            cx.client_ids.forget(&self.identity.user_id, cid);
        }
        shaped.map(|data| Published::Fresh { data, recorded, rate: rule.rate(), nonce })
    }

    /// Pipeline steps 4 to 7 for one event, native or (gateway mode) a
    /// backend's, in `room` or, for a backend whose rooms the policy does
    /// not see, none: the event is declared and its data within its size,
    /// the stateless replay check, CSRF, and the token's and the roles'
    /// permissions. Membership and ownership are the caller's.
    pub(super) fn admit<'p, 'a>(
        &self,
        cx: Context<'p>,
        req: &EventRequest<'_, 'a>,
        room: Option<&str>,
        now: Timestamp,
    ) -> Result<(&'p EventRule, Option<NonceClaim<'a>>), Refusal> {
        let policy = cx.policy;
        // 4. The event is declared (and its data within its size).
        let rule = policy.event(req.event)?;
        rule.check_size(req.data)?;
        // 5. Replay, stateless part: nonce well formed, `ts` in the window.
        //    Spending the nonce is the commit step's (11).
        let nonce = if rule.requires_replay_check() {
            Some(replay::check_fresh(req.nonce.clone(), req.ts, policy.replay_window(), now)?)
        } else {
            None
        };
        // 6. CSRF, where the event requires it, and on a cookie session
        //    always.
        if (self.csrf_every_send || rule.requires_csrf()) && !self.csrf.verify(req.csrf, now) {
            return Err(Denied::new(ErrorCode::CsrfFailed, "csrf token missing or wrong").into());
        }
        // 7. Authorization: the token's rooms claim, permissions for the
        //    room and the event.
        match room {
            Some(room) => policy.authorize_publish(&self.identity, room, rule)?,
            None => policy.authorize_event(&self.identity, rule)?,
        }
        Ok((rule, nonce))
    }

    /// Pipeline steps 9 to 10a for one `send`: bounded parse, schema,
    /// sanitizers, one serialization; then the spam heuristics, on what
    /// the client sent.
    pub(super) fn shape(
        &mut self,
        cx: Context<'_>,
        data: &RawValue,
        rule: &EventRule,
        now: Timestamp,
    ) -> Result<Box<RawValue>, Refusal> {
        let shaped = rule.shape(data, cx.policy.sanitizers())?;
        let verdict = cx.guard.spam(data.get());
        self.judge(cx.guard, verdict, now)?;
        Ok(shaped)
    }

    /// The commit step's claim for a [`Decision::Publish`] of this session
    /// (its `room`, `event`, `rate`, `nonce` and `history`).
    pub fn claim<'d>(
        &'d self,
        room: &'d str,
        event: &'d str,
        rate: Option<Rate>,
        nonce: Option<NonceClaim<'d>>,
        history: HistoryRule,
    ) -> Claim<'d> {
        Claim {
            user: &self.identity.user_id,
            restricted: self.standing.is_restricted(),
            room,
            event,
            rate,
            nonce,
            history,
        }
    }

    /// What the commit step made of this session's claim: a refusal is
    /// fed to the guard's scores like any other, and comes back with what
    /// it escalated to; under `abuse.dry_run`, what it let through is kept
    /// for [`Session::take_unenforced`].
    pub fn committed(
        &mut self,
        guard: &Guard,
        outcome: Result<&Committed, &Refusal>,
        now: Timestamp,
    ) -> Option<Escalation> {
        match outcome {
            Ok(Committed { unenforced: Some(refusal), .. }) => {
                let escalation = self.penalize(guard, refusal, now);
                self.unenforced = Some(Box::new((refusal.clone(), escalation)));
                None
            }
            Ok(_) => None,
            Err(refusal) => Some(self.penalize(guard, refusal, now)),
        }
    }
}

/// The parts of a `send` the pipeline checks; `'a` is the frame's.
pub(super) struct Publish<'r, 'a> {
    pub(super) room: &'r str,
    pub(super) event: EventRequest<'r, 'a>,
    pub(super) cid: Option<&'r str>,
}

/// The parts of one event, native or a backend's, that steps 4 to 7 check.
pub(super) struct EventRequest<'r, 'a> {
    pub(super) event: &'r str,
    pub(super) data: &'a RawValue,
    pub(super) csrf: Option<&'r str>,
    pub(super) nonce: Option<Cow<'a, str>>,
    pub(super) ts: Option<u64>,
}

/// What the pipeline made of a `send`.
pub(super) enum Published<'a> {
    /// A message for the commit step; `recorded`: its `cid` is remembered,
    /// to be marked sent once published.
    Fresh { data: Box<RawValue>, recorded: bool, rate: Option<Rate>, nonce: Option<NonceClaim<'a>> },
    /// A resend of a published `cid` (its `seq`; `None` while the first
    /// is still being published).
    Duplicate(Option<u64>),
}
