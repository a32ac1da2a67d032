//! The one store factory (`[store] backend`, docs/CONFIG.md): the server
//! and every CLI command open the store here, so a backend is one match
//! arm and no command can open another store than the server's.

use std::sync::Arc;

use palisade_core::login::throttle::{LoginThrottle, ThrottleCounts, ThrottleSettings};
use palisade_core::store::StoreError;
use palisade_store::{DB_FILE, Sqlite};

use crate::cluster::Keys;
use crate::cluster::store::{ClusterStore, RedisShared, RedisThrottle};
use crate::config::{Config, StoreBackend};
use crate::gateway::Store;

/// Opens the store `config` names, creating it if there is none yet (the
/// server at start, and CLI commands that may be the first to write).
pub(crate) fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    with_backend(config, Sqlite::open_in(&config.server.data_dir)?)
}

/// Opens the store `config` names, which must already exist: listing or
/// changing what is in a data directory that has none means `--data` or
/// `--config` points elsewhere than the server's, and "no bans" or "no
/// users" would mislead. In cluster mode too: the node's file holds its
/// users and its audit chain.
pub(crate) fn open_existing(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let path = config.server.data_dir.join(DB_FILE);
    if !path.exists() {
        return Err(StoreError(format!(
            "no database at {}: is --data or --config the server's? (the server creates it when it starts)",
            path.display()
        )));
    }
    with_backend(config, Sqlite::open(&path)?)
}

/// The store around the node's own file: the file alone, or in cluster
/// mode the file with the bans, revocations, users and login sessions
/// every node shares in Redis (docs/OPERATIONS.md, "Cluster mode"). Redis is dialled at the
/// first call that needs it.
fn with_backend(config: &Config, local: Sqlite) -> Result<Arc<dyn Store>, StoreError> {
    match config.store.backend {
        StoreBackend::Sqlite => Ok(Arc::new(local)),
        StoreBackend::Redis => {
            let shared = RedisShared::new(redis_client(config)?, Keys::new(&config.store.prefix));
            Ok(Arc::new(ClusterStore { local, shared }))
        }
    }
}

/// One listener's failed-login counts (`listener`: `login` or
/// `admin-login`): in this process, or in cluster mode in Redis, so a
/// guesser gains nothing by spreading attempts over the nodes.
pub(crate) fn login_throttle(
    config: &Config,
    settings: ThrottleSettings,
    listener: &'static str,
) -> Result<Arc<dyn ThrottleCounts>, StoreError> {
    match config.store.backend {
        StoreBackend::Sqlite => Ok(Arc::new(LoginThrottle::new(settings))),
        StoreBackend::Redis => {
            Ok(Arc::new(RedisThrottle::new(redis_client(config)?, Keys::new(&config.store.prefix), listener, settings)))
        }
    }
}

fn redis_client(config: &Config) -> Result<redis::Client, StoreError> {
    crate::cluster::client(config).map_err(StoreError)
}

/// Where the store is, for an operator's message. Never the Redis URL: it
/// may hold a password.
pub(crate) fn location(config: &Config) -> String {
    let file = config.server.data_dir.join(DB_FILE).display().to_string();
    match config.store.backend {
        StoreBackend::Sqlite => file,
        StoreBackend::Redis => format!("{file} and Redis, prefix {:?}", config.store.prefix),
    }
}

#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
mod tests {
    use palisade_store::Sqlite;

    use super::conformance::{Backend, Shared};

    /// SQLite files in one directory: each handle is another process.
    struct File(tempfile::TempDir);

    impl Backend for File {
        fn open(&self) -> Box<dyn Shared> {
            Box::new(Sqlite::open_in(self.0.path()).unwrap())
        }
    }

    super::conformance::suite!(Some(File(tempfile::tempdir().unwrap())));
}
