//! What the application sees of the work: the event callback (OpenTelemetry settings too).

use super::{brisk_config, set};
use crate::capi::event::{brisk_event_fn, handler};
use crate::capi::status::brisk_status;
use crate::telemetry::events::HandlerSlot;
use std::ffi::c_void;

/// Installs an event callback (NULL `fn` removes it). It is called synchronously on the thread
/// that did the work (the caller's for commands, a `brisk-runtime` thread for background
/// connects), so it must be thread-safe, must not block, and must not call brisk with this
/// client. `userdata` is passed back untouched; brisk never frees it. See `brisk_event`.
///
/// # Safety
/// `cfg` is NULL or a live config; `fn` and `userdata` stay valid while any client made from
/// this config lives.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_event_callback(
    cfg: *mut brisk_config,
    r#fn: brisk_event_fn,
    userdata: *mut c_void,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        set(cfg, |c| {
            c.events = HandlerSlot(r#fn.map(|f| handler(f, userdata)))
        })
    }
}
