//! Two cluster-mode nodes, `a` and `b`, on one test `redis-server`
//! (docs/OPERATIONS.md, "Cluster mode"), each with its own data directory
//! and admin listener, and the operators' key they share.

use serde_json::Value;

use super::auth::{Call, Reply, call_at};
use super::redis::RedisServer;
use super::{NO_ABUSE_LIMITS, TestServer};

/// The operators' API key on both nodes.
pub const OPERATOR_KEY: &str = "cluster-test-admin-key-cluster-test-admin-key";

/// Starts `a` and `b` on `redis` with `layers` of config over the
/// lenient abuse limits.
pub async fn nodes(redis: &RedisServer, layers: &[&str]) -> (TestServer, TestServer) {
    (node(redis, "a", layers).await, node(redis, "b", layers).await)
}

/// Starts node `id` on `redis` with `layers` of config over the lenient
/// abuse limits.
pub async fn node(redis: &RedisServer, id: &str, layers: &[&str]) -> TestServer {
    let own = format!(
        "[server]\nnode_id = \"{id}\"\n[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nprefix = \"t\"\ntimeout = \"2s\"\n[admin]\napi_keys = [\"{OPERATOR_KEY}\"]\n",
        redis.url()
    );
    let mut all = vec![NO_ABUSE_LIMITS, &own];
    all.extend_from_slice(layers);
    TestServer::start_layers(&all).await
}

/// An operator's call to `server`'s admin API.
pub async fn operator(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> Reply {
    call_at(server.admin.unwrap(), Call { method, path, body, bearer: Some(OPERATOR_KEY), ..Call::default() }).await
}
