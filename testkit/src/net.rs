//! Loopback ports for the servers a test starts itself.

use std::net::{TcpListener, UdpSocket};

/// Where test servers' ports come from: below the kernel's ephemeral range (32768-60999 by
/// default), so that no outgoing connection of another test can take the port as its source
/// port between this check and the server's bind (that race failed a Redis Cluster test in CI),
/// and so that a Redis Cluster's bus port (port + 10000) is below that range too.
const RANGE: std::ops::Range<u16> = 12_000..22_000;
/// Ports the local stack or the benchmarks use inside that range.
const TAKEN: [u16; 3] = [18_080, 18_099, 15_432];

/// A TCP port nothing listens on now (and whose port + 10000 is free too), picked at random.
pub fn free_port() -> u16 {
    for _ in 0..500 {
        let port = pick();
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port in {RANGE:?}");
}

/// A UDP port nothing is bound to now, for a DNS server on loopback.
pub fn free_udp_port() -> u16 {
    for _ in 0..500 {
        let port = pick();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback UDP port in {RANGE:?}");
}

fn pick() -> u16 {
    loop {
        let span = u128::from(RANGE.end - RANGE.start);
        let port = RANGE.start + (uuid::Uuid::new_v4().as_u128() % span) as u16;
        if !TAKEN.contains(&port) {
            return port;
        }
    }
}
