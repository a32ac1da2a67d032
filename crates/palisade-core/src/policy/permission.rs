/// A permission string: `resource:action`, `resource:*` or `*`.
///
/// A held permission grants a required one when they are equal, when the
/// held one is `*`, or when it is `resource:*` and the required one has the
/// same resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission(String);

impl Permission {
    /// Parses and validates a permission.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const WHY: &str = "a permission is `resource:action`, `resource:*` or `*`, \
                           using lowercase letters, digits, '_', '-' and '.'";
        if raw == "*" {
            return Ok(Self(raw.to_owned()));
        }
        let (resource, action) = raw.split_once(':').ok_or(WHY)?;
        let part_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.'));
        if part_ok(resource) && (action == "*" || part_ok(action)) && raw.len() <= 128 {
            Ok(Self(raw.to_owned()))
        } else {
            Err(WHY)
        }
    }

    /// Does holding `self` grant `needed`?
    pub fn grants(&self, needed: &Permission) -> bool {
        if self.0 == "*" || self.0 == needed.0 {
            return true;
        }
        match self.0.strip_suffix('*') {
            // "chat:*" keeps its colon, so "chat:" must prefix "chat:send".
            Some(prefix) => needed.0.starts_with(prefix),
            None => false,
        }
    }

    /// The permission as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
