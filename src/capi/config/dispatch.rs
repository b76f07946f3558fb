//! Which thread runs the callbacks of async commands, and the batch-end hook of runtime
//! dispatch.

use super::{brisk_config, set, update};
use crate::capi::boundary::{UserData, unknown_value};
use crate::capi::status::brisk_status;
use crate::config::{AsyncDispatch, BatchEnd, BatchEndSlot};
use std::ffi::c_void;
use std::sync::Arc;

/// Which thread runs the callbacks of `brisk_command_async()`.
pub type brisk_async_dispatch = u32;

/// A brisk runtime thread runs each callback as soon as its outcome is known (the default).
pub const BRISK_ASYNC_DISPATCH_RUNTIME: brisk_async_dispatch = 0;
/// The application runs the callbacks on its own thread, in completion order, by calling
/// `brisk_client_async_dispatch()` when `brisk_client_async_fd()` polls readable (the way an
/// event loop runs hiredis's async callbacks): no thread hop per reply, one wake-up of the loop
/// per batch of replies.
pub const BRISK_ASYNC_DISPATCH_CALLER: brisk_async_dispatch = 1;

/// Which thread runs async callbacks: `BRISK_ASYNC_DISPATCH_RUNTIME` (the default) or
/// `BRISK_ASYNC_DISPATCH_CALLER` (see `brisk_client_async_dispatch()`). INVALID_ARGUMENT for
/// another value.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_async_dispatch(
    cfg: *mut brisk_config,
    mode: brisk_async_dispatch,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.async_dispatch = AsyncDispatch::from_u32(mode)
                .ok_or_else(|| unknown_value("mode", "brisk_async_dispatch", mode))?;
            Ok(())
        })
    }
}

/// Called after a batch of async callbacks (see `brisk_config_set_async_batch_end()`).
pub type brisk_batch_end_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Installs a batch-end hook (NULL `fn` removes it): with `BRISK_ASYNC_DISPATCH_RUNTIME`, a
/// `brisk-runtime` thread that ran one or more of the client's `brisk_command_async()`
/// callbacks calls `fn(userdata)` after them: once after all the callbacks of the replies one
/// read brought, and right after a callback run on its own (a failure, a timeout). Every
/// callback is followed by a call on the thread that ran it, before that thread sleeps. Calls
/// may run on several brisk threads at once (connections are read by different threads), so
/// the hook must be thread-safe.
///
/// What it is for: a program that hands completions to another thread (a loop keeping
/// commands in flight, a binding's event loop) can count completions in the callbacks and wake
/// that thread once per batch from the hook, not once per callback, which is a system call
/// each time the other thread sleeps. With `BRISK_ASYNC_DISPATCH_CALLER` the hook is not
/// called: `brisk_client_async_dispatch()` returning ends each batch there.
///
/// Like the callbacks, the hook must not block nor free the client; it may call
/// `brisk_command_async()`.
/// `userdata` is passed back untouched; brisk never frees it. `brisk_client_free()` returns
/// only after the last call returned.
///
/// # Safety
/// `cfg` is NULL or a live config; `fn` and `userdata` stay valid while any client made from
/// this config lives, and `fn` is safe to call from any brisk thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_async_batch_end(
    cfg: *mut brisk_config,
    r#fn: brisk_batch_end_fn,
    userdata: *mut c_void,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        set(cfg, |c| {
            c.async_batch_end = BatchEndSlot(r#fn.map(|f| hook(f, userdata)))
        })
    }
}

/// The user's hook and its userdata, as a [`BatchEnd`].
fn hook(callback: unsafe extern "C" fn(*mut c_void), userdata: *mut c_void) -> BatchEnd {
    let userdata = UserData(userdata);
    Arc::new(move || {
        let userdata = &userdata;
        // SAFETY: the hook was given by the user for exactly this.
        unsafe { callback(userdata.0) };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_numbers_match() {
        for (c, mode) in [
            (BRISK_ASYNC_DISPATCH_RUNTIME, AsyncDispatch::Runtime),
            (BRISK_ASYNC_DISPATCH_CALLER, AsyncDispatch::Caller),
        ] {
            assert_eq!(AsyncDispatch::from_u32(c), Some(mode));
            assert_eq!(mode as u32, c);
        }
        assert_eq!(AsyncDispatch::from_u32(2), None);
    }
}
