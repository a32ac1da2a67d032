use std::collections::BTreeMap;

use super::*;
use crate::settings::{Profile, Settings, compile_policy};

pub(super) fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, text).unwrap();
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::load(Source::File(&path), &env)
}

#[test]
fn defaults_load_and_match_the_documented_values() {
    let c = Config::load(Source::Defaults, &BTreeMap::new()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.limits.max_message_bytes, 65536);
    assert_eq!(c.auth.leeway, Duration::from_secs(30));
    assert!(c.origins.allow.is_empty());
    assert!(c.auth.keys.is_empty());
    assert!(c.rooms.contains_key("lobby"));
    assert!(c.events.contains_key("chat.message"));
}

#[test]
fn the_file_init_writes_loads_back_as_the_defaults_plus_a_key() {
    let written = load_text(&render_init(), &[]).unwrap();
    let mut defaults = Config::load(Source::Defaults, &BTreeMap::new()).unwrap();
    assert_eq!(written.auth.keys.len(), 1);
    let key = &written.auth.keys[0];
    assert!(key.secret.as_ref().is_some_and(|s| s.len() >= 32));
    defaults.auth.keys = written.auth.keys.clone();
    assert!(written.audit.checkpoint_key.len() >= 32, "init writes an audit checkpoint key");
    defaults.audit.checkpoint_key.clone_from(&written.audit.checkpoint_key);
    assert!(
        written.admin.api_keys.len() == 1 && written.admin.api_keys[0].len() >= 32,
        "init writes an admin API key, so /metrics is reachable"
    );
    defaults.admin.api_keys.clone_from(&written.admin.api_keys);
    defaults.base_dir.clone_from(&written.base_dir);
    assert_eq!(written, defaults);
    // And it is enough to run in production once the transport is chosen:
    // TLS, or plain text behind a TLS proxy, never plain text by default.
    let err = Settings::new(written.clone(), Profile::Production).unwrap_err().to_string();
    assert!(err.contains("server.tls.cert") && err.contains("allow_plaintext"), "{err}");
    let mut behind_proxy = written;
    behind_proxy.server.allow_plaintext = true;
    Settings::new(behind_proxy, Profile::Production).unwrap();
    // Two runs never share a secret.
    assert_ne!(render_init(), render_init());
}

#[test]
fn unknown_keys_are_named() {
    let err = load_text("[limits]\nmax_mesage_bytes = 5\n", &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("max_mesage_bytes") && msg.contains("limits"), "{msg}");
    let err = load_text("[nonsense]\nx = 1\n", &[]).unwrap_err();
    assert!(err.to_string().contains("nonsense"), "{err}");
    let err = load_text("[rooms.lobby]\njoinn = \"x:y\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("joinn"), "{err}");
}

#[test]
fn bad_values_are_named() {
    for (text, key) in [
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[auth]\nleeway = \"soon\"\n", "auth.leeway"),
        ("[limits]\nmax_message_bytes = -1\n", "limits.max_message_bytes"),
        ("[limits]\nmax_message_bytes = 0\n", "limits.max_message_bytes"),
        ("[limits]\nmax_write_buffer_bytes = 100\n", "limits.max_write_buffer_bytes"),
        ("[server]\nfirst_byte_timeout = \"0s\"\n", "server.first_byte_timeout"),
        ("[server]\nhandshake_timeout = \"1s\"\nfirst_byte_timeout = \"2s\"\n", "server.first_byte_timeout"),
        ("[abuse]\nmax_bans = 0\n", "abuse.max_bans"),
        ("[abuse]\nban_history_max_rows = 0\n", "abuse.ban_history_max_rows"),
        ("[abuse]\nban_history_max_age = \"1day\"\n", "abuse.ban_history_max_age"),
        ("[abuse]\nrecover_rate = \"often\"\n", "abuse.recover_rate"),
        ("[store]\nbackend = \"mysql\"\n", "store.backend"),
        ("[store]\nbackend = \"redis\"\n", "store.redis_url"),
        ("[store]\nbackend = \"redis\"\nredis_url = \"http://secret@x\"\n", "store.redis_url"),
        ("[store]\nbackend = \"redis\"\nredis_url = \"redis://h\"\nprefix = \"{a}\"\n", "store.prefix"),
        ("[store]\nbackend = \"redis\"\nredis_url = \"redis://h\"\ntimeout = \"0s\"\n", "store.timeout"),
        (
            "[store]\nbackend = \"redis\"\nredis_url = \"redis://h\"\nredis_ca_file = \"ca.pem\"\n",
            "store.redis_ca_file",
        ),
        ("[limits]\nmax_owned_rooms = 0\n", "limits.max_owned_rooms"),
    ] {
        let err = load_text(text, &[]).unwrap_err();
        assert!(err.to_string().contains(key), "{text}: {err}");
    }
    let err = load_text("[server\n", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    let mut c = load_text("", &[]).unwrap();
    c.server.node_id = "Node_1".into();
    let err = Settings::new(c, Profile::Dev).unwrap_err();
    assert!(err.to_string().contains("server.node_id"), "{err}");
}

#[test]
fn a_per_user_nonce_quota_must_fit_in_the_store() {
    for text in ["[replay]\nmax_nonces_per_user = 0\n", "[replay]\nmax_nonces = 100\n"] {
        let err = load_text(text, &[]).unwrap_err();
        assert!(err.to_string().contains("replay.max_nonces_per_user"), "{text}: {err}");
    }
    load_text("[replay]\nmax_nonces = 100\nmax_nonces_per_user = 100\n", &[]).unwrap();
}

#[test]
fn policy_sections_replace_the_defaults_instead_of_merging() {
    let c = load_text("[rooms.\"course:*\"]\njoin = \"course:join\"\n", &[]).unwrap();
    assert_eq!(c.rooms.keys().collect::<Vec<_>>(), ["course:*"]);
    // Other sections still merge key by key.
    let c = load_text("[limits]\noutbound_queue = 3\n", &[]).unwrap();
    assert_eq!((c.limits.outbound_queue, c.limits.max_message_bytes), (3, 65536));
}

#[test]
fn environment_overrides_win_over_the_file() {
    let c = load_text(
        "[limits]\nmax_message_bytes = 1000\nmax_write_buffer_bytes = 100000\n",
        &[("PALISADE_LIMITS__MAX_MESSAGE_BYTES", "2000"), ("PALISADE_SERVER__LISTEN", "127.0.0.1:9999")],
    )
    .unwrap();
    assert_eq!(c.limits.max_message_bytes, 2000);
    assert_eq!(c.server.listen.port(), 9999);
    let err = load_text("", &[("PALISADE_LIMITS__NOPE", "1")]).unwrap_err();
    assert!(err.to_string().contains("PALISADE_LIMITS__NOPE"), "{err}");
}

#[test]
fn production_without_a_key_refuses_to_start_and_names_the_key() {
    let c = load_text("", &[]).unwrap();
    let err = Settings::new(c, Profile::Production).unwrap_err();
    assert!(err.to_string().contains("auth.keys"), "{err}");
}

#[test]
fn key_errors_name_the_entry() {
    let text = "[[auth.keys]]\nid = \"a\"\nalgorithm = \"HS256\"\nsecret = \"short\"\n";
    let err = Settings::new(load_text(text, &[]).unwrap(), Profile::Production).unwrap_err();
    assert!(err.to_string().contains("auth.keys"), "{err}");
    let text = "[[auth.keys]]\nid = \"a\"\nalgorithm = \"HS256\"\n";
    let err = Settings::new(load_text(text, &[]).unwrap(), Profile::Production).unwrap_err();
    assert!(err.to_string().contains("auth.keys[0].secret"), "{err}");
    let secret = "0123456789abcdef0123456789abcdef";
    let text = format!(
        "[[auth.keys]]\nid = \"a\"\nalgorithm = \"HS256\"\nsecret = \"{secret}\"\n[[auth.keys]]\nid = \"a\"\nalgorithm = \"HS512\"\nsecret = \"{secret}\"\n"
    );
    let err = Settings::new(load_text(&text, &[]).unwrap(), Profile::Production).unwrap_err();
    assert!(err.to_string().contains("auth.keys[1].id"), "{err}");
    let text = "[[auth.keys]]\nid = \"a\"\nalgorithm = \"none\"\nsecret = \"x\"\n";
    let err = load_text(text, &[]).unwrap_err();
    assert!(err.to_string().contains("auth.keys[0].algorithm"), "{err}");
}

#[test]
fn dev_profile_generates_and_reuses_a_secret_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = keys::dev_key(&data).unwrap();
    let second = keys::dev_key(&data).unwrap();
    assert_eq!(first.secret, second.secret);
    assert!(first.secret.as_ref().is_some_and(|s| s.len() >= 32));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join(keys::DEV_SECRET_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn bad_origins_and_policy_are_named() {
    let text = "[origins]\nallow = [\"example.com\"]\n[[auth.keys]]\nid = \"a\"\nalgorithm = \"HS256\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
    let err = Settings::new(load_text(text, &[]).unwrap(), Profile::Production).unwrap_err();
    assert!(err.to_string().contains("origins.allow") && err.to_string().contains("example.com"), "{err}");
    let text = "[rooms.lobby]\njoin = \"NOT VALID\"\n[[auth.keys]]\nid = \"a\"\nalgorithm = \"HS256\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
    let err = Settings::new(load_text(text, &[]).unwrap(), Profile::Production).unwrap_err();
    assert!(err.to_string().contains("rooms.\"lobby\".join"), "{err}");
}

#[test]
fn a_write_buffer_that_cannot_hold_the_largest_event_frame_is_refused() {
    let with = |buffer: usize| {
        load_text(&format!("[limits]\nmax_message_bytes = 1000\nmax_write_buffer_bytes = {buffer}\n"), &[])
    };
    let Err(ConfigError::Invalid { key, why }) = with(1000 + ENVELOPE_HEADROOM - 1) else { panic!("accepted") };
    assert_eq!(key, "limits.max_write_buffer_bytes");
    assert!(why.contains(&ENVELOPE_HEADROOM.to_string()), "{why}");
    assert_eq!(with(1000 + ENVELOPE_HEADROOM).unwrap().limits.max_write_buffer_bytes, 1000 + ENVELOPE_HEADROOM);
}

#[test]
fn the_documented_envelope_headroom_is_the_real_one() {
    let stated = format!("max_message_bytes` + {ENVELOPE_HEADROOM}");
    assert!(include_str!("../../../../docs/CONFIG.md").contains(&stated), "docs/CONFIG.md must say {stated}");
    assert!(TEMPLATE.contains(&format!("max_message_bytes + {ENVELOPE_HEADROOM}")), "the template must say it too");
}

#[test]
fn production_requires_an_audit_key_and_dev_generates_one() {
    let keys = "[server]\nallow_plaintext = true\n[[auth.keys]]\nid = \"k\"\nalgorithm = \"HS256\"\n\
                secret = \"0123456789abcdef0123456789abcdef\"\n";
    let err = Settings::new(load_text(keys, &[]).unwrap(), Profile::Production).unwrap_err();
    assert!(err.to_string().contains("audit.checkpoint_key"), "{err}");
    let off = format!("{keys}[audit]\nenabled = false\n");
    assert!(Settings::new(load_text(&off, &[]).unwrap(), Profile::Production).unwrap().audit_key.is_none());
    let short = format!("{keys}[audit]\ncheckpoint_key = \"short\"\n");
    let err = Settings::new(load_text(&short, &[]).unwrap(), Profile::Production).unwrap_err();
    assert!(err.to_string().contains("audit.checkpoint_key") && err.to_string().contains("32"), "{err}");
    let both = format!("{keys}[audit]\ncheckpoint_key = \"{0}\"\ncheckpoint_key_file = \"k\"\n", "x".repeat(32));
    assert!(Settings::new(load_text(&both, &[]).unwrap(), Profile::Production).is_err());
    // The key never reaches a Debug line.
    let secret = "y".repeat(40);
    let with = format!("{keys}[audit]\ncheckpoint_key = \"{secret}\"\n");
    let settings = Settings::new(load_text(&with, &[]).unwrap(), Profile::Production).unwrap();
    assert_eq!(settings.audit_key.as_ref().unwrap().bytes(), secret.as_bytes());
    assert!(!format!("{settings:?}").contains(&secret));

    let data = tempfile::tempdir().unwrap();
    let dev = format!("[server]\ndata_dir = \"{}\"\n", data.path().display());
    let first = Settings::new(load_text(&dev, &[]).unwrap(), Profile::Dev).unwrap().audit_key.unwrap();
    let again = Settings::new(load_text(&dev, &[]).unwrap(), Profile::Dev).unwrap().audit_key.unwrap();
    assert_eq!(first, again, "kept in <data_dir>/audit-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.path().join("audit-key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn room_countries_without_a_geo_database_are_refused_naming_the_room() {
    let err = compile_policy(&load_text("[rooms.\"eu:*\"]\ndeny_countries = [\"US\"]\n", &[]).unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("rooms.\"eu:*\".deny_countries") && msg.contains("geo.database"), "{msg}");
    let with_db =
        "[geo]\ndatabase = \"countries.mmdb\"\nunknown = \"deny\"\n[rooms.\"eu:*\"]\nallow_countries = [\"fr\"]\n";
    compile_policy(&load_text(with_db, &[]).unwrap()).unwrap();
}

#[test]
fn a_password_spray_threshold_past_its_own_memory_bound_is_refused() {
    let text = "[threat]\nstuffing_addresses = 65\nstuffing_max_addresses_per_password = 64\n";
    let err = load_text(text, &[]).unwrap_err().to_string();
    assert!(err.contains("threat.stuffing_addresses"), "{err}");
    let text = "[threat]\nstuffing_max_passwords = 0\n";
    let err = load_text(text, &[]).unwrap_err().to_string();
    assert!(err.contains("threat.stuffing_max_passwords"), "{err}");
}
