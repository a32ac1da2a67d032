//! The guard stepped on a virtual clock.
