//! Client-side caching: on/off and its bounds, the tracking mode, the key prefixes.

use super::{brisk_config, set, update};
use crate::capi::boundary::{try_str, unknown_value};
use crate::capi::status::brisk_status;
use crate::config::CacheMode;
use std::ffi::c_char;

/// How the server is asked to track what the client-side cache keeps.
pub type brisk_cache_mode = u32;

/// The server remembers the keys each connection reads and announces their changes (the
/// default).
pub const BRISK_CACHE_DEFAULT: brisk_cache_mode = 0;
/// The server announces every change of a key under the prefixes, read or not (`BCAST`): no
/// tracking state per key on the server, more invalidation traffic. Only reads whose keys are
/// all under a prefix are cached; no prefix means every key.
pub const BRISK_CACHE_BROADCAST: brisk_cache_mode = 1;
/// Only reads whose keys are all under a prefix are cached (every read without prefixes), each
/// sent right after `CLIENT CACHING YES`; the server tracks nothing else the client reads.
pub const BRISK_CACHE_OPTIN: brisk_cache_mode = 2;

/// Turns client-side caching on (off by default): deterministic reads (GET, HGET, MGET,
/// ZRANGE, ... by the server's COMMAND flags; never TIME, RANDOMKEY, SRANDMEMBER, TTL, SCAN,
/// blocking reads, scripts) are answered from memory after their first read, keyed by the
/// whole command (`HGET h f1` and `HGET h f2` are two entries) on this client's DB and user. At
/// most `max_entries` entries (0 turns the cache off), each served for at most `ttl_ms`
/// milliseconds: a backstop for anything missed, 5 minutes unless set, and 0 means no TTL.
///
/// `brisk_client_new()` then opens one invalidation connection per node (read by a thread of
/// the client's own, `brisk-cache`) and fails when the server or the user cannot track: Redis
/// 6 or later, or Valkey, and permission for `CLIENT`. The server is told, per connection that
/// reads for the cache, to send its invalidations there (`CLIENT TRACKING ON REDIRECT`), so
/// invalidations never wait unread in an idle pooled connection, over RESP3 or RESP2. The
/// invalidation connection speaks RESP3 whatever the client's protocol (every server that
/// tracks does; one without HELLO gets a RESP2 subscriber, whose probes cannot say the node's
/// role, guarantee 4).
///
/// What it guarantees:
/// 1. Read-your-own-writes: a write by this client (any command with the `write` flag, and
///    scripts, through `brisk_command`, `brisk_command_async`, pipelines, transactions and
///    sessions) drops the entries of every key it names before its reply is handed back,
///    whatever its outcome; a write whose keys cannot be named (FLUSHALL, SWAPDB) drops all.
///    A write may also change keys only the server can name (a script's undeclared keys,
///    `SORT ... STORE`): after one, hits wait until the node answers a PING sent after its
///    reply (by then its invalidations have arrived).
/// 2. No stale read: a read that starts 1 ms or more after another client's write was
///    acknowledged never returns the old value. Invalidations are applied the moment they
///    arrive, and a hit is served only while its node has answered a probe sent under 1 ms ago
///    on the invalidation connection (`HELLO 3`, which says the node's role too; `PING` over
///    RESP2), so everything the server queued before that is applied: on an overloaded
///    machine hits go to the server instead of trusting a late thread. While hits are served
///    the client probes each node it reads from every ~250 µs.
/// 3. A read in flight when its key is invalidated is answered but not kept.
/// 4. Flush on doubt: when the invalidation connection is lost, killed, leaves its PING
///    unanswered for the read timeout or the server says its target is gone
///    (`tracking-redir-broken`); when the server restarts, a cluster slot changes hands or a
///    node fails over (a probe's answer says the node changed roles: a former primary keeps
///    answering while its successor acknowledges writes it has not seen yet); on
///    FLUSHALL/FLUSHDB (by anyone); when a data connection the cache read
///    through is closed (its tracking ends with it); and when a session sends RESET, CLIENT
///    TRACKING, HELLO, AUTH or SELECT: every entry that relied on it is dropped before the next
///    hit. Nothing is kept again before tracking is set up again.
/// 5. Bounded: `max_entries`, `brisk_config_set_client_cache_max_bytes()`, the TTL; least
///    recently used first (CLOCK); `brisk_client_cache_flush()` returns the memory.
/// 6. Invalidations are not per DB on the server, nor here: a write in DB 3 drops entries read
///    in DB 0.
///
/// Not covered: a key's own expiry on the server. An entry is dropped when the server
/// invalidates the expired key, which it does when it deletes it (its active expiry, usually
/// within 100 ms on a small keyspace, or any read of the key there); until then a hit may
/// return the value of a key whose TTL has just run out. Keep `ttl_ms` short for such keys.
/// Nor a primary that has not heard yet that it was replaced (cut off from the others, or in
/// the moments before its successor's announcement reaches it): it still answers as a primary,
/// and its hits are as stale as reads from it are.
///
/// Counted in `BRISK_STAT_CACHE_*`; drops are reported as `BRISK_EVENT_CACHE_INVALIDATE`.
/// Standalone, cluster and Sentinel mode (each node tracks what was read from it; in Sentinel
/// mode a master switch drops everything read from the old master).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_client_cache(
    cfg: *mut brisk_config,
    max_entries: u32,
    ttl_ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.set_client_cache(max_entries, ttl_ms)) }
}

/// The most bytes the client-side cache keeps: commands, replies, keys and the cache's own
/// tables, with the allocator's rounding (about 540 bytes per cached 16-byte string). Default
/// 64 MiB; 0: no byte bound (`max_entries` still holds).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_client_cache_max_bytes(
    cfg: *mut brisk_config,
    max_bytes: u64,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.cache.max_bytes = max_bytes) }
}

/// Sets the tracking mode (`BRISK_CACHE_DEFAULT`, `BRISK_CACHE_BROADCAST`,
/// `BRISK_CACHE_OPTIN`). INVALID_ARGUMENT for an unknown mode.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_client_cache_mode(
    cfg: *mut brisk_config,
    mode: brisk_cache_mode,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.cache.mode = match mode {
                BRISK_CACHE_DEFAULT => CacheMode::Default,
                BRISK_CACHE_BROADCAST => CacheMode::Broadcast,
                BRISK_CACHE_OPTIN => CacheMode::OptIn,
                other => return Err(unknown_value("mode", "brisk_cache_mode", other)),
            };
            Ok(())
        })
    }
}

/// Adds a key prefix: only reads whose keys all start with one of the prefixes are cached (in
/// every mode); in BROADCAST mode the server is told exactly these (overlapping prefixes, such
/// as `user:` and `user:1`, are refused there by `brisk_client_new()`). No prefix at all means
/// every key. Adding one twice keeps one. INVALID_ARGUMENT for an empty prefix.
///
/// # Safety
/// `cfg` is NULL or a live config; `prefix` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_add_client_cache_prefix(
    cfg: *mut brisk_config,
    prefix: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.add_client_cache_prefix(try_str(prefix, "prefix")?.as_bytes())
        })
    }
}
