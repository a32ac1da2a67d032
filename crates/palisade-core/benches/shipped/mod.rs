//! What ships: the server's config template, read by the benches so they
//! measure the shipped defaults.

#![allow(dead_code)]

use std::time::Duration;

use palisade_core::auth::{Algorithm, KeyMaterial, VerifyOptions};
use palisade_core::guard::{BanTerms, GuardSettings, Rate, SpamRules, Weights};

pub(crate) const TEMPLATE: &str = include_str!("../../../palisade-server/src/config/palisade.toml");

/// `[abuse]` as the template sets it. Durations are written out here (the
/// template's are human strings the server parses); they do not change
/// what a check costs.
pub(crate) fn guard_settings() -> GuardSettings {
    let t: toml::Table = toml::from_str(TEMPLATE).unwrap();
    let abuse = &t["abuse"];
    let rate = |k: &str| Rate::parse(abuse[k].as_str().unwrap()).unwrap();
    let number = |k: &str| abuse[k].as_integer().unwrap();
    let count = |k: &str| u32::try_from(number(k)).unwrap();
    let size = |k: &str| usize::try_from(number(k)).unwrap();
    let minute = Duration::from_secs(60);
    GuardSettings {
        dry_run: false,
        connect_rate: rate("connect_rate"),
        request_rate: rate("request_rate"),
        max_connections_per_ip: count("max_connections_per_ip"),
        max_pending_per_ip: count("max_pending_per_ip"),
        max_connections_per_user: count("max_connections_per_user"),
        connection_rate: rate("connection_rate"),
        user_rate: rate("user_rate"),
        ip_rate: rate("ip_rate"),
        control_rate: rate("control_rate"),
        recover_rate: rate("recover_rate"),
        restrict_divisor: count("restrict_divisor"),
        score_half_life: 5 * minute,
        restrict_at: f64::from(count("restrict_at")),
        disconnect_at: f64::from(count("disconnect_at")),
        ban_at: f64::from(count("ban_at")),
        ban_users: false,
        ban_terms: BanTerms { first: 15 * minute, factor: 2, max: 24 * 60 * minute, memory: 7 * 24 * 60 * minute },
        weights: Weights::default(),
        max_tracked_keys: size("max_tracked_keys"),
        max_bans: size("max_bans"),
        spam: SpamRules { max_repeat: size("spam_max_repeat"), max_links: size("spam_max_links") },
    }
}

/// The HS256 key every bench signs and verifies with, and the shipped
/// verification options (no issuer or audience: they cost a comparison).
pub(crate) fn hs256_key() -> (KeyMaterial, VerifyOptions) {
    let key = KeyMaterial {
        id: "k".into(),
        algorithm: Algorithm::HS256,
        secret: Some(vec![7; 32]),
        public_pem: None,
        private_pem: None,
    };
    let options =
        VerifyOptions { leeway: Duration::from_secs(30), issuer: None, audience: None, max_token_bytes: 8192 };
    (key, options)
}
