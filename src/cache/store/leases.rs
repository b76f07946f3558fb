//! Leases: how a hit knows its node's invalidations have all been applied lately (guarantee 2
//! whatever the scheduling). The invalidation thread renews them from PING answers; hits check
//! them and ask for them.

use super::NodeId;
use super::entry::now_ns;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::time::Duration;

/// How fresh a node's lease must be for its entries to be served (see [`Leases`]).
pub(crate) const LEASE: Duration = Duration::from_micros(900);

/// Nodes whose entries can be served (a larger node number never is).
const MAX_NODES: usize = 1024;

/// Per node, the moment its invalidation connection last sent a PING whose answer has been
/// read, with everything before it. The server answers a connection in order, and queues an
/// invalidation on it while it runs the write, before it acknowledges the write; so every
/// write acknowledged before that PING was sent has had its invalidation read and applied.
///
/// A hit is served only while its node's lease is under [`LEASE`] old (under 1 ms: a write
/// acknowledged 1 ms before a read began is then always covered, guarantee 2), whatever the
/// scheduling of the server or of brisk's own threads: when the invalidation thread or the
/// server lags (an overloaded machine), hits turn into reads from the server until the leases
/// are fresh again, instead of serving what may have changed. While hits ask for them, the
/// invalidation thread keeps a PING in flight on each node they read from, every ~250 µs; with
/// no hits it only sends its health PING.
pub(crate) struct Leases {
    /// [`now_ns`] of the PING (0: never).
    confirmed: Box<[AtomicU64]>,
    /// Set by hits: someone wants this node's lease kept fresh.
    demand: Box<[AtomicBool]>,
    /// [`now_ns`] when this client last had the reply of a write with keys only the server
    /// can name (a script's undeclared keys, SORT's STORE key): only its invalidations name
    /// them, so a lease counts only when its PING was sent after that (the server answers a
    /// connection in order, and queued those invalidations before the write's reply).
    barrier: AtomicU64,
}

impl Leases {
    pub(super) fn new() -> Leases {
        Leases {
            confirmed: (0..MAX_NODES).map(|_| AtomicU64::new(0)).collect(),
            demand: (0..MAX_NODES).map(|_| AtomicBool::new(false)).collect(),
            barrier: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn fresh(&self, node: u32, now: u64) -> bool {
        let Some(slot) = self.confirmed.get(node as usize) else {
            return false;
        };
        let confirmed = slot.load(Acquire);
        confirmed != 0
            && now.saturating_sub(confirmed) <= LEASE.as_nanos() as u64
            && confirmed > self.barrier.load(Acquire)
    }

    /// Such a write's reply has been read: no lease renewed by a PING sent before now counts.
    pub fn after_unnamed_writes(&self) {
        self.barrier.fetch_max(now_ns(), Release);
    }

    #[inline]
    pub(super) fn want(&self, node: u32) {
        if let Some(demand) = self.demand.get(node as usize)
            && !demand.load(Relaxed)
        {
            demand.store(true, Relaxed);
        }
    }

    /// Everything node `node`'s server sent before answering a PING sent at `sent` ([`now_ns`])
    /// has been applied.
    pub fn renew(&self, node: NodeId, sent: u64) {
        if let Some(slot) = self.confirmed.get(node) {
            slot.fetch_max(sent, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether hits asked for node `node`'s lease since the last call.
    pub fn take_demand(&self, node: NodeId) -> bool {
        self.demand
            .get(node)
            .is_some_and(|d| d.swap(false, Relaxed))
    }
}
