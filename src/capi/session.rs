//! `brisk_session`: a pinned connection.

#![allow(non_camel_case_types)]

use super::args::with_command_args;
use super::boundary::{Handle, free_handle, guard_out, guard_value, into_handle, try_mut, try_ref};
use super::client::brisk_client;
use super::reply::{brisk_reply, reply_handle};
use super::status::brisk_status;
use crate::session::Session;
use std::ffi::c_char;

/// One connection from the client's pool, pinned for a sequence of commands that must share
/// it: WATCH/MULTI/EXEC, blocking commands, per-connection CLIENT commands.
///
/// Created by `brisk_session_new()`, freed (exactly once) by `brisk_session_free()`, which gives
/// the connection back: with an open MULTI or WATCH it is reset (DISCARD, UNWATCH) first; if the
/// session changed the connection in other ways (SELECT, AUTH, CLIENT SETNAME, ...) it is closed
/// instead. While a session lives it holds one of the pool's connections. Not thread-safe: one
/// thread at a time.
pub struct brisk_session {
    _private: [u8; 0],
}

// SAFETY: `brisk_session` pointers are only made by `into_handle::<brisk_session>`.
unsafe impl Handle for brisk_session {
    type Target = Session;
    const NAME: &'static str = "brisk_session";
}

/// Borrows a connection from `client`'s pool for a new session (waiting like a command would;
/// POOL_EXHAUSTED if none frees up). `*out` is NULL on failure.
///
/// # Safety
/// `client` is NULL or a live client; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_session_new(
    client: *mut brisk_client,
    out: *mut *mut brisk_session,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        guard_out(out, "out", || {
            Ok(into_handle(try_ref(client, "client")?.session()?))
        })
    }
}

/// Runs one command on the session's connection, like `brisk_command()`. Every command is
/// allowed except those that turn the connection into a stream (SUBSCRIBE, MONITOR, CLIENT
/// REPLY). An EXEC answered with nil (a WATCHed key changed) is `BRISK_ERR_WATCH`. If the
/// connection is lost, the next command uses a new one, unless a WATCH or MULTI was open: then
/// that command fails with CONNECTION, since the transaction's state is gone.
///
/// # Safety
/// `s` is NULL or a live session; arguments as for `brisk_command()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_session_command(
    s: *mut brisk_session,
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
    reply: *mut *mut brisk_reply,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        reply_handle(reply, || {
            let s = try_mut(s, "s")?;
            with_command_args(argc, argv, argvlen, |args| s.command(args))
        })
    }
}

/// Ends the session and gives its connection back to the pool (see `brisk_session`). NULL is a
/// no-op.
///
/// # Safety
/// `s` is NULL or a live session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_session_free(s: *mut brisk_session) {
    // SAFETY: per this function's contract.
    guard_value((), || unsafe { free_handle(s) })
}
