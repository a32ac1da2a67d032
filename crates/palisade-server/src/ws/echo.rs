//! `/conformance/echo`: an unauthenticated echo over the same transport
//! settings as `/ws`, so the Autobahn suite tests what clients get. Off
//! unless `server.conformance_echo = true`.

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::transport::{Ws, exit_for_error, finish};
use crate::exit::Exit;
use crate::state::{AppState, Slot};
use std::sync::Arc;

pub(crate) async fn serve(mut ws: Ws, state: Arc<AppState>, _slot: Slot) {
    let shutdown = state.shutdown.clone();
    let exit = loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => break Exit::Close(palisade_protocol::CloseCode::GoingAway),
            msg = ws.next() => msg,
        };
        match msg {
            None => break Exit::Gone,
            Some(Err(e)) => break exit_for_error(&e),
            Some(Ok(Message::Close(_))) => break Exit::PeerClosed,
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if let Err(e) = ws.send(m).await {
                    break exit_for_error(&e);
                }
            }
            Some(Ok(_)) => {}
        }
    };
    finish(ws, exit, state.settings.config.limits.close_timeout).await;
}
