//! WebSocket connections: the upgrade, the per-connection task, the room
//! hub, and the conformance echo endpoint.

pub(crate) mod connection;
pub(crate) mod echo;
pub(crate) mod socket;
pub(crate) mod transport;
pub(crate) mod upgrade;

pub(crate) use connection::backend::serve as serve_gateway;
pub(crate) use connection::serve as serve_connection;
