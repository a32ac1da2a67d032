//! The one store factory (`[store] backend`, docs/CONFIG.md): the server
//! and every CLI command open the store here, so a backend is one match
//! arm and no command can open another store than the server's.

use std::sync::Arc;

use palisade_core::store::StoreError;
use palisade_store::{DB_FILE, Sqlite};

use crate::config::{Config, StoreBackend};
use crate::gateway::Store;

/// Opens the store `config` names, creating it if there is none yet (the
/// server at start, and CLI commands that may be the first to write).
pub(crate) fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    match config.store.backend {
        // Cluster mode keeps these in each node's file for now
        // (docs/OPERATIONS.md, "Cluster mode").
        StoreBackend::Sqlite | StoreBackend::Redis => Ok(Arc::new(Sqlite::open_in(&config.server.data_dir)?)),
    }
}

/// Opens the store `config` names, which must already exist: listing or
/// changing what is in a data directory that has none means `--data` or
/// `--config` points elsewhere than the server's, and "no bans" or "no
/// users" would mislead.
pub(crate) fn open_existing(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    match config.store.backend {
        StoreBackend::Sqlite | StoreBackend::Redis => {
            let path = config.server.data_dir.join(DB_FILE);
            if !path.exists() {
                return Err(StoreError(format!(
                    "no database at {}: is --data or --config the server's? (the server creates it when it starts)",
                    path.display()
                )));
            }
            Ok(Arc::new(Sqlite::open(&path)?))
        }
    }
}

/// Where the store is, for an operator's message.
pub(crate) fn location(config: &Config) -> String {
    match config.store.backend {
        StoreBackend::Sqlite | StoreBackend::Redis => config.server.data_dir.join(DB_FILE).display().to_string(),
    }
}
