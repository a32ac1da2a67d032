//! Durations in config are human strings ("30s", "15m"), not bare numbers.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let raw = String::deserialize(d)?;
    humantime::parse_duration(&raw)
        .map_err(|e| serde::de::Error::custom(format!("`{raw}` is not a duration like \"30s\" or \"15m\": {e}")))
}

pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}
