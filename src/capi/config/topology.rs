//! Which servers: mode, seed nodes, cluster settings, where reads go (Sentinel settings too).

use super::{brisk_config, set, update};
use crate::capi::boundary::{try_optional_str, try_str, unknown_value};
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
/// Redis Sentinel: the nodes from `brisk_config_add_node` (or a `redis+sentinel://` URL) are
/// sentinels, and `brisk_config_set_sentinel_master` names the master they watch. The client
/// asks the sentinels (in order, each within the sentinel timeout; the one whose answer holds
/// moves to the front) where the master is, checks with `ROLE` that the node says it is the
/// master (asking again, a bounded number of times, while they disagree), and
/// sends commands there; it learns the other sentinels from the one that answered. It resolves
/// the master again when a command finds the master gone, when the master answers `READONLY`
/// (it was demoted), and when a sentinel announces `+switch-master` (taken as a hint, checked
/// the same way). On a switch the old master's pooled connections are closed (none is used
/// again), a `BRISK_EVENT_TOPOLOGY` event is emitted and `BRISK_STAT_TOPOLOGY_REFRESHES` counts
/// each resolution. Commands failing during a switch follow the retry rules: each of the
/// `cluster_error_retry_attempts` (default 3) resolves the master again, per-node retries are
/// off unless a retry policy is set, and a write that may have been applied is not replayed
/// (SAFE). Errors: no sentinel reachable is CONNECTION (the message names each sentinel tried
/// and why), sentinels that answer but do not know the name SENTINEL; `brisk_client_new`
/// refuses a Sentinel config without nodes or without a master name (INVALID_ARGUMENT).
/// Async commands, pipelines, transactions and sessions all follow the master.
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
/// Sentinel mode uses the same number: each attempt after a CONNECTION or TIMEOUT error
/// resolves the master again through the sentinels (per-node retries default to none there
/// too).
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
/// turns the periodic refresh off; redirections and failures still trigger refreshes). Sentinel
/// mode: how often the master and its replicas are resolved again through the sentinels (the
/// sentinels' announcements and failures trigger resolutions too).
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

/// Cluster and Sentinel modes: where read-only commands go (see `brisk_read_from`). Writes
/// always go to the primary. In Sentinel mode the replicas are those the sentinels list
/// (`SENTINEL replicas`) that are neither down nor disconnected nor still reporting themselves
/// as master; they are listed again at each resolution. A read on a replica that fails goes to
/// the master (no error), and that replica is left out for 5 s. INVALID_ARGUMENT for an unknown
/// value.
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

/// Sentinel mode: the name the sentinels monitor the master under (`sentinel monitor <name>
/// ...`). Required in Sentinel mode (`brisk_client_new` refuses the config without it).
/// INVALID_ARGUMENT for an empty name or one with spaces or control characters.
///
/// # Safety
/// `cfg` is NULL or a live config; `master_name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_sentinel_master(
    cfg: *mut brisk_config,
    master_name: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            c.set_sentinel_master(try_str(master_name, "master_name")?)
        })
    }
}

/// Sentinel mode: the credentials for the sentinels themselves (an ACL user, or NULL for the
/// `default` user, and its password). Separate from the data nodes' (`brisk_config_set_username`
/// / `set_password`), which are never sent to the sentinels: by default the sentinels get no
/// credentials. A NULL password clears both. The password never appears in any message.
///
/// # Safety
/// `cfg` is NULL or a live config; `username` and `password` are NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_sentinel_auth(
    cfg: *mut brisk_config,
    username: *const c_char,
    password: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            let username = try_optional_str(username, "username")?;
            let password = try_optional_str(password, "password")?;
            c.sentinel.username = username
                .filter(|u| !u.is_empty() && password.is_some())
                .map(str::to_owned);
            c.sentinel.password = password.map(|p| p.to_owned().into());
            Ok(())
        })
    }
}

/// Sentinel mode: how long one question to one sentinel may take, connecting included (default
/// 500 ms; 0: the connect and read timeouts instead), so that a sentinel that is down costs
/// little before the next one is asked. It also bounds connecting to the master for its `ROLE`
/// check during a resolution.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_sentinel_timeout_ms(
    cfg: *mut brisk_config,
    ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.sentinel.timeout_ms = ms) }
}
