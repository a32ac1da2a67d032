//! The client's side of the wire: frames in, whole messages out.

use bytes::{Buf as _, Bytes, BytesMut};

use super::{Inbound, Limits, MAX_CONTROL_PAYLOAD, Opcode, Violation, sendable_close_code};

/// Reads a client's frames from a buffer the caller fills, one message at a
/// time. It keeps only a fragmented message's bytes between calls, so the
/// caller's buffer may be dropped whenever it is empty.
#[derive(Debug)]
pub struct Reader {
    limits: Limits,
    partial: Option<Partial>,
}

/// A fragmented message so far.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// How much of `data` is known to be UTF-8: the end of a text fragment
    /// may split a character the next fragment finishes.
    checked: usize,
}

/// A frame header, parsed.
struct Header {
    fin: bool,
    opcode: Opcode,
    /// Bytes before the payload.
    size: usize,
    len: usize,
    mask: [u8; 4],
}

impl Reader {
    /// A reader enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits, partial: None }
    }

    /// The next message or control frame in `buf`, taking its bytes; `None`
    /// until `buf` holds a whole frame that completes one. A violation is
    /// reported as soon as the bytes show it: an oversized frame from its
    /// header, before its payload arrives, and bad UTF-8 in a fragmented
    /// text message from the fragment that carries it. After a violation
    /// the connection is failed; the reader is not used again.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, Violation> {
        loop {
            let Some(header) = self.header(buf)? else { return Ok(None) };
            if header.size.checked_add(header.len).is_none_or(|end| end > buf.len()) {
                return Ok(None);
            }
            buf.advance(header.size);
            let payload = &mut buf[..header.len];
            unmask(payload, header.mask);
            let inbound = match header.opcode {
                Opcode::Ping => Some(Inbound::Ping(Bytes::copy_from_slice(payload))),
                Opcode::Pong => Some(Inbound::Pong(Bytes::copy_from_slice(payload))),
                Opcode::Close => Some(Inbound::Close(close(payload)?)),
                Opcode::Text | Opcode::Binary if header.fin => Some(whole(header.opcode, payload)?),
                Opcode::Text | Opcode::Binary => {
                    let mut partial = Partial { text: header.opcode == Opcode::Text, data: Vec::new(), checked: 0 };
                    partial.extend(payload)?;
                    self.partial = Some(partial);
                    None
                }
                Opcode::Continuation => {
                    let Some(partial) = self.partial.as_mut() else { return Err(Violation::UnexpectedContinuation) };
                    partial.extend(payload)?;
                    match header.fin {
                        true => self.partial.take().map(Partial::finish).transpose()?,
                        false => None,
                    }
                }
            };
            buf.advance(header.len);
            if inbound.is_some() {
                return Ok(inbound);
            }
        }
    }

    /// The header at the front of `buf`, checked against the protocol and
    /// the limits as far as the bytes present allow; `None` if incomplete.
    fn header(&self, buf: &[u8]) -> Result<Option<Header>, Violation> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        if b0 & 0x70 != 0 {
            return Err(Violation::ReservedBits);
        }
        let bits = b0 & 0x0F;
        let opcode = Opcode::from_bits(bits).ok_or(Violation::UnknownOpcode(bits))?;
        let fin = b0 & 0x80 != 0;
        if b1 & 0x80 == 0 {
            return Err(Violation::Unmasked);
        }
        let short = usize::from(b1 & 0x7F);
        if opcode.is_control() && (!fin || short > MAX_CONTROL_PAYLOAD) {
            return Err(Violation::BadControlFrame);
        }
        match opcode {
            Opcode::Continuation if self.partial.is_none() => return Err(Violation::UnexpectedContinuation),
            Opcode::Text | Opcode::Binary if self.partial.is_some() => return Err(Violation::UnfinishedMessage),
            _ => {}
        }
        let (len, at) = match short {
            126 => match buf.get(2..4) {
                Some(&[hi, lo]) => (u64::from(u16::from_be_bytes([hi, lo])), 4),
                _ => return Ok(None),
            },
            127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(bytes) => (u64::from_be_bytes(bytes), 10),
                None => return Ok(None),
            },
            n => (n as u64, 2),
        };
        // A length with its top bit set (RFC 6455 §5.2 forbids it) is over
        // any limit: refused as too big, as tungstenite did (1009).
        let len = self.check_size(opcode, len)?;
        let Some(&[m0, m1, m2, m3]) = buf.get(at..at + 4) else { return Ok(None) };
        Ok(Some(Header { fin, opcode, size: at + 4, len, mask: [m0, m1, m2, m3] }))
    }

    /// `len` as a size, if the frame and the message it belongs to are
    /// within the limits.
    fn check_size(&self, opcode: Opcode, len: u64) -> Result<usize, Violation> {
        let Limits { max_frame, max_message } = self.limits;
        let frame = usize::try_from(len).ok().filter(|&l| l <= max_frame);
        let Some(frame) = frame else { return Err(Violation::FrameTooBig { size: len, max: max_frame }) };
        if opcode.is_control() {
            return Ok(frame);
        }
        let before = self.partial.as_ref().map_or(0, |p| p.data.len());
        match before.checked_add(frame).filter(|&total| total <= max_message) {
            Some(_) => Ok(frame),
            None => Err(Violation::MessageTooBig { size: (before as u64).saturating_add(len), max: max_message }),
        }
    }
}

impl Partial {
    fn extend(&mut self, payload: &[u8]) -> Result<(), Violation> {
        self.data.extend_from_slice(payload);
        if self.text {
            self.checked = utf8_prefix(&self.data, self.checked)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Inbound, Violation> {
        match self.text {
            // `from_utf8` checks again what `extend` checked in pieces;
            // this crate has no unchecked conversion (`forbid(unsafe_code)`).
            true => String::from_utf8(self.data).map(Inbound::Text).map_err(|_| Violation::InvalidUtf8),
            false => Ok(Inbound::Binary(self.data.into())),
        }
    }
}

/// An unfragmented text or binary message.
fn whole(opcode: Opcode, payload: &[u8]) -> Result<Inbound, Violation> {
    match opcode {
        Opcode::Text => match std::str::from_utf8(payload) {
            Ok(text) => Ok(Inbound::Text(text.to_owned())),
            Err(_) => Err(Violation::InvalidUtf8),
        },
        _ => Ok(Inbound::Binary(Bytes::copy_from_slice(payload))),
    }
}

/// How far `data` is UTF-8, checking from `from` (a character boundary);
/// an unfinished character at the end is not yet an error.
fn utf8_prefix(data: &[u8], from: usize) -> Result<usize, Violation> {
    let rest = data.get(from..).unwrap_or_default();
    match std::str::from_utf8(rest) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() => Ok(from + e.valid_up_to()),
        Err(_) => Err(Violation::InvalidUtf8),
    }
}

/// A close frame's code and reason.
fn close(payload: &[u8]) -> Result<Option<(u16, String)>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(Violation::BadClosePayload),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !sendable_close_code(code) {
                return Err(Violation::BadCloseCode(code));
            }
            match std::str::from_utf8(reason) {
                Ok(reason) => Ok(Some((code, reason.to_owned()))),
                Err(_) => Err(Violation::InvalidUtf8),
            }
        }
    }
}

/// Undoes the client's masking in place, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Chunks are a multiple of four long, so the mask restarts here.
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}
