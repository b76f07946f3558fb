//! TLS: on or off, certificates, the server's name.

use super::{brisk_config, set, update};
use crate::capi::boundary::try_str;
use crate::capi::status::brisk_status;
use std::ffi::c_char;

/// Turns TLS on or off (`rediss://` turns it on).
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_tls(cfg: *mut brisk_config, on: bool) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { set(cfg, |c| c.tls.enabled = on) }
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
    unsafe { set(cfg, |c| c.tls.insecure_skip_verify = skip) }
}
