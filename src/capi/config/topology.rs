//! Which servers: mode, seed nodes, cluster settings, where reads go (Sentinel settings too).

use super::{brisk_config, set, update};
use crate::capi::boundary::{try_str, unknown_value};
use crate::capi::status::brisk_status;
use crate::config::{Mode, ReadFrom};
use std::ffi::c_char;

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
                other => return Err(unknown_value("mode", "brisk_mode", other)),
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
    unsafe { set(cfg, |c| c.cluster.error_retry_attempts = n.max(1)) }
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
    unsafe { set(cfg, |c| c.cluster.refresh_interval_ms = ms) }
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
                other => return Err(unknown_value("where", "brisk_read_from", other)),
            };
            Ok(())
        })
    }
}
