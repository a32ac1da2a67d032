//! The server side of a TLS connection on rustls' unbuffered API
//! (docs/ARCHITECTURE.md, "TLS and the HTTP edge").
//!
//! rustls' buffered `ServerConnection` keeps a 4 KiB incoming buffer for the
//! life of the connection; with the unbuffered API the buffers are ours,
//! and, as in `ws/socket.rs`, they exist only while bytes are in flight: the
//! ciphertext buffer is dropped when a read finds the socket empty, the
//! outgoing one when everything in it is on the socket, the plaintext one
//! when the reader has taken it all.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BufMut as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::server::UnbufferedServerConnection;
use tokio_rustls::rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use tokio_rustls::rustls::{self, ServerConfig};

/// The most plaintext one record carries; a larger write is cut here, so
/// one `poll_write` encrypts one record.
const MAX_FRAGMENT: usize = 16 * 1024;
/// The largest record rustls accepts after the handshake (payload, the
/// cipher's expansion, the header): a partial record never needs more, and
/// rustls refuses a header announcing more.
const RECORD_LIMIT: usize = 16 * 1024 + 2048 + 5;
/// What the handshake may hold unprocessed: rustls refuses handshake
/// messages over 64 KiB, and its own buffered reader stops at about this.
const HANDSHAKE_LIMIT: usize = 64 * 1024 + 4096;
/// The smallest socket read, when no record header says more is due.
const READ_CHUNK: usize = 4096;
/// TLS bytes rustls made while reading (alerts, key updates) past which
/// reading stops until the peer takes them: a peer that provokes answers
/// without reading them cannot grow the buffer. Above what a write leaves
/// pending (one record), so a write waiting on the peer never stops reads.
const OUTGOING_LIMIT: usize = 2 * RECORD_LIMIT;
/// TLS record header: content type, version, length.
const HEADER: usize = 5;

/// Runs the server handshake on `io` with `config`; the stream once both
/// sides may send application data and the server's flight is out.
pub async fn accept<IO>(io: IO, config: Arc<ServerConfig>) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = UnbufferedServerConnection::new(config).map_err(invalid)?;
    let mut stream = TlsStream {
        io,
        conn,
        incoming: Vec::new(),
        outgoing: Vec::new(),
        plaintext: None,
        peer_closed: false,
        close_queued: false,
        failed: false,
    };
    poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

/// A server-side TLS connection over `IO`. Every idle connection keeps
/// one (boxed), so its fields are few and small: rustls' own state is most
/// of it.
pub struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// Ciphertext read and not yet discarded by rustls (a partial record,
    /// or, in the handshake, a partial handshake message).
    incoming: Vec<u8>,
    /// TLS bytes not yet on the socket.
    outgoing: Vec<u8>,
    /// Decrypted bytes a reader with a small buffer has not taken yet.
    plaintext: Option<Box<Leftover>>,
    /// The peer's close_notify arrived: reads end cleanly.
    peer_closed: bool,
    /// Our close_notify is in `outgoing` (or sent).
    close_queued: bool,
    /// rustls failed the connection: every later call fails.
    failed: bool,
}

/// A record's plaintext beyond what the reader took, from `taken` on.
struct Leftover {
    bytes: Vec<u8>,
    taken: usize,
}

/// What one pass of rustls over the incoming bytes came to.
enum Step {
    /// Something moved: ask rustls again.
    Again,
    /// rustls waits for more bytes from the peer.
    NeedBytes,
    /// Both close_notify alerts are done with.
    Closed,
    /// `send` was encrypted into `outgoing`: how many plaintext bytes.
    Sent(usize),
}

/// What a pass may encrypt once rustls allows application data.
#[derive(Clone, Copy)]
enum Out<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            // Session tickets follow the handshake in the same flight.
            if !self.conn.is_handshaking() && !self.conn.wants_write() {
                ready!(self.poll_write_out(cx))?;
                if self.incoming.is_empty() {
                    self.incoming = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
            let step = match self.process(Out::Nothing, None) {
                Ok(step) => step,
                Err(e) => return Poll::Ready(Err(self.alert_then(cx, e))),
            };
            match step {
                Step::Again | Step::Sent(_) => {}
                Step::Closed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Step::NeedBytes => {
                    // The client answers only what it has received.
                    ready!(self.poll_write_out(cx))?;
                    ready!(self.poll_fill(cx))?;
                }
            }
        }
    }

    /// One call of rustls over `incoming`, its state handled. Plaintext goes
    /// to `into` while it has room, the rest to `plaintext`.
    fn process(&mut self, send: Out<'_>, mut into: Option<&mut ReadBuf<'_>>) -> io::Result<Step> {
        if self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the TLS connection failed"));
        }
        let Self { conn, incoming, outgoing, plaintext, peer_closed, close_queued, .. } = self;
        let UnbufferedStatus { mut discard, state } = conn.process_tls_records(incoming);
        let step = match state {
            Err(e) => Err(e),
            Ok(ConnectionState::ReadTraffic(mut traffic)) => loop {
                match traffic.next_record() {
                    None => break Ok(Step::Again),
                    Some(Err(e)) => break Err(e),
                    Some(Ok(record)) => {
                        discard += record.discard;
                        deliver(record.payload, into.as_deref_mut(), plaintext);
                    }
                }
            },
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                encode_into(outgoing, |out| encode.encode(out)).map(|_| Step::Again)
            }
            // `outgoing` keeps the bytes in order and is written before
            // any read waits, which is what rustls asks here.
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                Ok(Step::Again)
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(Step::NeedBytes),
            Ok(ConnectionState::PeerClosed) => {
                *peer_closed = true;
                Ok(Step::Again)
            }
            Ok(ConnectionState::Closed) => Ok(Step::Closed),
            Ok(ConnectionState::WriteTraffic(mut traffic)) => match send {
                Out::Nothing => Ok(Step::NeedBytes),
                Out::Data(data) => {
                    encrypt_into(outgoing, |out| traffic.encrypt(data, out)).map(|_| Step::Sent(data.len()))
                }
                Out::CloseNotify => encrypt_into(outgoing, |out| traffic.queue_close_notify(out)).map(|_| {
                    *close_queued = true;
                    Step::Sent(0)
                }),
            },
            // Early data is not enabled (`max_early_data_size` 0), and the
            // enum grows with rustls: anything else ends the connection.
            Ok(_) => Err(rustls::Error::General("unexpected TLS connection state".into())),
        };
        incoming.drain(..discard.min(incoming.len()));
        step.map_err(|e| self.fail(e))
    }

    /// Records the failure and queues the alert rustls made for it, which
    /// the caller's next socket write carries out.
    fn fail(&mut self, e: rustls::Error) -> io::Error {
        // Only alerts are queued after an error; asking while none is keeps
        // rustls from parsing the bad bytes a second time.
        while self.conn.wants_write() {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut self.incoming);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    if encode_into(&mut self.outgoing, |out| encode.encode(out)).is_err() {
                        break;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => break,
            }
        }
        self.failed = true;
        invalid(e)
    }

    /// `e`, once a failed connection's alert is written if the socket takes
    /// it now (as tokio-rustls does: the error is not held up by a peer
    /// that does not read).
    fn alert_then(&mut self, cx: &mut Context<'_>, e: io::Error) -> io::Error {
        if self.failed {
            let _ = self.poll_write_out(cx);
        }
        e
    }

    /// Reads from the socket into `incoming`, at most what the state allows.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let limit = if self.conn.is_handshaking() { HANDSHAKE_LIMIT } else { RECORD_LIMIT };
        let room = limit.saturating_sub(self.incoming.len());
        if room == 0 {
            let e = rustls::Error::General("TLS input over the buffer limit".into());
            return Poll::Ready(Err(self.fail(e)));
        }
        let want = self.record_rest().max(READ_CHUNK).min(room);
        self.incoming.reserve_exact(want);
        let mut limited = (&mut self.incoming).limit(want);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut limited) {
            Poll::Pending => {
                if self.incoming.is_empty() {
                    self.incoming = Vec::new();
                }
                Poll::Pending
            }
            // A TCP end without close_notify may be a truncation attack.
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed connection without sending TLS close_notify",
            ))),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }

    /// The bytes still due of the record at the front of `incoming`, so a
    /// large record arrives in one read. Only a size hint: in the handshake
    /// the front may be an earlier, already parsed fragment.
    fn record_rest(&self) -> usize {
        match self.incoming.get(3..HEADER) {
            Some(&[hi, lo]) => (HEADER + usize::from(u16::from_be_bytes([hi, lo]))).saturating_sub(self.incoming.len()),
            _ => 0,
        }
    }

    /// Writes `outgoing` to the socket; dropped once all of it is there.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            // A short write happens only when the socket is full: moving
            // the rest (two records at most) is cheaper than a counter in
            // every idle connection.
            self.outgoing.drain(..n.min(self.outgoing.len()));
        }
        self.outgoing = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// After our close_notify, what the peer still sends is read and
    /// dropped until it hangs up, and the read ends then. rustls takes no
    /// more input: a record it cannot open after it sent close_notify
    /// trips its assertion that no second fatal alert is sent, in a debug
    /// build (rustls/rustls#959), and a closing connection needs no more
    /// of the peer's data (the WebSocket close frame was sent before).
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.incoming = Vec::new();
        let mut scratch = [0u8; 512];
        loop {
            let mut dropped = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut dropped))?;
            if dropped.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Copies what the reader has not taken into `buf`.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) {
        let Some(left) = &mut self.plaintext else { return };
        let rest = left.bytes.get(left.taken..).unwrap_or_default();
        let n = rest.len().min(buf.remaining());
        buf.put_slice(rest.get(..n).unwrap_or_default());
        left.taken += n;
        if left.taken >= left.bytes.len() {
            self.plaintext = None;
        }
    }

    /// The capacities of the incoming, outgoing and plaintext buffers: what
    /// the stream holds beyond rustls' state (the tests and the
    /// `tls_stream` fuzz target check their bounds).
    pub fn capacities(&self) -> (usize, usize, usize) {
        let plaintext = self.plaintext.as_ref().map_or(0, |left| left.bytes.capacity());
        (self.incoming.capacity(), self.outgoing.capacity(), plaintext)
    }
}

/// Hands a record's plaintext to the reader's buffer, keeping what does
/// not fit (or everything, if an earlier record's rest is still kept).
fn deliver(payload: &[u8], into: Option<&mut ReadBuf<'_>>, plaintext: &mut Option<Box<Leftover>>) {
    let mut rest = payload;
    if let Some(buf) = into
        && plaintext.is_none()
    {
        let n = rest.len().min(buf.remaining());
        let (now, later) = rest.split_at(n);
        buf.put_slice(now);
        rest = later;
    }
    if !rest.is_empty() {
        plaintext
            .get_or_insert_with(|| Box::new(Leftover { bytes: Vec::new(), taken: 0 }))
            .bytes
            .extend_from_slice(rest);
    }
}

/// Appends what `write` puts in `outgoing`, growing it to the size rustls
/// asks for (`required` reads that from its error: rustls' encode and
/// encrypt calls fail with different error types for the same reason).
fn write_into<E: std::fmt::Display>(
    outgoing: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), rustls::Error> {
    let start = outgoing.len();
    loop {
        match write(outgoing.get_mut(start..).unwrap_or_default()) {
            Ok(n) => {
                outgoing.truncate(start + n);
                return Ok(());
            }
            Err(e) => match required(&e) {
                Some(size) if outgoing.len() < start + size => outgoing.resize(start + size, 0),
                _ => {
                    outgoing.truncate(start);
                    return Err(rustls::Error::General(e.to_string()));
                }
            },
        }
    }
}

/// Appends a TLS record rustls made (a handshake message, an alert).
fn encode_into(
    outgoing: &mut Vec<u8>,
    encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), rustls::Error> {
    write_into(outgoing, encode, |e| match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
        _ => None,
    })
}

/// Appends encrypted application data or close_notify.
fn encrypt_into(
    outgoing: &mut Vec<u8>,
    encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    write_into(outgoing, encrypt, |e| match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
        _ => None,
    })
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.plaintext.is_some() {
            this.take_plaintext(buf);
            return Poll::Ready(Ok(()));
        }
        if this.close_queued {
            return this.poll_discard(cx);
        }
        let before = buf.filled().len();
        loop {
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            let step = match this.process(Out::Nothing, Some(&mut *buf)) {
                Ok(step) => step,
                Err(e) => return Poll::Ready(Err(this.alert_then(cx, e))),
            };
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            match step {
                Step::Again | Step::Sent(_) => {}
                Step::Closed => return Poll::Ready(Ok(())),
                Step::NeedBytes => {
                    // Key-update answers go out with the reads; a peer that
                    // makes many without reading waits for them.
                    if let Poll::Ready(Err(e)) = this.poll_write_out(cx) {
                        return Poll::Ready(Err(e));
                    }
                    if this.outgoing.len() > OUTGOING_LIMIT {
                        return Poll::Pending;
                    }
                    ready!(this.poll_fill(cx))?;
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.close_queued {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "TLS stream shut down")));
        }
        // One record waits at most: the next is made once it is on the
        // socket, so a peer that does not read holds the writer, not memory.
        ready!(this.poll_write_out(cx))?;
        let data = data.get(..MAX_FRAGMENT).unwrap_or(data);
        loop {
            let step = match this.process(Out::Data(data), None) {
                Ok(step) => step,
                Err(e) => return Poll::Ready(Err(this.alert_then(cx, e))),
            };
            match step {
                Step::Again => {}
                Step::Sent(n) => {
                    // Started now; what the socket does not take waits for
                    // the next write or the flush.
                    if let Poll::Ready(Err(e)) = this.poll_write_out(cx) {
                        return Poll::Ready(Err(e));
                    }
                    return Poll::Ready(Ok(n));
                }
                Step::NeedBytes | Step::Closed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "TLS connection does not take application data",
                    )));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A key update rustls queued goes out with the next record; a flush
        // sends it now.
        while !this.failed && !this.close_queued && this.conn.wants_write() {
            match this.process(Out::Nothing, None) {
                Ok(Step::Again | Step::Sent(_)) => {}
                Ok(Step::NeedBytes | Step::Closed) => break,
                Err(e) => return Poll::Ready(Err(this.alert_then(cx, e))),
            }
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_queued && !this.failed {
            ready!(this.poll_write_out(cx))?;
            // Anything but Again ends it: Sent, or Closed (both alerts were
            // exchanged already), or a failure, which sends its own alert.
            while let Ok(Step::Again) = this.process(Out::CloseNotify, None) {}
            this.close_queued = true;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
