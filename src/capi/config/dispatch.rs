//! Which thread runs the callbacks of async commands.

use super::{brisk_config, update};
use crate::capi::boundary::unknown_value;
use crate::capi::status::brisk_status;
use crate::config::AsyncDispatch;

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
