//! A handle other tasks use to ask a connection to close.

use std::sync::atomic::{AtomicU16, Ordering};

use palisade_protocol::CloseCode;
use tokio::sync::Notify;

/// Close requests for one connection. The first request wins; later ones
/// are ignored, so a slow consumer that is also kicked closes once.
#[derive(Debug, Default)]
pub(crate) struct Control {
    code: AtomicU16,
    notify: Notify,
}

impl Control {
    /// Asks the connection to close with `code`.
    pub(crate) fn close(&self, code: CloseCode) {
        if self.code.compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // `notify_one` stores a permit, so a request made while the
            // connection is busy is seen at its next wait.
            self.notify.notify_one();
        }
    }

    /// Resolves when a close was requested.
    pub(crate) async fn requested(&self) -> CloseCode {
        loop {
            if let Some(code) = CloseCode::from_code(self.code.load(Ordering::Acquire)) {
                return code;
            }
            self.notify.notified().await;
        }
    }
}
