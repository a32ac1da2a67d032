//! Gateway mode's upstream (docs/GATEWAY.md): one connection to the
//! backend per authenticated client, opened with the signed identity
//! headers. This module is the service (settings, nonce store, dialing);
//! the pump that carries messages both ways through core's rules
//! (`palisade_core::passthrough`, `Session::on_raw`) is the connection
//! task's part, `ws::connection::backend`.

use palisade_core::passthrough::identity::IdentityHeaders;
use palisade_core::store::MemoryNonces;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{GatewaySettings, LimitsConfig, ReplayConfig};

/// Any byte stream: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// A connection to the backend.
pub(crate) type UpstreamWs = WebSocketStream<Box<dyn Io>>;

/// What the client's handshake carried that `gateway.forward_credentials`
/// passes on: its `Cookie` and `Authorization` headers.
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    pub(crate) cookie: Option<http::HeaderValue>,
    pub(crate) authorization: Option<http::HeaderValue>,
}

/// Gateway mode's service: its settings, its nonce store and its TLS.
pub(crate) struct Upstream {
    pub(crate) settings: GatewaySettings,
    /// Replay nonces of the messages forwarded (per node, like the memory
    /// commit step's).
    pub(crate) nonces: MemoryNonces,
    /// The close reason a client gets when the backend cannot be reached
    /// (`retry after 5s`): made once, so every close shares it.
    pub(crate) retry_hint: &'static str,
    tls: Option<TlsConnector>,
    config: WebSocketConfig,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Why the backend could not be reached (for the operator's log; the
/// client gets 1011 and the retry hint).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("no connection within gateway.connect_timeout")]
    Timeout,
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls: {0}")]
    Tls(String),
    #[error("handshake: {0}")]
    Handshake(tokio_tungstenite::tungstenite::Error),
    #[error("request: {0}")]
    Request(String),
}

impl Upstream {
    /// The service for `settings`; the error names what `gateway.ca_file`
    /// got wrong.
    pub(crate) fn new(settings: GatewaySettings, replay: &ReplayConfig, limits: &LimitsConfig) -> Result<Self, String> {
        let tls = match settings.upstream.scheme_str() {
            Some("wss") => Some(crate::jwks::connector_with(settings.ca_file.as_deref())?),
            _ => None,
        };
        let hint = format!("upstream unavailable; retry after {}s", settings.retry_after.as_secs().max(1));
        // The backend's frames are bounded like a client's: read with the
        // same buffer, and none larger than the write buffer they must fit
        // on their way to the client.
        let config = WebSocketConfig::default()
            .read_buffer_size(limits.read_buffer_bytes)
            .write_buffer_size(0)
            .max_write_buffer_size(limits.max_write_buffer_bytes)
            .max_frame_size(Some(settings.max_upstream_bytes))
            .max_message_size(Some(settings.max_upstream_bytes));
        Ok(Self {
            settings,
            nonces: MemoryNonces::new(replay.max_nonces, replay.max_nonces_per_user),
            retry_hint: Box::leak(hint.into_boxed_str()),
            tls,
            config,
        })
    }

    /// Opens the backend connection for one client, within
    /// `gateway.connect_timeout`.
    pub(crate) async fn dial(
        &self,
        identity: &IdentityHeaders,
        credentials: &Credentials,
    ) -> Result<UpstreamWs, DialError> {
        tokio::time::timeout(self.settings.connect_timeout, Box::pin(self.dial_unbounded(identity, credentials)))
            .await
            .map_err(|_| DialError::Timeout)?
    }

    async fn dial_unbounded(
        &self,
        identity: &IdentityHeaders,
        credentials: &Credentials,
    ) -> Result<UpstreamWs, DialError> {
        let uri = &self.settings.upstream;
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let mut request = uri.clone().into_client_request().map_err(DialError::Handshake)?;
        let headers = request.headers_mut();
        for (name, value) in identity.pairs() {
            let value = http::HeaderValue::from_str(value).map_err(|e| DialError::Request(e.to_string()))?;
            headers.insert(name, value);
        }
        if self.settings.forward_credentials {
            for (name, value) in
                [(http::header::COOKIE, &credentials.cookie), (http::header::AUTHORIZATION, &credentials.authorization)]
            {
                if let Some(value) = value {
                    headers.insert(name, value.clone());
                }
            }
        }
        let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(DialError::Connect)?;
        // Messages are forwarded one at a time as they come: no batching
        // delay on top of the backend's.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(host).map_err(|e| DialError::Tls(e.to_string()))?;
                Box::new(tls.connect(name, tcp).await.map_err(|e| DialError::Tls(e.to_string()))?)
            }
            None => Box::new(tcp),
        };
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, io, Some(self.config))
            .await
            .map_err(DialError::Handshake)?;
        Ok(ws)
    }
}
