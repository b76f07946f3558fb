//! The hit side's entries: what a hit reads and hands out, the 64 shards they live in, the
//! clock hits compare expiries with, and the hasher for maps keyed by hashes that are already
//! mixed. Kept apart from the index because this is all a hit touches.

use crate::resp::Reply;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicBool;

/// Maps of the hit side (a power of two, indexed by a hash's top bits): growing one rehashes
/// a 64th of the entries, which keeps a writer's pause for readers short.
pub(super) const SHARDS: usize = 64;

/// Replies with at most this many bytes of text are copied for each hit (an allocation, but no
/// write to memory another core's hits write); larger ones share the entry's bytes (one
/// reference count).
pub(super) const COPY_UP_TO: usize = 256;

pub(super) type Maps = Box<[HashMap<u64, Entry, Identity>]>;

/// What a hit reads.
pub(super) struct Entry {
    /// The node it was read from: its lease must be fresh for the entry to be served.
    pub(super) node: u32,
    pub(super) command: Box<[u8]>,
    pub(super) reply: Reply,
    /// When it stops being served ([`now_ns`]); 0: never.
    pub(super) expires: u64,
    /// Used since the eviction hand last passed.
    pub(super) referenced: AtomicBool,
    pub(super) copy: bool,
}

impl Entry {
    /// The reply a hit hands out.
    pub(super) fn serve(&self) -> Reply {
        match self.copy {
            true => self.reply.detached(),
            false => self.reply.shared(),
        }
    }

    pub(super) fn expired(&self, now: u64) -> bool {
        self.expires != 0 && now >= self.expires
    }
}

/// Nanoseconds on the monotonic clock (the one `Instant` reads) as a plain number, so that a
/// hit compares integers instead of doing `Instant`'s checked arithmetic. Read through the
/// vDSO: no system call.
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Maps keyed by a hash that is already well mixed.
#[derive(Default)]
pub(super) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`IdentityHasher`]s. (Spelled out where used rather than behind a type alias, which
/// cbindgen, reading the whole crate for the header, cannot follow.)
pub(super) type Identity = BuildHasherDefault<IdentityHasher>;

/// The map of the hit side that holds `hash`.
#[inline]
pub(super) fn shard(hash: u64) -> usize {
    (hash >> 58) as usize & (SHARDS - 1)
}
