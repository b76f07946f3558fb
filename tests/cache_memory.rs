//! Client-side caching, guarantee 5 measured with a counting allocator: what a cached entry
//! really costs (a 16-byte value), that the cache's own byte count is honest about it, and
//! that the memory returns to the baseline after a flush. A test binary of its own, since the
//! allocator is process-wide.

mod support;

use brisk::stats::Stat;
use brisk::{Client, Config};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::SeqCst};
use support::{RedisServer, ok};

/// Counts the bytes allocated and not yet freed (as asked for: the allocator's own overhead
/// and rounding come on top).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, SeqCst);
        // SAFETY: as the caller guarantees for `layout`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, SeqCst);
        // SAFETY: as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, SeqCst);
        // SAFETY: as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ENTRIES: usize = 20_000;

fn fill(client: &Client) {
    for i in 0..ENTRIES {
        ok(client, &["GET", &format!("key:{i:06}")]);
    }
    assert_eq!(client.stat(Stat::CacheEntries), ENTRIES as u64);
}

/// Guarantee 5: the memory per cached 16-byte value, the cache's count of it, and the
/// return to the baseline after `cache_flush`.
#[test]
fn memory_per_entry_is_counted_and_returned() {
    let server = RedisServer::start();
    let mut config: Config = server.config();
    config.cache.max_entries = 1_000_000;
    config.cache.max_bytes = 0;
    let client = Client::new(&config).unwrap();
    let writer = Client::new(&server.config()).unwrap();
    for i in 0..ENTRIES {
        ok(
            &writer,
            &["SET", &format!("key:{i:06}"), "0123456789abcdef"],
        );
    }
    // Everything the client allocates once (connections, buffers, table capacities) is there
    // before the baseline is taken.
    fill(&client);
    client.cache_flush();
    let baseline = LIVE.load(SeqCst);
    fill(&client);
    let filled = LIVE.load(SeqCst);
    let counted = client.stat(Stat::CacheBytes);
    client.cache_flush();
    assert_eq!(client.stat(Stat::CacheBytes), 0);
    // Back to the baseline (what a flush cannot give back is a few buffers' worth).
    let after = LIVE.load(SeqCst);
    let measured = (filled - baseline) as f64 / ENTRIES as f64;
    let accounted = counted as f64 / ENTRIES as f64;
    println!(
        "per cached GET of a 16-byte value: {measured:.0} bytes allocated, {accounted:.0} \
         counted by the cache (with allocator overhead); after the flush {} bytes above the \
         baseline",
        after - baseline
    );
    assert!(
        (after - baseline).abs() < 64 * 1024,
        "{} bytes not returned",
        after - baseline
    );
    // Honest: the cache's count covers what was allocated (it adds the allocator's headers
    // and rounding, which this allocator does not see), and does not inflate it wildly.
    assert!(
        accounted >= measured,
        "counted {accounted:.0} < allocated {measured:.0}"
    );
    assert!(
        accounted <= measured * 2.0,
        "counted {accounted:.0} >> allocated {measured:.0}"
    );
}
