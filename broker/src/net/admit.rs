//! Connection admission: the process-wide connection count
//! (`limits.max_connections`) and the per-address count
//! (`limits.max_connections_per_ip`), shared by the workers (TCP, TLS, web
//! and WSS) and the QUIC thread.
//!
//! Role: [`Admission::admit`] counts a new connection and hands back a
//! [`Slot`], which gives the count back when dropped; a connection over a
//! limit gets no slot and is refused by its listener with a clear reason.
//!
//! Invariants:
//! - a connection holds at most one slot, from accept (QUIC: from the
//!   incoming handshake) to its end; a refused one holds none;
//! - the per-address table only holds addresses with an open connection, so
//!   it has at most `max_connections` entries (bounded), spread over
//!   [`SHARDS`] mutexes taken once per accept and once per close;
//! - IPv4 addresses count one by one, IPv6 addresses by their /64 prefix (one
//!   host usually owns a whole /64); IPv4-mapped IPv6 counts as IPv4;
//! - a QUIC session's loopback bridge to the TCP listener is announced in
//!   [`Admission::bridges`] before it connects; the worker that accepts it
//!   gives it no slot, because the QUIC connection already holds one (with
//!   the client's real address);
//! - new connections per address are rate limited
//!   (`limits.max_handshakes_per_ip_per_sec`, token bucket, burst 2x); the
//!   bucket table holds at most [`MAX_RATE_ENTRIES`] addresses (a full shard
//!   starts over: a fresh burst for some addresses, never unbounded memory);
//! - refusals are logged at most once per [`LOG_EVERY`], with the count.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

use crate::node::ratelimit::KeyedBuckets;

/// Mutexes the per-address table is split over.
const SHARDS: usize = 16;
/// Most addresses with a handshake bucket, over all shards.
pub(crate) const MAX_RATE_ENTRIES: usize = 65_536;
/// Refusals are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The key an address counts under (an IPv4 address or an IPv6 /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IpKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => IpKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&o[..8]);
                    IpKey::V6Prefix(p)
                }
            },
        }
    }

    fn shard(&self) -> usize {
        let h = match self {
            IpKey::V4(o) => u32::from_be_bytes(*o) as usize,
            IpKey::V6Prefix(p) => u64::from_be_bytes(*p) as usize,
        };
        (h ^ (h >> 7) ^ (h >> 17)) % SHARDS
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `limits.max_connections` reached.
    Total,
    /// `limits.max_connections_per_ip` reached for this address.
    PerIp,
    /// `limits.max_handshakes_per_ip_per_sec` exceeded: retry after this many ms.
    Rate(u64),
}

impl Refusal {
    /// The reason told to the client.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Total => "server connection limit reached",
            Refusal::PerIp => "too many connections from this address",
            Refusal::Rate(_) => "too many new connections from this address; retry later",
        }
    }

    /// The Close code told to the client.
    pub(crate) fn code(self) -> missive_protocol::ErrorCode {
        match self {
            Refusal::Total | Refusal::PerIp => missive_protocol::ErrorCode::TooManyConnections,
            Refusal::Rate(_) => missive_protocol::ErrorCode::RateLimited,
        }
    }
}

/// The shared counts (see the module docs).
#[derive(Debug)]
pub(crate) struct Admission {
    /// Open connections across the process (`limits.max_connections`).
    pub(crate) total: Arc<AtomicUsize>,
    max_total: usize,
    /// 0 = no per-address cap.
    max_per_ip: usize,
    per_ip: [Mutex<HashMap<IpKey, u32>>; SHARDS],
    /// 0 = no handshake rate limit.
    handshakes_per_sec: u32,
    rates: KeyedBuckets<IpKey>,
    /// Local addresses of QUIC bridges about to connect to the TCP listener.
    bridges: Mutex<HashSet<SocketAddr>>,
    last_log: Mutex<Option<Instant>>,
    refused_since_log: AtomicU64,
}

/// A counted connection; dropping it gives the count back.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    key: Option<IpKey>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(key) = self.key {
            let mut m = self.admission.per_ip[key.shard()].lock();
            if let Some(n) = m.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&key);
                }
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(
        total: Arc<AtomicUsize>,
        max_total: usize,
        max_per_ip: usize,
        handshakes_per_sec: u32,
    ) -> Self {
        Self {
            total,
            max_total,
            max_per_ip,
            per_ip: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            handshakes_per_sec,
            rates: KeyedBuckets::new(MAX_RATE_ENTRIES),
            bridges: Mutex::new(HashSet::new()),
            last_log: Mutex::new(None),
            refused_since_log: AtomicU64::new(0),
        }
    }

    /// Counts a new connection from `ip`, or refuses it (nothing counted).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        self.admit_at(ip, Instant::now())
    }

    /// [`Admission::admit`] at time `now`.
    pub(crate) fn admit_at(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Slot, Refusal> {
        if let Err(retry_ms) = self.rates.take(&IpKey::of(ip), self.handshakes_per_sec, now) {
            return Err(self.refused(Refusal::Rate(retry_ms), ip));
        }
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(self.refused(Refusal::Total, ip));
        }
        let key = if self.max_per_ip > 0 {
            let key = IpKey::of(ip);
            let mut m = self.per_ip[key.shard()].lock();
            let n = m.entry(key).or_insert(0);
            if *n as usize >= self.max_per_ip {
                drop(m);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(self.refused(Refusal::PerIp, ip));
            }
            *n += 1;
            Some(key)
        } else {
            None
        };
        Ok(Slot { admission: Arc::clone(self), key })
    }

    /// Logs a refusal, at most once per [`LOG_EVERY`].
    fn refused(&self, why: Refusal, ip: IpAddr) -> Refusal {
        let n = self.refused_since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock();
        if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            self.refused_since_log.store(0, Ordering::Relaxed);
            let limit = match why {
                Refusal::Total => "limits.max_connections",
                Refusal::PerIp => "limits.max_connections_per_ip",
                Refusal::Rate(_) => "limits.max_handshakes_per_ip_per_sec",
            };
            warn!(%ip, refused = n, limit, "refusing connections: {}", why.message());
        }
        why
    }

    /// A QUIC bridge from `local` is about to connect to the TCP listener.
    pub(crate) fn announce_bridge(&self, local: SocketAddr) {
        self.bridges.lock().insert(local);
    }

    /// The bridge from `local` ended (or never connected).
    pub(crate) fn forget_bridge(&self, local: SocketAddr) {
        self.bridges.lock().remove(&local);
    }

    /// The TCP listener accepted `peer`: true (and forgotten) if it is a
    /// QUIC bridge, which needs no slot of its own.
    pub(crate) fn take_bridge(&self, peer: SocketAddr) -> bool {
        peer.ip().is_loopback() && self.bridges.lock().remove(&peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_in_total() {
        let a = Arc::new(Admission::new(Arc::new(AtomicUsize::new(0)), 3, 2, 0));
        let ip1: IpAddr = [10, 0, 0, 1].into();
        let ip2: IpAddr = [10, 0, 0, 2].into();
        let s1 = a.admit(ip1).expect("first");
        let s2 = a.admit(ip1).expect("second");
        assert_eq!(a.admit(ip1).err(), Some(Refusal::PerIp));
        let s3 = a.admit(ip2).expect("other address");
        assert_eq!(a.admit(ip2).err(), Some(Refusal::Total));
        assert_eq!(a.total.load(Ordering::Acquire), 3);
        drop(s1);
        let s4 = a.admit(ip1).expect("a slot came back");
        drop((s2, s3, s4));
        assert_eq!(a.total.load(Ordering::Acquire), 0);
        assert!(a.per_ip.iter().all(|m| m.lock().is_empty()), "the table empties");
    }

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_v4_as_v4() {
        let x: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let y: IpAddr = "2001:db8:1:2::ffff".parse().expect("v6");
        assert_eq!(IpKey::of(x), IpKey::of(y));
        let m: IpAddr = "::ffff:10.0.0.1".parse().expect("mapped");
        assert_eq!(IpKey::of(m), IpKey::V4([10, 0, 0, 1]));
    }

    #[test]
    fn handshakes_per_address_are_rate_limited() {
        let a = Arc::new(Admission::new(Arc::new(AtomicUsize::new(0)), 100, 0, 2));
        let ip1: IpAddr = [10, 0, 0, 1].into();
        let ip2: IpAddr = [10, 0, 0, 2].into();
        let t = Instant::now();
        let mut slots: Vec<Slot> = (0..4).map(|_| a.admit_at(ip1, t).expect("burst")).collect();
        match a.admit_at(ip1, t) {
            Err(Refusal::Rate(ms)) => assert!((1..=500).contains(&ms), "{ms}"),
            other => panic!("expected a rate refusal, got {other:?}"),
        }
        slots.push(a.admit_at(ip2, t).expect("another address has its own bucket"));
        slots.push(a.admit_at(ip1, t + Duration::from_millis(600)).expect("refilled"));
        assert_eq!(a.total.load(Ordering::Acquire), 6, "a refusal counts nothing");
    }

    #[test]
    fn bridges_are_taken_once() {
        let a = Admission::new(Arc::new(AtomicUsize::new(0)), 1, 0, 0);
        let local: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        a.announce_bridge(local);
        assert!(a.take_bridge(local));
        assert!(!a.take_bridge(local));
    }
}
