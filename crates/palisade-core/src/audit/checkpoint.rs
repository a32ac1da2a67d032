//! Checkpoints: a chain's head `(seq, hash)` signed with HMAC-SHA-256, so
//! that records cut off the end of the chain (which leaves a valid, shorter
//! chain) are noticed: a checkpoint written to the server's log earlier
//! names a `seq` the store no longer reaches, or a hash it no longer has
//! there. The key keeps someone who can edit the store from writing a
//! checkpoint for the chain they left.

use std::fmt;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::{Hash, hex, parse_hash};

/// The shortest checkpoint key accepted, in bytes: an HMAC-SHA-256 key
/// shorter than its output is weaker than the hash.
pub const MIN_KEY_BYTES: usize = 32;

/// What the MAC covers before `seq` and `hash`, so a MAC of this kind is
/// never valid for another use of the same key.
const DOMAIN: &[u8] = b"palisade-audit-checkpoint-v1\0";

/// A signed head of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The head's `seq`.
    pub seq: u64,
    /// The head's hash.
    pub hash: Hash,
    /// HMAC-SHA-256 of the domain tag, `seq` (u64 big-endian) and `hash`.
    pub mac: [u8; 32],
}

/// A checkpoint line that does not parse, or a key too short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not `seq=N hash=H mac=M`.
    #[error("not a checkpoint `seq=N hash=<64 hex digits> mac=<64 hex digits>`: {0}")]
    Malformed(&'static str),
    /// The key has fewer than [`MIN_KEY_BYTES`] bytes.
    #[error("a checkpoint key needs at least {MIN_KEY_BYTES} bytes")]
    ShortKey,
}

impl Checkpoint {
    /// Signs the head `(seq, hash)` with `key`.
    pub fn sign(key: &[u8], seq: u64, hash: Hash) -> Result<Self, CheckpointError> {
        let mac = mac(key, seq, &hash)?.finalize().into_bytes().into();
        Ok(Self { seq, hash, mac })
    }

    /// Whether the MAC is `key`'s for this `(seq, hash)`, compared in
    /// constant time (`verify_slice`), so timing tells a forger nothing
    /// about how much of a guess was right.
    pub fn is_signed_by(&self, key: &[u8]) -> bool {
        mac(key, self.seq, &self.hash).is_ok_and(|m| m.verify_slice(&self.mac).is_ok())
    }

    /// Parses `seq=N hash=H mac=M` (as [`Checkpoint`] displays), also when
    /// it is the end of a longer log line.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let mut seq = None;
        let mut hash = None;
        let mut mac = None;
        for word in text.split_whitespace() {
            if let Some(v) = word.strip_prefix("seq=") {
                seq = Some(v.parse().map_err(|_| CheckpointError::Malformed("seq is not a number"))?);
            } else if let Some(v) = word.strip_prefix("hash=") {
                hash = Some(parse_hash(v).ok_or(CheckpointError::Malformed("hash is not 64 hex digits"))?);
            } else if let Some(v) = word.strip_prefix("mac=") {
                mac = Some(parse_hash(v).ok_or(CheckpointError::Malformed("mac is not 64 hex digits"))?);
            }
        }
        Ok(Self {
            seq: seq.ok_or(CheckpointError::Malformed("no seq="))?,
            hash: hash.ok_or(CheckpointError::Malformed("no hash="))?,
            mac: mac.ok_or(CheckpointError::Malformed("no mac="))?,
        })
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq={} hash={} mac={}", self.seq, hex(&self.hash), hex(&self.mac))
    }
}

fn mac(key: &[u8], seq: u64, hash: &Hash) -> Result<Hmac<Sha256>, CheckpointError> {
    if key.len() < MIN_KEY_BYTES {
        return Err(CheckpointError::ShortKey);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| CheckpointError::ShortKey)?;
    mac.update(DOMAIN);
    mac.update(&seq.to_be_bytes());
    mac.update(hash);
    Ok(mac)
}
