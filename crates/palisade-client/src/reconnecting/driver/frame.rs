//! What the client reads of a server frame.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::ClientError;
use crate::message::Sender;

/// Every server frame's fields, all optional: the client reads what it
/// needs and ignores what it does not know.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Frame {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) id: Option<String>,
    pub(super) seq: Option<u64>,
    pub(super) complete: Option<bool>,
    pub(super) code: Option<String>,
    pub(super) path: Option<String>,
    pub(super) retry_after_ms: Option<u64>,
    #[serde(rename = "ref")]
    pub(super) reference: Option<String>,
    pub(super) room: Option<String>,
    pub(super) event: Option<String>,
    pub(super) from: Option<Sender>,
    pub(super) data: Option<Value>,
    pub(super) ts: Option<u64>,
    pub(super) expires_at: Option<u64>,
    pub(super) csrf: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) duplicate: Option<bool>,
}

impl Frame {
    pub(super) fn error(&self) -> ClientError {
        ClientError::Rejected {
            code: self.code.clone().unwrap_or_default(),
            path: self.path.clone(),
            retry_after: self.retry_after_ms.map(Duration::from_millis),
            reference: self.reference.clone(),
        }
    }
}
