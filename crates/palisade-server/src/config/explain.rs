//! `palisade config explain`: every setting of an effective config that
//! weakens security, each with its key and one line on why
//! (docs/OPERATIONS.md, "Production checklist"). Defaults never appear:
//! the shipped config is the safe one, and every finding is a choice
//! someone made.

use std::time::Duration;

use super::{Config, StoreBackend};

/// Access tokens living longer than this are flagged.
const LONG_ACCESS_TOKEN: Duration = Duration::from_secs(3600);
/// Refresh tokens living longer than this are flagged.
const LONG_REFRESH_TOKEN: Duration = Duration::from_secs(30 * 24 * 3600);
/// Clock skew tolerated beyond this is flagged.
const LONG_LEEWAY: Duration = Duration::from_secs(300);

/// One weakening setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakness {
    /// The config key, as docs/CONFIG.md names it.
    pub key: &'static str,
    /// Why it weakens security, in one line.
    pub why: String,
}

/// The weakening settings of `config`, in a fixed order; `dev` is the
/// profile that will run it (the dev profile's own relaxations are listed
/// first, since they are the largest).
pub fn weaknesses(config: &Config, dev: bool) -> Vec<Weakness> {
    let mut found = Vec::new();
    let mut flag = |key: &'static str, why: String| found.push(Weakness { key, why });
    let server = &config.server;
    if dev {
        flag("--dev", "the dev profile: localhost origins, a generated signing key, plain ws, demo users".into());
    }
    if !server.tls.enabled() && server.allow_plaintext {
        flag(
            "server.allow_plaintext",
            "serves plain http and ws: tokens and cookies cross the network in clear unless a TLS proxy is in front"
                .into(),
        );
    }
    if server.tls.enabled() && server.hsts_max_age.is_zero() {
        flag("server.hsts_max_age", "browsers are not told to insist on https, so a downgrade stays possible".into());
    }
    if server.conformance_echo {
        flag("server.conformance_echo", "an unauthenticated echo endpoint is served at /conformance/echo".into());
    }
    if server.trusted_proxies.iter().any(|p| p.ends_with("/0")) {
        flag(
            "server.trusted_proxies",
            "a whole address family is trusted: any client can forge its address in X-Forwarded-For".into(),
        );
    }
    if config.auth.allow_query_token {
        flag("auth.allow_query_token", "tokens in URLs end up in proxy, server and browser history logs".into());
    }
    if config.auth.token_ttl > LONG_ACCESS_TOKEN {
        flag(
            "auth.token_ttl",
            format!("access tokens live {}: a stolen one stays useful that long", human(config.auth.token_ttl)),
        );
    }
    if config.auth.leeway > LONG_LEEWAY {
        flag("auth.leeway", format!("expired tokens pass for {} more", human(config.auth.leeway)));
    }
    if config.login.enabled && config.login.refresh_ttl > LONG_REFRESH_TOKEN {
        flag(
            "login.refresh_ttl",
            format!("a login session lasts {} without a password", human(config.login.refresh_ttl)),
        );
    }
    let origins = &config.origins.allow;
    if origins.iter().any(|o| o.contains('*')) {
        flag("origins.allow", "a wildcard pattern lets every matching subdomain's pages open sockets".into());
    }
    if origins.iter().any(|o| o.starts_with("http://")) {
        flag("origins.allow", "a plain-http origin: a page an attacker on the network can rewrite may connect".into());
    }
    if config.abuse.dry_run {
        flag("abuse.dry_run", "the abuse guard logs what it would refuse and enforces none of it".into());
    }
    let admin = &config.admin;
    if admin.enabled && !admin.listen.ip().is_loopback() {
        flag(
            "admin.listen",
            format!(
                "the admin listener is on {} without TLS: admin keys and cookies cross the network in clear",
                admin.listen
            ),
        );
    }
    // Plain connections the server opens itself, to another machine.
    if config.store.backend == StoreBackend::Redis && in_clear_off_host(&config.store.redis_url, "redis") {
        flag(
            "store.redis_url",
            "redis:// to another host: bans, revocations, sessions and every message cross the network in clear \
             (use rediss://)"
                .into(),
        );
    }
    if in_clear_off_host(&config.alerts.url, "http") {
        flag(
            "alerts.url",
            "http:// to another host: alerts (subjects, addresses) cross the network in clear; the signature stops \
             forgery, not reading"
                .into(),
        );
    }
    if in_clear_off_host(&config.gateway.upstream, "ws") {
        flag(
            "gateway.upstream",
            "ws:// to another host: the identity headers and every message cross the network in clear (use wss://)"
                .into(),
        );
    }
    if ["udp", "tcp"].iter().any(|scheme| in_clear_off_host(&config.siem.syslog, scheme)) {
        flag(
            "siem.syslog",
            "udp:// or tcp:// to another host: the audit trail (addresses, users, sessions) crosses the network in \
             clear, and anyone on the path can drop or forge records (use tls://)"
                .into(),
        );
    }
    if !config.audit.enabled {
        flag("audit.enabled", "no audit trail: refusals, bans and admin actions leave no tamper-evident record".into());
    } else if config.audit.aggregate_interval.is_zero() {
        flag(
            "audit.aggregate_interval",
            "a record per refusal: one flooding address fills the queue and the disk with repeats".into(),
        );
    }
    if !config.threat.allow.is_empty() {
        flag(
            "threat.allow",
            format!(
                "never refused or scored by a threat feed, a geo rule, a room's countries or credential stuffing: {}",
                config.threat.allow.join(", ")
            ),
        );
    }
    found
}

/// Whether `url` is `scheme://` to a host other than this machine's
/// loopback. Never quoted in a finding: it may hold a password.
fn in_clear_off_host(url: &str, scheme: &str) -> bool {
    let Some(rest) = url.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Source;
    use crate::config::tests::load_text;

    #[test]
    fn the_shipped_defaults_weaken_nothing_and_dev_says_so() {
        // An empty origins.allow is among them: it refuses every browser
        // page, cookie sessions included, which is the safe way to fail.
        let config = Config::load(Source::Defaults, &BTreeMap::new()).unwrap();
        assert_eq!(weaknesses(&config, false), Vec::new());
        let dev: Vec<&str> = weaknesses(&config, true).iter().map(|w| w.key).collect();
        assert_eq!(dev, ["--dev"]);
    }

    #[test]
    fn each_weakening_setting_is_named_with_its_key() {
        let text = r#"
[server]
allow_plaintext = true
conformance_echo = true
trusted_proxies = ["0.0.0.0/0"]
[auth]
allow_query_token = true
token_ttl = "12h"
leeway = "1h"
[login]
refresh_ttl = "90days"
[origins]
allow = ["https://*.example.com", "http://app.example.com"]
[abuse]
dry_run = true
[admin]
listen = "0.0.0.0:8081"
[audit]
enabled = false
aggregate_interval = "0s"
"#;
        let found = weaknesses(&load_text(text, &[]).unwrap(), false);
        let keys: Vec<&str> = found.iter().map(|w| w.key).collect();
        assert_eq!(
            keys,
            [
                "server.allow_plaintext",
                "server.conformance_echo",
                "server.trusted_proxies",
                "auth.allow_query_token",
                "auth.token_ttl",
                "auth.leeway",
                "login.refresh_ttl",
                "origins.allow",
                "origins.allow",
                "abuse.dry_run",
                "admin.listen",
                "audit.enabled",
            ]
        );
        assert!(found.iter().all(|w| !w.why.is_empty() && !w.why.contains('\n')));
        assert!(found.iter().any(|w| w.why.contains("12h")), "{found:?}");
    }

    #[test]
    fn an_audit_log_that_folds_no_refusal_is_flagged() {
        let found = weaknesses(&load_text("[audit]\naggregate_interval = \"0s\"\n", &[]).unwrap(), false);
        assert_eq!(found.iter().map(|w| w.key).collect::<Vec<_>>(), ["audit.aggregate_interval"]);
    }

    #[test]
    fn plain_connections_to_other_hosts_are_flagged_and_loopback_ones_not() {
        let off_host = r#"
[store]
backend = "redis"
redis_url = "redis://ops:hunter2@10.0.0.5:6379/"
[alerts]
url = "http://alerts.example.com/hook"
secret = "an-alert-secret-of-at-least-32-bytes!!"
[gateway]
upstream = "ws://[2001:db8::1]:9000/ws"
identity_secret = "an-identity-secret-of-at-least-32-bytes"
[siem]
syslog = "tcp://siem.example:601"
"#;
        let found = weaknesses(&load_text(off_host, &[]).unwrap(), false);
        let keys: Vec<&str> = found.iter().map(|w| w.key).collect();
        for key in ["store.redis_url", "alerts.url", "gateway.upstream", "siem.syslog"] {
            assert!(keys.contains(&key), "{key}: {keys:?}");
        }
        assert!(found.iter().all(|w| !w.why.contains("hunter2")), "never the URL: {found:?}");
        for url in ["redis://127.0.0.1:6379/", "redis://u:p@localhost/", "redis://[::1]:6379"] {
            assert!(!in_clear_off_host(url, "redis"), "{url}");
        }
        for url in ["rediss://10.0.0.5/", "", "http://10.0.0.5/"] {
            assert!(!in_clear_off_host(url, "redis"), "{url}");
        }
        assert!(in_clear_off_host("redis://10.0.0.5", "redis"));
        assert!(
            !in_clear_off_host("udp://127.0.0.1:514", "udp") && !in_clear_off_host("tls://siem.example:6514", "tcp")
        );
    }

    #[test]
    fn hsts_off_is_flagged_only_with_tls() {
        assert_eq!(weaknesses(&load_text("[server]\nhsts_max_age = \"0s\"\n", &[]).unwrap(), false), Vec::new());
        let tls = "[server]\nhsts_max_age = \"0s\"\n[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        let found = weaknesses(&load_text(tls, &[]).unwrap(), false);
        assert_eq!(found.iter().map(|w| w.key).collect::<Vec<_>>(), ["server.hsts_max_age"]);
    }

    #[test]
    fn threat_allow_entries_are_listed() {
        let found = weaknesses(&load_text("[threat]\nallow = [\"127.0.0.0/8\", \"::1\"]\n", &[]).unwrap(), false);
        assert_eq!(found.iter().map(|w| w.key).collect::<Vec<_>>(), ["threat.allow"]);
        assert!(found[0].why.contains("127.0.0.0/8, ::1"), "{found:?}");
    }
}
