//! WATCH transactions: a transaction run on a session's connection in one round trip
//! (`brisk_session_exec`), and the whole optimistic-locking loop in one call
//! (`brisk_transaction_run`, redis-py's `transaction(func, *watches)`).

#![allow(non_camel_case_types)]

use super::args::{ArgLengths, command_args};
use super::boundary::{free_handle, guard_value, into_handle, last_error_ptr, try_mut, try_ref};
use super::client::brisk_client;
use super::pipeline::brisk_pipeline;
use super::reply::{brisk_reply, reply_handle};
use super::session::brisk_session;
use super::status::{BRISK_OK, brisk_status};
use crate::core::{Error, Status};
use crate::resp::Args;
use std::ffi::{CStr, c_char, c_void};

/// Runs the transaction `tx` (from `brisk_transaction_new()` on the session's client) on the
/// session's connection, in one round trip: MULTI, the commands appended to `tx`, EXEC. So the
/// keys the session WATCHed guard it, without a round trip per command:
///
/// ```c
/// brisk_session_commandf(s, NULL, "WATCH %s", key);
/// brisk_session_commandf(s, &old, "GET %s", key);        // read, decide
/// brisk_pipeline_appendf(tx, "SET %s %s", key, next);   // queue the writes
/// brisk_session_exec(s, tx, &replies);                  // BRISK_ERR_WATCH: start over
/// ```
///
/// On `BRISK_OK`, `*replies` is EXEC's ARRAY, one element per command (a command's error reply
/// is an ERROR element); `replies` may be NULL to discard it. `BRISK_ERR_WATCH` when a WATCHed
/// key changed (nothing was applied), `BRISK_ERR_SERVER` when the server discarded the
/// transaction (EXECABORT). Afterwards no WATCH or MULTI is open on the session, and `tx` is
/// empty (whatever the outcome) and can be reused. INVALID_ARGUMENT when `tx` is a plain
/// pipeline or comes from another client, or the session has a MULTI of its own open. In cluster
/// mode the transaction's keys must be in the session's slot. Not thread-safe: the session and
/// `tx` are used by one thread at a time.
///
/// # Safety
/// `s` is NULL or a live session; `tx` is NULL or a live pipeline; `replies` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_session_exec(
    s: *mut brisk_session,
    tx: *mut brisk_pipeline,
    replies: *mut *mut brisk_reply,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        reply_handle(replies, || {
            let session = try_mut(s, "s")?;
            let tx = try_mut(tx, "tx")?;
            session.exec(tx)
        })
    }
}

/// The body of a `brisk_transaction_run()` attempt. It runs on the caller's thread, with the
/// keys WATCHed on session `s`: it reads what it needs with `brisk_session_command()` (or
/// `brisk_session_commandf()`) and appends the writes to `tx` (`brisk_pipeline_append()`,
/// `brisk_pipeline_appendf()`), then returns `BRISK_OK`. Any other status ends
/// `brisk_transaction_run()` with that status, nothing applied. It may run several times (once
/// per attempt), so it must not have effects that a retry would repeat outside Redis. It must not
/// free, exec or keep `s` or `tx`: they belong to `brisk_transaction_run()`.
pub type brisk_transaction_fn = Option<
    unsafe extern "C" fn(
        s: *mut brisk_session,
        tx: *mut brisk_pipeline,
        userdata: *mut c_void,
    ) -> brisk_status,
>;

/// A whole WATCH transaction in one call, retried while a watched key changes under it (what
/// redis-py's `transaction(func, *watches)` does). Each attempt, on one session of `client`:
/// WATCH the `nkeys` keys (`keys`, with lengths `keylens`, or NUL-terminated when `keylens` is
/// NULL; `nkeys` may be 0), call `body(s, tx, userdata)` with a new, empty transaction `tx`,
/// then run `tx` on the session (MULTI ... EXEC in one round trip, as `brisk_session_exec()`).
/// When EXEC reports that a watched key changed, the next attempt starts over, at most
/// `max_attempts` attempts in all (at least 1); after the last one the result is
/// `BRISK_ERR_WATCH`.
///
/// On `BRISK_OK`, `*replies` is EXEC's ARRAY (NULL `replies` discards it). A status other than
/// `BRISK_OK` from `body` ends the call with that status (the message says so and keeps the
/// last brisk error of the body, if any); other failures are those of
/// `brisk_session_new()`, `brisk_session_command()` and `brisk_session_exec()`. The session's
/// connection goes back to the pool, with nothing watched, before this returns. Thread-safe like
/// every blocking call on `client`; `body` runs on the calling thread.
///
/// # Safety
/// `client` is NULL or a live client; `keys` points to `nkeys` readable keys (`keylens` NULL or
/// `nkeys` lengths), or is NULL with `nkeys` 0; `body` as `brisk_transaction_fn` says;
/// `replies` is NULL or writable.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_transaction_run(
    client: *mut brisk_client,
    nkeys: usize,
    keys: *const *const c_char,
    keylens: *const usize,
    body: brisk_transaction_fn,
    userdata: *mut c_void,
    max_attempts: u32,
    replies: *mut *mut brisk_reply,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        reply_handle(replies, || {
            let client = try_ref(client, "client")?;
            let body = body.ok_or_else(|| Error::invalid_argument("body: NULL"))?;
            if max_attempts == 0 {
                return Err(Error::invalid_argument("max_attempts: 0 (at least 1)"));
            }
            if keys.is_null() && nkeys > 0 {
                return Err(Error::invalid_argument("keys: NULL with nkeys > 0"));
            }
            // WATCH and the keys, checked as a command's arguments.
            let mut watch: Vec<&[u8]> = Vec::with_capacity(nkeys + 1);
            watch.push(b"WATCH");
            let mut lengths = ArgLengths::new();
            if nkeys > 0 {
                watch.extend(command_args(nkeys, keys, keylens, &mut lengths)?.iter());
            }
            let watch = Args::from_slices(&watch);
            // The session and the transaction are handles: `body` gets them, and this function
            // borrows them only between its calls.
            let session = Handles::new(client)?;
            for _ in 0..max_attempts {
                if nkeys > 0 {
                    try_mut(session.s, "s")?.command(&watch)?;
                }
                let status = body(session.s, session.tx, userdata);
                if status != BRISK_OK {
                    return Err(body_failed(status));
                }
                match try_mut(session.s, "s")?.exec(try_mut(session.tx, "tx")?) {
                    Err(e) if e.status() == Status::Watch => continue,
                    other => return other,
                }
            }
            Err(Error::new(
                Status::Watch,
                format!(
                    "transaction aborted {max_attempts} times: a WATCHed key changed during \
                     each attempt, nothing was applied"
                ),
            ))
        })
    }
}

/// The session and transaction handles of one `brisk_transaction_run()`, freed on every path
/// (the session gives its connection back, unwatched).
struct Handles {
    s: *mut brisk_session,
    tx: *mut brisk_pipeline,
}

impl Handles {
    fn new(client: &crate::client::Client) -> Result<Handles, Error> {
        let session = client.session()?;
        Ok(Handles {
            s: into_handle(session),
            tx: into_handle(client.transaction()),
        })
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        // SAFETY: both were made by `into_handle` in `Handles::new` and are freed only here.
        guard_value((), || unsafe {
            free_handle(self.tx);
            free_handle(self.s);
        });
    }
}

/// The error for a body that returned `status`: its own last message, if it left one.
fn body_failed(status: brisk_status) -> Error {
    let status = Status::from_u32(status).unwrap_or(Status::Internal);
    // SAFETY: last_error_ptr points to this thread's NUL-terminated message.
    let last = unsafe { CStr::from_ptr(last_error_ptr()) }.to_string_lossy();
    let message = match last.is_empty() {
        true => format!(
            "the transaction body returned {}; nothing was applied",
            status.name()
        ),
        false => format!(
            "the transaction body returned {} ({last}); nothing was applied",
            status.name()
        ),
    };
    Error::new(status, message)
}
