//! Node ids (`server.node_id`) and the connection ids they qualify,
//! `<node>-<n>`: unique across a cluster, so an operator's
//! `DELETE /api/connections/{id}` names one connection wherever it lives.

/// Longest node id.
pub const MAX_NODE_ID: usize = 32;

/// A node's id: 1–32 bytes of lowercase ASCII letters, digits and `-`,
/// starting with a letter (so `<node>-<n>` splits at its last `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId(Box<str>);

impl NodeId {
    /// Validates a node id.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_NODE_ID
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(raw.into()))
        } else {
            Err("1 to 32 lowercase ASCII letters, digits and '-', starting with a letter")
        }
    }

    /// The id as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of this node's connection number `n`.
    pub fn conn_id(&self, n: u64) -> String {
        format!("{}-{n}", self.0)
    }
}

/// Reads a connection id, `<node>-<n>`: its node and number; `None` when
/// it is not one.
pub fn parse_conn_id(id: &str) -> Option<(NodeId, u64)> {
    let (node, n) = id.rsplit_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((NodeId::parse(node).ok()?, n.parse().ok()?))
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_lowercase_names_that_split_off_the_connection_number() {
        for good in ["n1", "eu-west-1a", "a", &"n".repeat(MAX_NODE_ID)] {
            assert!(NodeId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "1node", "-n", "Node", "n_1", "n.1", "n 1", &"n".repeat(MAX_NODE_ID + 1)] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?}");
        }
        let node = NodeId::parse("eu-west-1").unwrap();
        let id = node.conn_id(42);
        assert_eq!(id, "eu-west-1-42");
        assert_eq!(parse_conn_id(&id), Some((node, 42)));
        assert_eq!(parse_conn_id("eu-west-2-7").map(|(n, _)| n.to_string()).as_deref(), Some("eu-west-2"));
        for bad in ["eu-west-1-", "eu-west-1-+4", "eu-west-1-4x", "42", "Eu-1", "eu-west-1-99999999999999999999"] {
            assert_eq!(parse_conn_id(bad), None, "{bad}");
        }
    }
}
