//! The server crate's layers (docs/ARCHITECTURE.md, "Layers of the server
//! crate"): handlers on top, services below them, leaves at the bottom,
//! and `AppState` only where the services are assembled. A service that
//! imports the assembly or a handler pulls the whole crate back into one
//! import cycle, so this test reads their source and refuses it.

/// Every module that must stay below the handlers and the assembly.
const SERVICES: [(&str, &str); 43] = [
    ("assets.rs", include_str!("assets.rs")),
    ("alerts.rs", include_str!("alerts.rs")),
    ("siem/mod.rs", include_str!("siem/mod.rs")),
    ("siem/follow.rs", include_str!("siem/follow.rs")),
    ("siem/sender.rs", include_str!("siem/sender.rs")),
    ("cluster/changes.rs", include_str!("cluster/changes.rs")),
    ("cluster/channel.rs", include_str!("cluster/channel.rs")),
    ("message_path.rs", include_str!("message_path.rs")),
    ("cluster/mod.rs", include_str!("cluster/mod.rs")),
    ("cluster/bus.rs", include_str!("cluster/bus.rs")),
    ("cluster/commit.rs", include_str!("cluster/commit.rs")),
    ("cluster/history.rs", include_str!("cluster/history.rs")),
    ("bus.rs", include_str!("bus.rs")),
    ("history.rs", include_str!("history.rs")),
    ("channel.rs", include_str!("channel.rs")),
    ("commit.rs", include_str!("commit.rs")),
    ("owners.rs", include_str!("owners.rs")),
    ("store.rs", include_str!("store.rs")),
    ("login.rs", include_str!("login.rs")),
    ("probe.rs", include_str!("probe.rs")),
    ("audit/mod.rs", include_str!("audit/mod.rs")),
    ("audit/writer.rs", include_str!("audit/writer.rs")),
    ("jwks.rs", include_str!("jwks.rs")),
    ("gateway.rs", include_str!("gateway.rs")),
    ("ops.rs", include_str!("ops.rs")),
    ("enforce.rs", include_str!("enforce.rs")),
    ("clock.rs", include_str!("clock.rs")),
    ("rejection.rs", include_str!("rejection.rs")),
    ("revoke.rs", include_str!("revoke.rs")),
    ("hub.rs", include_str!("hub.rs")),
    ("control.rs", include_str!("control.rs")),
    ("outbox.rs", include_str!("outbox.rs")),
    ("telemetry.rs", include_str!("telemetry.rs")),
    ("exit.rs", include_str!("exit.rs")),
    ("headers.rs", include_str!("headers.rs")),
    ("settings.rs", include_str!("settings.rs")),
    ("tls/mod.rs", include_str!("tls/mod.rs")),
    ("tls/stream.rs", include_str!("tls/stream.rs")),
    ("upstream/mod.rs", include_str!("upstream/mod.rs")),
    ("threat/mod.rs", include_str!("threat/mod.rs")),
    ("threat/refresh.rs", include_str!("threat/refresh.rs")),
    ("threat/geo.rs", include_str!("threat/geo.rs")),
    ("threat/reload.rs", include_str!("threat/reload.rs")),
];

/// The assembly and the handler modules (top-level names under `crate::`).
const ABOVE: [&str; 14] = [
    "state",
    "abuse",
    "admin",
    "demo",
    "auth",
    "cli",
    "edge",
    "follow",
    "handshake",
    "http",
    "listen",
    "reload",
    "server",
    "ws",
];

/// The crate paths `code` names (`crate::a::b` and each item of
/// `crate::{a, b::c}`), without the `crate::`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let items: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())].split(',').collect(),
            None => vec![rest],
        };
        for item in items {
            let path = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            paths.push(path);
        }
    }
    paths
}

/// What `source` says outside its tests and comments.
fn code_of(source: &str) -> String {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Why `source` breaks the layering, if it does.
fn violations(source: &str) -> Vec<String> {
    let code = code_of(source);
    let mut found: Vec<String> = crate_paths(&code)
        .into_iter()
        .filter(|path| {
            let top = path.split("::").next().unwrap_or_default();
            ABOVE.contains(&top)
        })
        .map(|path| format!("crate::{path}"))
        .collect();
    if code.contains("AppState") {
        found.push("AppState".into());
    }
    found
}

#[test]
fn services_import_neither_the_state_nor_a_handler() {
    for (name, source) in SERVICES {
        assert_eq!(violations(source), Vec::<String>::new(), "{name} reaches above the services");
    }
}

#[test]
fn the_check_sees_every_way_of_naming_what_is_above() {
    assert_eq!(violations("use crate::state::AppState;"), ["crate::state::AppState", "AppState"]);
    assert_eq!(violations("use crate::{gateway::call, http::json};"), ["crate::http::json"]);
    assert_eq!(violations("let x = crate::ws::serve(s);"), ["crate::ws::serve"]);
    assert!(violations("use crate::gateway::Store;\n// crate::state is above\n").is_empty());
    assert!(violations("fn f() {}\n#[cfg(test)]\nmod tests { use crate::state::AppState; }").is_empty());
}
