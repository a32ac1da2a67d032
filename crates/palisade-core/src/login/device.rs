//! Binding a session to the device that opened it: a fingerprint of the
//! user agent and the network prefix of the address, recorded at login and
//! compared on every refresh and handshake of the session's tokens.
//!
//! The fingerprint is a hash, so the session table and the token's `dev`
//! claim do not repeat the user agent or the address. It is deliberately
//! coarse (a /24 or /48 prefix, not the address) so a phone moving between
//! addresses of one network keeps its session; a stolen refresh token used
//! from elsewhere does not.

use std::net::IpAddr;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// What a mismatch does (`auth.device_binding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceBinding {
    /// Not checked.
    #[default]
    Off,
    /// Logged, allowed.
    Log,
    /// Refused.
    Enforce,
}

impl FromStr for DeviceBinding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "log" => Ok(Self::Log),
            "enforce" => Ok(Self::Enforce),
            other => Err(format!("`{other}`: expected off, log or enforce")),
        }
    }
}

/// The outcome of comparing a request with the session's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceVerdict {
    /// Same device, or binding off, or a token bound to no device.
    Pass,
    /// Another device; allowed under [`DeviceBinding::Log`], to be logged.
    PassMismatched,
    /// Another device under [`DeviceBinding::Enforce`].
    Refuse,
}

impl DeviceBinding {
    /// Compares the fingerprint a session was bound to with the one a
    /// request presents. The comparison is of public hashes, so it need not
    /// be constant-time.
    pub fn judge(self, bound: Option<&str>, presented: &str) -> DeviceVerdict {
        match (self, bound) {
            (Self::Off, _) | (_, None) => DeviceVerdict::Pass,
            (_, Some(bound)) if bound == presented => DeviceVerdict::Pass,
            (Self::Log, Some(_)) => DeviceVerdict::PassMismatched,
            (Self::Enforce, Some(_)) => DeviceVerdict::Refuse,
        }
    }

    /// [`DeviceBinding::judge`] of a request by its user agent and client
    /// address, hashed into a [`fingerprint`] only when the verdict
    /// depends on it (binding on, and a token bound to a device): every
    /// handshake asks, and most have nothing to compare.
    pub fn judge_request(self, bound: Option<&str>, user_agent: &str, ip: IpAddr) -> DeviceVerdict {
        match (self, bound) {
            (Self::Off, _) | (_, None) => DeviceVerdict::Pass,
            (_, Some(_)) => self.judge(bound, &fingerprint(user_agent, ip)),
        }
    }
}

/// Longest part of a user agent that counts; the rest is ignored so a
/// huge header costs no more to hash.
const MAX_USER_AGENT: usize = 512;

/// The fingerprint of a request: 32 hex characters of
/// SHA-256(user agent ‖ 0 ‖ network prefix), the prefix being the /24 of
/// an IPv4 address or the /48 of an IPv6 one (an IPv4-mapped address
/// counts as IPv4).
pub fn fingerprint(user_agent: &str, ip: IpAddr) -> String {
    let ua = &user_agent.as_bytes()[..user_agent.len().min(MAX_USER_AGENT)];
    let prefix: Vec<u8> = match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets()[..3].to_vec(),
        IpAddr::V6(v6) => v6.octets()[..6].to_vec(),
    };
    let mut hash = Sha256::new();
    hash.update(ua);
    hash.update([0]);
    hash.update(&prefix);
    hex(&hash.finalize()[..16])
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    // By table: `write!` per byte costs a formatter call each.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_fingerprint_follows_the_agent_and_the_network_not_the_host() {
        let home = fingerprint("Firefox/140", ip("127.1.2.3"));
        assert_eq!(home.len(), 32);
        assert_eq!(home, fingerprint("Firefox/140", ip("127.1.2.200")), "same /24");
        assert_eq!(home, fingerprint("Firefox/140", ip("::ffff:127.1.2.9")), "v4-mapped is v4");
        assert_ne!(home, fingerprint("Firefox/140", ip("127.1.3.3")), "another /24");
        assert_ne!(home, fingerprint("Chrome/150", ip("127.1.2.3")), "another agent");
        let v6 = fingerprint("x", ip("2001:db8:1::1"));
        assert_eq!(v6, fingerprint("x", ip("2001:db8:1:ffff::2")), "same /48");
        assert_ne!(v6, fingerprint("x", ip("2001:db8:2::1")));
        // A long agent is cut, not refused.
        let long = "a".repeat(10_000);
        assert_eq!(fingerprint(&long, ip("127.0.0.1")), fingerprint(&long[..MAX_USER_AGENT], ip("127.0.0.1")));
    }

    #[test]
    fn binding_policies() {
        use DeviceVerdict::*;
        for (policy, mismatch) in
            [(DeviceBinding::Off, Pass), (DeviceBinding::Log, PassMismatched), (DeviceBinding::Enforce, Refuse)]
        {
            assert_eq!(policy.judge(Some("a"), "a"), Pass);
            assert_eq!(policy.judge(Some("a"), "b"), mismatch);
            assert_eq!(policy.judge(None, "b"), Pass, "a token bound to nothing");
        }
        assert_eq!("enforce".parse(), Ok(DeviceBinding::Enforce));
        assert!("strict".parse::<DeviceBinding>().is_err());
    }

    #[test]
    fn a_request_is_judged_by_its_fingerprint() {
        use DeviceVerdict::*;
        let home = fingerprint("Firefox/140", ip("127.1.2.3"));
        for (policy, mismatch) in
            [(DeviceBinding::Off, Pass), (DeviceBinding::Log, PassMismatched), (DeviceBinding::Enforce, Refuse)]
        {
            assert_eq!(policy.judge_request(Some(&home), "Firefox/140", ip("127.1.2.9")), Pass);
            assert_eq!(policy.judge_request(Some(&home), "Chrome/150", ip("127.1.2.3")), mismatch);
            assert_eq!(policy.judge_request(Some(&home), "Firefox/140", ip("127.1.3.3")), mismatch);
            assert_eq!(policy.judge_request(None, "Chrome/150", ip("127.1.3.3")), Pass, "a token bound to nothing");
        }
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
