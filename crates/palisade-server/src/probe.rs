//! The store's answer to `/readyz` (docs/PROTOCOL.md §1.6): a cheap query
//! with a deadline, kept for a second, so `/readyz`, which needs no
//! credential on either listener, costs one store query per period however
//! often it is asked.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::store::StoreError;

use crate::gateway::Store;

/// How long `/readyz` waits for the store's answer.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the store's answer to `/readyz` is kept: a load balancer
/// probes every few seconds, a flood costs one store query per period.
const STORE_PROBE_KEPT: Duration = Duration::from_secs(1);

/// The store's last answer to `/readyz`, kept for [`STORE_PROBE_KEPT`]:
/// `/readyz` needs no credential (on the public listener neither), so
/// without it every request would be a query on a blocking thread.
#[derive(Debug, Default)]
pub(crate) struct StoreProbe(tokio::sync::Mutex<Option<(tokio::time::Instant, bool)>>);

impl StoreProbe {
    /// Whether `store` answers, from the kept answer while it is fresh.
    pub(crate) async fn ready(&self, store: &Arc<dyn Store>) -> bool {
        let store = Arc::clone(store);
        // `PRAGMA data_version`: a query through the store's connection
        // that reads nothing but the file's change counter.
        self.answer(probe(move || store.version().map(drop), STORE_PROBE_TIMEOUT)).await
    }

    /// The kept answer while it is fresh, else `probe`'s. Requests that
    /// arrive while it runs wait for its answer instead of asking again.
    async fn answer(&self, probe: impl Future<Output = bool>) -> bool {
        let mut last = self.0.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < STORE_PROBE_KEPT
        {
            return answer;
        }
        let answer = probe.await;
        *last = Some((tokio::time::Instant::now(), answer));
        answer
    }
}

/// Runs `query` on a blocking thread; whether it succeeded within `within`.
/// A query still running at the deadline is left to finish on its thread.
async fn probe(query: impl FnOnce() -> Result<(), StoreError> + Send + 'static, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, crate::gateway::blocking("readiness_probe", query)).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_fails_on_an_error_and_on_a_store_that_does_not_answer_in_time() {
        assert!(probe(|| Ok(()), STORE_PROBE_TIMEOUT).await);
        assert!(!probe(|| Err(StoreError("disk I/O error".into())), STORE_PROBE_TIMEOUT).await);
        // A store that hangs (a lock another process holds): released only
        // after the probe has answered, so nothing here depends on timing.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let answered = probe(
            move || {
                let _ = hold.recv();
                Ok(())
            },
            Duration::from_millis(50),
        )
        .await;
        assert!(!answered);
        drop(release);
    }

    #[tokio::test(start_paused = true)]
    async fn the_store_is_probed_once_per_period_however_often_readyz_is_asked() {
        let kept = StoreProbe::default();
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let probe = || async {
            asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        };
        for _ in 0..100 {
            assert!(kept.answer(probe()).await);
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1);
        tokio::time::advance(STORE_PROBE_KEPT).await;
        assert!(kept.answer(probe()).await);
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 2, "asked again once the answer is stale");
    }
}
