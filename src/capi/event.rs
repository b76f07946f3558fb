//! `brisk_event`: what the event callback receives.

#![allow(non_camel_case_types)]

use super::boundary::{UserData, guard_value};
use super::status::brisk_status;
use crate::cache::Reason;
use crate::telemetry::events::{Event, EventHandler, EventKind};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// One finished piece of work, passed to the event callback (see
/// `brisk_config_set_event_callback()`). Borrowed: valid only during the callback; read it with
/// the `brisk_event_*` accessors and copy what you keep. Never contains command arguments or
/// values.
pub struct brisk_event {
    _private: [u8; 0],
}

/// What an event reports.
pub type brisk_event_kind = u32;

/// A command (or pipeline/transaction) finished, after all its attempts.
pub const BRISK_EVENT_COMMAND: brisk_event_kind = 0;
/// An attempt failed and will be retried.
pub const BRISK_EVENT_RETRY: brisk_event_kind = 1;
/// A connection attempt finished (status OK: a new connection is ready).
pub const BRISK_EVENT_CONNECT: brisk_event_kind = 2;
/// A connection was closed (OK: on purpose) or lost (CONNECTION).
pub const BRISK_EVENT_DISCONNECT: brisk_event_kind = 3;
/// A health-check PING finished.
pub const BRISK_EVENT_HEALTH_CHECK: brisk_event_kind = 4;
/// A caller waited for a pooled connection (OK: got one; POOL_EXHAUSTED: gave up).
pub const BRISK_EVENT_POOL_WAIT: brisk_event_kind = 5;
/// Cluster slots or the Sentinel master changed.
pub const BRISK_EVENT_TOPOLOGY: brisk_event_kind = 6;
/// Client-side cache entries were dropped because they may be stale (not for room or age, which
/// only `BRISK_STAT_CACHE_EVICTIONS` counts). `brisk_event_cache_reason()` says why (also as
/// the command name: "INVALIDATE", "FLUSH", "CONNECTION_LOST", "TOPOLOGY");
/// `brisk_event_batch_size()` is the number of keys the server named (INVALIDATION) or of
/// entries dropped (the others); the status is CONNECTION for CONNECTION_LOST, else OK; the
/// address is the node's ("" when the whole cache was flushed). Runs on the thread that did it:
/// the `brisk-cache` thread for what the server said, the caller's for its own flush or
/// session command. This client's own writes drop their keys without an event (their COMMAND
/// event stands for it).
pub const BRISK_EVENT_CACHE_INVALIDATE: brisk_event_kind = 7;
/// A subscriber reconnected (or followed a shard channel's slot to its new owner) and subscribed
/// again to everything it had there. `brisk_event_batch_size()`: how many subscriptions;
/// `brisk_event_duration_us()`: how long they were gone; `brisk_event_server_address()`: the
/// node it subscribed at. Reported on a `brisk-runtime` thread.
pub const BRISK_EVENT_RESUBSCRIBE: brisk_event_kind = 8;

/// Why client-side cache entries were dropped (`brisk_event_cache_reason()`).
pub type brisk_cache_reason = u32;

/// Not a `BRISK_EVENT_CACHE_INVALIDATE` event.
pub const BRISK_CACHE_REASON_NONE: brisk_cache_reason = 0;
/// The server said these keys changed (another client's write, an expiry, an eviction).
pub const BRISK_CACHE_REASON_INVALIDATION: brisk_cache_reason = 1;
/// A flush: `brisk_client_cache_flush()`, a FLUSHALL or FLUSHDB (by anyone), a write of this
/// client whose keys cannot be named (SWAPDB...).
pub const BRISK_CACHE_REASON_FLUSH: brisk_cache_reason = 2;
/// The tracking they relied on is gone or in doubt: the invalidation connection (lost, killed,
/// PING unanswered, `tracking-redir-broken`), a data connection they were read through, or a
/// session command that changed its connection's tracking (RESET, AUTH, ...).
pub const BRISK_CACHE_REASON_CONNECTION_LOST: brisk_cache_reason = 3;
/// A cluster failover or slot move.
pub const BRISK_CACHE_REASON_TOPOLOGY: brisk_cache_reason = 4;

/// Receives events, synchronously, on the thread that did the work (the caller's thread for
/// blocking commands; for async commands the thread that read the reply: a `brisk-runtime`
/// thread, or with `BRISK_ASYNC_DISPATCH_CALLER` often the thread in
/// `brisk_client_async_dispatch()`; a `brisk-runtime` thread for background connects and
/// disconnects). It must be thread-safe and must not block or call back into the client.
pub type brisk_event_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const brisk_event)>;

/// What a `brisk_event *` points to during a callback: the event plus NUL-terminated copies of
/// its short strings (no allocation).
struct CEvent<'a> {
    event: &'a Event<'a>,
    /// Upper-cased command name, NUL-terminated (truncated past 63 bytes).
    name: [u8; 64],
    name_len: usize,
    error_type: [u8; 64],
}

fn c_copy(text: &[u8], upper: bool) -> ([u8; 64], usize) {
    let mut buffer = [0u8; 64];
    let len = text.len().min(buffer.len() - 1);
    buffer[..len].copy_from_slice(&text[..len]);
    if upper {
        buffer[..len].make_ascii_uppercase();
    }
    // Replace interior NULs so C sees the whole name.
    for b in &mut buffer[..len] {
        if *b == 0 {
            *b = b'?';
        }
    }
    (buffer, len)
}

/// The user's callback and its userdata, as an event handler.
pub(crate) fn handler(
    callback: unsafe extern "C" fn(*mut c_void, *const brisk_event),
    userdata: *mut c_void,
) -> EventHandler {
    let userdata = UserData(userdata);
    Arc::new(move |event: &Event<'_>| {
        let (name, name_len) = c_copy(event.command, true);
        let (error_type, _) = c_copy(event.error_type.unwrap_or_default().as_bytes(), false);
        let c_event = CEvent {
            event,
            name,
            name_len,
            error_type,
        };
        let userdata = &userdata;
        // SAFETY: the callback was given by the user for exactly this; the event pointer is
        // valid for the duration of the call.
        unsafe { callback(userdata.0, (&c_event as *const CEvent<'_>).cast()) };
    })
}

/// # Safety
/// `e` is NULL or the event passed to a running callback.
unsafe fn c_event<'a>(e: *const brisk_event) -> Option<&'a CEvent<'a>> {
    // SAFETY: per the contract, a non-null pointer is a live CEvent.
    unsafe { e.cast::<CEvent<'a>>().as_ref() }
}

/// The kind of event (`BRISK_EVENT_COMMAND` for NULL).
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_kind_of(e: *const brisk_event) -> brisk_event_kind {
    // SAFETY: per this function's contract.
    guard_value(0, || {
        unsafe { c_event(e) }.map_or(0, |c| c.event.kind as u32)
    })
}

/// The outcome: `BRISK_OK` or the failure's status.
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_status(e: *const brisk_event) -> brisk_status {
    // SAFETY: per this function's contract.
    guard_value(0, || {
        unsafe { c_event(e) }.map_or(0, |c| c.event.status as u32)
    })
}

/// `db.operation.name`: the command name in upper case ("GET"), "PIPELINE" or "MULTI"; "" for
/// events that are not about a command. Never the arguments. NUL-terminated; `len` may be NULL.
///
/// # Safety
/// `e` is NULL or the event of a running callback; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_command_name(
    e: *const brisk_event,
    len: *mut usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: per this function's contract.
        let (ptr, n) = match unsafe { c_event(e) } {
            Some(c) => (c.name.as_ptr().cast(), c.name_len),
            None => (c"".as_ptr(), 0),
        };
        if !len.is_null() {
            // SAFETY: writable per the contract.
            unsafe { *len = n };
        }
        ptr
    })
}

/// `db.client.operation.duration` in microseconds: for COMMAND all attempts and backoff; for
/// RETRY the failed attempt; for CONNECT, HEALTH_CHECK and POOL_WAIT that step.
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_duration_us(e: *const brisk_event) -> u64 {
    // SAFETY: per this function's contract.
    guard_value(0, || {
        unsafe { c_event(e) }.map_or(0, |c| c.event.duration.as_micros() as u64)
    })
}

/// COMMAND: the number of attempts made (1 = no retry). RETRY: the number of the attempt that
/// failed (1-based). 1 for other events.
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_attempt(e: *const brisk_event) -> u32 {
    // SAFETY: per this function's contract.
    guard_value(0, || unsafe { c_event(e) }.map_or(0, |c| c.event.attempt))
}

/// `server.address` and `server.port` as "host:port" ("[::1]:6379" for IPv6), or the Unix socket
/// path.
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_server_address(e: *const brisk_event) -> *const c_char {
    // SAFETY: per this function's contract.
    guard_value(c"".as_ptr(), || {
        unsafe { c_event(e) }.map_or(c"".as_ptr(), |c| c.event.address.as_ptr())
    })
}

/// `error.type`: the server's error code ("WRONGTYPE", "NOPERM") or the status name
/// ("BRISK_ERR_TIMEOUT"); NULL when the status is OK.
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_error_type(e: *const brisk_event) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: per this function's contract.
        match unsafe { c_event(e) } {
            Some(c) if c.event.error_type.is_some() => c.error_type.as_ptr().cast(),
            _ => std::ptr::null(),
        }
    })
}

/// `db.operation.batch.size`: the commands in a pipeline or transaction; for
/// `BRISK_EVENT_CACHE_INVALIDATE` the keys or entries (see there); 1 otherwise.
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_batch_size(e: *const brisk_event) -> u32 {
    // SAFETY: per this function's contract.
    guard_value(0, || {
        unsafe { c_event(e) }.map_or(0, |c| c.event.batch_size)
    })
}

/// `db.namespace`: the database number the client uses.
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_db(e: *const brisk_event) -> u32 {
    // SAFETY: per this function's contract.
    guard_value(0, || unsafe { c_event(e) }.map_or(0, |c| c.event.db))
}

/// For a `BRISK_EVENT_CACHE_INVALIDATE` event, why the entries were dropped
/// (`BRISK_CACHE_REASON_*`); `BRISK_CACHE_REASON_NONE` for every other event (and NULL).
///
/// # Safety
/// `e` is NULL or the event of a running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_event_cache_reason(e: *const brisk_event) -> brisk_cache_reason {
    guard_value(BRISK_CACHE_REASON_NONE, || {
        // SAFETY: per this function's contract.
        let Some(c) = (unsafe { c_event(e) }) else {
            return BRISK_CACHE_REASON_NONE;
        };
        if c.event.kind != EventKind::CacheInvalidate {
            return BRISK_CACHE_REASON_NONE;
        }
        match Reason::from_name(c.event.command) {
            Some(Reason::Invalidation) => BRISK_CACHE_REASON_INVALIDATION,
            Some(Reason::Flush) => BRISK_CACHE_REASON_FLUSH,
            Some(Reason::ConnectionLost) => BRISK_CACHE_REASON_CONNECTION_LOST,
            Some(Reason::Topology) => BRISK_CACHE_REASON_TOPOLOGY,
            None => BRISK_CACHE_REASON_NONE,
        }
    })
}
