//! The `palisade` server: HTTP and WebSocket listener, connection tasks,
//! room hub, configuration and CLI.
//!
//! This crate performs what `palisade-core` decides: it reads sockets and
//! the clock, feeds frames to a core `Session`, and writes what the session
//! says. Start at [`server::Server`]; config loading is in [`config`] and
//! what a config compiles to is in [`settings`].

#![forbid(unsafe_code)]

pub mod abuse;
mod admin;
mod alerts;
mod assets;
mod audit;
mod auth;
mod bus;
mod channel;
pub mod cli;
mod clock;
mod cluster;
mod commit;
pub mod config;
mod control;
mod demo;
mod edge;
mod enforce;
mod exit;
mod follow;
mod gateway;
mod handshake;
mod headers;
mod history;
mod http;
mod hub;
mod jwks;
#[cfg(test)]
mod layering;
mod listen;
mod login;
mod message_path;
mod ops;
mod outbox;
mod owners;
mod probe;
mod rejection;
mod reload;
mod revoke;
pub mod server;
pub mod settings;
mod siem;
mod state;
mod store;
mod telemetry;
mod threat;
pub mod tls;
mod upstream;
mod ws;
