//! Palisade's security decisions, with no I/O.
//!
//! Everything here is deterministic: functions take `now` as an argument and
//! return a verdict, and `palisade-server` performs it (answer the upgrade,
//! send a frame, close a socket). That keeps every rule testable by stepping
//! a virtual clock instead of sleeping. Randomness is an input too: what
//! draws an id or a secret takes the caller's `rng`, so a test seeds it and
//! gets the same ids and tokens every run.
//!
//! How the pieces fit:
//! - [`auth`] verifies access tokens (and mints them for our own keys);
//! - [`origin`] decides which browser origins may open a socket;
//! - [`handshake`] runs the checks before the HTTP 101, in the order of
//!   docs/ARCHITECTURE.md ("Handshake");
//! - [`policy`] holds roles, room rules and declared events;
//! - [`rate`] is the GCRA limiter behind every rate (the guard's and the
//!   events');
//! - [`session`] is the per-connection state machine that turns one client
//!   frame into one decision (the message pipeline of docs/ARCHITECTURE.md);
//! - [`log`] keeps client text from forging or flooding the server's log;
//! - [`login`] holds the own issuer's session rules: login throttling,
//!   refresh rotation, device binding and the session cap;
//! - [`audit`] chains, verifies and checkpoints the tamper-evident audit
//!   log;
//! - [`admin`] checks the admin listener's credentials and holds its
//!   browser sessions;
//! - [`passthrough`] is gateway mode's: a backend's own message format,
//!   the checks on what the backend sends, and the signed identity headers
//!   (the client's messages go through [`session`] like native ones);
//! - [`transport`] decides whether a request's transport is secure enough
//!   (TLS, or a trusted proxy's word for it).
//! - [`threat`] reads blocklist feeds into prefix tables and says what a
//!   listed address gets (docs/CONFIG.md, `[threat]`).

#![forbid(unsafe_code)]

pub mod addr;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod client_ids;
pub mod csrf;
pub mod guard;
pub mod handshake;
pub mod history;
pub mod json;
pub mod log;
pub mod login;
pub mod node;
pub mod origin;
pub mod ownership;
pub mod passthrough;
pub mod policy;
pub mod rate;
pub mod refusal;
pub mod replay;
pub mod sanitize;
pub mod seams;
pub mod session;
pub mod signature;
pub mod store;
pub mod threat;
mod time;
pub mod transport;

#[cfg(test)]
mod testkit;

pub use time::{Timestamp, clock_skew};

/// Random, URL-safe identifier with a readable prefix (`s_…`, `r_…`),
/// drawn from `rng`.
pub fn random_id(prefix: &str, rng: &mut impl rand::CryptoRng) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 12];
    rng.fill_bytes(&mut bytes);
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut id);
    id
}
