//! What the application sees of the work: the event callback (OpenTelemetry settings too).

use super::{brisk_config, set, update};
use crate::capi::boundary::try_optional_str;
use crate::capi::event::{brisk_event_fn, handler};
use crate::capi::status::brisk_status;
use crate::telemetry::events::HandlerSlot;
use std::ffi::{c_char, c_void};

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

/// Turns on OpenTelemetry: brisk exports a CLIENT span per command (one per pipeline or
/// transaction) and the database-client metrics over OTLP/HTTP with protobuf bodies to
/// `<endpoint>/v1/traces` and `<endpoint>/v1/metrics`, from an exporter thread of the client's
/// own (`brisk-otel`). `endpoint` is the collector's base URL (`"http://host:4318"`; plain HTTP
/// only); NULL takes `OTEL_EXPORTER_OTLP_ENDPOINT` (else `http://localhost:4318`; the
/// per-signal `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`/`_METRICS_ENDPOINT` are honoured too).
/// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS` are
/// honoured; `OTEL_SDK_DISABLED=true` turns it off again. A slow, dead or failing collector
/// costs dropped telemetry (counted), never a delayed or failed command. Spans and metrics
/// never contain a command's arguments or values. Off by default, and free when off.
/// INVALID_ARGUMENT for a URL that is not `http://host[:port][/path]`.
///
/// # Safety
/// `cfg` is NULL or a live config; `endpoint` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_otel_endpoint(
    cfg: *mut brisk_config,
    endpoint: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.otel.set_endpoint(try_optional_str(endpoint, "endpoint")?)
        })
    }
}

/// The share of traces whose spans are recorded, 0..1 (default: `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG` when set, else 1). Sampling is parent-based: a command under a
/// sampled parent (see `brisk_trace_parent_set()`) is recorded, under an unsampled one is not,
/// and without a parent by this ratio of trace ids. 0 means metrics only: no spans at all.
/// INVALID_ARGUMENT outside 0..1.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_otel_traces_sample_ratio(
    cfg: *mut brisk_config,
    ratio: f64,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.otel.set_traces_sample_ratio(ratio)) }
}

/// How often metrics are exported, and the longest a span waits in the queue (default 10000
/// ms; a batch of 512 spans goes at once). INVALID_ARGUMENT for 0.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_otel_export_interval_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.otel.set_export_interval_ms(ms)) }
}

/// The longest one export request may take before it is abandoned and its telemetry dropped
/// (default 10000 ms). INVALID_ARGUMENT for 0.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_otel_export_timeout_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.otel.set_export_timeout_ms(ms)) }
}
