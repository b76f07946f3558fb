//! The application's trace context, per thread: the span brisk's spans hang under.

use super::boundary::{guard, try_optional_str};
use super::status::brisk_status;
use crate::core::Error;
use crate::telemetry::otel::context::{parse_traceparent, set_parent};
use std::ffi::c_char;

/// Sets the parent of the spans of the commands this thread issues next (see
/// `brisk_config_set_otel_endpoint()`): a W3C `traceparent` value,
/// `"00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"`, as the application's own tracer
/// would propagate it, so that brisk's spans become children of the application's span. NULL
/// clears it. It is per thread and stays until changed: an async command takes the parent of
/// the thread that submits it. The flags' sampled bit decides whether spans under it are
/// recorded (parent-based sampling). INVALID_ARGUMENT for a malformed string (the thread's
/// parent is then left unchanged). Cheap; callable from any thread, with or without a client.
///
/// # Safety
/// `traceparent` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_trace_parent_set(traceparent: *const c_char) -> brisk_status {
    guard(|| {
        // SAFETY: per this function's contract.
        let text = unsafe { try_optional_str(traceparent, "traceparent") }?;
        let parent = match text {
            None => None,
            Some(text) => Some(parse_traceparent(text).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "traceparent: \"{}\" is not a W3C traceparent \
                     (00-<32 hex>-<16 hex>-<2 hex>, lower case, ids not all zero)",
                    text.escape_debug()
                ))
            })?),
        };
        set_parent(parent);
        Ok(())
    })
}
