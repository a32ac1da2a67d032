//! Follows the store: bans and revocations that other processes
//! (`palisade ban`, `palisade revoke`) or, in cluster mode, other nodes
//! write while the server runs take effect within [`POLL`] and one store
//! read; in cluster mode at once, woken by the change stream
//! (`cluster::changes`), and within [`CLUSTER_POLL`] if a wake is lost.

use palisade_core::seams::{Command, Target};
use std::sync::Arc;
use std::time::Duration;

use palisade_protocol::CloseCode;
use tracing::{error, info};

use crate::state::AppState;

/// How often the store is asked whether another process changed it.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// The same in cluster mode, where the change stream wakes the follower
/// and the poll only covers a lost wake.
const CLUSTER_POLL: Duration = Duration::from_secs(2);

/// Polls the store's change counter; when it moves, reloads the bans
/// (closing the live connections of new ones with 4003) and the
/// revocations (asking every live connection to check its token again).
pub(crate) async fn follow_store(state: Arc<AppState>) {
    let mut seen = None;
    let mut failing = false;
    let wake = state.changes.as_ref().map(|changes| changes.wake());
    let mut tick = tokio::time::interval(if wake.is_some() { CLUSTER_POLL } else { POLL });
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let woken = async {
            match &wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
            () = woken => {}
        }
        let now = state.clock.now();
        let memory = state.guard.settings().ban_terms.memory;
        // Before the read: bans this server saves while it runs are kept,
        // and revocations it reloads meanwhile are not undone.
        let mark = state.guard.bans().mark();
        let revocations_mark = state.revocations.mark();
        let read = crate::gateway::call("follow_poll", &state.store, move |store| {
            let version = store.version()?;
            if seen == Some(version) {
                return Ok(None);
            }
            Ok(Some((version, store.bans(now, memory)?, store.revocations()?)))
        })
        .await;
        match read {
            Ok(None) => failing = false,
            Ok(Some((version, bans, revoked))) => {
                failing = false;
                seen = Some(version);
                for ban in state.guard.bans().replace(bans, mark, now) {
                    let closed = state.channel.send(Target::Subject(&ban.subject), Command::Close(CloseCode::Revoked));
                    info!(subject = %ban.subject, closed, "ban from the store in force");
                }
                state.revoker.apply(revoked, revocations_mark);
            }
            Err(e) => {
                // Logged once per outage, not every poll.
                if !std::mem::replace(&mut failing, true) {
                    error!(error = %e, "cannot read the store; keeping the bans and revocations in memory");
                }
            }
        }
    }
}
