//! The entries, and everything that decides when they go.
//!
//! Two halves with two kinds of lock:
//!
//! - **The shards** answer hits: 64 maps from a command's hash to its entry (the command as
//!   sent, a private copy of its reply, its expiry), each behind its own `RwLock`. A hit takes
//!   one shard's read lock and writes nothing shared (an entry's "recently used" bit is only
//!   written when it is clear), so hits on different threads do not wait for each other.
//! - **The index** (one `Mutex`) holds the rest: per entry its Redis keys (as hashes), its
//!   node and the connection its read came through; per Redis key (hash) the entries that read
//!   it (a multi-key read depends on every key; two keys whose hashes collide only make an
//!   invalidation drop more than it had to); pending reads; the nodes' tracking state; the eviction ring;
//!   the totals. Misses, fills, invalidations, writes and faults take it; they are rare next to
//!   hits and each comes with a network round trip or an invalidation message anyway. Its lock
//!   is always taken before a shard's.
//!
//! A read that misses takes a **token** before its request is sent: a pending slot registered
//! under the read's keys. Anything that would drop the entry (an invalidation of one of its
//! keys, a write by this client, the loss of the tracking state) drops the pending slot too, so
//! the reply that comes back is handed to the caller but not kept (guarantee 3). A token that
//! is neither filled nor cancelled by then is cancelled when dropped.
//!
//! Bounds: at most `max_entries` entries and `max_bytes` bytes (the command, the reply, the
//! keys and every structure's share, with the allocator's rounding), evicted by CLOCK (second
//! chance: an entry used since the hand last passed is spared once), an approximation of LRU;
//! entries past their TTL are never served, and are dropped when the hand or the sweep meets
//! them.
//!
//! The parts, one job each:
//!
//! - [`entry`]: what a hit reads (the shards' entries), the clock hits read, the identity hash.
//! - [`index`]: the index's records: per entry its keys, node and connection; per key its
//!   readers.
//! - [`nodes`]: the nodes' tracking state (invalidation connection up or lost, tracked data
//!   connections), and the drops a change of it causes.
//! - [`token`]: pending reads: taking a token before a miss's request, keeping its reply.
//! - [`eviction`]: the CLOCK hand and the sweep of expired entries.
//! - [`removal`]: taking entries and pending reads out of both halves: one, by key, by node,
//!   all.
//! - [`leases`]: how fresh a node's invalidations must be for its entries to be served.
//! - This file: the [`Store`] itself, its bounds, lookups (hits) and totals.

mod entry;
mod eviction;
mod index;
mod leases;
mod nodes;
mod removal;
mod token;

pub(crate) use entry::now_ns;
pub(crate) use index::Via;
pub(crate) use leases::Leases;
pub(crate) use nodes::Live;
pub(crate) use token::Token;

use super::read_mostly::ReadMostly;
use crate::core::cache::same_command;
use crate::resp::{Args, Reply};
use entry::{Entry, Maps, SHARDS, shard};
use index::Index;
#[cfg(test)]
use index::State;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A node (server) of the client, as the cache numbers them.
pub(crate) type NodeId = usize;

/// The bounds of a store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_entries: usize,
    /// `usize::MAX`: none.
    pub max_bytes: usize,
    pub ttl: Option<Duration>,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Hit(Reply),
    /// An entry is there, but its node's lease is not fresh: read from the server.
    Unconfirmed,
    Miss,
}

pub(crate) struct Store {
    pub leases: Leases,
    maps: ReadMostly<Maps>,
    index: Mutex<Index>,
    limits: Limits,
    /// Mirrors of the index's totals, for the gauges.
    entries: AtomicU64,
    bytes: AtomicU64,
    /// Entries dropped for room (LRU) or age (TTL).
    evictions: AtomicU64,
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        Store {
            leases: Leases::new(),
            maps: ReadMostly::new((0..SHARDS).map(|_| HashMap::default()).collect()),
            index: Mutex::new(Index {
                slots: HashMap::default(),
                by_key: HashMap::default(),
                key_seed: fastrand::u64(..),
                by_conn: HashMap::default(),
                nodes: Vec::new(),
                ring: VecDeque::new(),
                next_seq: 0,
                next_token: 1,
                entries: 0,
                bytes: 0,
            }),
            limits,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the entry of `hash`, if there is one, among other readers.
    #[inline]
    fn with_entry<R>(&self, hash: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        self.maps.read(|maps| f(maps[shard(hash)].get(&hash)))
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // Every change to the index is complete before anything that can panic.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached reply of `args` (hashed to `hash`), if there is one that may be served: not
    /// expired, its node's lease fresh. No lock (see `read_mostly`), no write to memory that
    /// hits on other cores write, no system call (the clock is read through the vDSO).
    ///
    /// The lease is checked while reading: an invalidation is applied (writing) before the
    /// lease that covers it is renewed, so an entry seen here under a fresh lease was not the
    /// subject of any invalidation that lease covers.
    #[inline]
    pub fn hit(&self, hash: u64, args: &Args<'_>) -> Lookup {
        self.with_entry(hash, |entry| {
            let Some(entry) = entry else {
                return Lookup::Miss;
            };
            if !same_command(&entry.command, args) {
                return Lookup::Miss;
            }
            let now = now_ns();
            if entry.expired(now) {
                return Lookup::Miss;
            }
            self.leases.want(entry.node);
            if !self.leases.fresh(entry.node, now) {
                return Lookup::Unconfirmed;
            }
            if !entry.referenced.load(Relaxed) {
                entry.referenced.store(true, Relaxed);
            }
            Lookup::Hit(entry.serve())
        })
    }

    pub fn entries(&self) -> u64 {
        self.entries.load(Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }

    fn count_removed(&self, index: &Index) {
        self.entries.store(index.entries as u64, Relaxed);
        self.bytes.store(index.bytes as u64, Relaxed);
    }

    /// Consistency of the two halves and the totals (tests).
    #[cfg(test)]
    fn check(&self) {
        let index = self.lock();
        let filled = index
            .slots
            .values()
            .filter(|s| matches!(s.state, State::Filled { .. }))
            .count();
        let in_shards: usize = self.maps.read(|maps| maps.iter().map(HashMap::len).sum());
        assert_eq!(filled, index.entries);
        assert_eq!(in_shards, index.entries);
        let bytes: usize = index
            .slots
            .values()
            .map(|s| match s.state {
                State::Filled { bytes, .. } => bytes,
                State::Pending { .. } => 0,
            })
            .sum();
        assert_eq!(bytes, index.bytes);
        for (hash, slot) in &index.slots {
            for key in slot.keys.as_slice() {
                assert!(
                    index
                        .by_key
                        .get(key)
                        .is_some_and(|r| r.hashes().contains(hash)),
                    "key index lost an entry"
                );
            }
        }
        for readers in index.by_key.values() {
            for hash in readers.hashes() {
                assert!(index.slots.contains_key(&hash), "key index points nowhere");
            }
        }
    }
}

#[cfg(test)]
mod tests;
