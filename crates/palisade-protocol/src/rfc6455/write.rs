//! The server's side of the wire: frames out, unmasked (RFC 6455 §5.1).

use super::{MAX_CONTROL_PAYLOAD, Opcode};

/// Appends one final (unfragmented), unmasked frame to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    let len = payload.len();
    out.reserve(10 + len);
    out.push(0x80 | opcode.bits());
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// A close frame's payload: `code`, then as much of `reason` as fits a
/// control frame, cut at a character boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}
