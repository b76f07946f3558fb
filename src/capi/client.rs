//! `brisk_client`: the shared, thread-safe client.

#![allow(non_camel_case_types)]

use super::boundary::{
    Handle, command_args, free_handle, guard, guard_out, guard_value, into_handle, try_ref,
};
use super::config::brisk_config;
use super::reply::{brisk_reply, reply_handle};
use super::status::brisk_status;
use crate::client::Client;
use std::ffi::c_char;

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
    // SAFETY: per this function's contract.
    unsafe {
        reply_handle(reply, || {
            let client = try_ref(client, "client")?;
            client.command(&command_args(argc, argv, argvlen)?)
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
