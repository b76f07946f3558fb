//! `brisk_config`: the builder a client is made from.
//!
//! This file holds the handle (new, free, and the URL, which can set anything) and the helpers
//! every setter uses; the setters live by area in the modules declared at the end, and a new
//! area (client-side caching, say) gets a module of its own.

#![allow(non_camel_case_types)]

use super::boundary::{Handle, free_handle, guard, guard_value, into_handle, try_mut, try_str};
use super::status::brisk_status;
use crate::config::Config;
use crate::core::Result;
use std::ffi::c_char;

/// Settings for a client: address, credentials, timeouts, pool, TLS.
///
/// Created by `brisk_config_new()` with every default, changed by the `brisk_config_set_*`
/// functions, freed (exactly once) by `brisk_config_free()`. `brisk_client_new()` copies it, so
/// it can be freed or reused right after. Not thread-safe: use one config from one thread at a
/// time. A setter that fails leaves the config unchanged.
pub struct brisk_config {
    _private: [u8; 0],
}

// SAFETY: `brisk_config` pointers are only made by `into_handle::<brisk_config>`.
unsafe impl Handle for brisk_config {
    type Target = Config;
    const NAME: &'static str = "brisk_config";
}

/// Applies `change` to the config behind `cfg` under the panic guard.
///
/// # Safety
/// `cfg` is NULL or a live `brisk_config`.
unsafe fn update(
    cfg: *mut brisk_config,
    change: impl FnOnce(&mut Config) -> Result<()>,
) -> brisk_status {
    guard(|| {
        // SAFETY: per this function's contract.
        let config = unsafe { try_mut(cfg, "cfg") }?;
        change(config)
    })
}

/// [`update`] for a change that cannot fail.
///
/// # Safety
/// `cfg` is NULL or a live `brisk_config`.
unsafe fn set(cfg: *mut brisk_config, change: impl FnOnce(&mut Config)) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |config| {
            change(config);
            Ok(())
        })
    }
}

/// A new config with all defaults: `localhost:6379`, RESP3, timeouts of 5000 ms, a pool of
/// 10 x CPU count connections. Free it with `brisk_config_free()`. NULL only if out of memory.
#[unsafe(no_mangle)]
pub extern "C" fn brisk_config_new() -> *mut brisk_config {
    guard_value(std::ptr::null_mut(), || into_handle(Config::default()))
}

/// Frees a config. NULL is a no-op.
///
/// # Safety
/// `cfg` is NULL or a config from `brisk_config_new()` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_free(cfg: *mut brisk_config) {
    // SAFETY: per this function's contract.
    guard_value((), || unsafe { free_handle(cfg) })
}

/// Sets the server from a URL:
/// `redis://[user[:password]@]host[:port][/db][?option=value&...]`, `rediss://...` (TLS) or
/// `unix:///path/to/socket[?db=N&...]`. User, password and values are percent-decoded; an IPv6
/// host goes in brackets (`redis://[::1]:6379`). Options: `connect_timeout`, `read_timeout`,
/// `write_timeout`, `command_deadline`, `pool_size`, `pool_min_idle`, `pool_max_wait`,
/// `pool_idle_timeout`, `pool_max_lifetime`, `health_check_interval` (all ms), `client_name`,
/// `protocol` (2|3), `max_retries`, `db`, `tls_server_name`, `tls_insecure_skip_verify`;
/// client-side caching: `client_cache` (max entries), `client_cache_ttl` (ms),
/// `client_cache_max_bytes`, `client_cache_mode` (default|broadcast|optin),
/// `client_cache_prefix` (repeatable).
/// Settings the URL does not mention keep their values.
/// Returns `BRISK_ERR_INVALID_ARGUMENT` naming the part at fault (never echoing a password)
/// for a malformed URL, an unknown option or a bad value.
///
/// # Safety
/// `cfg` is NULL or a live config; `url` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_url(
    cfg: *mut brisk_config,
    url: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.set_url(try_str(url, "url")?)) }
}

// cbindgen writes the functions in parse order: this file's, then each module's as declared. The
// order below is the header's; blank lines keep rustfmt from sorting it.

mod connection;

mod limits;

mod pool;

mod tls;

mod retry;

mod observability;

mod topology;

mod cache;

pub use cache::*;
pub use connection::*;
pub use limits::*;
pub use observability::*;
pub use pool::*;
pub use retry::*;
pub use tls::*;
pub use topology::*;
