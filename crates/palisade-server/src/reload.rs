//! Reloading a running server's policy, threat feeds and geo rules
//! (SIGHUP, `POST /api/reload`): the file is read again, the policy and
//! `[threat]`/`[geo]` swapped in whole or not at all, and the outcome
//! audited.

use std::sync::Arc;

use palisade_core::audit::{self, Entry};
use palisade_core::seams::{Command, Target};
use tracing::{info, warn};

use crate::config::{ConfigError, Env, ProcessEnv};
use crate::state::AppState;

/// Reloads the policy of a running server.
#[derive(Debug, Clone)]
pub struct Reloader(Arc<AppState>);

impl Reloader {
    /// A reloader of `state`'s policy (the admin API's `POST /api/reload`).
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self(state)
    }

    /// Re-reads the config file and swaps the policy in atomically, then
    /// the threat feeds and geo rules; on error all in force stay. Either
    /// way the outcome is logged.
    pub fn reload(&self, env: &dyn Env) -> Result<(), ConfigError> {
        let result = self.0.settings.reload(env).map(|threat| self.0.threat.reload(&threat));
        // Only the key at fault, never the error's text: a TOML parser's
        // message can quote a line of the file, and the file holds secrets.
        let detail = match &result {
            Ok(()) => "policy reloaded".to_owned(),
            Err(ConfigError::Invalid { key, .. }) => format!("policy reload refused: config key `{key}`"),
            Err(_) => "policy reload refused: the config file is unreadable or not TOML, or an override is malformed"
                .to_owned(),
        };
        let entry = Entry::new(self.0.clock.now(), audit::Kind::ConfigReload, &detail);
        self.0.audit.record(if result.is_ok() { entry } else { entry.severity(audit::Severity::Warning) });
        match &result {
            Ok(()) => {
                info!("policy reloaded");
                // Memberships the new policy no longer allows end now, not
                // at the member's next message (docs/ARCHITECTURE.md).
                self.0.channel.send(Target::All, Command::Recheck);
            }
            Err(e) => warn!(error = %e, "policy reload failed; keeping the policy in force"),
        }
        result
    }
}

/// Reloads on every SIGHUP until `shutdown`: the policy, and the
/// certificate too.
#[cfg(unix)]
pub(crate) async fn reload_on_sighup(reloader: Reloader, shutdown: tokio_util::sync::CancellationToken) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP; policy reload by signal is off");
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        // Reading files and compiling schemas blocks; keep it off the
        // runtime's workers. A failed reload is logged by `reload` and
        // changes nothing. The certificate is read again too: rotation
        // by signal, without a restart.
        let reloader = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(tls) = &reloader.0.settings.tls {
                tls.reload();
            }
            reloader.reload(&ProcessEnv)
        })
        .await;
    }
}
