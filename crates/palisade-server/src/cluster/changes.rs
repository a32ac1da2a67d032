//! The change stream: every write of a ban or a revocation adds an entry
//! to `{guard}:changes` (`cluster::store`), and each node reads it with
//! `XREAD BLOCK` on a connection of its own, so it reloads within
//! milliseconds of another node's write instead of at its next poll.
//!
//! A ban's or a revocation's entry only wakes the node: what changed is
//! still found by the version `server::follow` compares, and it reloads
//! everything then. So a missed entry (Redis down, the stream trimmed past
//! where this node was) costs only the wait for the follower's fallback
//! poll, and after every reconnect the node wakes once to reload whatever
//! it missed.
//!
//! A room owner's entry (`cluster::owners`) carries the change itself, in
//! the shared record's order, for the node's view of the owners; after
//! every reconnect the reader reads the whole record again first.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ownership::OwnerRecord;
use redis::AsyncCommands as _;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::Keys;
use super::owners::{decode, decode_all};

/// What the stream tells a node's view of rooms' owners.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OwnerNews {
    /// The room has this owner now (`None`: it was deleted).
    Changed(Box<str>, Option<OwnerRecord>),
    /// Every owner, read after a (re)connect.
    All(Vec<OwnerRecord>),
}

/// Where the reader hands [`OwnerNews`].
pub(crate) type OnOwner = Arc<dyn Fn(OwnerNews) + Send + Sync>;

/// How long one `XREAD` blocks; the reply timeout is a little longer.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read at most per `XREAD`: one wake covers them all.
const BATCH: usize = 100;
/// The wait before dialling again after a failure, doubled up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A node's reader of the change stream, and the wake-up it gives.
pub(crate) struct ChangeStream {
    /// Holds `store.redis_url`: never in `Debug` output.
    client: redis::Client,
    keys: Keys,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl ChangeStream {
    pub(crate) fn new(client: redis::Client, keys: Keys) -> Self {
        Self { client, keys, wake: Arc::new(Notify::new()) }
    }

    /// Notified when another node (or this one, or the CLI) wrote a ban or
    /// a revocation, and after each reconnect.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Reads the stream until `stop`, reconnecting with backoff; owners'
    /// news go to `owners`.
    pub(crate) async fn read(self: Arc<Self>, stop: CancellationToken, owners: OnOwner) {
        let mut backoff = FIRST_BACKOFF;
        let mut failing = false;
        loop {
            let (connected, error) = tokio::select! {
                () = stop.cancelled() => return,
                ended = self.follow(&owners) => ended,
            };
            if connected {
                (backoff, failing) = (FIRST_BACKOFF, false);
            }
            // Logged once per outage.
            if !std::mem::replace(&mut failing, true) {
                warn!(error = %error, "redis: the change stream failed; reconnecting (the poll covers the gap)");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: reads every owner and wakes the node once
    /// connected (it may have missed entries meanwhile), then hands on
    /// each owner's entry and wakes the node at every batch with another;
    /// returns whether it connected, and why it ended.
    async fn follow(&self, owners: &OnOwner) -> (bool, redis::RedisError) {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(BLOCK))
            .set_response_timeout(Some(BLOCK * 2));
        let mut conn = match self.client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(conn) => conn,
            Err(e) => return (false, e),
        };
        let key = self.keys.guard("changes");
        let options = StreamReadOptions::default().block(duration_ms(BLOCK)).count(BATCH);
        // From the newest entry now (not `$`, which a timed-out read would
        // take again, missing what came in between); the reload the wake
        // below asks for covers what came before.
        let newest: redis::RedisResult<redis::streams::StreamRangeReply> =
            conn.xrevrange_count(&key, "+", "-", 1).await;
        let mut last = match newest {
            Ok(range) => range.ids.into_iter().next().map_or_else(|| "0-0".to_owned(), |entry| entry.id),
            Err(e) => return (true, e),
        };
        // After the stream's newest id is known: a change made in between
        // is both in this read and among the entries after `last`.
        let all: Vec<(String, String)> = match conn.hgetall(self.keys.guard("owners")).await {
            Ok(all) => all,
            Err(e) => return (true, e),
        };
        match decode_all(all) {
            Ok(records) => owners(OwnerNews::All(records)),
            Err(e) => error!(error = %e, "redis: the room owners do not read back; keeping this node's view"),
        }
        self.wake.notify_one();
        loop {
            let reply: Option<StreamReadReply> = match conn.xread_options(&[&key], &[&last], &options).await {
                Ok(reply) => reply,
                Err(e) => return (true, e),
            };
            let entries = reply.and_then(|r| r.keys.into_iter().next()).map(|k| k.ids).unwrap_or_default();
            let mut woken = false;
            for entry in entries {
                match owner_news(&entry) {
                    Some(news) => owners(news),
                    None => woken = true,
                }
                last = entry.id;
            }
            if woken {
                self.wake.notify_one();
            }
        }
    }
}

/// A room owner's entry as news; `None` for a ban's or a revocation's.
fn owner_news(entry: &StreamId) -> Option<OwnerNews> {
    let room: String = entry.get("room")?;
    let value: String = entry.get("owner")?;
    Some(OwnerNews::Changed(room.as_str().into(), decode(&room, &value)))
}

fn duration_ms(d: Duration) -> usize {
    usize::try_from(d.as_millis()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use palisade_core::Timestamp;
    use palisade_core::guard::{Ban, BanSource};
    use palisade_core::ownership::OwnerChange;
    use palisade_core::store::{BanStore as _, OwnerStore as _};

    use super::*;
    use crate::cluster::store::RedisShared;
    use crate::cluster::testing::RedisServer;

    /// Waits for `wake`, failing the test if it never comes.
    async fn woken(wake: &Notify) {
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("woken");
    }

    #[tokio::test]
    async fn a_write_through_any_handle_wakes_the_reader_and_so_does_a_reconnect() {
        let Some(mut server) = RedisServer::start() else { return };
        let client = || redis::Client::open(server.url()).unwrap();
        let stream = Arc::new(ChangeStream::new(client(), Keys::new("t")));
        let wake = stream.wake();
        let stop = CancellationToken::new();
        let (news_tx, mut news) = tokio::sync::mpsc::unbounded_channel();
        let owners: OnOwner = Arc::new(move |n| news_tx.send(n).unwrap());
        let reader = tokio::spawn(Arc::clone(&stream).read(stop.clone(), owners));
        woken(&wake).await;
        let heard = |news: Option<OwnerNews>| news.expect("owner news");
        assert_eq!(heard(news.recv().await), OwnerNews::All(Vec::new()), "every owner, at connect");

        // Another node's write (a synchronous store call, off the runtime).
        let other = RedisShared::new(client(), Keys::new("t"));
        let ban = Ban {
            subject: "ip:127.0.0.2".parse().unwrap(),
            since: Timestamp::from_secs(1_700_000_000),
            until: None,
            strikes: 1,
            reason: "test".into(),
            source: BanSource::Operator,
        };
        let record = OwnerRecord { room: "team".into(), owner: "alice".into(), since: ban.since };
        let changes = [OwnerChange::Claimed(record.clone()), OwnerChange::Released("team".into())];
        tokio::task::spawn_blocking(move || {
            other.put(&ban).unwrap();
            other.apply_owner_changes(&changes).unwrap();
        })
        .await
        .unwrap();
        woken(&wake).await;
        assert_eq!(heard(news.recv().await), OwnerNews::Changed("team".into(), Some(record)), "in order");
        assert_eq!(heard(news.recv().await), OwnerNews::Changed("team".into(), None));

        // Redis restarts (empty): the reader reconnects and wakes the node
        // to reload whatever it missed.
        let _server = tokio::task::spawn_blocking(move || {
            server.start_again();
            server
        })
        .await
        .unwrap();
        woken(&wake).await;
        assert_eq!(heard(news.recv().await), OwnerNews::All(Vec::new()), "read again after the reconnect");
        stop.cancel();
        reader.await.unwrap();
    }
}
