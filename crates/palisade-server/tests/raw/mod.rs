//! Below the WebSocket client: a hand-written upgrade request and hand-made
//! frame bytes, for what a well-behaved client library cannot send (two
//! `Authorization` headers, a frame header cut short).

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Longest a raw read waits.
const WAIT: Duration = Duration::from_secs(10);

/// Sends a WebSocket upgrade for `/ws` with `headers` added; returns the
/// socket and the response head (status line and headers).
pub async fn upgrade(addr: SocketAddr, headers: &[(&str, &str)]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = String::from(
        "GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // Byte by byte, so nothing after the head (the first frame) is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, s.read(&mut byte)).await.expect("response in time").unwrap();
        assert_eq!(n, 1, "connection closed inside the response head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

/// The status code of a response head.
pub fn status(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line")
}

/// A frame the server sent (servers never mask).
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads one server frame; `None` when the server hung up (EOF or reset).
pub async fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.ok()?;
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    assert!(len <= 1 << 20, "server frame of {len} bytes");
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    s.read_exact(&mut payload).await.ok()?;
    Some(Frame { opcode: head[0] & 0x0F, payload })
}

/// Reads frames until a close frame (its code) or the end of the stream
/// (`None`), skipping pings and other frames; at most `WAIT`.
pub async fn closing(s: &mut TcpStream) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, read_frame(s)).await.expect("server ends the connection in time");
        match frame {
            None => return None,
            Some(f) if f.opcode == 0x8 => return f.close_code(),
            Some(_) => continue,
        }
    }
}

/// The header of a masked text frame from a client, with a 64-bit length
/// field (which RFC 6455 allows for any length), cut after the length when
/// `with_mask` is false.
pub fn text_header_64(len: u64, with_mask: bool) -> Vec<u8> {
    let mut h = vec![0x81, 0x80 | 127];
    h.extend_from_slice(&len.to_be_bytes());
    if with_mask {
        h.extend_from_slice(&[1, 2, 3, 4]);
    }
    h
}
