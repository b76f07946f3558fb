//! Client counters: cheap to bump from many threads at once, summed when read.
//!
//! Each counter is split over a few cache-line-aligned shards; a thread always bumps the same
//! shard (chosen by a hash of its thread id), so threads sharing one client rarely touch the
//! same cache line. Reading sums the shards.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What can be counted. The numbers are the C API's `brisk_stat` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    Commands = 0,
    Errors = 1,
    Retries = 2,
    Timeouts = 3,
    Connects = 4,
    Reconnects = 5,
    HealthChecks = 6,
    HealthCheckFailures = 7,
    PoolWaits = 8,
    PoolExhausted = 9,
    /// A gauge: read from the pools, not counted here.
    PoolOpen = 10,
    /// A gauge: read from the pools, not counted here.
    PoolIdle = 11,
    CacheHits = 12,
    CacheMisses = 13,
    CacheInvalidations = 14,
    TopologyRefreshes = 15,
    Redirects = 16,
    /// A gauge: read from the client-side cache, not counted here.
    CacheEntries = 17,
    /// A gauge: read from the client-side cache, not counted here.
    CacheBytes = 18,
    /// Counted by the client-side cache itself.
    CacheEvictions = 19,
    /// Pub/Sub messages received by the client's subscribers (dropped ones included).
    PubsubMessages = 20,
    /// Pub/Sub messages a subscriber's full queue dropped.
    PubsubDropped = 21,
    /// Subscribers that reconnected and subscribed again to what they had.
    PubsubResubscribes = 22,
}

const COUNTERS: usize = 23;
const SHARDS: usize = 8;
const _: () = assert!(
    SHARDS.is_power_of_two(),
    "my_shard takes the top bits of a hash"
);

impl Stat {
    pub fn from_u32(n: u32) -> Option<Stat> {
        use Stat::*;
        const ALL: [Stat; COUNTERS] = [
            Commands,
            Errors,
            Retries,
            Timeouts,
            Connects,
            Reconnects,
            HealthChecks,
            HealthCheckFailures,
            PoolWaits,
            PoolExhausted,
            PoolOpen,
            PoolIdle,
            CacheHits,
            CacheMisses,
            CacheInvalidations,
            TopologyRefreshes,
            Redirects,
            CacheEntries,
            CacheBytes,
            CacheEvictions,
            PubsubMessages,
            PubsubDropped,
            PubsubResubscribes,
        ];
        ALL.get(n as usize).copied()
    }
}

#[repr(align(128))]
#[derive(Default)]
struct Shard {
    counts: [AtomicU64; COUNTERS],
}

#[derive(Default)]
pub struct Stats {
    shards: [Shard; SHARDS],
}

/// The calling thread's shard. Not a thread-local variable: in a shared library (libbrisk.so)
/// each access to one is a call into the dynamic loader (see `thread_id`).
#[inline(always)]
fn my_shard() -> usize {
    let thread = crate::thread_id::current();
    // Fibonacci hashing: thread ids are addresses a fixed stride apart; the top bits of the
    // product spread them over the shards.
    thread.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - SHARDS.ilog2())
}

impl Stats {
    pub fn add(&self, stat: Stat, n: u64) {
        self.shards[my_shard()].counts[stat as usize].fetch_add(n, Relaxed);
    }

    pub fn bump(&self, stat: Stat) {
        self.add(stat, 1);
    }

    pub fn get(&self, stat: Stat) -> u64 {
        self.shards
            .iter()
            .map(|s| s.counts[stat as usize].load(Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let stats = std::sync::Arc::new(Stats::default());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stats.bump(Stat::Commands);
                    }
                    stats.add(Stat::Errors, 2);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(stats.get(Stat::Commands), 16_000);
        assert_eq!(stats.get(Stat::Errors), 32);
        assert_eq!(stats.get(Stat::Retries), 0);
    }

    #[test]
    fn numbers_round_trip() {
        for n in 0..COUNTERS as u32 {
            assert_eq!(Stat::from_u32(n).map(|s| s as u32), Some(n));
        }
        assert_eq!(Stat::from_u32(COUNTERS as u32), None);
    }
}
