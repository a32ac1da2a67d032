//! The one refusal type of the pipeline. Each step keeps its own error
//! (the policy's [`Denied`], the payload's [`PayloadError`], replay's
//! [`ReplayError`], the envelope's [`FrameError`]) and converts into
//! [`Refusal`] here, so `Session::publish` reads as a run of `?` and the
//! wire code of every refusal is decided in one file.

use std::borrow::Cow;

use palisade_protocol::{ErrorCode, FrameError};

use crate::policy::{Denied, PayloadError};
use crate::replay::ReplayError;

/// A refused request: what the client sees and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Correlation id, when readable.
    pub id: Option<String>,
    /// Wire error code.
    pub code: ErrorCode,
    /// Detail for the operator's log only; may quote client text, so the
    /// server writes it clipped (docs/ARCHITECTURE.md, "Logs").
    pub reason: Cow<'static, str>,
    /// JSON Pointer of the field at fault, for `invalid_payload` (safe to
    /// show: it names the client's own field, not the schema).
    pub path: Option<String>,
}

impl Refusal {
    /// The same refusal, answering the request `id`.
    pub(crate) fn answering(self, id: Cow<'_, str>) -> Self {
        Self { id: Some(id.into_owned()), ..self }
    }
}

impl From<Denied> for Refusal {
    fn from(d: Denied) -> Self {
        Self { id: None, code: d.code, reason: Cow::Borrowed(d.reason), path: None }
    }
}

impl From<PayloadError> for Refusal {
    fn from(e: PayloadError) -> Self {
        Self { id: None, code: e.code, reason: e.reason, path: e.path }
    }
}

impl From<ReplayError> for Refusal {
    fn from(e: ReplayError) -> Self {
        Self { id: None, code: ErrorCode::Replay, reason: Cow::Owned(format!("replay: {e}")), path: None }
    }
}

impl From<FrameError> for Refusal {
    fn from(e: FrameError) -> Self {
        Self { id: e.id, code: ErrorCode::BadRequest, reason: Cow::Borrowed(e.reason), path: None }
    }
}
