//! The connection pool: size, waits, idle and lifetime bounds, health checks.

use super::{brisk_config, set, update};
use crate::capi::status::brisk_status;

/// Most connections the client opens (default 10 x CPU count). 0 is INVALID_ARGUMENT.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_pool_size(
    cfg: *mut brisk_config,
    max_connections: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.set_pool_size(max_connections)) }
}

/// How long a command waits for a pooled connection when all are busy (default: the read
/// timeout plus 1000 ms; 0 waits forever). Past it the command fails with `BRISK_ERR_POOL_EXHAUSTED`,
/// whose message says how many connections were open and busy, how many callers waited, and
/// for how long.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_pool_max_wait_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.pool.max_wait_ms = Some(ms)) }
}

/// Connections kept open and idle by background maintenance (default 0), opened as soon as the
/// client is created. Must not exceed the pool size (checked by `brisk_client_new()`).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_pool_min_idle(
    cfg: *mut brisk_config,
    min_idle: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.pool.min_idle = min_idle) }
}

/// An idle connection unused for this long is closed (default 1800000 ms; 0: never).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_pool_idle_timeout_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.pool.idle_timeout_ms = ms) }
}

/// A connection older than this is closed when next returned or found idle (default 0: no
/// limit). Useful behind load balancers and for rotating credentials.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_pool_max_lifetime_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.pool.max_lifetime_ms = ms) }
}

/// Health checks: a connection idle for longer than `ms` is PINGed before it carries a command;
/// if that PING fails with a connection or timeout error the connection is replaced and the
/// command goes to a fresh one, so a dead idle connection never surfaces as an error. Counted in
/// `BRISK_STAT_HEALTH_CHECKS` / `_FAILURES`. Default 0 (off).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_health_check_interval_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.health_check_interval_ms = ms) }
}
