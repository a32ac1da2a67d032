//! The one sender task: connects to `siem.syslog`, writes queued records
//! as syslog messages, and reconnects with a doubling backoff.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::audit::siem::{Origin, datagram, octet_counted, syslog};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Siem;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::{SiemSettings, Transport};

/// Wait before the first reconnection; doubled after each failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The longest wait between two connection attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The longest a connection (TCP and, for `tls://`, the TLS handshake)
/// may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one message may take to be accepted by the socket: a
/// receiver that stops reading is an outage, not a stuck sender.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest UDP datagram sent: messages are cut there (a record's detail is
/// at most 512 bytes, so only a pathological one comes near). 8 KiB is
/// what common receivers read (rsyslog's and syslog-ng's defaults are at
/// or above it); RFC 5426 asks receivers for at least 480 bytes (IPv4).
const MAX_DATAGRAM: usize = 8 * 1024;

/// A byte stream to a receiver: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection to the receiver.
enum Link {
    Datagram(UdpSocket),
    Stream { read: ReadHalf<Box<dyn Io>>, write: WriteHalf<Box<dyn Io>> },
}

impl Link {
    async fn open(settings: &SiemSettings, tls: Option<&TlsConnector>) -> Result<Self, String> {
        let target = (settings.host.as_str(), settings.port);
        let io: Box<dyn Io> = match (settings.transport, tls) {
            (Transport::Udp, _) => {
                let addr = tokio::net::lookup_host(target)
                    .await
                    .map_err(|e| format!("cannot resolve the receiver: {e}"))?
                    .next()
                    .ok_or("the receiver's name resolves to no address")?;
                let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let socket = UdpSocket::bind(local).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
                socket.connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
                return Ok(Self::Datagram(socket));
            }
            (Transport::Tcp, _) => {
                Box::new(TcpStream::connect(target).await.map_err(|e| format!("cannot connect: {e}"))?)
            }
            (Transport::Tls, Some(tls)) => {
                let tcp = TcpStream::connect(target).await.map_err(|e| format!("cannot connect: {e}"))?;
                let name = ServerName::try_from(settings.host.clone()).map_err(|e| format!("TLS: {e}"))?;
                Box::new(tls.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?)
            }
            (Transport::Tls, None) => return Err("no TLS client (siem.ca_file unreadable)".to_owned()),
        };
        let (read, write) = tokio::io::split(io);
        Ok(Self::Stream { read, write })
    }

    /// Sends one message: a datagram, or an octet-counted frame.
    async fn write(&mut self, msg: &str) -> Result<(), String> {
        match self {
            Self::Datagram(socket) => {
                let bytes = datagram(msg, MAX_DATAGRAM).as_bytes();
                match socket.send(bytes).await {
                    // A refusal reported now is an earlier datagram's (an
                    // ICMP answer): UDP cannot tell the loss, this one
                    // goes out.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => socket.send(bytes).await,
                    sent => sent,
                }
                .map(drop)
                .map_err(|e| e.to_string())
            }
            Self::Stream { write, .. } => {
                write.write_all(&octet_counted(msg)).await.map_err(|e| e.to_string())?;
                write.flush().await.map_err(|e| e.to_string())
            }
        }
    }

    /// Resolves when the receiver closed a stream (a receiver sends
    /// nothing; whatever it sends is read and ignored). Never for UDP.
    async fn closed(&mut self) -> String {
        let Self::Stream { read, .. } = self else { return std::future::pending().await };
        let mut scratch = [0; 512];
        loop {
            match read.read(&mut scratch).await {
                Ok(0) => return "the receiver closed the connection".to_owned(),
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
    }
}

/// Sends queued records until `stop`, then what is still queued if the
/// receiver is connected.
pub(super) async fn send(siem: Arc<Siem>, audit: Arc<Audit>, clock: Clock, stop: CancellationToken) {
    let settings = &siem.settings;
    let origin = Origin { hostname: &settings.hostname, app_name: &settings.app_name, procid: std::process::id() };
    let tls = match settings.transport {
        Transport::Tls => match crate::jwks::connector_with(settings.ca_file.as_deref()) {
            Ok(tls) => Some(tls),
            Err(e) => {
                warn!(error = %e, "cannot build the SIEM's TLS client; nothing is sent");
                None
            }
        },
        _ => None,
    };
    let mut wait = FIRST_RETRY;
    let mut outage = false;
    loop {
        let opened = tokio::select! {
            opened = tokio::time::timeout(CONNECT_TIMEOUT, Link::open(settings, tls.as_ref())) => {
                opened.unwrap_or_else(|_| Err(format!("no connection within {CONNECT_TIMEOUT:?}")))
            }
            () = stop.cancelled() => return,
        };
        let why = match opened {
            Ok(mut link) => {
                siem.set_connected(true);
                if std::mem::take(&mut outage) {
                    info!(dropped = siem.dropped(), "SIEM receiver reachable again");
                }
                wait = FIRST_RETRY;
                let ended = pump(&siem, &audit, &clock, origin, &mut link, &stop).await;
                siem.set_connected(false);
                match ended {
                    Ok(()) => return,
                    Err(why) => why,
                }
            }
            Err(why) => why,
        };
        if !std::mem::replace(&mut outage, true) {
            // Once per outage: the reconnections that fail after it are
            // not logged, and the drops are counted, not logged.
            warn!(
                error = %why,
                retry_in_ms = wait.as_millis(),
                "SIEM receiver unreachable; records wait in siem.queue (the oldest dropped when full) until it is back"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        wait = wait.saturating_mul(2).min(MAX_RETRY);
    }
}

/// Writes records as they are queued, and a gap record into the audit
/// log for what was lost, on connecting and whenever the queue is empty.
/// `Ok` once `stop` came and the queue is empty; `Err` when the link
/// failed (the record it failed on is queued again).
async fn pump(
    siem: &Siem,
    audit: &Audit,
    clock: &Clock,
    origin: Origin<'_>,
    link: &mut Link,
    stop: &CancellationToken,
) -> Result<(), String> {
    if let Some(gap) = siem.gap(clock.now()) {
        audit.record(gap);
    }
    loop {
        let Some(record) = siem.pop() else {
            if let Some(gap) = siem.gap(clock.now()) {
                audit.record(gap);
            }
            if stop.is_cancelled() {
                return Ok(());
            }
            tokio::select! {
                () = siem.wake.notified() => continue,
                why = link.closed() => return Err(why),
                () = stop.cancelled() => continue,
            }
        };
        let msg = syslog(&record, origin, siem.settings.body);
        let written = tokio::time::timeout(WRITE_TIMEOUT, link.write(&msg))
            .await
            .unwrap_or_else(|_| Err(format!("the receiver took no message within {WRITE_TIMEOUT:?}")));
        match written {
            Ok(()) => siem.delivered(),
            Err(why) => {
                siem.unpop(record);
                return Err(why);
            }
        }
    }
}
