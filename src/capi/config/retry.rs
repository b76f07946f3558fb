//! What is retried and how (`capi/retry.rs` is the `brisk_retry` policy handle itself).

use super::{brisk_config, set, update};
use crate::capi::boundary::{try_ref, unknown_value};
use crate::capi::retry::brisk_retry;
use crate::capi::status::brisk_status;
use crate::core::retry::RetryWrites;
use crate::core::{Error, Result, Status};

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
    unsafe { set(cfg, |c| c.retry.on_timeout = on) }
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
                other => return Err(unknown_value("mode", "brisk_retry_writes", other)),
            };
            Ok(())
        })
    }
}
