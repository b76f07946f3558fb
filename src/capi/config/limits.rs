//! Bounds on time and size: timeouts, TCP keepalive, command deadline (reply size limits too).

use super::{brisk_config, set, update};
use crate::capi::status::brisk_status;

/// Connect timeout in ms (default 5000; 0 waits forever). Covers TCP connect and, per address,
/// name resolution results; the TLS and Redis handshakes use the read and write timeouts.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_connect_timeout_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.set_connect_timeout_ms(ms)) }
}

/// Read timeout in ms (default 5000; 0 waits forever): how long the whole reply to a request
/// (every reply of a pipeline) may take to arrive, counted from when the request was sent, not
/// per read, so a server that trickles its bytes or sends push frames instead of the reply
/// cannot stretch it (as go-redis's ReadTimeout). It bounds the connection handshake's replies
/// the same way. A command that times out fails with TIMEOUT and its connection is closed, so
/// no half read reply is left behind. Blocking commands (BLPOP, XREAD BLOCK, WAIT, ...) extend
/// it by their own timeout.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_read_timeout_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.set_read_timeout_ms(ms)) }
}

/// Write timeout in ms (default 5000; 0 waits forever).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_write_timeout_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.set_write_timeout_ms(ms)) }
}

/// TCP keepalive: first probe after `idle_s` idle seconds, then every `interval_s`, giving up
/// after `probes`. Default 30 s / 5 s / 3. `idle_s` = 0 turns keepalive off; otherwise
/// `interval_s` and `probes` must be at least 1.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_tcp_keepalive(
    cfg: *mut brisk_config,
    idle_s: u32,
    interval_s: u32,
    probes: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.set_keepalive(idle_s, interval_s, probes)) }
}

/// A bound on one whole command in ms, every attempt, read, write, wait for a connection and
/// backoff included, whatever the server sends (default 0: none). A command past it fails with
/// TIMEOUT; reads are cut short to stay within it. Async commands are held to it too (checked
/// every 50 ms).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_command_deadline_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.command_deadline_ms = ms) }
}

/// The most memory one reply may take, in bytes (default 513 MiB: the largest string Redis
/// stores, 512 MiB, with room for its framing; 0: no limit). What counts is the reply's memory
/// as brisk holds it (its bytes and the nodes of its elements), so a hostile or broken server
/// streaming an endless aggregate cannot make the process grow without bound. A reply that
/// would pass it fails with PROTOCOL, naming the limit, and its connection is closed. The
/// replies brisk asks for itself (COMMAND, CLUSTER SHARDS, SENTINEL queries, ROLE) are bounded
/// by the default whatever smaller limit is set here.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_max_reply_bytes(
    cfg: *mut brisk_config,
    bytes: usize,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.max_reply_bytes = bytes) }
}
