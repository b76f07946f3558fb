//! `brisk_client`: the shared, thread-safe client.

#![allow(non_camel_case_types)]

use super::args::{ArgLengths, command_args, given_args, with_command_args};
use super::boundary::{
    Handle, UserData, free_handle, guard, guard_out, guard_value, handle_ref, into_handle,
    no_last_error, try_ref,
};
use super::config::brisk_config;
use super::reply::{brisk_reply, into_reply_handle, reply_handle, reply_handle_cleared};
use super::status::{BRISK_OK, brisk_status};
use crate::client::Client;
use crate::core::{Error, Status};
use crate::telemetry::stats::Stat;
use std::ffi::c_char;
use std::ffi::{CString, c_void};

/// A Redis client: a pool of connections shared by every thread of the program.
///
/// Created by `brisk_client_new()`, freed (exactly once, after every other thread has stopped
/// using it) by `brisk_client_free()`. Fully thread-safe: one client is meant to be shared by
/// all threads; each blocking call runs on the calling thread with a connection borrowed from
/// the pool. Create clients after `fork()`, not before.
pub struct brisk_client {
    _private: [u8; 0],
}

// SAFETY: `brisk_client` pointers are only made by `into_handle::<brisk_client>`.
unsafe impl Handle for brisk_client {
    type Target = Client;
    const NAME: &'static str = "brisk_client";
}

/// Creates a client from `cfg` (copied: the config may be freed right after). No connection is
/// opened yet; the first command opens one. On success `*out` is the client; on failure `*out`
/// is NULL: INVALID_ARGUMENT for an inconsistent config, TLS for unusable TLS files.
///
/// # Safety
/// `cfg` is NULL or a live config; `out` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_new(
    cfg: *const brisk_config,
    out: *mut *mut brisk_client,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        guard_out(out, "out", || {
            let config = try_ref(cfg, "cfg")?;
            Ok(into_handle(Client::new(config)?))
        })
    }
}

/// Closes every connection and frees the client. NULL is a no-op. Pipelines and sessions made
/// from it stay valid objects (free them as usual) but their calls fail with CLOSED.
///
/// # Safety
/// `client` is NULL or a live client that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_free(client: *mut brisk_client) {
    // SAFETY: per this function's contract.
    guard_value((), || unsafe { free_handle(client) })
}

/// Runs one command, blocking the calling thread, and returns its reply.
///
/// `argv` holds `argc` arguments, the command name first; `argvlen` gives their lengths (binary
/// safe) or is NULL for NUL-terminated strings. On `BRISK_OK`, `*reply` is the reply (free it
/// with `brisk_reply_free()`); `reply` may be NULL to discard it. A server error reply is a
/// failed call with the mapped status (SERVER, AUTH, BUSY_LOADING, READONLY, ...) and the
/// server's text in `brisk_last_error_message()`. Commands that would change the state of a
/// pooled connection (MULTI, WATCH, SELECT, ...) are INVALID_ARGUMENT: use a session.
///
/// # Safety
/// `client` is NULL or a live client; `argv` points to `argc` pointers to readable arguments;
/// `argvlen` is NULL or points to `argc` lengths; `reply` is NULL or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_command(
    client: *mut brisk_client,
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
    reply: *mut *mut brisk_reply,
) -> brisk_status {
    // The fast path: no last error to clear, nothing NULL, the lengths given. Tested first, so
    // that only the client, the out-pointer and the reply's block stay live across the command
    // (the full body kept every argument in a callee-saved register: 6 pushes and pops).
    // SAFETY: per this function's contract.
    unsafe {
        if no_last_error()
            && !reply.is_null()
            && let Some(client) = handle_ref(client)
            && let Some(args) = given_args(argc, argv, argvlen)
        {
            return reply_handle_cleared(reply, || client.command(&args));
        }
        command_checked(client, argc, argv, argvlen, reply)
    }
}

/// `brisk_command()`'s body for every call its fast path does not take: it clears the last
/// error and says which argument is wrong.
///
/// # Safety
/// As `brisk_command()`.
#[cold]
#[inline(never)]
unsafe fn command_checked(
    client: *mut brisk_client,
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
    reply: *mut *mut brisk_reply,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        reply_handle(reply, || {
            let client = try_ref(client, "client")?;
            with_command_args(argc, argv, argvlen, |args| client.command(args))
        })
    }
}

/// Sends PING and waits for the answer: a health check you can call yourself.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_ping(client: *mut brisk_client) -> brisk_status {
    // SAFETY: per this function's contract.
    guard(|| unsafe { try_ref(client, "client") }?.ping())
}

/// Receives the outcome of `brisk_command_async()`, exactly once: by default on a brisk runtime
/// thread (named `brisk-runtime`), never on the caller's thread; with
/// `BRISK_ASYNC_DISPATCH_CALLER`, on the thread that calls `brisk_client_async_dispatch()` (or
/// `brisk_client_free()`). `status` is `BRISK_OK` with `reply` set (the callback owns it: free
/// it with `brisk_reply_free()`), or a failure with `reply` NULL and `error_message` (valid
/// only during the call; "" on success) saying what happened. The callback must not block:
/// other commands' callbacks wait for it. It may start more async commands, but must not free
/// the client.
pub type brisk_reply_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        status: brisk_status,
        error_message: *const c_char,
        reply: *mut brisk_reply,
    ),
>;

/// Starts one command without waiting for it (arguments as for `brisk_command()`; they are copied
/// before this returns). On `BRISK_OK`, `fn` will be called exactly once with the outcome, on a
/// brisk runtime thread (with `BRISK_ASYNC_DISPATCH_CALLER`, on the thread that dispatches: see
/// `brisk_client_async_dispatch()`); on any other status it is never called. Concurrent async
/// commands on a client are pipelined automatically onto a shared connection (in cluster mode, one
/// per node: each command goes to the node of its slot, following MOVED, ASK and failovers as
/// `brisk_command()` does). Retries, timeouts, health checks and statuses are those of
/// `brisk_command()`: if the connection dies, every pending callback still gets exactly one call
/// (CONNECTION or TIMEOUT, or the retried command's outcome). Blocking commands (BLPOP, XREAD
/// BLOCK, ...) and cluster commands whose keys span slots run on a pooled connection, on a
/// `brisk-runtime` thread of their own; more than 1,024 of those at once in a process are refused
/// with `BRISK_ERR_POOL_EXHAUSTED`. `brisk_client_free()` completes every pending callback
/// (`BRISK_ERR_CLOSED`, or in caller dispatch its outcome if it had one) before it returns. There
/// is no ordering guarantee between async commands.
///
/// # Safety
/// `client` is NULL or a live client; arguments as for `brisk_command()`; `fn` and `userdata`
/// stay valid until the callback has run.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_command_async(
    client: *mut brisk_client,
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
    r#fn: brisk_reply_fn,
    userdata: *mut c_void,
) -> brisk_status {
    guard(|| {
        // SAFETY: per this function's contract.
        let client = unsafe { try_ref(client, "client") }?;
        let callback = r#fn.ok_or_else(|| Error::invalid_argument("fn: NULL callback"))?;
        let mut lengths = ArgLengths::new();
        // SAFETY: per this function's contract.
        let args = unsafe { command_args(argc, argv, argvlen, &mut lengths) }?;
        let userdata = UserData(userdata);
        client.command_async_with(
            &args,
            move |result: crate::core::Result<crate::resp::Reply>| {
                let userdata = userdata;
                // SAFETY (both calls): the user's callback, called once with arguments valid
                // for the call.
                match result {
                    // No message to build (or allocate) on success.
                    Ok(reply) => unsafe {
                        callback(userdata.0, BRISK_OK, c"".as_ptr(), into_reply_handle(reply))
                    },
                    Err(e) => {
                        let message =
                            CString::new(e.message().replace('\0', "\\0")).unwrap_or_default();
                        let status = e.status() as u32;
                        unsafe {
                            callback(userdata.0, status, message.as_ptr(), std::ptr::null_mut())
                        }
                    }
                }
            },
        )
    })
}

/// With `BRISK_ASYNC_DISPATCH_CALLER` (see `brisk_config_set_async_dispatch()`): a file
/// descriptor that is readable while `brisk_client_async_dispatch()` has work, for
/// poll/epoll/kqueue/libuv/asyncio loops: async callbacks waiting to be run, replies waiting
/// in a connection to be read (the dispatch reads them on its own thread and runs their
/// callbacks, as an event loop reads hiredis's context: no other thread is woken per reply),
/// or commands sent by the thread that dispatches waiting for its next dispatch to be written
/// (see `brisk_client_async_dispatch()`). Level-triggered: it stays readable until that work
/// is done, and a batch of replies makes it readable once, not once per reply. A dispatch
/// may find nothing to run when what made it readable was the first part of a reply. On
/// Linux it is an epoll descriptor (which poll, epoll and libuv watch like any other). It is
/// owned by the client: do not read, write or close it; it stays open until
/// `brisk_client_free()`. -1 for a NULL client or one without caller dispatch (see
/// `brisk_last_error_message()`). Thread-safe.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_async_fd(client: *const brisk_client) -> std::ffi::c_int {
    let mut fd = -1;
    guard(|| {
        // SAFETY: per this function's contract.
        fd = unsafe { try_ref(client, "client") }?.async_fd()?;
        Ok(())
    });
    fd
}

/// With `BRISK_ASYNC_DISPATCH_CALLER`: runs up to `max` waiting async callbacks (0: every
/// callback waiting when called) on the calling thread, oldest completion first, and returns
/// how many ran. Callbacks that become due while it runs (a callback's own command answered
/// at once, say) wait for the next call, so one call always ends. Any thread may dispatch;
/// calls from several threads at once take turns, so callbacks never run concurrently and
/// always in completion order. 0 when nothing waits, for a NULL client or one without caller
/// dispatch, and when called from inside one of this client's callbacks.
///
/// A thread that has dispatched callbacks of a client is taken for its event loop: the
/// commands it sends to that client afterwards (from the callbacks or after the call) are
/// written together, once the callbacks have run or at its next dispatch (the descriptor is
/// readable until then), as an event loop writes what one turn queued at the next: one write
/// for the batch. Should it not dispatch again, the connection's reader writes them after its
/// next read, or within 100 ms.
///
/// The replies of a plain (TCP or Unix socket) connection are read by the dispatch, on the
/// calling thread, up to 1 MiB per connection per call; a connection's end or a protocol error
/// found there fails its commands as a runtime thread would (their callbacks are run by the
/// same call, or retried as usual). TLS connections are read by a brisk runtime thread.
///
/// Nobody dispatching does not stop the commands: a brisk runtime thread reads what waits in
/// the connections every 50 ms, so they are sent, answered and retried as usual, and their
/// callbacks queue up (one entry per command, no bound other than the commands the program
/// has in flight). The command deadline and timeouts still apply (a late
/// command's callback is queued with TIMEOUT), but a callback only runs when dispatched.
/// `brisk_client_free()` runs every callback still owed on its own thread before it returns:
/// those whose commands had finished with their outcome (reply or error), the others with
/// `BRISK_ERR_CLOSED`.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_async_dispatch(
    client: *mut brisk_client,
    max: usize,
) -> usize {
    guard_value(0, || {
        // SAFETY: per this function's contract.
        let client = unsafe { client.cast::<Client>().as_ref() };
        client.map_or(0, |client| client.async_dispatch(max))
    })
}

/// Exports the OpenTelemetry spans and metrics buffered now (see
/// `brisk_config_set_otel_endpoint()`), waiting at most `timeout_ms` for the collector to take
/// them. BRISK_OK when they were sent or OpenTelemetry is off; TIMEOUT when the time ran out
/// (the export goes on in the background; nothing is lost by the wait ending). Failed exports
/// are not errors here: telemetry a collector refuses is dropped and counted. Thread-safe.
/// `brisk_client_free()` flushes too, waiting at most 2000 ms (or the export timeout, if
/// shorter).
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_flush_telemetry(
    client: *mut brisk_client,
    timeout_ms: u32,
) -> brisk_status {
    guard(|| {
        // SAFETY: per this function's contract.
        let client = unsafe { try_ref(client, "client") }?;
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        match client.flush_telemetry(timeout) {
            true => Ok(()),
            false => Err(Error::new(
                Status::Timeout,
                format!("the telemetry export did not finish within {timeout_ms} ms"),
            )),
        }
    })
}

/// Spans dropped so far because the export queue was full (a slow or dead collector) or
/// their export failed; 0 for NULL or with OpenTelemetry off. Thread-safe.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_telemetry_dropped(client: *const brisk_client) -> u64 {
    guard_value(0, || {
        // SAFETY: per this function's contract.
        let client = unsafe { client.cast::<Client>().as_ref() };
        client.map_or(0, Client::telemetry_dropped_spans)
    })
}

/// What `brisk_client_stat()` reports: counters since the client was created, and two gauges.
pub type brisk_stat = u32;

/// Commands finished (a pipeline counts each of its commands).
pub const BRISK_STAT_COMMANDS: brisk_stat = 0;
/// Commands (or pipelines) that failed, after their retries.
pub const BRISK_STAT_ERRORS: brisk_stat = 1;
/// Retries made.
pub const BRISK_STAT_RETRIES: brisk_stat = 2;
/// Attempts that timed out.
pub const BRISK_STAT_TIMEOUTS: brisk_stat = 3;
/// Connections opened.
pub const BRISK_STAT_CONNECTS: brisk_stat = 4;
/// Connections opened to replace lost ones.
pub const BRISK_STAT_RECONNECTS: brisk_stat = 5;
/// Health-check PINGs sent.
pub const BRISK_STAT_HEALTH_CHECKS: brisk_stat = 6;
/// Health checks that found a dead connection (which was replaced).
pub const BRISK_STAT_HEALTH_CHECK_FAILURES: brisk_stat = 7;
/// Times a caller had to wait for a pooled connection.
pub const BRISK_STAT_POOL_WAITS: brisk_stat = 8;
/// Times the wait ended in `BRISK_ERR_POOL_EXHAUSTED`.
pub const BRISK_STAT_POOL_EXHAUSTED: brisk_stat = 9;
/// Gauge: connections open now (idle or in use).
pub const BRISK_STAT_POOL_OPEN: brisk_stat = 10;
/// Gauge: idle connections now.
pub const BRISK_STAT_POOL_IDLE: brisk_stat = 11;
/// Client-side cache hits (also counted in `BRISK_STAT_COMMANDS`).
pub const BRISK_STAT_CACHE_HITS: brisk_stat = 12;
/// Cacheable reads that went to the server (not cached yet, or an entry its node's lease did
/// not cover).
pub const BRISK_STAT_CACHE_MISSES: brisk_stat = 13;
/// Client-side cache entries dropped because they may be stale: invalidations, this client's
/// writes, flushes, lost tracking.
pub const BRISK_STAT_CACHE_INVALIDATIONS: brisk_stat = 14;
/// Cluster topology refreshes.
pub const BRISK_STAT_TOPOLOGY_REFRESHES: brisk_stat = 15;
/// Cluster redirections (MOVED, ASK) followed.
pub const BRISK_STAT_REDIRECTS: brisk_stat = 16;
/// Gauge: client-side cache entries now.
pub const BRISK_STAT_CACHE_ENTRIES: brisk_stat = 17;
/// Gauge: bytes the client-side cache holds now (as `brisk_config_set_client_cache_max_bytes`
/// counts them).
pub const BRISK_STAT_CACHE_BYTES: brisk_stat = 18;
/// Client-side cache entries dropped for room (least recently used) or age (TTL).
pub const BRISK_STAT_CACHE_EVICTIONS: brisk_stat = 19;

/// Pub/Sub messages received by the client's subscribers (those dropped included).
pub const BRISK_STAT_PUBSUB_MESSAGES: brisk_stat = 20;
/// Pub/Sub messages a subscriber's full queue dropped (see `brisk_config_set_pubsub_queue()`).
pub const BRISK_STAT_PUBSUB_DROPPED: brisk_stat = 21;
/// Times a subscriber reconnected and subscribed again to what it had.
pub const BRISK_STAT_PUBSUB_RESUBSCRIBES: brisk_stat = 22;

/// Drops every client-side cache entry now (reads in flight are not kept either); a no-op
/// when the cache is off. Reported as a `BRISK_EVENT_CACHE_INVALIDATE` event with reason
/// `BRISK_CACHE_REASON_FLUSH`. NULL client: INVALID_ARGUMENT.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_cache_flush(client: *mut brisk_client) -> brisk_status {
    // SAFETY: per this function's contract.
    guard(|| {
        unsafe { try_ref(client, "client") }?.cache_flush();
        Ok(())
    })
}

/// Reads a counter or gauge; 0 for a NULL client or an unknown `which`. Lock-free for counters;
/// safe to call from any thread at any time.
///
/// # Safety
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_client_stat(client: *const brisk_client, which: brisk_stat) -> u64 {
    guard_value(0, || {
        // SAFETY: per this function's contract.
        let client = unsafe { client.cast::<Client>().as_ref() };
        match (client, Stat::from_u32(which)) {
            (Some(client), Some(stat)) => client.stat(stat),
            _ => 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_numbers_match_the_rust_stats() {
        let c = [
            BRISK_STAT_COMMANDS,
            BRISK_STAT_ERRORS,
            BRISK_STAT_RETRIES,
            BRISK_STAT_TIMEOUTS,
            BRISK_STAT_CONNECTS,
            BRISK_STAT_RECONNECTS,
            BRISK_STAT_HEALTH_CHECKS,
            BRISK_STAT_HEALTH_CHECK_FAILURES,
            BRISK_STAT_POOL_WAITS,
            BRISK_STAT_POOL_EXHAUSTED,
            BRISK_STAT_POOL_OPEN,
            BRISK_STAT_POOL_IDLE,
            BRISK_STAT_CACHE_HITS,
            BRISK_STAT_CACHE_MISSES,
            BRISK_STAT_CACHE_INVALIDATIONS,
            BRISK_STAT_TOPOLOGY_REFRESHES,
            BRISK_STAT_REDIRECTS,
            BRISK_STAT_CACHE_ENTRIES,
            BRISK_STAT_CACHE_BYTES,
            BRISK_STAT_CACHE_EVICTIONS,
            BRISK_STAT_PUBSUB_MESSAGES,
            BRISK_STAT_PUBSUB_DROPPED,
            BRISK_STAT_PUBSUB_RESUBSCRIBES,
        ];
        for (i, value) in c.iter().enumerate() {
            assert_eq!(*value as usize, i);
            assert_eq!(Stat::from_u32(*value).map(|s| s as u32), Some(*value));
        }
    }
}
