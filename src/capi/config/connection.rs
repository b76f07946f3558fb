//! Where and as whom: address, Unix socket, user, password, database, client name, protocol.

use super::{brisk_config, set, update};
use crate::capi::boundary::{try_optional_str, try_str};
use crate::capi::status::brisk_status;
use std::ffi::c_char;

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
            let username = try_optional_str(username, "username")?;
            c.username = username.filter(|u| !u.is_empty()).map(str::to_owned);
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
            c.password = try_optional_str(password, "password")?.map(|p| p.to_owned().into());
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
    unsafe { set(cfg, |c| c.db = db) }
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
        update(cfg, |c| {
            c.set_client_name(try_optional_str(name, "name")?.unwrap_or(""))
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
