//! The address a request comes from, which sign-in throttles per client.
//!
//! Behind a reverse proxy or load balancer every request's TCP peer is the
//! proxy, so counting failures per peer would let one client's guesses
//! lock everyone out. For peers listed as trusted proxies
//! (`--trusted-proxies`), the client is read from `X-Forwarded-For`
//! instead: the right-most address that is not itself a trusted proxy.
//! Entries further left were written by whoever sent the request, so they
//! are never believed; from any other peer the header is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use ipnet::IpNet;

use super::{ApiError, AppState};

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// IPv4 peers of a dual-stack listener arrive as `::ffff:a.b.c.d`:
    /// compared in their canonical form, so `10.0.0.0/24` matches them.
    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client behind `peer`, given the request's `X-Forwarded-For`
    /// values in the order they appear.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded_for.flat_map(|value| value.split(',')).rev();
        for hop in hops {
            let Some(address) = parse_hop(hop.trim()) else {
                // Garbage in the chain: the last hop that parsed is the
                // closest address known.
                return client;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .map(|address| address.to_canonical())
}

/// The client address of a request, as [`TrustedProxies`] decides it.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server was started without peer addresses",
            ));
        };
        let forwarded_for = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(Self(
            state
                .trusted_proxies
                .client_address(peer.ip(), forwarded_for),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("{text} is an address"))
    }

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            networks
                .iter()
                .map(|n| n.parse().unwrap_or_else(|_| panic!("{n} is a network")))
                .collect(),
        )
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("10.0.0.5"), ["192.0.2.1"].into_iter()),
            ip("10.0.0.5")
        );
        let lb = proxies(&["10.0.0.0/24"]);
        assert_eq!(
            lb.client_address(ip("10.0.1.5"), ["192.0.2.1"].into_iter()),
            ip("10.0.1.5")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let lb = proxies(&["10.0.0.0/24", "2001:db8::/32"]);
        // The left-most entry was written by the client: not believed.
        assert_eq!(
            lb.client_address(
                ip("10.0.0.5"),
                ["198.51.100.7, 192.0.2.1", "10.0.0.9"].into_iter()
            ),
            ip("192.0.2.1")
        );
        assert_eq!(
            lb.client_address(
                ip("2001:db8::1"),
                ["[2001:db8::2]:80, 192.0.2.9:4711"].into_iter()
            ),
            ip("192.0.2.9")
        );
        // Every hop trusted: the left-most one.
        assert_eq!(
            lb.client_address(ip("10.0.0.5"), ["10.0.0.7"].into_iter()),
            ip("10.0.0.7")
        );
        // An IPv4 proxy seen through a dual-stack socket is still trusted.
        assert_eq!(
            lb.client_address(ip("::ffff:10.0.0.5"), ["192.0.2.1"].into_iter()),
            ip("192.0.2.1")
        );
        // No header, or garbage: the closest hop known.
        assert_eq!(
            lb.client_address(ip("10.0.0.5"), std::iter::empty()),
            ip("10.0.0.5")
        );
        assert_eq!(
            lb.client_address(ip("10.0.0.5"), ["192.0.2.1, not-an-address"].into_iter()),
            ip("10.0.0.5")
        );
    }
}
