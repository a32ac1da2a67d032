//! The one way the server calls the store: on a blocking thread (SQLite
//! blocks, up to its busy timeout, and must not stall the runtime's
//! workers), timed in `palisade_store_latency_seconds` and counted in
//! `palisade_store_errors_total` by operation, with a panicked call
//! turned into a [`StoreError`].
//!
//! A service, not a handler: it knows the store traits and the metric
//! names, never the server's state, so handlers, tasks and the start-up
//! code all reach the store the same way.

use std::sync::Arc;
use std::time::Instant;

use ::metrics::{counter, histogram};
use palisade_core::store::{AuditStore, BanStore, OwnerStore, RevocationStore, SessionStore, StoreError, UserStore};

/// What the server keeps in the embedded database.
pub(crate) trait Store: AuditStore + BanStore + OwnerStore + RevocationStore + SessionStore + UserStore {}

impl<T: AuditStore + BanStore + OwnerStore + RevocationStore + SessionStore + UserStore> Store for T {}

pub(crate) const STORE_LATENCY: &str = "palisade_store_latency_seconds";
pub(crate) const STORE_ERRORS: &str = "palisade_store_errors_total";

/// Runs `call` on a blocking thread as the operation `op` (the metrics'
/// `op` label, one of a fixed set named in docs/ARCHITECTURE.md). The
/// metric is recorded on that thread, so a caller that stops waiting
/// (a probe's deadline) still has the call measured when it ends.
pub(crate) async fn blocking<T, E>(
    op: &'static str,
    call: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = call();
        histogram!(STORE_LATENCY, "op" => op).record(started.elapsed());
        if result.is_err() {
            counter!(STORE_ERRORS, "op" => op).increment(1);
        }
        result
    });
    match task.await {
        Ok(result) => result,
        Err(e) => {
            counter!(STORE_ERRORS, "op" => op).increment(1);
            Err(StoreError(format!("store call {op} failed: {e}")).into())
        }
    }
}

/// [`blocking`] with a handle on `store` for the call.
pub(crate) async fn call<S, T>(
    op: &'static str,
    store: &Arc<S>,
    query: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
{
    let store = Arc::clone(store);
    blocking(op, move || query(&store)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_call_is_a_store_error_not_a_panic() {
        let failed = blocking::<(), StoreError>("test", || panic!("boom")).await;
        assert!(failed.unwrap_err().0.contains("store call test failed"));
        let store = Arc::new(7_u32);
        assert_eq!(call("test", &store, |n| Ok(*n + 1)).await.unwrap(), 8);
    }
}
