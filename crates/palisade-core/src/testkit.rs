//! Shared fixtures for unit tests.

use std::time::Duration;

use crate::Timestamp;
use crate::auth::{Algorithm, KeyMaterial, TokenRequest, TokenSigner, TokenVerifier, VerifyOptions};

pub(crate) const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

/// An identity as a verified token gives it: `u1`, named alice, with
/// `roles`, expired at the epoch (set what a test needs).
pub(crate) fn identity(roles: &[&str]) -> crate::auth::Identity {
    crate::auth::Identity {
        user_id: "u1".into(),
        name: "alice".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        rooms: None,
        expires_at: Timestamp::from_secs(0),
        token_id: None,
        issued_at: None,
        session_id: None,
        device: None,
        external_issuer: None,
    }
}

/// A seeded generator: ids and tokens drawn from it are the same every run.
/// Draw twice from one generator for two different values; two calls give
/// two generators that repeat each other.
pub(crate) fn rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(7)
}

pub(crate) fn hs_key(id: &str, secret: &[u8]) -> KeyMaterial {
    KeyMaterial {
        id: id.into(),
        algorithm: Algorithm::HS256,
        secret: Some(secret.to_vec()),
        public_pem: None,
        private_pem: None,
    }
}

pub(crate) fn options() -> VerifyOptions {
    VerifyOptions {
        leeway: Duration::from_secs(30),
        issuer: Some("palisade".into()),
        audience: Some("palisade".into()),
        max_token_bytes: 8192,
    }
}

pub(crate) fn key() -> KeyMaterial {
    hs_key("main", &[7u8; 32])
}

pub(crate) fn verifier() -> TokenVerifier {
    TokenVerifier::new(&[key()], options()).unwrap()
}

pub(crate) fn mint(sub: &str, roles: &[&str], ttl: Duration, now: Timestamp) -> String {
    let signer = TokenSigner::new(&key(), &options()).unwrap();
    let req = TokenRequest {
        user_id: sub.into(),
        name: Some(format!("{sub} name")),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        rooms: None,
        ttl,
        ..Default::default()
    };
    signer.mint(req, now, &mut rng()).unwrap()
}

/// Guard settings as the default config has them.
pub(crate) fn guard_settings() -> crate::guard::GuardSettings {
    use crate::guard::{BanTerms, GuardSettings, Rate, SpamRules, Weights};
    let rate = |r: &str| Rate::parse(r).unwrap();
    const MIN: Duration = Duration::from_secs(60);
    GuardSettings {
        dry_run: false,
        connect_rate: rate("30/min"),
        request_rate: rate("60/min"),
        max_connections_per_ip: 64,
        max_pending_per_ip: 16,
        max_connections_per_user: 16,
        connection_rate: rate("20/s"),
        user_rate: rate("40/s"),
        ip_rate: rate("100/s"),
        control_rate: rate("5/s"),
        recover_rate: rate("3/min"),
        restrict_divisor: 4,
        score_half_life: 5 * MIN,
        restrict_at: 10.0,
        disconnect_at: 30.0,
        ban_at: 60.0,
        ban_users: false,
        ban_terms: BanTerms { first: 15 * MIN, factor: 2, max: 24 * 60 * MIN, memory: 7 * 24 * 60 * MIN },
        weights: Weights::default(),
        max_tracked_keys: 100_000,
        max_bans: 100_000,
        spam: SpamRules { max_repeat: 32, max_links: 8 },
    }
}

/// A guard that never limits, for tests of everything else.
pub(crate) fn lenient_guard() -> crate::guard::Guard {
    let unlimited = crate::guard::Rate { count: u32::MAX, per: Duration::from_secs(1) };
    crate::guard::Guard::new(crate::guard::GuardSettings {
        connect_rate: unlimited,
        connection_rate: unlimited,
        user_rate: unlimited,
        ip_rate: unlimited,
        control_rate: unlimited,
        recover_rate: unlimited,
        ..guard_settings()
    })
}

/// A connection's standing from 127.0.0.2.
pub(crate) fn standing() -> crate::guard::Standing {
    crate::guard::Standing::new(crate::addr::IpKey::of(std::net::Ipv4Addr::new(127, 0, 0, 2).into()))
}
