use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The policy as written in config: `[roles]`, `[rooms]`, `[events]` plus
/// `auth.default_roles`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Role name → permissions.
    pub roles: BTreeMap<String, RoleSpec>,
    /// Room name or `prefix*` → requirements.
    pub rooms: BTreeMap<String, RoomSpec>,
    /// Event name → rules.
    pub events: BTreeMap<String, EventSpec>,
    /// Roles every authenticated user has.
    pub default_roles: Vec<String>,
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
}

/// `[events."<name>"]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Permission needed to publish the event; absent means any member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
}
