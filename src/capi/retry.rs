//! `brisk_retry`: a retry policy (backoff kind, base, cap, number of retries).

#![allow(non_camel_case_types)]

use super::boundary::{Handle, free_handle, guard_out, guard_value, into_handle, unknown_value};
use super::status::brisk_status;
use crate::core::Error;
use crate::core::retry::{Backoff, RetryPolicy};

/// A retry policy, given to a config with `brisk_config_set_retry()` (which copies it).
///
/// Created by `brisk_retry_new()`, freed (exactly once) by `brisk_retry_free()`. Immutable after
/// creation, so any thread may read it.
pub struct brisk_retry {
    _private: [u8; 0],
}

// SAFETY: `brisk_retry` pointers are only made by `into_handle::<brisk_retry>`.
unsafe impl Handle for brisk_retry {
    type Target = RetryPolicy;
    const NAME: &'static str = "brisk_retry";
}

/// How the delay between attempts grows.
pub type brisk_backoff = u32;

/// Retry at once.
pub const BRISK_BACKOFF_NONE: brisk_backoff = 0;
/// `base` before every retry.
pub const BRISK_BACKOFF_CONSTANT: brisk_backoff = 1;
/// `min(cap, base * 2^attempt)`.
pub const BRISK_BACKOFF_EXPONENTIAL: brisk_backoff = 2;
/// `uniform(0, min(cap, base * 2^attempt))` (the default kind).
pub const BRISK_BACKOFF_FULL_JITTER: brisk_backoff = 3;
/// `t/2 + uniform(0, t/2)` with `t = min(cap, base * 2^attempt)`.
pub const BRISK_BACKOFF_EQUAL_JITTER: brisk_backoff = 4;
/// `min(cap, uniform(base, previous * 3))`, starting from `previous = base`.
pub const BRISK_BACKOFF_DECORRELATED_JITTER: brisk_backoff = 5;

/// A policy of `retries` retries (after the first attempt) with delays of kind `backoff` from
/// `base_ms`, capped at `cap_ms`. `brisk_retry_new(BRISK_BACKOFF_EXPONENTIAL, 8, 512, 3, &r)`
/// is go-redis's classic policy. INVALID_ARGUMENT for an unknown backoff kind or `cap_ms` below
/// `base_ms`; `*out` is NULL on failure.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_retry_new(
    backoff: brisk_backoff,
    base_ms: u32,
    cap_ms: u32,
    retries: u32,
    out: *mut *mut brisk_retry,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        guard_out(out, "out", || {
            let backoff = Backoff::from_u32(backoff)
                .ok_or_else(|| unknown_value("backoff", "brisk_backoff", backoff))?;
            if cap_ms < base_ms && backoff != Backoff::None {
                return Err(Error::invalid_argument(format!(
                    "cap_ms ({cap_ms}) is below base_ms ({base_ms})"
                )));
            }
            Ok(into_handle(RetryPolicy {
                backoff,
                base_ms,
                cap_ms,
                retries,
            }))
        })
    }
}

/// Frees a policy. NULL is a no-op.
///
/// # Safety
/// `retry` is NULL or a live policy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_retry_free(retry: *mut brisk_retry) {
    // SAFETY: per this function's contract.
    guard_value((), || unsafe { free_handle(retry) })
}

/// The delay in ms before retry number `attempt` (0-based). Exact for NONE, CONSTANT and
/// EXPONENTIAL; a fresh random draw for the jittered kinds, within their bounds (for
/// DECORRELATED_JITTER, which depends on the previous delay, within
/// `[min(base, cap), min(cap, base * 3^(attempt+1))]`). 0 for a NULL policy.
///
/// # Safety
/// `retry` is NULL or a live policy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_retry_backoff_ms(retry: *const brisk_retry, attempt: u32) -> u32 {
    guard_value(0, || {
        // SAFETY: per this function's contract.
        match unsafe { retry.cast::<RetryPolicy>().as_ref() } {
            Some(policy) => policy.delay_without_history_ms(attempt, fastrand::u64(..)),
            None => 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_numbers_match_the_rust_kinds() {
        let pairs = [
            (BRISK_BACKOFF_NONE, Backoff::None),
            (BRISK_BACKOFF_CONSTANT, Backoff::Constant),
            (BRISK_BACKOFF_EXPONENTIAL, Backoff::Exponential),
            (BRISK_BACKOFF_FULL_JITTER, Backoff::FullJitter),
            (BRISK_BACKOFF_EQUAL_JITTER, Backoff::EqualJitter),
            (
                BRISK_BACKOFF_DECORRELATED_JITTER,
                Backoff::DecorrelatedJitter,
            ),
        ];
        for (c, kind) in pairs {
            assert_eq!(Backoff::from_u32(c), Some(kind));
        }
        assert_eq!(Backoff::from_u32(6), None);
    }
}
