use std::time::Duration;

use palisade_core::Timestamp;
use palisade_core::auth::{Revocation, user_revocation};
use palisade_core::guard::{Ban, BanSource};
use palisade_core::login::{CapPolicy, SessionCap};
use palisade_core::store::{BanStore, LoginSession, RevocationStore, SessionStore, StoredRefresh};
use palisade_store::Sqlite;
use redis::Commands as _;

use super::{ClusterStore, RedisShared};
use crate::cluster::Keys;
use crate::cluster::testing::RedisServer;
use crate::store::conformance::{Backend, Shared};

const MIN: Duration = Duration::from_secs(60);
const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn shared(server: &RedisServer) -> RedisShared {
    RedisShared::new(redis::Client::open(server.url()).unwrap(), Keys::new("t"))
}

/// The shared store alone.
struct Redis(RedisServer);

impl Backend for Redis {
    fn open(&self) -> Box<dyn Shared> {
        Box::new(shared(&self.0))
    }
}

/// What a node uses: each handle a node with its own file, on one Redis.
struct Cluster(RedisServer, tempfile::TempDir);

impl Cluster {
    fn node(&self) -> ClusterStore {
        let dir = tempfile::tempdir_in(self.1.path()).unwrap().keep();
        ClusterStore { local: Sqlite::open_in(&dir).unwrap(), shared: shared(&self.0) }
    }
}

impl Backend for Cluster {
    fn open(&self) -> Box<dyn Shared> {
        Box::new(self.node())
    }
}

mod redis_conformance {
    use super::*;
    crate::store::conformance::suite!(RedisServer::start().map(Redis));
}

mod cluster_conformance {
    use super::*;
    crate::store::conformance::suite!(RedisServer::start().map(|r| Cluster(r, tempfile::tempdir().unwrap())));
}

fn ban(source: BanSource, since: Timestamp, length: Option<Duration>) -> Ban {
    Ban {
        subject: "ip:127.0.0.2".parse().unwrap(),
        since,
        until: length.map(|l| since.saturating_add(l)),
        strikes: 1,
        reason: source.as_str().into(),
        source,
    }
}

/// What the conformance suite cannot ask of SQLite, whose version moves
/// only for another connection's write: a refused automatic ban still
/// moves Redis's, so its writer reloads the ban that stands.
#[test]
fn a_refused_automatic_ban_still_moves_the_version() {
    let Some(server) = RedisServer::start() else { return };
    let (a, b) = (shared(&server), shared(&server));
    a.put(&ban(BanSource::Operator, T0, None)).unwrap();
    let v = b.version().unwrap();
    b.put(&ban(BanSource::Auto, T0.saturating_add(MIN), Some(15 * MIN))).unwrap();
    assert_eq!(a.history(None, 10).unwrap().len(), 1, "refused");
    assert_ne!(b.version().unwrap(), v, "the writer is told to read what stands");
}

#[test]
fn a_corrupt_record_is_an_error_naming_it() {
    let Some(server) = RedisServer::start() else { return };
    let store = shared(&server);
    store.put(&ban(BanSource::Operator, T0, None)).unwrap();
    store.revoke(&Revocation::Token("t-1".into()), T0, "").unwrap();
    let mut conn = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let _: () = conn.hset("t:{guard}:bans", "ip:127.0.0.2", "{\"subject\":\"host:nope\"}").unwrap();
    let err = store.bans(T0, Duration::ZERO).unwrap_err().to_string();
    assert!(err.contains("bans field \"ip:127.0.0.2\"") && err.contains("corrupt"), "{err}");
    let _: () = conn.hset("t:{guard}:revocations", "token:a b", "|0|").unwrap();
    let err = store.revocations().unwrap_err().to_string();
    assert!(err.contains("revocations field \"token:a b\""), "{err}");
}

#[test]
fn an_unreachable_redis_is_an_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = RedisShared::new(
        redis::Client::open(format!("redis://ops:hunter2@127.0.0.1:{port}/")).unwrap(),
        Keys::new("t"),
    );
    assert!(!format!("{store:?}").contains("hunter2"));
    let err = store.bans(T0, Duration::ZERO).unwrap_err().to_string();
    assert!(err.contains("Redis (store.redis_url): reading bans"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn revoking_a_user_on_one_node_ends_its_sessions_for_every_node() {
    let Some(server) = RedisServer::start() else { return };
    let cluster = Cluster(server, tempfile::tempdir().unwrap());
    let (a, b) = (cluster.node(), cluster.node());
    let session = LoginSession {
        id: "sid-alice".into(),
        user_id: "alice".into(),
        created: T0,
        last_active: T0,
        expires: T0.saturating_add(60 * MIN),
        user_agent: String::new(),
        ip: "127.0.0.1".into(),
        device: String::new(),
        cookie: false,
    };
    let first =
        StoredRefresh { hash: "h".repeat(64), expires: session.expires, access_expires: T0.saturating_add(MIN) };
    let cap = SessionCap { max: 5, policy: CapPolicy::Evict };
    a.open_session(&session, &first, cap, T0).unwrap().unwrap();

    let revocation = user_revocation("alice", T0).unwrap();
    assert_eq!(a.revoke(&revocation, T0, "left").unwrap(), ["sid-alice"]);
    assert!(b.live_sessions("alice", T0).unwrap().is_empty(), "one copy of the sessions");
    assert_eq!(b.revocations().unwrap(), [Revocation::Session("sid-alice".into()), revocation]);
}

#[test]
fn when_redis_comes_back_empty_the_nodes_put_back_what_they_held() {
    let Some(mut server) = RedisServer::start() else { return };
    let (a, b) = (shared(&server), shared(&server));
    let permanent = ban(BanSource::Operator, T0, None);
    a.put(&permanent).unwrap();
    a.revoke(&Revocation::Token("t-1".into()), T0, "").unwrap();
    let before = (a.version().unwrap(), b.version().unwrap());
    assert_eq!(b.bans(T0, Duration::ZERO).unwrap(), std::slice::from_ref(&permanent));

    server.start_again();
    // The first call after the restart may meet the dead connection.
    let version = |store: &RedisShared| (0..20).find_map(|_| store.version().ok()).unwrap();
    let after = (version(&a), version(&b));
    assert_ne!(after.0, before.0, "the nodes are told to reload");
    assert_ne!(after.1, before.1);
    assert_eq!(a.bans(T0, Duration::ZERO).unwrap(), [permanent]);
    assert_eq!(b.revocations().unwrap(), [Revocation::Token("t-1".into())], "a's, which b never read");
    assert!(a.history(None, 10).unwrap().is_empty(), "the history is not put back");
    let settled = version(&a);
    assert_eq!(version(&b), settled, "once");
    assert_eq!(version(&a), settled);
}

#[test]
fn failed_logins_counted_on_one_node_hold_up_the_other_and_expire_when_forgotten() {
    use palisade_core::addr::IpKey;
    use palisade_core::login::throttle::{Steps, ThrottleCounts, ThrottleSettings};

    use super::RedisThrottle;

    let Some(server) = RedisServer::start() else { return };
    let settings = ThrottleSettings {
        per_ip: Steps { free: 10, lock_after: 50 },
        per_user: Steps { free: 1, lock_after: 3 },
        free_addresses_per_user: 5,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        lock_for: Duration::from_secs(900),
        forget_after: Duration::from_secs(600),
        max_tracked: 1000,
    };
    let node =
        |listener| RedisThrottle::new(redis::Client::open(server.url()).unwrap(), Keys::new("t"), listener, settings);
    let (a, b, admin) = (node("login"), node("login"), node("admin-login"));
    let ip = IpKey::of([127, 0, 0, 3].into());
    a.failed(ip, "alice", T0).unwrap();
    assert_eq!(b.check(ip, "alice", T0).unwrap(), Ok(()), "one free failure");
    let second = b.failed(ip, "alice", T0).unwrap();
    assert_eq!((second.user_failures, second.user_addresses), (2, 1), "b counted a's");
    let blocked = a.check(ip, "Alice", T0).unwrap().unwrap_err();
    assert_eq!(blocked.retry_after, Duration::from_secs(1));
    assert_eq!(admin.check(ip, "alice", T0).unwrap(), Ok(()), "the admin listener counts apart");
    let third = a.failed(ip, "alice", T0.saturating_add(Duration::from_secs(1))).unwrap();
    assert!(third.locked);

    // Each key lives as long as core remembers it: the lock, 900 s.
    let mut conn = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let ttl: i64 = conn.pttl("t:{guard}:login:user:127.0.0.3:alice").unwrap();
    assert!((899_000..=900_000).contains(&ttl), "{ttl}");
    b.succeeded(ip, "alice").unwrap();
    let later = T0.saturating_add(Duration::from_secs(1));
    assert_eq!(a.check(ip, "alice", later).unwrap(), Ok(()), "a success clears the name");
    let _: () = conn.set("t:{guard}:login:ip:127.0.0.3", "junk").unwrap();
    let err = a.check(ip, "alice", T0).unwrap_err().to_string();
    assert!(err.contains("t:{guard}:login:ip:127.0.0.3: corrupt"), "{err}");
}
