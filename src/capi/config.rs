//! `brisk_config`: the builder a client is made from.

#![allow(non_camel_case_types)]

use super::boundary::{
    Handle, free_handle, guard, guard_value, into_handle, try_mut, try_ref, try_str,
};
use super::event::{brisk_event_fn, handler};
use super::retry::brisk_retry;
use super::status::brisk_status;
use crate::config::{Config, Mode, ReadFrom};
use crate::core::retry::RetryWrites;
use crate::core::{Error, Result, Status};
use crate::events::HandlerSlot;
use std::ffi::{c_char, c_void};

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
/// `protocol` (2|3), `max_retries`, `db`, `tls_server_name`, `tls_insecure_skip_verify`.
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

/// Sets a TCP server address. `host` is a name, an IPv4 address or an IPv6 address (with or
/// without brackets). INVALID_ARGUMENT for an empty host or port 0.
///
/// # Safety
/// `cfg` is NULL or a live config; `host` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_address(
    cfg: *mut brisk_config,
    host: *const c_char,
    port: u16,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.set_address(try_str(host, "host")?, port)) }
}

/// Connects through a Unix domain socket at `path` instead of TCP.
///
/// # Safety
/// `cfg` is NULL or a live config; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_unix_path(
    cfg: *mut brisk_config,
    path: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.set_unix_path(try_str(path, "path")?)) }
}

/// Sets the ACL user name (Redis 6+). Without a password it has no effect. NULL or "" clears it.
///
/// # Safety
/// `cfg` is NULL or a live config; `username` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_username(
    cfg: *mut brisk_config,
    username: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.username = match username.is_null() {
                true => None,
                false => Some(try_str(username, "username")?.to_owned()).filter(|u| !u.is_empty()),
            };
            Ok(())
        })
    }
}

/// Sets the password (for the ACL user, or the `default` user). NULL clears it. The password is
/// sent in the handshake and never appears in any message.
///
/// # Safety
/// `cfg` is NULL or a live config; `password` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_password(
    cfg: *mut brisk_config,
    password: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.password = match password.is_null() {
                true => None,
                false => Some(try_str(password, "password")?.to_owned().into()),
            };
            Ok(())
        })
    }
}

/// Selects database `db` on every connection (default 0).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_db(cfg: *mut brisk_config, db: u32) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.db = db;
            Ok(())
        })
    }
}

/// Names every connection (`CLIENT SETNAME`, shown by `CLIENT LIST`). NULL or "" clears it;
/// names with spaces or control characters are INVALID_ARGUMENT.
///
/// # Safety
/// `cfg` is NULL or a live config; `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_client_name(
    cfg: *mut brisk_config,
    name: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| match name.is_null() {
            true => c.set_client_name(""),
            false => c.set_client_name(try_str(name, "name")?),
        })
    }
}

/// The protocol: 3 (default) sends `HELLO 3` and falls back to RESP2 when the server does not
/// know HELLO; 2 speaks RESP2 and skips HELLO. Anything else is INVALID_ARGUMENT.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_protocol(
    cfg: *mut brisk_config,
    resp_version: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.set_protocol(resp_version)) }
}

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
    unsafe {
        update(cfg, |c| {
            c.set_connect_timeout_ms(ms);
            Ok(())
        })
    }
}

/// Read timeout in ms (default 5000; 0 waits forever): how long one read may wait for the
/// server. A command that times out fails with TIMEOUT and its connection is closed, so no half
/// read reply is left behind. Blocking commands (BLPOP, XREAD BLOCK, WAIT, ...) extend it by
/// their own timeout.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_read_timeout_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.set_read_timeout_ms(ms);
            Ok(())
        })
    }
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
    unsafe {
        update(cfg, |c| {
            c.set_write_timeout_ms(ms);
            Ok(())
        })
    }
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
    unsafe {
        update(cfg, |c| {
            c.pool.max_wait_ms = Some(ms);
            Ok(())
        })
    }
}

/// Turns TLS on or off (`rediss://` turns it on).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_tls(cfg: *mut brisk_config, on: bool) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.tls.enabled = on;
            Ok(())
        })
    }
}

/// Trusts the CA certificates in the PEM file at `pem_path` instead of the system store.
/// The file is read by `brisk_client_new()`, which fails with `BRISK_ERR_TLS` if it is unusable.
///
/// # Safety
/// `cfg` is NULL or a live config; `pem_path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_tls_ca_file(
    cfg: *mut brisk_config,
    pem_path: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.tls.ca_file = Some(try_str(pem_path, "pem_path")?.into());
            Ok(())
        })
    }
}

/// Presents a client certificate (PEM chain) and its private key (PEM) for mutual TLS.
/// Both files are read by `brisk_client_new()` (`BRISK_ERR_TLS` if unusable).
///
/// # Safety
/// `cfg` is NULL or a live config; both paths are NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_tls_client_cert(
    cfg: *mut brisk_config,
    cert_pem_path: *const c_char,
    key_pem_path: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            let cert = try_str(cert_pem_path, "cert_pem_path")?;
            let key = try_str(key_pem_path, "key_pem_path")?;
            c.tls.client_cert = Some((cert.into(), key.into()));
            Ok(())
        })
    }
}

/// The name the server's certificate must carry (default: the host connected to).
///
/// # Safety
/// `cfg` is NULL or a live config; `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_tls_server_name(
    cfg: *mut brisk_config,
    name: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.tls.server_name = Some(try_str(name, "name")?.to_owned());
            Ok(())
        })
    }
}

/// Accepts any server certificate. For development only: it removes TLS's protection against
/// an impostor server.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_tls_insecure_skip_verify(
    cfg: *mut brisk_config,
    skip: bool,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.tls.insecure_skip_verify = skip;
            Ok(())
        })
    }
}

/// A bound on one whole command in ms, every attempt and backoff included (default 0: none).
/// A command past it fails with TIMEOUT; reads are cut short to stay within it.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_command_deadline_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.command_deadline_ms = ms;
            Ok(())
        })
    }
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
    unsafe {
        update(cfg, |c| {
            c.pool.min_idle = min_idle;
            Ok(())
        })
    }
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
    unsafe {
        update(cfg, |c| {
            c.pool.idle_timeout_ms = ms;
            Ok(())
        })
    }
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
    unsafe {
        update(cfg, |c| {
            c.pool.max_lifetime_ms = ms;
            Ok(())
        })
    }
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
    unsafe {
        update(cfg, |c| {
            c.health_check_interval_ms = ms;
            Ok(())
        })
    }
}

/// Uses `retry` (copied) as the retry policy. Without it a config retries 3 times with full
/// jitter from 10 ms capped at 1000 ms, on the statuses `brisk_status_is_retryable()` accepts.
///
/// # Safety
/// `cfg` is NULL or a live config; `retry` is NULL or a live policy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_retry(
    cfg: *mut brisk_config,
    retry: *const brisk_retry,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.retry.policy = Some(*try_ref(retry, "retry")?);
            Ok(())
        })
    }
}

/// Retry after TIMEOUT errors (added to `brisk_config_set_retry_on_errors()`'s list if both are
/// used). Without an explicit policy this means one immediate retry. `false` undoes it.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_retry_on_timeout(
    cfg: *mut brisk_config,
    on: bool,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.retry.on_timeout = on;
            Ok(())
        })
    }
}

/// Retry after exactly these `n` statuses (replacing the default set). Without an explicit
/// policy this means one immediate retry. `codes` may be NULL only when `n` is 0 (then nothing
/// but a timeout, if enabled, is retried). INVALID_ARGUMENT for an unknown status or BRISK_OK.
///
/// # Safety
/// `cfg` is NULL or a live config; `codes` is NULL or points to `n` statuses.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_retry_on_errors(
    cfg: *mut brisk_config,
    codes: *const brisk_status,
    n: usize,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            if codes.is_null() && n > 0 {
                return Err(Error::invalid_argument("codes: NULL with n > 0"));
            }
            let codes = if n == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(codes, n)
            };
            let statuses = codes
                .iter()
                .map(|&code| match Status::from_u32(code) {
                    Some(s) if s != Status::Ok => Ok(s),
                    _ => Err(Error::invalid_argument(format!(
                        "codes: {code} is not an error status"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            c.retry.on_errors = Some(statuses);
            Ok(())
        })
    }
}

/// Whether a command whose request may already have reached the server is retried.
pub type brisk_retry_writes = u32;

/// Only read-only commands are retried after their request was written; a write (INCR, LPUSH,
/// XADD, ...) that failed after sending is reported (its message says it may have been applied),
/// never replayed. The default.
pub const BRISK_RETRY_WRITES_SAFE: brisk_retry_writes = 0;
/// Every command is retried (at-least-once, what most clients do).
pub const BRISK_RETRY_WRITES_ALWAYS: brisk_retry_writes = 1;

/// Sets the write-retry mode. Failures before the request was written are retried in both
/// modes. INVALID_ARGUMENT for an unknown mode.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_retry_writes(
    cfg: *mut brisk_config,
    mode: brisk_retry_writes,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.retry.writes = match mode {
                BRISK_RETRY_WRITES_SAFE => RetryWrites::Safe,
                BRISK_RETRY_WRITES_ALWAYS => RetryWrites::Always,
                other => {
                    return Err(Error::invalid_argument(format!(
                        "mode: unknown brisk_retry_writes value {other}"
                    )));
                }
            };
            Ok(())
        })
    }
}

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
        update(cfg, |c| {
            c.events = HandlerSlot(r#fn.map(|f| handler(f, userdata)));
            Ok(())
        })
    }
}

/// The topology a client talks to.
pub type brisk_mode = u32;

/// One server (the default): `brisk_config_set_address`, `set_unix_path` or a `redis://` URL.
pub const BRISK_MODE_STANDALONE: brisk_mode = 0;
/// Redis Cluster: seed nodes from `brisk_config_add_node` (or a `redis+cluster://` URL); the
/// client reads the topology from them and routes each command to the node owning its keys.
pub const BRISK_MODE_CLUSTER: brisk_mode = 1;
/// Sentinel (not available yet: `brisk_client_new` refuses it with INVALID_ARGUMENT).
pub const BRISK_MODE_SENTINEL: brisk_mode = 2;

/// Sets the topology. CLUSTER and SENTINEL need at least one node from `brisk_config_add_node`
/// (checked by `brisk_client_new`). INVALID_ARGUMENT for an unknown mode.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_mode(
    cfg: *mut brisk_config,
    mode: brisk_mode,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.set_mode(match mode {
                BRISK_MODE_STANDALONE => Mode::Standalone,
                BRISK_MODE_CLUSTER => Mode::Cluster,
                BRISK_MODE_SENTINEL => Mode::Sentinel,
                other => {
                    return Err(Error::invalid_argument(format!(
                        "mode: unknown brisk_mode value {other}"
                    )));
                }
            });
            Ok(())
        })
    }
}

/// Adds a seed node (cluster or Sentinel mode); adding one twice keeps one. Seeds are never
/// forgotten: when every node the client learnt about fails, it goes back to them (names
/// resolved again). INVALID_ARGUMENT for an empty host or port 0.
///
/// # Safety
/// `cfg` is NULL or a live config; `host` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_add_node(
    cfg: *mut brisk_config,
    host: *const c_char,
    port: u16,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.add_node(try_str(host, "host")?, port)) }
}

/// Cluster mode: how many whole-cluster attempts a command gets (default 3). After a
/// CONNECTION, TIMEOUT or CLUSTER_DOWN error the failed node is dropped from the startup
/// nodes, the topology is re-read from the others and the command starts a new cycle of
/// per-node retries (the per-node `retry` defaults to none in cluster mode). 0 is taken as 1.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_cluster_error_retry_attempts(
    cfg: *mut brisk_config,
    n: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.cluster.error_retry_attempts = n.max(1);
            Ok(())
        })
    }
}

/// Cluster mode: how often the topology is re-read in the background (default 60000 ms; 0
/// turns the periodic refresh off; redirections and failures still trigger refreshes).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_cluster_refresh_interval_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.cluster.refresh_interval_ms = ms;
            Ok(())
        })
    }
}

/// Which cluster nodes serve read-only commands.
pub type brisk_read_from = u32;

/// The slot's primary only (the default).
pub const BRISK_READ_PRIMARY: brisk_read_from = 0;
/// A replica of the slot's shard (connections send READONLY), falling back to the primary when
/// no replica answers. Replication is asynchronous: a read may miss a write just acknowledged.
pub const BRISK_READ_REPLICA_PREFERRED: brisk_read_from = 1;
/// Any node of the slot's shard, primary or replica, to spread reads.
pub const BRISK_READ_ANY: brisk_read_from = 2;

/// Cluster mode: where read-only commands go (see `brisk_read_from`). Writes always go to the
/// primary. INVALID_ARGUMENT for an unknown value.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_read_from(
    cfg: *mut brisk_config,
    r#where: brisk_read_from,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.cluster.read_from = match r#where {
                BRISK_READ_PRIMARY => ReadFrom::Primary,
                BRISK_READ_REPLICA_PREFERRED => ReadFrom::ReplicaPreferred,
                BRISK_READ_ANY => ReadFrom::Any,
                other => {
                    return Err(Error::invalid_argument(format!(
                        "where: unknown brisk_read_from value {other}"
                    )));
                }
            };
            Ok(())
        })
    }
}
