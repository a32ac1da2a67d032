//! The durable home of rooms' owners.

use crate::ownership::{OwnerChange, OwnerRecord};
use crate::store::StoreError;

/// Rooms' owners, so a restart keeps them (docs/POLICY.md, "Room owners").
pub trait OwnerStore: Send + Sync + std::fmt::Debug {
    /// Every room that has an owner.
    fn owners(&self) -> Result<Vec<OwnerRecord>, StoreError>;

    /// Stores `changes` (each room's latest) in one transaction. Durable
    /// when this returns.
    fn apply_owner_changes(&self, changes: &[OwnerChange]) -> Result<(), StoreError>;
}
