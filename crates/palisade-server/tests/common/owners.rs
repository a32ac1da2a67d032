//! Room owners' policy and requests, for the tests of owners on one node
//! (tests/room_owners.rs) and in a cluster (tests/cluster_owners.rs).

use serde_json::{Value, json};

use super::{Ws, request};

/// Rooms whose first joiner owns them (`team:*`, with history), rooms
/// made by `create` (`club:*`, moderated), and an owner-only event.
pub const POLICY: &str = r#"
[roles.user]
permissions = ["chat:send"]
[roles.moderator]
permissions = ["rooms:moderate"]

[rooms."team:*"]
owners = "first_join"
history = 10
[rooms."club:*"]
owners = "create"
moderate = "rooms:moderate"

[events."chat.message"]
permission = "chat:send"
[events."room.topic"]
owner = true
"#;

/// The code of an error reply.
pub fn code(reply: &Value) -> &str {
    assert_eq!(reply["type"], "error", "{reply}");
    reply["code"].as_str().unwrap()
}

/// Sends `event` to `room`; the reply.
pub async fn say(ws: &mut Ws, room: &str, event: &str) -> Value {
    request(ws, json!({"type":"send","id":"s","room":room,"event":event,"data":{"content":"hi"}})).await
}
