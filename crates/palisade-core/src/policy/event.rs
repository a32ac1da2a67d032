//! One declared event, compiled: who may publish it, which checks its
//! messages need, and how its `data` is validated and cleaned.

use std::borrow::Cow;

use palisade_protocol::ErrorCode;
use serde_json::value::RawValue;

use super::permission::Permission;
use super::spec::{EventSpec, PolicySpec};
use super::{Denied, PolicyError};
use crate::json::{self, JsonLimits};
use crate::rate::Rate;
use crate::refusal::Refusal;
use crate::sanitize::{self, FieldRules, Refused, Sanitizers};

/// A declared event, ready to check messages.
pub struct EventRule {
    pub(super) permission: Option<Permission>,
    schema: Option<jsonschema::Validator>,
    fields: FieldRules,
    max_bytes: Option<usize>,
    /// Largest copy sent: `max_bytes`, else `limits.max_message_bytes`.
    max_sent_bytes: usize,
    csrf: bool,
    replay: bool,
    /// Only the room's owner (or a moderator) may publish it.
    pub(super) owner: bool,
    rate: Option<Rate>,
    json: JsonLimits,
}

impl std::fmt::Debug for EventRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRule")
            .field("permission", &self.permission)
            .field("schema", &self.schema.is_some())
            .field("csrf", &self.csrf)
            .field("replay", &self.replay)
            .field("owner", &self.owner)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Why `data` was refused: the wire code, a log reason, and for schema
/// failures the JSON Pointer of the offending field (safe to show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// Wire code.
    pub code: ErrorCode,
    /// For the log.
    pub reason: Cow<'static, str>,
    /// Offending field, for the client.
    pub path: Option<String>,
}

impl From<PayloadError> for Refusal {
    fn from(e: PayloadError) -> Self {
        Refusal { path: e.path, ..Refusal::new(e.code.into(), e.reason) }
    }
}

impl EventRule {
    pub(super) fn compile(name: &str, spec: &EventSpec, policy: &PolicySpec) -> Result<Self, PolicyError> {
        let key = |field: &str| format!("events.\"{name}\"{field}");
        let err = |field: &str, why: String| PolicyError { key: key(field), why };
        let permission = spec
            .permission
            .as_deref()
            .map(Permission::parse)
            .transpose()
            .map_err(|w| err(".permission", w.to_owned()))?;
        if spec.schema_file.is_some() && spec.schema.is_some() {
            return Err(err(".schema", "give schema or schema_file, not both".to_owned()));
        }
        if spec.opaque && (spec.schema.is_some() || spec.schema_file.is_some() || !spec.sanitize.is_empty()) {
            return Err(err(
                ".opaque",
                "an opaque event's data is ciphertext: it takes no schema or sanitize of its own".to_owned(),
            ));
        }
        let schema = match &spec.schema {
            None if spec.opaque => Some(compile_schema(&opaque_schema()).map_err(|why| err(".opaque", why))?),
            None if spec.schema_file.is_some() => {
                return Err(err(".schema_file", "was not read by the config loader".to_owned()));
            }
            None => None,
            Some(raw) => Some(compile_schema(raw).map_err(|why| err(".schema", why))?),
        };
        let rules: Vec<(String, Vec<_>)> = spec.sanitize.iter().map(|(p, r)| (p.clone(), r.to_vec())).collect();
        let fields = FieldRules::new(&rules).map_err(|why| err(".sanitize", why))?;
        let rate = spec.rate.as_deref().map(Rate::parse).transpose().map_err(|w| err(".rate", w.to_owned()))?;
        if spec.max_bytes == Some(0) {
            return Err(err(".max_bytes", "must be greater than 0".to_owned()));
        }
        let json = JsonLimits { max_depth: policy.max_json_depth, max_bytes: spec.max_bytes.unwrap_or(usize::MAX) };
        Ok(Self {
            permission,
            schema,
            fields,
            max_bytes: spec.max_bytes,
            // Capped by the message limit even when `max_bytes` is larger:
            // the write buffer is sized for max_message_bytes plus the
            // envelope (docs/ARCHITECTURE.md), and must hold every frame.
            max_sent_bytes: spec.max_bytes.unwrap_or(usize::MAX).min(policy.max_message_bytes),
            csrf: spec.csrf,
            replay: spec.replay,
            owner: spec.owner,
            rate,
            json,
        })
    }

    /// Does the event require the session's CSRF token?
    pub fn requires_csrf(&self) -> bool {
        self.csrf
    }

    /// May only the room's owner (or a moderator) publish it?
    pub fn requires_owner(&self) -> bool {
        self.owner
    }

    /// Does the event require a fresh nonce and timestamp?
    pub fn requires_replay_check(&self) -> bool {
        self.replay
    }

    /// The declared rate, if any.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// Is `data` within the event's size limit? Checked before anything
    /// parses it.
    pub fn check_size(&self, data: &RawValue) -> Result<(), Denied> {
        match self.max_bytes {
            Some(max) if data.get().len() > max => Err(Denied::new(ErrorCode::TooLarge, "data over max_bytes")),
            _ => Ok(()),
        }
    }

    /// Parses `data` within bounds, validates it against the schema and
    /// sanitizes it; returns the JSON to broadcast, serialized once, no
    /// larger than the event's limit and valid against the schema itself
    /// (pipeline steps 9–10, docs/ARCHITECTURE.md).
    pub fn shape(&self, data: &RawValue, sanitizers: &Sanitizers) -> Result<Box<RawValue>, PayloadError> {
        let bad = |code, reason: Cow<'static, str>, path| PayloadError { code, reason, path };
        let mut value = json::parse(data.get(), self.json)
            .map_err(|e| bad(ErrorCode::BadRequest, Cow::Owned(format!("data: {e}")), None))?;
        // Normalize first: the schema must judge what will be broadcast.
        sanitize::normalize(&mut value);
        self.validate(&value, "schema")?;
        let changed = self.fields.apply(sanitizers, &mut value).map_err(|r| match r.why {
            Refused::Expands => bad(ErrorCode::TooLarge, Cow::Owned(format!("sanitize: {r}")), None),
            Refused::Invalid(_) => {
                bad(ErrorCode::InvalidPayload, Cow::Owned(format!("sanitize: {r}")), Some(r.pointer))
            }
        })?;
        let out = serde_json::value::to_raw_value(&value)
            .map_err(|e| bad(ErrorCode::Internal, Cow::Owned(format!("reserialize: {e}")), None))?;
        // Sanitizing and normalizing can lengthen data (`'` is `&#x27;`),
        // and every recipient pays for the copy: the limit bounds what is
        // sent, not only what was received (docs/POLICY.md).
        if out.get().len() > self.max_sent_bytes {
            let reason = format!("sanitized copy is {} bytes, over {}", out.get().len(), self.max_sent_bytes);
            return Err(bad(ErrorCode::TooLarge, Cow::Owned(reason), None));
        }
        // A sanitizer can empty or lengthen a field the schema accepted
        // (`<script>x</script>` is ""), so the copy is checked again; an
        // unchanged value is the one the schema already passed.
        if changed {
            self.validate(&value, "schema, after sanitizing")?;
        }
        Ok(out)
    }

    fn validate(&self, value: &serde_json::Value, stage: &str) -> Result<(), PayloadError> {
        match &self.schema {
            Some(schema) => schema.validate(value).map_err(|e| PayloadError {
                code: ErrorCode::InvalidPayload,
                reason: Cow::Owned(format!("{stage}: {e}")),
                path: Some(e.instance_path().to_string()),
            }),
            None => Ok(()),
        }
    }
}

/// Compiles a schema given as a JSON value or a string of JSON. Remote and
/// file `$ref`s cannot resolve: the crate is built without retrievers.
/// `format` is enforced, and an unknown one refused: a format the validator
/// silently ignored would be a check the policy's author believes in and
/// no one runs.
/// The one shape of an opaque event's `data`: AES-GCM ciphertext the
/// server cannot read (docs/POLICY.md, "Opaque events"): a 12-byte `iv`
/// and the ciphertext with its tag, base64url without padding, and an
/// optional key id for rotation. Nothing else may ride along unencrypted.
fn opaque_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "iv": { "type": "string", "pattern": "^[A-Za-z0-9_-]{16}$" },
            "ct": { "type": "string", "minLength": 22, "pattern": "^[A-Za-z0-9_-]+$" },
            "kid": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" }
        },
        "required": ["iv", "ct"],
        "additionalProperties": false
    })
}

fn compile_schema(raw: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    let parsed;
    let schema = match raw {
        serde_json::Value::String(text) => {
            parsed = serde_json::from_str::<serde_json::Value>(text).map_err(|e| format!("not valid JSON: {e}"))?;
            &parsed
        }
        other => other,
    };
    jsonschema::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(schema)
        .map_err(|e| format!("not a valid JSON Schema: {e}"))
}
