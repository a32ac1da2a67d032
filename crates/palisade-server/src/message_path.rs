//! The message path's seams as `[store] backend` says (docs/ARCHITECTURE.md,
//! "Seams"): in memory for one node, or on Redis for a cluster
//! (docs/OPERATIONS.md, "Cluster mode").

use std::sync::Arc;
use std::time::Duration;

use palisade_core::guard::Guard;
use palisade_core::node::NodeId;
use palisade_core::ownership::OwnerLimits;
use palisade_core::seams::{Bus, Commit, ControlChannel, Deliver, History};
use palisade_core::store::MemoryNonces;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::bus::{Broker, MemoryBus};
use crate::channel::LocalChannel;
use crate::cluster::bus::{OnControl, RedisBus};
use crate::cluster::changes::ChangeStream;
use crate::cluster::channel::{self, RedisChannel};
use crate::cluster::commit::{NonceLimits, RedisCommit};
use crate::cluster::history::RedisHistory;
use crate::cluster::owners::RedisOwners;
use crate::cluster::{ClockCheck, Keys};
use crate::commit::LocalCommit;
use crate::config::{Config, StoreBackend};
use crate::history::LocalHistory;
use crate::hub::{HistoryBudget, Hub};

/// How long a node waits for Redis when it starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The hub and the seams every connection reaches shared state through.
#[derive(Debug)]
pub(crate) struct MessagePath {
    pub(crate) hub: Arc<Hub>,
    pub(crate) bus: Arc<dyn Bus<Frame = Utf8Bytes>>,
    pub(crate) commit: Box<dyn Commit>,
    pub(crate) history: Box<dyn History<Frame = Utf8Bytes>>,
    pub(crate) channel: Arc<dyn ControlChannel>,
    /// Cluster mode: this node's clock against Redis's.
    pub(crate) clock: Option<Arc<ClockCheck>>,
    /// Cluster mode: the stream that wakes this node when a ban or a
    /// revocation is written anywhere, and tells it rooms' owners.
    pub(crate) changes: Option<Arc<ChangeStream>>,
    /// Cluster mode: the shared record of rooms' owners.
    pub(crate) owners: Option<RedisOwners>,
}

/// Redis could not be reached or used when the node started.
#[derive(Debug, thiserror::Error)]
#[error("cluster mode: cannot use Redis (store.redis_url): {0}")]
pub struct ClusterError(String);

impl MessagePath {
    /// Builds the message path `config` names; `guard` decides the rates.
    pub(crate) async fn open(config: &Config, node: &NodeId, guard: &Arc<Guard>) -> Result<Self, ClusterError> {
        let limits = &config.limits;
        let budget = HistoryBudget { per_room: limits.max_history_bytes_per_room, total: limits.max_history_bytes };
        let hub = Arc::new(Hub::new(budget));
        let sink = Arc::clone(&hub) as Arc<dyn Deliver<Utf8Bytes>>;
        let local = Arc::new(LocalChannel { hub: Arc::clone(&hub), node: node.clone() });
        let replay = &config.replay;
        match config.store.backend {
            StoreBackend::Sqlite => {
                let bus: Arc<dyn Bus<Frame = Utf8Bytes>> = Arc::new(MemoryBus::new(Arc::new(Broker::default()), sink));
                let commit = Box::new(LocalCommit {
                    hub: Arc::clone(&hub),
                    bus: Arc::clone(&bus),
                    guard: Arc::clone(guard),
                    nonces: MemoryNonces::new(replay.max_nonces, replay.max_nonces_per_user),
                });
                let history = Box::new(LocalHistory { hub: Arc::clone(&hub) });
                Ok(Self { hub, bus, commit, history, channel: local, clock: None, changes: None, owners: None })
            }
            StoreBackend::Redis => {
                let store = &config.store;
                let failed = |e: redis::RedisError| ClusterError(e.to_string());
                let client = crate::cluster::client(config).map_err(ClusterError)?;
                let manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(store.timeout));
                let connect = ConnectionManager::new_with_config(client.clone(), manager);
                let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| ClusterError(format!("no answer within {CONNECT_TIMEOUT:?}")))?
                    .map_err(failed)?;
                let keys = Keys::new(&store.prefix);
                let performer = Arc::clone(&local);
                let on_control: OnControl = Arc::new(move |text: &str| channel::perform(&performer, text));
                let clock = Arc::new(ClockCheck::new(store.max_clock_skew));
                let bus = RedisBus::connect(
                    &client,
                    conn.clone(),
                    keys.clone(),
                    sink,
                    store.timeout,
                    Some(on_control),
                    Arc::clone(&clock),
                );
                let bus = tokio::time::timeout(CONNECT_TIMEOUT, bus)
                    .await
                    .map_err(|_| ClusterError(format!("no answer within {CONNECT_TIMEOUT:?}")))?
                    .map_err(failed)?;
                let nonces = NonceLimits { per_user: replay.max_nonces_per_user, total: replay.max_nonces };
                let commit = RedisCommit::new(conn.clone(), keys.clone(), Arc::clone(guard), nonces, store.timeout);
                let owners = RedisOwners::new(conn.clone(), keys.clone(), store.timeout, owner_limits(config));
                let history = RedisHistory::new(conn, keys, store.timeout);
                let bus = Arc::new(bus);
                let channel = Arc::new(RedisChannel::new(local, Arc::clone(&bus)));
                let (commit, history) = (Box::new(commit), Box::new(history));
                let changes = Some(Arc::new(ChangeStream::new(client, Keys::new(&store.prefix))));
                Ok(Self { hub, bus, commit, history, channel, clock: Some(clock), changes, owners: Some(owners) })
            }
        }
    }
}

/// The bounds on rooms' owners (`limits.max_owned_rooms_per_user`,
/// `limits.max_owned_rooms`).
pub(crate) fn owner_limits(config: &Config) -> OwnerLimits {
    OwnerLimits { per_user: config.limits.max_owned_rooms_per_user, total: config.limits.max_owned_rooms }
}
