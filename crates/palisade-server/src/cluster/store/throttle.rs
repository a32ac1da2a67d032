//! The failed-login throttle's counts on Redis, so a guesser gains nothing
//! by spreading attempts over the nodes: core's rules
//! (`ThrottleSettings::check` and `fail`) on entries every node reads and
//! writes. A failure is an optimistic transaction on the attempt's three
//! keys (`WATCH`, read, count, `MULTI`/`EXEC`), so failures racing on
//! several nodes are all counted. Each key expires when core would forget
//! it, so Redis holds only what still counts and needs no sweep.
//!
//! Keys: `{guard}:<listener>:<key>`, where the listener is `login` or
//! `admin-login` (separate counts, as on one node) and the key one of
//! `throttle::keys` (`ip:…`, `user:<ip>:<name>`, `name:…`), holding an
//! `Entry::record`.

use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::login::throttle::{Blocked, Entry, Failure, ThrottleCounts, ThrottleSettings, keys};
use palisade_core::store::StoreError;

use super::sessions::read_failed;
use super::{Keys, RedisShared, ms};

/// One listener's failed-login counts, shared by the nodes.
#[derive(Debug)]
pub(crate) struct RedisThrottle {
    shared: RedisShared,
    listener: &'static str,
    settings: ThrottleSettings,
}

impl RedisThrottle {
    pub(crate) fn new(client: redis::Client, keys: Keys, listener: &'static str, settings: ThrottleSettings) -> Self {
        Self { shared: RedisShared::new(client, keys), listener, settings }
    }

    fn names(&self, keys: &Keys, ip: IpKey, user: &str) -> [String; 3] {
        self::keys(ip, user).map(|key| keys.guard(&format!("{}:{key}", self.listener)))
    }

    fn read(conn: &mut redis::Connection, names: &[String; 3]) -> Result<[Option<Entry>; 3], StoreError> {
        let records: Vec<Option<String>> = redis::cmd("MGET").arg(names).query(conn).map_err(|e| read_failed(&e))?;
        let mut entries = [None; 3];
        for ((entry, record), name) in entries.iter_mut().zip(records).zip(names) {
            if let Some(record) = record {
                let parsed = Entry::parse(&record);
                *entry = Some(parsed.ok_or_else(|| StoreError(format!("{name}: corrupt, not written by palisade")))?);
            }
        }
        Ok(entries)
    }
}

impl ThrottleCounts for RedisThrottle {
    fn check(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<Result<(), Blocked>, StoreError> {
        let entries = self
            .shared
            .run("checking the login throttle", |conn, keys| Ok(Self::read(conn, &self.names(keys, ip, user))))??;
        Ok(self.settings.check(&entries, now))
    }

    fn failed(&self, ip: IpKey, user: &str, now: Timestamp) -> Result<Failure, StoreError> {
        let names = self.names(&self.shared.keys, ip, user);
        let watch = names.each_ref().map(String::as_str);
        self.shared.atomically("counting a failed login", &watch, |conn, _| {
            let mut entries = Self::read(conn, &names)?;
            let failure = self.settings.fail(&mut entries, now);
            let mut writes = redis::pipe();
            for (name, entry) in names.iter().zip(entries) {
                let Some(entry) = entry else { continue };
                let ttl = ms(self.settings.keep_until(&entry)).saturating_sub(ms(now)).max(1);
                writes.cmd("SET").arg(name).arg(entry.record()).arg("PX").arg(ttl).ignore();
            }
            Ok((failure, Some(writes)))
        })
    }

    fn succeeded(&self, ip: IpKey, user: &str) -> Result<(), StoreError> {
        self.shared.run("clearing the login throttle", |conn, keys| {
            let [_, from_ip, name] = self.names(keys, ip, user);
            redis::cmd("DEL").arg(from_ip).arg(name).exec(conn)
        })
    }
}
