// Longest room name accepted.
const MAX_ROOM_NAME: usize = 128;

/// Room names use ASCII letters, digits and `_ - . : @ /`, 1 to 128 bytes.
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@' | b'/'))
}

/// A room rule's name: exact (`lobby`) or a prefix ending in `*`
/// (`course:*` matches `course:` followed by at least one character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPattern {
    /// Exactly this room.
    Exact(String),
    /// Any room with this prefix and something after it.
    Prefix(String),
}

impl RoomPattern {
    /// Parses a room rule's name.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const WHY: &str = "a room rule is a room name, or a prefix followed by a single trailing `*`";
        match raw.strip_suffix('*') {
            Some("") => Ok(Self::Prefix(String::new())),
            Some(prefix) if valid_room_name(prefix) => Ok(Self::Prefix(prefix.to_owned())),
            Some(_) => Err(WHY),
            None if valid_room_name(raw) => Ok(Self::Exact(raw.to_owned())),
            None => Err(WHY),
        }
    }

    /// Does this pattern cover `room`?
    pub fn matches(&self, room: &str) -> bool {
        match self {
            Self::Exact(name) => name == room,
            Self::Prefix(prefix) => room.len() > prefix.len() && room.starts_with(prefix.as_str()),
        }
    }

    /// Higher is more specific: exact names beat any prefix, longer
    /// prefixes beat shorter ones.
    pub(crate) fn specificity(&self) -> usize {
        match self {
            Self::Exact(_) => usize::MAX,
            Self::Prefix(p) => p.len(),
        }
    }
}
