//! The one HMAC-SHA256 signature format Palisade hands to other programs:
//! `sha256=` and the lowercase hex MAC of the parts, concatenated. Operator
//! webhooks (`alerts`) and gateway mode's identity headers
//! (`passthrough::identity`) sign with it, so a receiver verifies both the
//! same way.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::audit::hex;

/// `sha256=<hex HMAC-SHA256(secret, parts concatenated)>`.
pub fn sign(secret: &[u8], parts: &[&[u8]]) -> String {
    format!("sha256={}", hex(&mac(secret, parts)))
}

/// Whether `signature` is the parts' under `secret`, compared in constant
/// time.
pub fn verify(secret: &[u8], parts: &[&[u8]], signature: &str) -> bool {
    let want = sign(secret, parts);
    want.as_bytes().ct_eq(signature.as_bytes()).into()
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes a key of any length; the config requires a long one.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return Vec::new() };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}
