//! Gateway mode's pass over one client→backend message: the pipeline of
//! `Session::publish`, on the backend's own JSON (docs/GATEWAY.md,
//! "Inbound"). The steps are the same functions a native `send` runs;
//! what differs is where the fields come from (the format's pointers),
//! that the policy sees no membership (the backend keeps its rooms), and
//! the end: the message is forwarded, byte for byte when the checks
//! changed nothing, instead of being committed to a room.

use std::borrow::Cow;

use palisade_protocol::ErrorCode;
use serde_json::Value;

use super::publish::EventRequest;
use super::{Context, Session};
use crate::Timestamp;
use crate::guard::Escalation;
use crate::history::HistoryRule;
use crate::json::JsonLimits;
use crate::passthrough::{self, Packet, RawFormat};
use crate::policy::Denied;
use crate::refusal::{Kind, Refusal};
use crate::seams::{Committed, commit};
use crate::store::NonceStore;

/// What gateway mode's pass consults besides the native [`Context`].
#[derive(Clone, Copy)]
pub struct RawGate<'a> {
    /// The backend's message format.
    pub format: &'a RawFormat,
    /// Where replay nonces are spent (step 11).
    pub nonces: &'a dyn NonceStore,
    /// Bounds of the whole message's parse (step 3).
    pub json: JsonLimits,
}

/// What to do with one client→backend message.
#[derive(Debug)]
pub enum RawDecision<'a> {
    /// Forward this to the backend: the frame as it came when nothing
    /// changed, else the sanitized copy.
    Forward(Cow<'a, str>),
    /// Refused: answer or close as `gateway.on_refusal` says; the refusal
    /// was scored and escalated to this.
    Reject(Refusal, Escalation),
}

impl Session {
    /// Runs one client text frame through the pipeline for the backend.
    pub fn on_raw<'a>(&mut self, cx: Context<'_>, gate: RawGate<'_>, text: &'a str, now: Timestamp) -> RawDecision<'a> {
        match self.raw(cx, gate, text, now) {
            Ok(out) => RawDecision::Forward(out),
            Err(refusal) => {
                let escalation = self.penalize(cx.guard, &refusal, now);
                RawDecision::Reject(refusal, escalation)
            }
        }
    }

    fn raw<'a>(
        &mut self,
        cx: Context<'_>,
        gate: RawGate<'_>,
        text: &'a str,
        now: Timestamp,
    ) -> Result<Cow<'a, str>, Refusal> {
        // 1. Frame size was enforced by the transport before buffering.
        // 2. Message rates, before any parsing.
        let verdict = cx.guard.message(&mut self.standing, &self.identity.user_id, now);
        self.judge(cx.guard, verdict, now)?;
        // 3. The framing, then the JSON within bounds.
        let (prefix, body) = match gate.format.decode(text) {
            Packet::Control => return Ok(Cow::Borrowed(text)),
            Packet::Message { prefix, body } => (prefix, body),
            Packet::Ack => {
                return Err(Denied::new(ErrorCode::UnknownEvent, "gateway: a client's acknowledgement").into());
            }
            Packet::Refused(why) => return Err(Refusal::new(Kind::Protocol, format!("gateway: {why}"))),
        };
        let message = passthrough::parse(body, gate.json)?;
        let fields = gate.format.fields(&message)?;
        let data = passthrough::raw(fields.data)?;
        let req = EventRequest {
            event: fields.event,
            data: &data,
            csrf: fields.csrf,
            nonce: fields.nonce.map(Cow::Borrowed),
            ts: fields.ts,
        };
        // 4 to 7: declared, fresh, CSRF, permissions; ownership where the
        // format names the room.
        let (rule, nonce) = self.admit(cx, &req, fields.room, now)?;
        if rule.requires_owner() {
            let Some(room) = fields.room else {
                return Err(Denied::new(ErrorCode::Forbidden, "gateway: an owner's event without a room field").into());
            };
            cx.policy.check_owner(&self.identity, room, cx.owners.owner(room).as_deref())?;
        }
        // 9, 10. Schema and sanitizers, bounded; the spam heuristics.
        let shaped = self.shape(cx, &data, rule, now)?;
        // 8, 11. The event's rate, then the nonce, last: the same checks
        // the memory commit step makes, with nothing to publish.
        let claim = self.claim(fields.room.unwrap_or(""), fields.event, rule.rate(), nonce, HistoryRule::default());
        let unenforced = commit::check(&claim, cx.guard, gate.nonces, now)?;
        self.committed(cx.guard, Ok(&Committed { seq: 0, unenforced }), now);
        let shaped: Value = serde_json::from_str(shaped.get())
            .map_err(|e| Refusal::new(Kind::Internal, format!("gateway: reparse: {e}")))?;
        if shaped == *fields.data {
            return Ok(Cow::Borrowed(text));
        }
        Ok(Cow::Owned(gate.format.rewrite(prefix, message.clone(), shaped)))
    }
}
