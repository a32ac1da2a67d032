//! The bounded queue of room events on their way to one connection: the
//! hub pushes, the connection's task takes (docs/ARCHITECTURE.md,
//! "Connections, fairness and timers").
//!
//! Written here rather than taken from tokio's `mpsc`: a tokio channel
//! allocates its shared state and a first block of 32 slots when it is
//! created (about 1.5 KiB), and every authenticated connection has a queue
//! whether or not it ever joins a room. This one holds nothing until an
//! event arrives and gives back all but a few slots once drained, which is
//! most of what an idle connection costs (docs/BENCHMARKS.md, "the
//! outbox"). One consumer, so one waker.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Slots a drained queue keeps, so that a connection in a busy room does
/// not allocate for every burst; a longer burst's slots are freed.
const KEPT_SLOTS: usize = 8;

/// One connection's queue of events, at most `capacity` long.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<Utf8Bytes>>,
    capacity: usize,
    /// The connection's task, when it waits in [`Outbox::next`].
    waker: AtomicWaker,
}

/// The queue already held `capacity` events: the connection is not keeping
/// up with its rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl Outbox {
    /// An empty queue that takes up to `capacity` events
    /// (`limits.outbound_queue`).
    pub(crate) fn new(capacity: usize) -> Self {
        Self { queue: Mutex::new(VecDeque::new()), capacity, waker: AtomicWaker::new() }
    }

    /// Queues `frame` and wakes the connection, unless the queue is full.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Result<(), Full> {
        let mut queue = self.lock();
        if queue.len() >= self.capacity {
            return Err(Full);
        }
        queue.push_back(frame);
        drop(queue);
        self.waker.wake();
        Ok(())
    }

    /// The oldest queued event, if any, without waiting.
    pub(crate) fn try_next(&self) -> Option<Utf8Bytes> {
        let mut queue = self.lock();
        let frame = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEPT_SLOTS {
            queue.shrink_to(KEPT_SLOTS);
        }
        frame
    }

    /// The oldest queued event, waiting for one. Only the connection's own
    /// task calls this: a second waiter would take the first one's waker.
    pub(crate) async fn next(&self) -> Utf8Bytes {
        poll_fn(|cx| {
            if let Some(frame) = self.try_next() {
                return Poll::Ready(frame);
            }
            self.waker.register(cx.waker());
            // An event pushed between the look above and the registration
            // woke nobody: look again.
            self.try_next().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Utf8Bytes>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn frame(n: usize) -> Utf8Bytes {
        n.to_string().into()
    }

    #[test]
    fn events_come_out_in_order_and_a_full_queue_refuses() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push(frame(1)), Ok(()));
        assert_eq!(outbox.push(frame(2)), Ok(()));
        assert_eq!(outbox.push(frame(3)), Err(Full));
        assert_eq!(outbox.try_next().as_deref(), Some("1"));
        assert_eq!(outbox.push(frame(3)), Ok(()), "room again once one is taken");
        assert_eq!(outbox.try_next().as_deref(), Some("2"));
        assert_eq!(outbox.try_next().as_deref(), Some("3"));
        assert_eq!(outbox.try_next(), None);
    }

    #[test]
    fn an_unused_queue_holds_nothing_and_a_drained_one_keeps_a_few_slots() {
        let outbox = Outbox::new(256);
        assert_eq!(outbox.lock().capacity(), 0, "nothing allocated before the first event");
        for n in 0..100 {
            outbox.push(frame(n)).unwrap();
        }
        assert!(outbox.lock().capacity() >= 100);
        while outbox.try_next().is_some() {}
        assert!(outbox.lock().capacity() <= KEPT_SLOTS, "a burst's slots are given back");
    }

    #[tokio::test]
    async fn a_waiting_connection_is_woken_by_a_push_from_another_task() {
        let outbox = Arc::new(Outbox::new(4));
        let waiting = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.next().await }
        });
        // Let the task register its waker first, most of the time.
        tokio::time::sleep(Duration::from_millis(10)).await;
        outbox.push(frame(7)).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(got.as_str(), "7");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_lost_or_reordered_between_threads() {
        const EVENTS: usize = 20_000;
        let outbox = Arc::new(Outbox::new(16));
        let pusher = std::thread::spawn({
            let outbox = Arc::clone(&outbox);
            move || {
                for n in 0..EVENTS {
                    while outbox.push(frame(n)) == Err(Full) {
                        std::thread::yield_now();
                    }
                }
            }
        });
        let taken = tokio::time::timeout(Duration::from_secs(60), async {
            for n in 0..EVENTS {
                assert_eq!(outbox.next().await.as_str(), n.to_string());
            }
        })
        .await;
        pusher.join().unwrap();
        assert!(taken.is_ok(), "every event arrived");
    }
}
