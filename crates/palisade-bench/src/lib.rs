//! Palisade's load generator.
//!
//! Each scenario in [`scenario`] drives a server (Palisade or a peer
//! speaking the same protocol subset) over loopback and returns a
//! [`report::Report`]: a few named numbers and latency summaries, printed
//! as a table and written as JSON. Every loop is bounded in count and time,
//! and only loopback targets are accepted.

#![forbid(unsafe_code)]

pub mod report;
pub mod scenario;
pub mod stats;
pub mod target;
