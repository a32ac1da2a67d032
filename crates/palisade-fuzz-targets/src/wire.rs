//! Targets for what arrives first and is smallest: WebSocket frames, JSON,
//! sanitized strings and forwarded addresses.

use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;

use palisade_core::addr::{IpKey, TrustedProxies};
use palisade_core::json::{JsonError, JsonLimits};
use palisade_core::sanitize::{Refused, Rule, SanitizeSettings, Sanitizers};
use palisade_protocol::rfc6455::{Inbound, Limits, MAX_CONTROL_PAYLOAD, Reader};

use crate::env::defaults;

/// The server's frame reader (`palisade_protocol::rfc6455`, which every
/// server socket reads with: crates/palisade-server/src/ws/socket.rs) under
/// the frame and message limits `limits.max_message_bytes` gives, fed the
/// client's bytes in pieces whose sizes the first byte picks, as a socket
/// might deliver them. Invariants: no message over the limit is ever
/// delivered, a control frame's payload fits one, and reading never takes
/// more than it was given.
pub fn frame_reader(data: &[u8]) {
    let Some((&first, bytes)) = data.split_first() else { return };
    let max = defaults().limits.max_message_bytes;
    let mut reader = Reader::new(Limits { max_frame: max, max_message: max });
    let piece = 1 + usize::from(first);
    let mut buf = BytesMut::new();
    for chunk in bytes.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match reader.read(&mut buf) {
                Ok(Some(Inbound::Text(text))) => {
                    assert!(text.len() <= max, "text message over the limit");
                    crate::envelope(text.as_bytes());
                }
                Ok(Some(Inbound::Binary(bytes))) => assert!(bytes.len() <= max, "binary message over the limit"),
                Ok(Some(Inbound::Ping(p) | Inbound::Pong(p))) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
                Ok(Some(Inbound::Close(close))) => {
                    assert!(close.is_none_or(|(_, reason)| reason.len() <= MAX_CONTROL_PAYLOAD - 2));
                }
                Ok(None) => {
                    assert!(buf.len() <= before);
                    break;
                }
                // A violation fails the connection: nothing more is read.
                Err(violation) => {
                    let _ = violation.close_code();
                    return;
                }
            }
        }
    }
}

/// `palisade_core::json::parse` under the shipped limits and under small
/// ones the first byte picks. Invariants: accepted text fits both limits,
/// its depth agrees with `check_depth`, and a refusal for depth or size is
/// true of the text.
pub fn bounded_json(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let small = JsonLimits { max_depth: usize::from(first % 8), max_bytes: 64 + usize::from(first) * 16 };
    for limits in [JsonLimits::default(), small] {
        match palisade_core::json::parse(text, limits) {
            Ok(value) => {
                assert!(text.len() <= limits.max_bytes, "accepted over max_bytes");
                let depth = depth_of(&value);
                assert!(depth <= limits.max_depth, "accepted depth {depth} over {}", limits.max_depth);
                assert_eq!(palisade_core::json::check_depth(text, limits.max_depth), Ok(depth));
            }
            Err(JsonError::TooLarge(_)) => assert!(text.len() > limits.max_bytes, "refused as too large"),
            Err(JsonError::TooDeep(_) | JsonError::DuplicateKey | JsonError::Invalid(_)) => {}
        }
    }
}

fn depth_of(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

const RULES: [Rule; 5] = [Rule::Html, Rule::Text, Rule::Url, Rule::Filename, Rule::Profanity];

fn sanitizer_set() -> &'static Sanitizers {
    static SET: std::sync::OnceLock<Sanitizers> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let settings = SanitizeSettings {
            url_blocked_hosts: vec!["evil.example".into(), "*.bad.example".into()],
            profanity_words: vec!["darn".into(), "heck".into()],
            filename_max_len: 64,
            ..SanitizeSettings::default()
        };
        Sanitizers::new(&settings).unwrap_or_else(|e| panic!("fuzz sanitizer settings: {e}"))
    })
}

/// The always-on normalization over the rest as a JSON string, then one
/// rule (the first byte picks it) over its result. Invariants: normalizing
/// is idempotent; a rule's output is
/// bounded (the HTML budget of crates/palisade-core/src/sanitize/html.rs
/// over the escaped input; a file name by its limit) and cleaning what a
/// rule gave back changes nothing.
pub fn sanitizers(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let Ok(raw) = std::str::from_utf8(rest) else { return };
    // What the pipeline gives a rule: the always-on normalization runs
    // first (crates/palisade-core/src/sanitize/mod.rs). On raw input a rule
    // is not idempotent: `hec\0k` passes the profanity mask, then loses
    // its NUL to the output's normalization (docs/SECURITY.md, "Fuzzing").
    let mut value = serde_json::Value::String(raw.to_owned());
    palisade_core::sanitize::normalize(&mut value);
    let once = value.clone();
    palisade_core::sanitize::normalize(&mut value);
    assert_eq!(value, once, "normalize is not idempotent");
    let serde_json::Value::String(input) = value else { return };
    let input = input.as_str();
    let rule = RULES[usize::from(first) % RULES.len()];
    let set = sanitizer_set();
    let out = match set.apply(rule, input) {
        Ok(Some(out)) => out,
        Ok(None) => input.to_owned(),
        Err(Refused::Invalid(_) | Refused::Expands) => return,
    };
    // Escaping is at most 6 bytes per input byte (`&#x27;`), the HTML
    // renderer at most twice that plus its slack; NFC at most triples.
    let bound = 3 * (2 * 6 * input.len() + 256);
    assert!(out.len() <= bound, "{rule:?} output {} bytes for {} input bytes", out.len(), input.len());
    if rule == Rule::Filename {
        assert!(out.len() <= 64, "file name over filename_max_len");
    }
    assert_eq!(set.apply(rule, &out), Ok(None), "{rule:?} is not idempotent on {input:?} -> {out:?}");
}

fn proxies() -> &'static TrustedProxies {
    static PROXIES: std::sync::OnceLock<TrustedProxies> = std::sync::OnceLock::new();
    PROXIES.get_or_init(|| {
        TrustedProxies::parse(&["127.0.0.0/8", "::1/128", "10.0.0.0/8", "fd00::/8"])
            .unwrap_or_else(|e| panic!("fuzz proxies: {e}"))
    })
}

/// `X-Forwarded-For` headers (split at 0xFF bytes) behind a peer the first
/// byte picks, and the proxy list parser over the same text. Invariants:
/// an untrusted peer is its own client;
/// keying is idempotent.
pub fn xff(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let peer: IpAddr = match first % 4 {
        0 => Ipv4Addr::new(127, 0, 0, 1).into(),
        1 => Ipv4Addr::new(10, 1, 2, 3).into(),
        2 => "::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        _ => Ipv4Addr::new(203, 0, 113, 9).into(),
    };
    let headers: Vec<&[u8]> = rest.split(|&b| b == 0xFF).take(16).collect();
    let client = proxies().client(peer, &headers);
    if !proxies().contains(peer) {
        assert_eq!(client, peer, "an untrusted peer is its own client");
    }
    let key = IpKey::of(client);
    assert_eq!(IpKey::of(key.addr()), key, "keying is idempotent");
    let text = String::from_utf8_lossy(rest);
    let networks: Vec<&str> = text.split([',', '\n']).take(16).collect();
    if let Ok(parsed) = TrustedProxies::parse(&networks) {
        let _ = parsed.client(peer, &headers);
    }
}
