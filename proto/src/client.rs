//! Who is calling: the one place that names the client of a request, for
//! per-client rate limits.
//!
//! The name is derived from the connection, never from anything the caller
//! writes into the request. For now it is the peer's IP address: an IPv4
//! address whole (IPv4-mapped IPv6 addresses count as IPv4), an IPv6
//! address by its /64 prefix, the block one subscriber usually holds, so
//! that walking through the addresses of one prefix does not buy fresh
//! budgets.
//!
//! Limitation: clients behind one NAT or proxy share a key, and a key is
//! only as good as the source address; client certificates (mTLS) will
//! name clients instead.

use std::net::IpAddr;

/// The key of a request whose peer address is unknown (an in-process
/// call); all such requests share one budget.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The client key of `request`: `ip:` and the IPv4 address, or `ip6:` and
/// the IPv6 /64 prefix; [`UNKNOWN_CLIENT`] without a peer address.
///
/// ```
/// use chipward_proto::client::{client_key, UNKNOWN_CLIENT};
///
/// assert_eq!(client_key(&tonic::Request::new(())), UNKNOWN_CLIENT);
/// ```
pub fn client_key<T>(request: &tonic::Request<T>) -> String {
    match request.remote_addr() {
        Some(addr) => ip_key(addr.ip()),
        None => UNKNOWN_CLIENT.to_owned(),
    }
}

/// The key of one IP address.
fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn ipv4_addresses_are_keys_of_their_own() {
        assert_eq!(
            ip_key(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
            "ip:127.0.0.1"
        );
        assert_eq!(
            ip_key(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
            "ip:127.0.0.2"
        );
    }

    #[test]
    fn ipv6_addresses_share_a_key_per_64_prefix() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(IpAddr::V6(a)), "ip6:2001:db8:1:2::/64");
        assert_eq!(ip_key(IpAddr::V6(b)), "ip6:2001:db8:1:2::/64");
        assert_eq!(ip_key(IpAddr::V6(other)), "ip6:2001:db8:1:3::/64");
        assert_eq!(ip_key(IpAddr::V6(Ipv6Addr::LOCALHOST)), "ip6:0:0:0:0::/64");
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(IpAddr::V6(mapped)), "ip:192.0.2.7");
    }
}
