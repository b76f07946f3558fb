//! `brisk_pipeline`: pipelines and MULTI/EXEC transactions.

#![allow(non_camel_case_types)]

use super::args::{given_args, with_command_args};
use super::boundary::{
    Handle, free_handle, guard, guard_cleared, guard_out, guard_value, handle_mut, into_handle,
    no_last_error, try_mut, try_ref,
};
use super::client::brisk_client;
use super::reply::{brisk_reply, reply_handle};
use super::status::brisk_status;
use crate::pipeline::Pipeline;
use std::ffi::c_char;

/// A batch of commands sent in one round trip, optionally as a MULTI/EXEC transaction.
///
/// Created by `brisk_pipeline_new()` or `brisk_transaction_new()`, freed (exactly once) by
/// `brisk_pipeline_free()`, before or after its client. Not thread-safe: use one pipeline from
/// one thread at a time (make one per thread; the client they share is thread-safe).
pub struct brisk_pipeline {
    _private: [u8; 0],
}

// SAFETY: `brisk_pipeline` pointers are only made by `into_handle::<brisk_pipeline>`.
unsafe impl Handle for brisk_pipeline {
    type Target = Pipeline;
    const NAME: &'static str = "brisk_pipeline";
}

/// A new, empty pipeline on `client`. `*out` is NULL on failure.
///
/// # Safety
/// `client` is NULL or a live client; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_pipeline_new(
    client: *mut brisk_client,
    out: *mut *mut brisk_pipeline,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        guard_out(out, "out", || {
            Ok(into_handle(try_ref(client, "client")?.pipeline()))
        })
    }
}

/// A new, empty transaction on `client`: its commands run between MULTI and EXEC, atomically.
/// `*out` is NULL on failure.
///
/// # Safety
/// `client` is NULL or a live client; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_transaction_new(
    client: *mut brisk_client,
    out: *mut *mut brisk_pipeline,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        guard_out(out, "out", || {
            Ok(into_handle(try_ref(client, "client")?.transaction()))
        })
    }
}

/// Appends a command (arguments as for `brisk_command()`; they are copied). Nothing is sent
/// until `brisk_pipeline_exec()`. Commands that change connection state (WATCH, MULTI, SELECT,
/// ...) are INVALID_ARGUMENT: for WATCH flows use a session.
///
/// # Safety
/// `p` is NULL or a live pipeline; `argv`/`argvlen` as for `brisk_command()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_pipeline_append(
    p: *mut brisk_pipeline,
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
) -> brisk_status {
    // The fast path: no last error to clear, nothing NULL, the lengths given. Tested first, so
    // that only the pipeline stays live across the append's calls (the full body kept every
    // argument in a callee-saved register: 5 pushes and pops).
    // SAFETY: per this function's contract.
    unsafe {
        if no_last_error()
            && let Some(p) = handle_mut(p)
            && let Some(args) = given_args(argc, argv, argvlen)
        {
            return guard_cleared(|| p.append(&args));
        }
        pipeline_append_checked(p, argc, argv, argvlen)
    }
}

/// `brisk_pipeline_append()`'s body for every call its fast path does not take: it clears the
/// last error and says which argument is wrong.
///
/// # Safety
/// As `brisk_pipeline_append()`.
#[cold]
#[inline(never)]
unsafe fn pipeline_append_checked(
    p: *mut brisk_pipeline,
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
) -> brisk_status {
    // SAFETY: per this function's contract.
    guard(|| unsafe {
        let p = try_mut(p, "p")?;
        with_command_args(argc, argv, argvlen, |args| p.append(args))
    })
}

/// Sends every appended command in one round trip. On `BRISK_OK`, `*replies` is an ARRAY with
/// one element per command, in order; a command's error reply is a `BRISK_REPLY_ERROR` element,
/// not a failed call. A transaction fails with `BRISK_ERR_WATCH` when a WATCHed key changed and
/// with `BRISK_ERR_SERVER` when the server discarded it (EXECABORT). `replies` may be NULL to
/// discard the replies. The pipeline is empty afterwards, whatever the outcome, and can be reused.
///
/// # Safety
/// `p` is NULL or a live pipeline; `replies` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_pipeline_exec(
    p: *mut brisk_pipeline,
    replies: *mut *mut brisk_reply,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { reply_handle(replies, || try_mut(p, "p")?.exec()) }
}

/// Frees a pipeline and any commands still queued in it. NULL is a no-op.
///
/// # Safety
/// `p` is NULL or a live pipeline.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_pipeline_free(p: *mut brisk_pipeline) {
    // SAFETY: per this function's contract.
    guard_value((), || unsafe { free_handle(p) })
}
