//! The declarative policy: roles and their permissions, room rules, and the
//! events clients may publish.
//!
//! Config deserializes into the plain [`PolicySpec`]; [`Policy::compile`]
//! validates it (naming the offending key) into the form checked on every
//! request.

mod event;
mod permission;
mod room;
mod spec;

use std::collections::HashMap;
use std::time::Duration;

use palisade_protocol::ErrorCode;

pub use event::{EventRule, PayloadError};
pub use permission::Permission;
pub use room::{RoomPattern, valid_room_name};
pub use spec::{DEFAULT_HISTORY_TTL, EventSpec, MAX_HISTORY, PolicySpec, RoleSpec, RoomSpec, RuleList};

use crate::auth::Identity;
use crate::history::HistoryRule;
use crate::refusal::Refusal;
use crate::sanitize::Sanitizers;
use crate::threat::geo::{GeoRules, Locale, Unknown, iso_codes};

/// A policy error found at load time; `key` is the config path to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct PolicyError {
    /// Config key, e.g. `rooms."course:*".join`.
    pub key: String,
    /// What is wrong.
    pub why: String,
}

/// A request the policy refuses: the wire code, and a reason for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// What the client sees.
    pub code: ErrorCode,
    /// What the operator sees.
    pub reason: &'static str,
}

impl Denied {
    pub(crate) const fn new(code: ErrorCode, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

impl From<Denied> for Refusal {
    fn from(d: Denied) -> Self {
        Refusal::new(d.code.into(), d.reason)
    }
}

#[derive(Debug, Clone)]
struct RoomRule {
    pattern: RoomPattern,
    join: Option<Permission>,
    publish: Option<Permission>,
    history: HistoryRule,
    owners: Option<OwnerMode>,
    create: Option<Permission>,
    moderate: Option<Permission>,
    /// `allow_countries`/`deny_countries`, with `geo.unknown`.
    countries: Option<GeoRules>,
}

/// How the rooms of a rule get their owner (`rooms."<pattern>".owners`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerMode {
    /// Whoever joins a room that has no owner owns it.
    FirstJoin,
    /// Whoever sends `create` for a room that has no owner owns it; until
    /// then the room cannot be joined.
    Create,
}

/// The compiled policy.
pub struct Policy {
    roles: HashMap<String, Vec<Permission>>,
    default_roles: Vec<String>,
    /// Most specific first: exact names, then longer prefixes.
    rooms: Vec<RoomRule>,
    events: HashMap<String, EventRule>,
    sanitizers: Sanitizers,
    replay_window: Duration,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("roles", &self.roles)
            .field("rooms", &self.rooms)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Validates and compiles a spec. `default_roles` are granted to every
    /// authenticated user on top of the roles in their token.
    pub fn compile(spec: &PolicySpec) -> Result<Self, PolicyError> {
        let perm =
            |key: String, raw: &str| Permission::parse(raw).map_err(|why| PolicyError { key, why: why.to_owned() });
        let mut roles = HashMap::new();
        for (name, role) in &spec.roles {
            let perms = role
                .permissions
                .iter()
                .enumerate()
                .map(|(i, p)| perm(format!("roles.{name}.permissions[{i}]"), p))
                .collect::<Result<Vec<_>, _>>()?;
            roles.insert(name.clone(), perms);
        }
        for (i, role) in spec.default_roles.iter().enumerate() {
            if !roles.contains_key(role) {
                return Err(PolicyError {
                    key: format!("auth.default_roles[{i}]"),
                    why: format!("role `{role}` is not defined under [roles]"),
                });
            }
        }
        let mut rooms = Vec::new();
        for (raw, room) in &spec.rooms {
            let key = |field: &str| format!("rooms.\"{raw}\"{field}");
            let pattern = RoomPattern::parse(raw).map_err(|why| PolicyError { key: key(""), why: why.to_owned() })?;
            let join = room.join.as_deref().map(|p| perm(key(".join"), p)).transpose()?;
            let publish = room.publish.as_deref().map(|p| perm(key(".publish"), p)).transpose()?;
            let history = history_rule(room).map_err(|(field, why)| PolicyError { key: key(field), why })?;
            let owners = match room.owners.as_deref() {
                None => None,
                Some("first_join") => Some(OwnerMode::FirstJoin),
                Some("create") => Some(OwnerMode::Create),
                Some(_) => {
                    return Err(PolicyError { key: key(".owners"), why: "\"first_join\" or \"create\"".to_owned() });
                }
            };
            let create = room.create.as_deref().map(|p| perm(key(".create"), p)).transpose()?;
            let moderate = room.moderate.as_deref().map(|p| perm(key(".moderate"), p)).transpose()?;
            if owners != Some(OwnerMode::Create) && create.is_some() {
                return Err(PolicyError { key: key(".create"), why: "needs owners = \"create\"".to_owned() });
            }
            let countries =
                room_countries(room, spec.geo_unknown).map_err(|(field, why)| PolicyError { key: key(field), why })?;
            rooms.push(RoomRule { pattern, join, publish, history, owners, create, moderate, countries });
        }
        rooms.sort_by_key(|r| std::cmp::Reverse(r.pattern.specificity()));
        let mut events = HashMap::new();
        for (name, event) in &spec.events {
            if !valid_event_name(name) {
                return Err(PolicyError {
                    key: format!("events.\"{name}\""),
                    why: "event names use letters, digits, '.', '_' and '-' (at most 64)".to_owned(),
                });
            }
            events.insert(name.clone(), EventRule::compile(name, event, spec)?);
        }
        let sanitizers =
            Sanitizers::new(&spec.sanitize).map_err(|why| PolicyError { key: "sanitize".to_owned(), why })?;
        for (key, value) in
            [("limits.max_json_depth", spec.max_json_depth), ("limits.max_message_bytes", spec.max_message_bytes)]
        {
            if value == 0 {
                return Err(PolicyError { key: key.to_owned(), why: "must be greater than 0".to_owned() });
            }
        }
        Ok(Self {
            roles,
            default_roles: spec.default_roles.clone(),
            rooms,
            events,
            sanitizers,
            replay_window: spec.replay_window,
        })
    }

    /// May this user join `room`?
    pub fn check_join(&self, who: &Identity, room: &str) -> Result<(), Denied> {
        let rule = self.room_rule(room)?;
        claim_allows(who, room)?;
        self.require(who, rule.join.as_ref(), "missing room join permission")
    }

    /// May a connection from `locale` join `room`? Its rule's countries
    /// (docs/POLICY.md, "Country rules for rooms"); a room no rule covers
    /// is `check_join`'s to refuse.
    pub fn check_locale(&self, room: &str, locale: Locale) -> Result<(), Refusal> {
        match self.room_rule(room).ok().and_then(|r| r.countries.as_ref()) {
            Some(countries) => countries.judge_room(locale),
            None => Ok(()),
        }
    }

    /// How `room` gets its owner; `None` when it has none.
    pub fn owner_mode(&self, room: &str) -> Option<OwnerMode> {
        self.room_rule(room).ok().and_then(|r| r.owners)
    }

    /// May this user `create` `room`? The rights of `join`, the rule's
    /// `create` permission, and a rule whose rooms are created.
    pub fn check_create(&self, who: &Identity, room: &str) -> Result<(), Denied> {
        self.check_join(who, room)?;
        let rule = self.room_rule(room)?;
        if rule.owners != Some(OwnerMode::Create) {
            return Err(Denied::new(ErrorCode::BadRequest, "room rule has no owners = \"create\""));
        }
        self.require(who, rule.create.as_ref(), "missing room create permission")
    }

    /// May this user act as `room`'s owner (delete it, remove members,
    /// publish owner-only events)? Its `owner`, or a role with the rule's
    /// `moderate` permission.
    pub fn check_owner(&self, who: &Identity, room: &str, owner: Option<&str>) -> Result<(), Denied> {
        let rule = self.room_rule(room)?;
        claim_allows(who, room)?;
        if owner.is_some_and(|o| *o == *who.user_id) {
            return Ok(());
        }
        match &rule.moderate {
            Some(moderate) => self.require(who, Some(moderate), "neither the room's owner nor a moderator"),
            None => Err(Denied::new(ErrorCode::Forbidden, "not the room's owner")),
        }
    }

    /// How much of `room`'s history is kept: its rule's `history`, or
    /// none for a room no rule covers.
    pub fn history(&self, room: &str) -> HistoryRule {
        self.room_rule(room).map(|r| r.history).unwrap_or_default()
    }

    /// The declared event named `event`.
    pub fn event(&self, event: &str) -> Result<&EventRule, Denied> {
        self.events.get(event).ok_or(Denied::new(ErrorCode::UnknownEvent, "event not declared"))
    }

    /// May this user publish `rule`'s event in `room`? Membership is the
    /// caller's concern; this checks the token's `rooms` claim and the
    /// room's and the event's permissions.
    pub fn authorize_publish(&self, who: &Identity, room: &str, rule: &EventRule) -> Result<(), Denied> {
        let room_rule = self.room_rule(room)?;
        claim_allows(who, room)?;
        self.require(who, room_rule.publish.as_ref(), "missing room publish permission")?;
        self.require(who, rule.permission.as_ref(), "missing event permission")
    }

    /// May this user publish `rule`'s event where the policy sees no room
    /// (gateway mode with a backend whose messages name none): the
    /// event's permission alone.
    pub fn authorize_event(&self, who: &Identity, rule: &EventRule) -> Result<(), Denied> {
        self.require(who, rule.permission.as_ref(), "missing event permission")
    }

    /// A backend's event for `room` (the admin API's `POST /api/publish`):
    /// the same declaration, size limit, schema and sanitizers as a client
    /// `send` (pipeline steps 4 and 9–10), and a room name some room rule
    /// covers; returns the sanitized copy to broadcast, serialized once.
    ///
    /// The steps that protect a session do not apply: there is no session
    /// to hold a CSRF token, a nonce or a rate, and the backend is trusted
    /// with every room and event (it holds an admin credential), so the
    /// permissions and the `rooms` claim are not consulted.
    pub fn shape_backend_event(
        &self,
        room: &str,
        event: &str,
        data: &serde_json::value::RawValue,
    ) -> Result<Box<serde_json::value::RawValue>, Refusal> {
        self.room_rule(room)?;
        let rule = self.event(event)?;
        rule.check_size(data)?;
        Ok(rule.shape(data, &self.sanitizers)?)
    }

    /// The sanitizers events use.
    pub fn sanitizers(&self) -> &Sanitizers {
        &self.sanitizers
    }

    /// How far a replay-protected message's `ts` may be from server time.
    pub fn replay_window(&self) -> Duration {
        self.replay_window
    }

    /// Declared events, by name (for `palisade policy check`).
    pub fn events(&self) -> impl Iterator<Item = (&str, &EventRule)> {
        self.events.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn room_rule(&self, room: &str) -> Result<&RoomRule, Denied> {
        if !valid_room_name(room) {
            return Err(Denied::new(ErrorCode::BadRequest, "invalid room name"));
        }
        self.rooms
            .iter()
            .find(|r| r.pattern.matches(room))
            .ok_or(Denied::new(ErrorCode::Forbidden, "no room rule matches"))
    }

    fn require(&self, who: &Identity, needed: Option<&Permission>, reason: &'static str) -> Result<(), Denied> {
        let Some(needed) = needed else { return Ok(()) };
        let granted = who
            .roles
            .iter()
            .chain(&self.default_roles)
            .filter_map(|role| self.roles.get(role))
            .flatten()
            .any(|held| held.grants(needed));
        if granted { Ok(()) } else { Err(Denied::new(ErrorCode::Forbidden, reason)) }
    }
}

/// The token's `rooms` claim, when present, narrows every room right the
/// roles grant: a token for `course:1` neither joins nor publishes elsewhere.
fn claim_allows(who: &Identity, room: &str) -> Result<(), Denied> {
    match &who.rooms {
        Some(allowed) if !allowed.iter().any(|p| RoomPattern::parse(p).is_ok_and(|p| p.matches(room))) => {
            Err(Denied::new(ErrorCode::Forbidden, "room not in token's rooms claim"))
        }
        _ => Ok(()),
    }
}

fn valid_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A room rule's `allow_countries` and `deny_countries` (not both, like
/// `[geo]`'s), or the field at fault and why.
fn room_countries(room: &RoomSpec, unknown: Unknown) -> Result<Option<GeoRules>, (&'static str, String)> {
    let allow = iso_codes(&room.allow_countries).map_err(|why| (".allow_countries", why))?;
    let deny = iso_codes(&room.deny_countries).map_err(|why| (".deny_countries", why))?;
    match (allow.is_empty(), deny.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Err((".allow_countries", "not both with deny_countries".to_owned())),
        _ => Ok(Some(GeoRules { allow, deny, unknown })),
    }
}

/// A room rule's `history` and `history_ttl`, or the field at fault and why.
fn history_rule(room: &RoomSpec) -> Result<HistoryRule, (&'static str, String)> {
    let keep = room.history.unwrap_or(0);
    if keep > MAX_HISTORY {
        return Err((".history", format!("at most {MAX_HISTORY} events")));
    }
    let ttl = match room.history_ttl.as_deref() {
        None => DEFAULT_HISTORY_TTL,
        Some(raw) => match humantime::parse_duration(raw) {
            Ok(ttl) if !ttl.is_zero() => ttl,
            _ => return Err((".history_ttl", "a duration above zero, like \"15m\" or \"1h\"".to_owned())),
        },
    };
    Ok(HistoryRule { keep, ttl })
}

#[cfg(test)]
mod tests;
