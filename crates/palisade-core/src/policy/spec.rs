use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sanitize::{Rule, SanitizeSettings};
use crate::threat::geo::Unknown;

/// The policy as written in config: `[roles]`, `[rooms]`, `[events]`,
/// `[sanitize]`, plus the settings from other sections it depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Role name → permissions.
    pub roles: BTreeMap<String, RoleSpec>,
    /// Room name or `prefix*` → requirements.
    pub rooms: BTreeMap<String, RoomSpec>,
    /// Event name → rules.
    pub events: BTreeMap<String, EventSpec>,
    /// Roles every authenticated user has (`auth.default_roles`).
    pub default_roles: Vec<String>,
    /// Sanitizer settings (`[sanitize]`).
    pub sanitize: SanitizeSettings,
    /// Deepest nesting accepted in event data (`limits.max_json_depth`).
    pub max_json_depth: usize,
    /// Largest sanitized copy of `data` sent for an event without
    /// `max_bytes` (`limits.max_message_bytes`).
    pub max_message_bytes: usize,
    /// Accepted clock difference for replay-protected events (`replay.window`).
    pub replay_window: Duration,
    /// What a room rule's countries make of an address the geo database
    /// does not place (`geo.unknown`).
    #[serde(default)]
    pub geo_unknown: Unknown,
}

impl Default for PolicySpec {
    fn default() -> Self {
        Self {
            roles: BTreeMap::new(),
            rooms: BTreeMap::new(),
            events: BTreeMap::new(),
            default_roles: Vec::new(),
            sanitize: SanitizeSettings::default(),
            max_json_depth: 32,
            max_message_bytes: 65536,
            replay_window: Duration::from_secs(30),
            geo_unknown: Unknown::Allow,
        }
    }
}

/// `[roles.<name>]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Permissions granted by the role.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `[rooms."<pattern>"]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSpec {
    /// Permission needed to join; absent means any authenticated user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// Permission needed to publish; absent means any member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<String>,
    /// Newest events kept for `recover`; absent or 0 keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<usize>,
    /// How long a kept event stays (`"1h"`); absent is [`DEFAULT_HISTORY_TTL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_ttl: Option<String>,
    /// Who owns a room: `"first_join"` (whoever joins it first) or
    /// `"create"` (whoever sends `create`; joining an uncreated room is
    /// refused); absent, rooms have no owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<String>,
    /// Permission needed to `create` a room, besides `join`'s; absent
    /// means anyone who may join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<String>,
    /// Permission that acts as the owner of every room the rule covers
    /// (delete, remove members, owner-only events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderate: Option<String>,
    /// ISO 3166-1 alpha-2 codes: when non-empty, only connections placed
    /// in these countries may join (needs `geo.database`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_countries: Vec<String>,
    /// Connections placed in these countries may not join.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_countries: Vec<String>,
}

/// `history_ttl` when a room keeps history and does not say.
pub const DEFAULT_HISTORY_TTL: Duration = Duration::from_secs(3600);
/// Most events one room may keep: `recover` replays them in one go.
pub const MAX_HISTORY: usize = 10_000;

/// `[events."<name>"]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Permission needed to publish the event; absent means any member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// JSON Schema for `data`: a table, or a string of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// JSON Schema file; the config loader reads it into `schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_file: Option<String>,
    /// Largest `data`, in bytes of JSON: as sent, and as sanitized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
    /// Require the session's CSRF token.
    #[serde(default)]
    pub csrf: bool,
    /// Require a fresh `nonce` and `ts`.
    #[serde(default)]
    pub replay: bool,
    /// Only the room's owner, or a role with the room rule's `moderate`
    /// permission, may publish it.
    #[serde(default)]
    pub owner: bool,
    /// `data` is end-to-end encrypted (`{"iv","ct","kid"?}`): checked for
    /// shape and size only, never sanitized.
    #[serde(default)]
    pub opaque: bool,
    /// Rate per user, like "10/s" or "100/min" (enforced by the guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// JSON Pointer → sanitizer(s) for the broadcast copy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sanitize: BTreeMap<String, RuleList>,
}

/// One sanitizer or several, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuleList {
    /// `"/content" = "html"`
    One(Rule),
    /// `"/content" = ["html", "profanity"]`
    Many(Vec<Rule>),
}

impl RuleList {
    /// The rules, in order.
    pub fn to_vec(&self) -> Vec<Rule> {
        match self {
            Self::One(r) => vec![*r],
            Self::Many(rs) => rs.clone(),
        }
    }
}
