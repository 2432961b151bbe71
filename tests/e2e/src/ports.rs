//! Listening ports for the servers the tests start, picked outside the kernel's ephemeral
//! range.
//!
//! A node that is restarted must get its port back. A port the kernel handed out with
//! `bind(:0)` comes from the ephemeral range, from which it also picks the source port of every
//! outgoing connection on the machine, so between a kill and the restart another connection
//! (a client, a proxy, another test's broker) may hold it, and the restart fails with "address
//! in use". Ports chosen at random below that range are never taken that way; the bind check
//! and a process-wide record of the ports already handed out keep two servers of one run apart.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// The lowest port handed out.
const LOWEST: u16 = 20_000;

/// The first port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// A free 127.0.0.1 port below the ephemeral range, not handed out before in this process.
/// Falls back to a kernel-chosen port when the range below is too small or all taken.
pub fn reserve() -> SocketAddr {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let top = ephemeral_start();
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    if top > LOWEST + 1_000 {
        let span = u64::from(top - LOWEST);
        for _ in 0..200 {
            let port = LOWEST + (random() % span) as u16;
            if given.contains(&port) {
                continue;
            }
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                if let Ok(addr) = l.local_addr() {
                    given.insert(port);
                    return addr;
                }
            }
        }
    }
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    given.insert(addr.port());
    addr
}
