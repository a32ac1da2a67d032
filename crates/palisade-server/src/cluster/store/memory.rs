//! What a node puts back when Redis comes back empty (issue 19, "Faults";
//! docs/OPERATIONS.md, "Cluster mode"): the bans and revocations it last
//! read or wrote. Without it, the node's next reload would take the empty
//! lists for the truth and drop every ban and revocation it enforces.
//!
//! Redis holds an epoch, a random id set by the first node that finds it
//! missing. A node that saw one epoch and then finds none, or another,
//! knows Redis lost its data since: it writes back what it holds (without
//! replacing what is there already, so the nodes' copies add up), moves
//! the version so every node reloads, and logs it as an error. The ban
//! history is not put back.

use std::collections::HashMap;

use redis::Commands as _;

use super::Keys;

/// What this handle last read or wrote, by Redis field.
#[derive(Debug, Default)]
pub(super) struct Memory {
    /// The epoch this handle last saw.
    epoch: Option<String>,
    bans: HashMap<String, String>,
    revocations: HashMap<String, String>,
}

impl Memory {
    /// Every ban Redis holds, as read.
    pub(super) fn read_bans(&mut self, all: &[(String, String)]) {
        self.bans = all.iter().cloned().collect();
    }

    /// Every revocation Redis holds, as read.
    pub(super) fn read_revocations(&mut self, all: &[(String, String)]) {
        self.revocations = all.iter().cloned().collect();
    }

    pub(super) fn put(&mut self, subject: String, ban: String) {
        self.bans.insert(subject, ban);
    }

    pub(super) fn lift(&mut self, subject: &str) {
        self.bans.remove(subject);
    }

    pub(super) fn revoke(&mut self, field: String, record: String) {
        self.revocations.entry(field).or_insert(record);
    }

    /// The version, after putting back what this handle holds if Redis
    /// lost its data since it last looked.
    pub(super) fn version(&mut self, conn: &mut redis::Connection, keys: &Keys) -> redis::RedisResult<u64> {
        let epoch_key = keys.guard("epoch");
        let (epoch, version): (Option<String>, Option<u64>) =
            redis::cmd("MGET").arg(&epoch_key).arg(keys.guard("version")).query(conn)?;
        if epoch.is_some() && epoch == self.epoch {
            return Ok(marked(version, epoch.as_deref()));
        }
        if epoch.is_none() {
            let fresh = format!("{:016x}", rand::random::<u64>());
            let _: Option<String> = redis::cmd("SET").arg(&epoch_key).arg(fresh).arg("NX").query(conn)?;
        }
        let epoch: Option<String> = conn.get(&epoch_key)?;
        if self.epoch.is_some() {
            self.put_back(conn, keys)?;
        }
        let version = conn.get(keys.guard("version"))?;
        let marked = marked(version, epoch.as_deref());
        self.epoch = epoch;
        Ok(marked)
    }

    /// Puts back what this handle holds, without replacing what is there.
    fn put_back(&self, conn: &mut redis::Connection, keys: &Keys) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (subject, ban) in &self.bans {
            pipe.hset_nx(keys.guard("bans"), subject, ban).ignore();
        }
        for (field, record) in &self.revocations {
            pipe.hset_nx(keys.guard("revocations"), field, record).ignore();
        }
        super::changed(&mut pipe, keys);
        pipe.query::<()>(conn)?;
        tracing::error!(
            bans = self.bans.len(),
            revocations = self.revocations.len(),
            "Redis lost the shared bans and revocations (restarted empty?): this node put back what it held"
        );
        Ok(())
    }
}

/// The counter, marked with the epoch: a counter that started again may
/// come back to a value a node saw before the loss, and the node must
/// still see a change.
fn marked(version: Option<u64>, epoch: Option<&str>) -> u64 {
    let epoch = epoch.and_then(|e| u64::from_str_radix(e, 16).ok()).unwrap_or(0);
    version.unwrap_or(0) ^ epoch
}
