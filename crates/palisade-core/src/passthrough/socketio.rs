//! Socket.IO v5 over Engine.IO v4, WebSocket transport only: the packet
//! grammar the `socket.io` preset reads (docs/GATEWAY.md, "Socket.IO").
//!
//! An Engine.IO packet is one type digit and a payload; a message (`4`)
//! carries a Socket.IO packet: a type digit, an optional `/namespace,`, an
//! optional ack id, then JSON. `42["chat",{…}]` is an event whose array
//! the preset's pointers read (`/0` the name, `/1` the first argument).

use super::Packet;

/// Reads one text frame.
pub(super) fn decode(text: &str) -> Packet<'_> {
    let bytes = text.as_bytes();
    match bytes.first() {
        // open, close, ping, pong, upgrade, noop: the transport's own
        // housekeeping, no data for the policy.
        Some(b'0' | b'1' | b'2' | b'3' | b'5' | b'6') => Packet::Control,
        Some(b'4') => match bytes.get(1) {
            // CONNECT (its auth payload is the backend's), DISCONNECT and
            // CONNECT_ERROR.
            Some(b'0' | b'1' | b'4') => Packet::Control,
            Some(b'2') => match split(&text[2..]) {
                Some((framing, body)) => Packet::Message { prefix: &text[..2 + framing], body },
                None => Packet::Refused("socket.io event without a JSON array"),
            },
            Some(b'3') => Packet::Ack,
            Some(b'5' | b'6') => Packet::Refused("socket.io binary packet"),
            _ => Packet::Refused("unknown socket.io packet type"),
        },
        _ => Packet::Refused("unknown engine.io packet type"),
    }
}

/// An event with this frame's namespace, sent to the client: `42` and the
/// JSON array.
pub(super) fn event(array: &str) -> String {
    format!("42{array}")
}

/// Splits what follows the packet type into the namespace and ack id
/// (their length) and the JSON array.
fn split(rest: &str) -> Option<(usize, &str)> {
    let mut at = 0;
    if rest.starts_with('/') {
        at = rest.find(',')? + 1;
    }
    at += rest[at..].bytes().take_while(u8::is_ascii_digit).count();
    let body = &rest[at..];
    body.starts_with('[').then_some((at, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_into_framing_and_array_and_the_rest_is_named() {
        let msg = |prefix, body| Packet::Message { prefix, body };
        assert_eq!(decode(r#"42["chat",{"a":1}]"#), msg("42", r#"["chat",{"a":1}]"#));
        assert_eq!(decode(r#"4217["chat"]"#), msg("4217", r#"["chat"]"#));
        assert_eq!(decode(r#"42/admin,3["x",1]"#), msg("42/admin,3", r#"["x",1]"#));
        assert_eq!(decode("2"), Packet::Control);
        assert_eq!(decode("3probe"), Packet::Control);
        assert_eq!(decode(r#"40{"token":"t"}"#), Packet::Control);
        assert_eq!(decode("43[1]"), Packet::Ack);
        assert!(matches!(decode(r#"451-["up",{"_placeholder":true,"num":0}]"#), Packet::Refused(_)));
        assert!(matches!(decode(r#"42{"not":"an array"}"#), Packet::Refused(_)));
        assert!(matches!(decode("42/ns-without-comma"), Packet::Refused(_)));
        assert!(matches!(decode(""), Packet::Refused(_)));
        assert!(matches!(decode("9"), Packet::Refused(_)));
        assert_eq!(event(r#"["e",1]"#), r#"42["e",1]"#);
    }
}
