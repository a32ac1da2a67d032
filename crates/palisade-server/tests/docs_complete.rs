//! The docs must keep naming every config key, error code and close code,
//! so a change in behaviour that skips the docs fails here.

use std::path::Path;

use palisade_protocol::{CloseCode, ErrorCode};

fn read(rel: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn config_md_names_every_key_of_the_template() {
    let doc = read("../../docs/CONFIG.md");
    let template: toml::Table = toml::from_str(&read("src/config/palisade.toml")).unwrap();
    let mut missing = Vec::new();
    // Every section but the policy maps, whose keys are names users choose
    // (their fields are listed below).
    let sections = template.iter().filter(|(name, _)| !["roles", "rooms", "events"].contains(&name.as_str()));
    for (section, table) in sections {
        for (key, value) in table.as_table().unwrap() {
            // A table of keys the user may leave out (abuse.weights) is
            // documented as `section.table.<kind>`, with every kind below;
            // a fixed sub-table (server.tls) key by key.
            let names: Vec<String> = match value.as_table() {
                Some(sub) if !doc.contains(&format!("`{section}.{key}.<kind>`")) => {
                    sub.keys().map(|k| format!("`{section}.{key}.{k}`")).collect()
                }
                Some(_) => Vec::new(),
                None => vec![format!("`{section}.{key}`")],
            };
            missing.extend(names.into_iter().filter(|name| !doc.contains(name)));
        }
    }
    // Fields of entries whose names the user chooses.
    for name in [
        "`auth.keys[].id`",
        "`auth.keys[].algorithm`",
        "`auth.keys[].secret`",
        "`auth.keys[].secret_file`",
        "`auth.keys[].public_key_file`",
        "`auth.keys[].private_key_file`",
        "`auth.issuers[].issuer`",
        "`auth.issuers[].audience`",
        "`auth.issuers[].algorithms`",
        "`auth.issuers[].keys`",
        "`auth.issuers[].jwks_url`",
        "`auth.issuers[].jwks_max_bytes`",
        "`auth.issuers[].jwks_min_refresh`",
        "`auth.issuers[].jwks_timeout`",
        "`auth.issuers[].jwks_max_age`",
        "`roles.<name>.permissions`",
        "`rooms.\"<pattern>\".join`",
        "`rooms.\"<pattern>\".publish`",
        "`events.\"<name>\".permission`",
        "`events.\"<name>\".schema`",
        "`events.\"<name>\".schema_file`",
        "`events.\"<name>\".max_bytes`",
        "`events.\"<name>\".csrf`",
        "`events.\"<name>\".replay`",
        "`events.\"<name>\".rate`",
        "`events.\"<name>\".sanitize`",
    ] {
        if !doc.contains(name) {
            missing.push(name.to_owned());
        }
    }
    assert!(missing.is_empty(), "docs/CONFIG.md does not document: {missing:?}");
}

#[test]
fn every_refusal_kind_is_weighted_in_the_template_and_named_in_the_docs() {
    let template: toml::Table = toml::from_str(&read("src/config/palisade.toml")).unwrap();
    let weights = template["abuse"]["weights"].as_table().unwrap();
    let (config, protocol) = (read("../../docs/CONFIG.md"), read("../../docs/PROTOCOL.md"));
    for kind in palisade_core::refusal::Kind::ALL {
        let name = kind.name();
        let weight = weights.get(name).and_then(toml::Value::as_integer);
        assert_eq!(weight, Some(i64::from(kind.default_weight())), "template weight of {name}");
        assert!(config.contains(&format!("`{name}` {}", kind.default_weight())), "CONFIG.md default weight of {name}");
        assert!(protocol.contains(&format!("`{name}`")), "PROTOCOL.md does not name the kind {name}");
    }
}

#[test]
fn protocol_md_names_every_error_and_close_code() {
    let doc = read("../../docs/PROTOCOL.md");
    for code in ErrorCode::ALL {
        assert!(doc.contains(&format!("| `{}` |", code.as_str())), "error code {code} missing from the table");
    }
    for code in CloseCode::ALL {
        assert!(doc.contains(&format!("| {} |", code.code())), "close code {} missing from the table", code.code());
    }
}
