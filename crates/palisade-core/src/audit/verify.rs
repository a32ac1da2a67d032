//! Walking a chain: each record must follow the one before it (next `seq`,
//! `prev_hash` equal to its hash) and hash to what it says.

use super::{GENESIS, Hash, Record};

/// What is wrong with the first record that does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// Its `seq` is not one more than its predecessor's (a record removed,
    /// inserted or moved).
    Seq {
        /// The `seq` that should be here.
        expected: u64,
    },
    /// Its `prev_hash` is not its predecessor's hash.
    Link,
    /// Its fields do not hash to its `hash`: it was edited.
    Hash,
}

/// The first record of a chain that does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit record seq={seq} is broken: {}", match .breakage {
    Breakage::Seq { expected } => format!("expected seq={expected} here (a record removed, inserted or moved)"),
    Breakage::Link => "its prev_hash is not the previous record's hash".to_owned(),
    Breakage::Hash => "its fields do not hash to its hash (edited)".to_owned(),
})]
pub struct Broken {
    /// The record's `seq` as stored.
    pub seq: u64,
    /// What is wrong with it.
    pub breakage: Breakage,
}

/// The record a writer last signed is no longer in the store as it was
/// signed: someone who can write the database (but has no key) removed or
/// rewrote records and recomputed the keyless chain. Signing the head now
/// would vouch for the forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit record seq={seq}, signed in a checkpoint, {}: the chain was rewritten under the writer", match .found {
    None => "is gone".to_owned(),
    Some(found) => format!("now has hash {}", super::hex(found)),
})]
pub struct Rewritten {
    /// The signed record's `seq`.
    pub seq: u64,
    /// The hash the store has there now, if it has a record there.
    pub found: Option<Hash>,
}

impl Rewritten {
    /// Whether the store, which has `found` as the hash of the record at
    /// `signed`'s `seq` (`None`: no record there), still holds the record
    /// that was signed.
    pub fn check(signed: (u64, Hash), found: Option<Hash>) -> Result<(), Self> {
        if found == Some(signed.1) { Ok(()) } else { Err(Self { seq: signed.0, found }) }
    }
}

/// Checks records one at a time, in `seq` order, from the first (or from a
/// signed anchor, when retention pruned the records before it), so a chain
/// of any length is verified in pages.
#[derive(Debug, Clone)]
pub struct Verifier {
    last_seq: u64,
    last_hash: Hash,
}

impl Default for Verifier {
    fn default() -> Self {
        Self { last_seq: 0, last_hash: GENESIS }
    }
}

impl Verifier {
    /// A verifier expecting the first record (`seq` 1 after [`GENESIS`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier expecting the record after `(seq, hash)`: the anchor a
    /// signed checkpoint proves, where retention cut the older records off.
    pub fn after(seq: u64, hash: Hash) -> Self {
        Self { last_seq: seq, last_hash: hash }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &Record) -> Result<(), Broken> {
        let expected = self.last_seq.saturating_add(1);
        let broken = |breakage| Broken { seq: record.seq, breakage };
        if record.seq != expected {
            return Err(broken(Breakage::Seq { expected }));
        }
        if record.prev_hash != self.last_hash {
            return Err(broken(Breakage::Link));
        }
        if record.expected_hash() != record.hash {
            return Err(broken(Breakage::Hash));
        }
        self.last_seq = record.seq;
        self.last_hash = record.hash;
        Ok(())
    }

    /// The last record verified: its `seq` (0 for none) and hash.
    pub fn head(&self) -> (u64, Hash) {
        (self.last_seq, self.last_hash)
    }
}
