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

/// Sets the server, and any other setting, from a URL:
///
/// - `redis://[user[:password]@]host[:port][/db][?option=value&...]`
/// - `rediss://...` (TLS)
/// - `redis+cluster://[user[:password]@]host:port[,host:port...][?...]` (cluster mode, the hosts
///   are seed nodes; `rediss+cluster://` with TLS)
/// - `redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master_name[/db][?...]`
///   (Sentinel mode: the hosts are sentinels, port 26379 when omitted; the user and password
///   are the data nodes', the sentinels' own are the options below; `rediss+sentinel://` uses
///   TLS to the sentinels and the data nodes)
/// - `unix://[user[:password]@]/path/to/socket[?db=N&...]`
/// - `valkey://`, `valkeys://`, `valkey+cluster://`, `valkeys+cluster://`, `valkey+sentinel://`,
///   `valkeys+sentinel://`: the same as the `redis` schemes.
///
/// User, password, path and values are percent-decoded; an IPv6 host goes in brackets
/// (`redis://[::1]:6379`). Options (aliases from go-redis and redis-py in parentheses):
///
/// - durations: `connect_timeout` (`dial_timeout`, `socket_connect_timeout`), `read_timeout`,
///   `write_timeout`, `socket_timeout` (read and write), `command_deadline`, `pool_max_wait`
///   (`pool_timeout`), `pool_idle_timeout` (`conn_max_idle_time`, `idle_timeout`),
///   `pool_max_lifetime` (`conn_max_lifetime`, `max_conn_age`), `health_check_interval`,
///   `backoff_base` (`min_retry_backoff`), `backoff_cap` (`max_retry_backoff`),
///   `cluster_refresh_interval`, `sentinel_timeout`. A duration takes a unit, `ms`, `s`, `m` or `h` (`250ms`,
///   `1.5s`); a bare number means milliseconds under brisk's names and seconds under the
///   go-redis and redis-py aliases, as in those libraries (`dial_timeout=3` is 3 s).
/// - numbers: `pool_size` (`max_connections`), `pool_min_idle` (`min_idle_conns`),
///   `max_retries`, `max_reply_bytes`, `db`, `protocol` (2|3), `cluster_error_retry_attempts`.
/// - booleans (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`): `retry_on_timeout`,
///   `socket_keepalive`, `tls_insecure_skip_verify` (`skip_verify`), `read_only` (reads from
///   replicas) and `route_randomly` (reads from any node).
/// - words: `client_name`, `tls_server_name`, `sentinel_username` and `sentinel_password`
///   (the sentinels' credentials; Sentinel URLs only), `retry_writes` (`safe`|`always`), `backoff`
///   (`none`, `constant`, `exponential`, `full_jitter`, `equal_jitter`,
///   `decorrelated_jitter`), `read_from` (`primary`, `replica_preferred`, `any`), `addr`
///   (`host:port`, one more cluster seed node; may repeat).
/// - client-side caching: `client_cache` (max entries), `client_cache_ttl` (a duration),
///   `client_cache_max_bytes`, `client_cache_mode` (`default`, `broadcast`, `optin`),
///   `client_cache_prefix` (may repeat).
///
/// A backoff option changes the config's retry policy, or the default one (3 retries, full
/// jitter from 10 ms capped at 1 s) made explicit. Settings the URL does not mention keep their
/// values; a repeated option's last value wins.
/// Returns `BRISK_ERR_INVALID_ARGUMENT` naming the part at fault (never echoing a password)
/// for a malformed URL, an unknown option or a bad value; the config is then unchanged.
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

mod pubsub;

mod cache;

mod dispatch;

pub use cache::*;
pub use connection::*;
pub use dispatch::*;
pub use limits::*;
pub use observability::*;
pub use pool::*;
pub use pubsub::*;
pub use retry::*;
pub use tls::*;
pub use topology::*;
