//! Passwords of the own issuer's users: argon2id, stored as PHC strings
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so the parameters travel with
//! each hash and can be raised later without invalidating old ones.
//!
//! The salt is an argument: this crate does no I/O, randomness included;
//! the caller draws 16 random bytes.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes: hashing cost grows with the input,
/// and nobody types more.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id cost: 19 MiB, 2 passes, 1 lane, OWASP's recommended minimum
/// (about 30 ms on this project's 2-core test machine, BENCHMARKS.md).
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Why a password was not hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than [`MIN_PASSWORD_CHARS`].
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// Longer than [`MAX_PASSWORD_BYTES`].
    #[error("a password may have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// The hasher failed (it does not, with these fixed parameters).
    #[error("the password could not be hashed")]
    Hashing,
}

/// Hashes `password` with argon2id and `salt`; returns the PHC string.
pub fn hash_password(password: &str, salt: [u8; 16]) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hashing)?;
    let hash = hasher().hash_password(password.as_bytes(), &salt).map_err(|_| PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`. A stored string
/// that does not parse matches nothing. The comparison inside argon2 is in
/// constant time.
pub fn verify_password(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(stored).is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
}

fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's bounds.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash_password("correct horse battery", [7; 16]).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify_password("correct horse battery", &stored));
        assert!(!verify_password("correct horse batterx", &stored));
        assert!(!verify_password("", &stored));
        assert!(!verify_password("correct horse battery", "not a phc string"));
        // Another salt, another hash.
        assert_ne!(stored, hash_password("correct horse battery", [8; 16]).unwrap());
    }

    #[test]
    fn lengths_are_bounded() {
        assert_eq!(hash_password("short", [0; 16]), Err(PasswordError::TooShort));
        assert_eq!(hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1), [0; 16]), Err(PasswordError::TooLong));
        // Characters, not bytes, for the minimum.
        assert!(hash_password(&"é".repeat(MIN_PASSWORD_CHARS), [0; 16]).is_ok());
    }
}
