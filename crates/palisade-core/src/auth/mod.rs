//! Access tokens: verification of incoming JWTs and minting with our own
//! keys; and the own issuer's passwords.
//!
//! Signature checking is `jsonwebtoken`'s job (for HMAC keys, aws-lc's
//! under it, keyed once: `token`); every time-based or identity
//! claim (`exp`, `nbf`, `iss`, `aud`) is checked here against the `now` the
//! caller passes, so expiry is tested with a virtual clock.

mod claims;
mod identity;
mod issuers;
mod jwks;
mod keys;
mod password;
mod revocation;
mod token;

pub use claims::{AuthError, Identity, VerifyOptions};
pub use identity::{IdentityError, check_name, check_sub};
pub use issuers::{IssuerError, IssuerKeys, IssuerSpec, Issuers};
pub use jwks::{FetchRequest, Installed, JwksError, JwksSpec, MAX_JWKS_KEYS};
pub use keys::{Algorithm, KeyError, KeyMaterial};
pub use password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordError, hash_password, verify_password};
pub use revocation::{InvalidJti, Revocation, RevocationMark, Revocations, check_jti, user_revocation};
pub use token::{TokenRequest, TokenSigner, TokenVerifier};

#[cfg(test)]
mod tests;
