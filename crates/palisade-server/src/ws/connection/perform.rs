//! What a connection does with the session's decision on one text frame
//! (`Conn::perform`): joins and owner claims, room deletions and removals
//! (on every node, through the control channel), `recover`, and
//! publishing through the commit seam while the connection's queue keeps
//! going out. The connection loop (`super`) reads frames and writes the
//! [`Reply`].

use std::borrow::Cow;
use std::future::Future;

use futures_util::SinkExt as _;
use palisade_core::Timestamp;
use palisade_core::log::Clipped;
use palisade_core::refusal::Kind;
use palisade_core::seams::{Leaving, Outgoing};
use palisade_core::session::{Decision, Refusal};
use palisade_protocol::{CloseCode, ServerFrame};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::{info, warn};

use super::Conn;
use crate::exit::Exit;
use crate::ws::transport::Ws;

/// What one text frame comes to.
pub(super) struct Reply {
    /// Events a `recover` replays, before its `ack`.
    pub(super) replay: Vec<Utf8Bytes>,
    /// The `ack` or `error` for the sender.
    pub(super) frame: String,
    /// Rooms a `refresh` lost.
    pub(super) removed: Vec<Box<str>>,
    /// Close the connection after the reply (the guard disconnected or
    /// banned it).
    pub(super) close: Option<CloseCode>,
}

impl Conn<'_> {
    /// Joins `room`: the `seq` its `ack` carries, after which every event
    /// of the room reaches this connection. The member is added first and
    /// the room's newest `seq` read after, so nothing above the answer is
    /// missed; an event at or below it may still arrive (clients drop
    /// repeats by `seq`, docs/PROTOCOL.md).
    async fn join(&mut self, room: &str, now: Timestamp) -> Result<u64, Refusal> {
        let delivered = self.rooms.join(room).await?;
        Ok(self.state.history.head(room, now).await?.max(delivered))
    }

    /// Joins `room` after recording the claim the session made of it, if
    /// any; the `ack`, or the refusal. What a lost claim means is the
    /// session's (`Session::claim_lost`).
    async fn enter(
        &mut self,
        ws: &mut Ws,
        id: &str,
        room: &str,
        claimed: bool,
        creating: bool,
        now: Timestamp,
    ) -> Result<String, Exit> {
        let joined = match self.record_claim(ws, room, claimed, now).await? {
            Ok(false) if claimed => match self.session.claim_lost(room, creating) {
                Ok(()) => self.join(room, now).await,
                Err(denied) => Err(Refusal::from(denied)),
            },
            Ok(_) => self.join(room, now).await,
            Err(refusal) => Err(refusal),
        };
        Ok(match joined {
            Ok(seq) => ack(id, Some(seq)),
            Err(refusal) => {
                self.session.forget(room);
                self.refuse(&refusal.answering(Cow::Borrowed(id)))
            }
        })
    }

    /// Records the claim the session made of `room` (`claimed`) in the
    /// owners' record (`OwnerLedger::claimed`): whether the user owns the
    /// room now. Without a claim, nothing to record.
    async fn record_claim(
        &self,
        ws: &mut Ws,
        room: &str,
        claimed: bool,
        now: Timestamp,
    ) -> Result<Result<bool, Refusal>, Exit> {
        if !claimed {
            return Ok(Ok(false));
        }
        let user = &self.session.identity().user_id;
        let owned = self.meanwhile(ws, self.state.owners.claimed(room, user, now)).await?;
        match &owned {
            Ok(true) => info!(conn = self.rooms.id(), user = %user, room = %room, "room owner recorded"),
            Ok(false) => {
                info!(conn = self.rooms.id(), user = %user, room = %room, "room owned elsewhere in the cluster")
            }
            Err(_) => {}
        }
        Ok(owned)
    }

    /// Awaits `call`, a seam's, while the room events queued for this
    /// connection keep going out: a cluster's commit answers over the
    /// network, and the events must not wait behind it (nor fill the queue
    /// and close the connection as a slow consumer). Not for a `recover`,
    /// whose replay must reach the socket before the live events after it.
    async fn meanwhile<T>(&self, ws: &mut Ws, call: impl Future<Output = T>) -> Result<T, Exit> {
        tokio::pin!(call);
        loop {
            tokio::select! {
                biased;
                out = &mut call => return Ok(out),
                // Boxed: rare (never on one node, whose commit answers at
                // once), and its state would otherwise enlarge the future
                // every idle connection keeps (BENCHMARKS.md).
                first = self.control.events.next() => Box::pin(self.forward(ws, first)).await?,
            }
        }
    }

    /// Writes a `recover`'s events without flushing: the `ack` that
    /// follows flushes them all at once.
    pub(super) async fn replay(&self, ws: &mut Ws, events: Vec<Utf8Bytes>) -> Result<(), Exit> {
        if events.is_empty() {
            return Ok(());
        }
        self.state.metrics.messages_out.increment(events.len() as u64);
        self.write(async {
            for event in events {
                ws.feed(Message::Text(event)).await?;
            }
            Ok(())
        })
        .await
    }

    /// Performs the session's decision on one text frame; returns the reply
    /// for the sender, the rooms a `refresh` lost, and whether the
    /// connection must close after the reply. Queued events written while
    /// a commit is in flight can end the connection (`Err`).
    pub(super) async fn perform(&mut self, ws: &mut Ws, decision: Decision<'_>, now: Timestamp) -> Result<Reply, Exit> {
        let mut reply = Reply { replay: Vec::new(), frame: String::new(), removed: Vec::new(), close: None };
        // The room-owner paths (joins, `create`, deletion, `recover`) await
        // the most state and happen least: boxed, so the future every idle
        // connection keeps is sized by a `send`, not by them
        // (BENCHMARKS.md, "the frame layer").
        reply.frame = match decision {
            Decision::Join { id, room, claimed } => Box::pin(self.enter(ws, &id, &room, claimed, false, now)).await?,
            Decision::Create { id, room, claimed } => Box::pin(self.enter(ws, &id, &room, claimed, true, now)).await?,
            Decision::DeleteRoom { id, room, owner } => {
                self.rooms.leave(&room);
                let user = &self.session.identity().user_id;
                // The shared owner first: a deletion the cluster has not
                // recorded must not empty the room anywhere.
                match Box::pin(self.meanwhile(ws, self.state.owners.released(&room, owner))).await? {
                    Ok(()) => {
                        // Forgetting what the room keeps may fail on its
                        // own: the room is deleted either way, and a new
                        // life of it never replays the old one's events
                        // as complete (`seq` goes on).
                        if let Err(refusal) = self.meanwhile(ws, self.state.history.clear(&room)).await? {
                            warn!(room = %room, reason = %refusal.reason, "the deleted room's history was not dropped");
                        }
                        let members = self.state.channel.leave(&room, Leaving::Everyone);
                        info!(conn = self.rooms.id(), user = %user, room = %room, members, "room deleted");
                        ack(&id, None)
                    }
                    Err(refusal) => self.refuse(&refusal.answering(id)),
                }
            }
            Decision::RemoveMember { id, room, user } => {
                let removed = self.state.channel.leave(&room, Leaving::User(&user));
                let max = self.limits.max_logged_text;
                info!(conn = self.rooms.id(), user = %self.session.identity().user_id, room = %room, removed_user = %Clipped::new(&user, max), removed, "member removed from room");
                ack(&id, None)
            }
            Decision::Recover { id, room, since, claimed } => {
                let recorded = Box::pin(self.record_claim(ws, &room, claimed, now)).await?;
                // Joined first: every event after the read reaches the
                // queue, and one published in between comes twice, once
                // each way, with one `seq` (clients drop repeats by `seq`).
                let joined = match recorded {
                    Ok(_) => self.rooms.join(&room).await,
                    Err(refusal) => Err(refusal),
                };
                let kept = match joined {
                    Ok(_) => self.state.history.range(&room, since, now).await,
                    Err(refusal) => {
                        self.session.forget(&room);
                        Err(refusal)
                    }
                };
                match kept {
                    Ok(kept) => {
                        reply.replay = kept.replay.events;
                        let complete = Some(kept.replay.complete);
                        ServerFrame::Ack { id: &id, seq: Some(kept.seq), complete, duplicate: None }.to_json()
                    }
                    Err(refusal) => self.refuse(&refusal.answering(id)),
                }
            }
            Decision::Leave { id, room } => {
                self.rooms.leave(&room);
                ack(&id, None)
            }
            Decision::Publish { id, room, event, data, history, cid, rate, nonce } => {
                // What `abuse.dry_run` let through in the pipeline, reported
                // before the commit step may let more through.
                reply.close = self.unenforced();
                let outcome = {
                    let who = self.session.identity();
                    let claim = self.session.claim(&room, &event, rate, nonce, history);
                    let outgoing = Outgoing { from_id: &who.user_id, from_name: &who.name, data: &data, ts: now };
                    self.meanwhile(ws, self.state.commit.commit(claim, outgoing, now)).await?
                };
                let escalation = self.session.committed(&self.state.guard, outcome.as_ref(), now);
                let user = &self.session.identity().user_id;
                match outcome {
                    Ok(committed) => {
                        if let Some(cid) = cid {
                            self.state.client_ids.sent(user, &cid, &room, committed.seq);
                        }
                        ack(&id, Some(committed.seq))
                    }
                    Err(refusal) => {
                        if let Some(cid) = cid {
                            self.state.client_ids.forget(user, &cid);
                        }
                        // The refusal's log line first, then what it led to
                        // (performed even when the connection closes anyway).
                        let frame = self.refuse(&refusal.answering(id));
                        let closing = escalation.and_then(|e| self.escalate(e));
                        reply.close = reply.close.or(closing);
                        frame
                    }
                }
            }
            Decision::Duplicate { id, seq } => {
                ServerFrame::Ack { id: &id, seq, complete: None, duplicate: Some(true) }.to_json()
            }
            Decision::Refreshed { id, removed } => {
                reply.removed = removed;
                ack(&id, None)
            }
            Decision::Reject(refusal, escalation) => {
                // The refusal's log line first, then what it led to.
                let frame = self.refuse(&refusal);
                reply.close = self.escalate(escalation);
                frame
            }
            // A resumed frame never asks again (core's `Session::resume`).
            Decision::KeysWanted { .. } => {
                self.refuse(&Refusal::new(Kind::Internal, "keys asked for twice for one frame"))
            }
        };
        reply.close = reply.close.or_else(|| self.unenforced());
        Ok(reply)
    }
}

fn ack(id: &str, seq: Option<u64>) -> String {
    ServerFrame::Ack { id, seq, complete: None, duplicate: None }.to_json()
}
