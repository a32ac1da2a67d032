//! Which address a request comes from: the peer, or the client a trusted
//! proxy names in `X-Forwarded-For` (docs/ARCHITECTURE.md, "Client
//! addresses"), and the key limits and bans count it under.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// The address limits, scores and bans are kept under.
///
/// IPv4 addresses (also when written IPv4-mapped, `::ffff:a.b.c.d`) count
/// as themselves. IPv6 addresses count by their /64: one subscriber line is
/// usually given a whole /64, so keying by single IPv6 addresses would hand
/// every attacker 2^64 fresh identities and every limit with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey(IpAddr);

impl IpKey {
    /// The key of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    /// The address (for IPv6, the first of its /64).
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

impl FromStr for IpKey {
    type Err = AddrError;

    /// An address, or an IPv6 /64 as [`IpKey`]'s `Display` writes it.
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let addr = s.strip_suffix("/64").unwrap_or(s);
        let parsed: IpAddr = addr.parse().map_err(|_| AddrError(s.to_owned()))?;
        if addr.len() != s.len() && parsed.is_ipv4() {
            return Err(AddrError(s.to_owned()));
        }
        Ok(Self::of(parsed))
    }
}

/// An address or network that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR network: {0:?}")]
pub struct AddrError(String);

/// The proxies whose `X-Forwarded-For` is believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDR networks ("127.0.0.1/32", "::1/128"); a bare address is
    /// its own /32 or /128.
    pub fn parse<S: AsRef<str>>(networks: &[S]) -> Result<Self, AddrError> {
        networks
            .iter()
            .map(|n| {
                let n = n.as_ref().trim();
                n.parse::<IpNet>().or_else(|_| n.parse::<IpAddr>().map(IpNet::from)).map_err(|_| AddrError(n.into()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `addr` is one of the trusted proxies.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The client's address: the peer's own, unless the peer is a trusted
    /// proxy. Then `X-Forwarded-For` (every header's raw bytes, in order,
    /// as one list) is read from the right, each hop being the proxy that
    /// appended it, and the first address that is not a trusted proxy is
    /// the client. Entries left of it were written by the client and are
    /// ignored, however many there are. A hop that cannot be read (empty,
    /// not ASCII, not an address) ends the walk as [`UNKNOWN_CLIENT`]: the
    /// proxy that passed it on does not know who sent it, and counting it
    /// as the proxy would let one odd byte dodge a ban and, by its abuse,
    /// ban the proxy's own address. A chain of trusted proxies only gives
    /// its left-most one.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&[u8]]) -> IpAddr {
        let mut client = canonical(peer);
        if !self.contains(client) {
            return client;
        }
        let hops = forwarded_for.iter().rev().flat_map(|h| h.rsplit(|&b| b == b','));
        for hop in hops {
            match parse_hop(hop) {
                Some(addr) => {
                    client = addr;
                    if !self.contains(addr) {
                        break;
                    }
                }
                None => return UNKNOWN_CLIENT,
            }
        }
        client
    }
}

/// The address every client behind a trusted proxy whose hop cannot be
/// read counts as: `100::`, in the IPv6 discard-only prefix (RFC 6666),
/// which no real peer has. One key for all of them, so garbage never
/// becomes a fresh identity per request; its limits and bans are its own,
/// never the proxy's. Shown as `100::/64`.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V6(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0));

/// One `X-Forwarded-For` entry, from its raw bytes: an address, bracketed
/// IPv6, or either with a port, with spaces or tabs around it.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim_matches([' ', '\t']);
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 addresses as IPv4, so a dual-stack listener's peers
/// match IPv4 networks.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn h(bytes: &[u8]) -> &[u8] {
        bytes
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(nets).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.9"), &[h(b"127.6.6.6")]), ip("127.0.0.9"));
        let some = proxies(&["127.0.1.0/24"]);
        assert_eq!(
            some.client(ip("127.0.0.9"), &[h(b"127.6.6.6, 127.0.1.1")]),
            ip("127.0.0.9"),
            "spoofed chain ignored"
        );
    }

    #[test]
    fn zero_one_and_two_trusted_hops() {
        let p = proxies(&["127.0.1.0/24"]);
        // 0 hops: a trusted peer that forwards nothing is the client.
        assert_eq!(p.client(ip("127.0.1.1"), &[]), ip("127.0.1.1"));
        // 1 hop: the proxy appended the client.
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"127.9.9.9")]), ip("127.9.9.9"));
        // 2 hops: the outer proxy appended the client, the inner one the
        // outer proxy.
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"127.9.9.9, 127.0.1.2")]), ip("127.9.9.9"));
        // The same across two headers.
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"127.9.9.9"), h(b"127.0.1.2")]), ip("127.9.9.9"));
    }

    #[test]
    fn the_right_most_untrusted_hop_wins_not_the_left_most() {
        // The client wrote "127.6.6.6" itself; the proxy appended the real
        // address. Taking the left-most entry (or one too far left) would
        // let every client choose its own identity.
        let p = proxies(&["127.0.1.0/24"]);
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"127.6.6.6, 127.9.9.9")]), ip("127.9.9.9"));
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"127.5.5.5, 127.6.6.6, 127.9.9.9, 127.0.1.2")]), ip("127.9.9.9"));
    }

    #[test]
    fn an_unreadable_hop_is_an_unknown_client_never_the_proxy() {
        let p = proxies(&["127.0.1.0/24"]);
        let unknown = |headers: &[&[u8]]| {
            let client = p.client(ip("127.0.1.1"), headers);
            assert_eq!(client, UNKNOWN_CLIENT, "{headers:?}");
            assert!(!p.contains(client));
        };
        unknown(&[h(b"unknown")]);
        unknown(&[h(b"127.9.9.9, junk, 127.0.1.2")]);
        // One byte that is not ASCII, where a text reading of the header
        // gave up on the whole value.
        unknown(&[h(b"127.9.9.\xff")]);
        unknown(&[h(b"\xe2\x80\x8a127.9.9.9")]);
        unknown(&[h(b"127.9.9.9"), h(b"\x80")]);
        // Empty hops: a whole empty header, or an empty entry.
        unknown(&[h(b"")]);
        unknown(&[h(b"127.9.9.9, , 127.0.1.2")]);
        unknown(&[h(b"127.9.9.9,")]);
        unknown(&[h(b"\0\r")]);
        unknown(&[&[0xff; 64][..]]);
        assert_eq!(IpKey::of(UNKNOWN_CLIENT).to_string(), "100::/64");
    }

    #[test]
    fn readable_hops_right_of_garbage_still_name_the_client() {
        // The client wrote the garbage; the proxy appended its address.
        let p = proxies(&["127.0.1.0/24"]);
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"\xff\xfe, 127.9.9.9")]), ip("127.9.9.9"));
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"junk\xff"), h(b"127.9.9.9")]), ip("127.9.9.9"));
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"\t127.9.9.9 ")]), ip("127.9.9.9"));
        // Ports and brackets are allowed.
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"[::1]:443")]), ip("::1"));
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"127.9.9.9:5000")]), ip("127.9.9.9"));
        // From an untrusted peer nothing is read, garbage or not.
        assert_eq!(p.client(ip("127.0.0.9"), &[h(b"\xff")]), ip("127.0.0.9"));
    }

    #[test]
    fn an_all_trusted_chain_gives_its_left_most_proxy() {
        let p = proxies(&["127.0.1.0/24"]);
        assert_eq!(p.client(ip("127.0.1.1"), &[h(b"127.0.1.3, 127.0.1.2")]), ip("127.0.1.3"));
    }

    #[test]
    fn mapped_addresses_match_ipv4_networks() {
        let p = proxies(&["127.0.1.1"]);
        assert_eq!(p.client(ip("::ffff:127.0.1.1"), &[h(b"127.9.9.9")]), ip("127.9.9.9"));
        assert!(TrustedProxies::parse(&["not a net"]).is_err());
    }

    #[test]
    fn ipv6_keys_are_the_64_and_ipv4_keys_the_address() {
        let a = IpKey::of(ip("::1"));
        assert_eq!(a, IpKey::of(ip("::ffff:0:0:1")), "same /64");
        assert_eq!(a.to_string(), "::/64");
        assert_eq!(IpKey::of(ip("::ffff:127.0.0.2")), IpKey::of(ip("127.0.0.2")));
        assert_ne!(IpKey::of(ip("127.0.0.2")), IpKey::of(ip("127.0.0.3")));
        for text in ["127.0.0.2", "::/64", "fe80::/64"] {
            assert_eq!(text.parse::<IpKey>().unwrap().to_string(), text);
        }
        assert!("127.0.0.2/64".parse::<IpKey>().is_err());
        assert!("nope".parse::<IpKey>().is_err());
    }
}
