//! Statuses, categories, the version and the last-error message.
//!
//! C enums are `typedef uint32_t` with `#define` constants: a number coming from C is then just
//! a number that brisk checks, never a Rust enum with an invalid value.

#![allow(non_camel_case_types)]

use super::boundary::{guard_value, last_error_ptr};
use crate::core::{Category, Status};
use std::ffi::c_char;

/// The outcome of a call. Every function that can fail returns one; only `BRISK_OK` is success.
/// The detail of a failure is in `brisk_last_error_message()` on the same thread.
pub type brisk_status = u32;

/// Success.
pub const BRISK_OK: brisk_status = 0;
/// The caller passed bad input: a NULL pointer, argc == 0, an unknown enum value, a malformed
/// URL. The message names the argument.
pub const BRISK_ERR_INVALID_ARGUMENT: brisk_status = 1;
/// Connection refused, reset or closed, DNS failure, or the connection lost mid-command.
pub const BRISK_ERR_CONNECTION: brisk_status = 2;
/// A connect, read or write timeout.
pub const BRISK_ERR_TIMEOUT: brisk_status = 3;
/// WRONGPASS, NOAUTH, NOPERM and other ACL denials.
pub const BRISK_ERR_AUTH: brisk_status = 4;
/// Any other error reply (ERR, WRONGTYPE, ...); the message is the server's text.
pub const BRISK_ERR_SERVER: brisk_status = 5;
/// LOADING: the server is loading its dataset.
pub const BRISK_ERR_BUSY_LOADING: brisk_status = 6;
/// CLUSTERDOWN (and TRYAGAIN once retries are spent).
pub const BRISK_ERR_CLUSTER_DOWN: brisk_status = 7;
/// READONLY: a write reached a replica (for example right after a failover).
pub const BRISK_ERR_READONLY: brisk_status = 8;
/// A transaction was aborted because a WATCHed key changed (EXEC returned nil).
pub const BRISK_ERR_WATCH: brisk_status = 9;
/// No pooled connection became free within the pool's max wait.
pub const BRISK_ERR_POOL_EXHAUSTED: brisk_status = 10;
/// The peer sent bytes that are not valid RESP (or exceed brisk's safety limits).
pub const BRISK_ERR_PROTOCOL: brisk_status = 11;
/// The TLS handshake or certificate verification failed, or TLS files could not be loaded.
pub const BRISK_ERR_TLS: brisk_status = 12;
/// Sentinels answered, but none monitors the master name (no sentinel reachable is CONNECTION).
pub const BRISK_ERR_SENTINEL: brisk_status = 13;
/// The client (or subscriber, or session) was closed.
pub const BRISK_ERR_CLOSED: brisk_status = 14;
/// A bug: a Rust panic was caught at the API boundary. Please report it.
pub const BRISK_ERR_INTERNAL: brisk_status = 15;

/// The families of errors the production guides of redis-py, go-redis and Jedis document.
pub type brisk_category = u32;

/// `BRISK_OK`.
pub const BRISK_CATEGORY_NONE: brisk_category = 0;
/// CONNECTION, TIMEOUT, TLS, BUSY_LOADING, CLUSTER_DOWN.
pub const BRISK_CATEGORY_CONNECTION: brisk_category = 1;
/// AUTH.
pub const BRISK_CATEGORY_ACCESS_CONTROL: brisk_category = 2;
/// SERVER, READONLY, WATCH.
pub const BRISK_CATEGORY_DATA: brisk_category = 3;
/// INVALID_ARGUMENT, POOL_EXHAUSTED, PROTOCOL, SENTINEL, CLOSED, INTERNAL, and unknown statuses.
pub const BRISK_CATEGORY_GENERIC: brisk_category = 4;

/// "MAJOR.MINOR.PATCH" of the library at run time (compare with `BRISK_VERSION`, the header's).
/// Static storage; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn brisk_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// The constant's name for a status, e.g. "BRISK_ERR_TIMEOUT"; "BRISK_ERR_UNKNOWN" for a number
/// that is not a status. Static storage; never free it. Does not touch the last-error message.
#[unsafe(no_mangle)]
pub extern "C" fn brisk_status_name(status: brisk_status) -> *const c_char {
    match STATUS_NAMES.get(status as usize) {
        Some(name) => name.as_ptr().cast(),
        None => c"BRISK_ERR_UNKNOWN".as_ptr(),
    }
}

/// Room for the longest status name and its NUL.
const NAME_CAPACITY: usize = 32;

/// `Status::name` of every status, NUL-terminated, indexed by number like `Status::from_u32`:
/// built at compile time from the one list of names, so `brisk_status_name` hands out static
/// strings without allocating.
static STATUS_NAMES: [[u8; NAME_CAPACITY]; Status::ALL.len()] = nul_terminated_names();

const fn nul_terminated_names() -> [[u8; NAME_CAPACITY]; Status::ALL.len()] {
    let mut table = [[0; NAME_CAPACITY]; Status::ALL.len()];
    let mut i = 0;
    while i < Status::ALL.len() {
        let name = Status::ALL[i].name().as_bytes();
        assert!(
            name.len() < NAME_CAPACITY,
            "a status name outgrew NAME_CAPACITY"
        );
        let mut j = 0;
        while j < name.len() {
            assert!(name[j] != 0, "a status name contains NUL");
            table[i][j] = name[j];
            j += 1;
        }
        i += 1;
    }
    table
}

/// The category of a status (`BRISK_CATEGORY_GENERIC` for an unknown number).
#[unsafe(no_mangle)]
pub extern "C" fn brisk_status_category(status: brisk_status) -> brisk_category {
    match Status::from_u32(status).map(Status::category) {
        Some(Category::None) => BRISK_CATEGORY_NONE,
        Some(Category::Connection) => BRISK_CATEGORY_CONNECTION,
        Some(Category::AccessControl) => BRISK_CATEGORY_ACCESS_CONTROL,
        Some(Category::Data) => BRISK_CATEGORY_DATA,
        Some(_) | None => BRISK_CATEGORY_GENERIC,
    }
}

/// Whether the default retry policy retries this status: CONNECTION, TIMEOUT, BUSY_LOADING,
/// CLUSTER_DOWN and READONLY.
#[unsafe(no_mangle)]
pub extern "C" fn brisk_status_is_retryable(status: brisk_status) -> bool {
    Status::from_u32(status).is_some_and(Status::is_retryable)
}

/// The message of the last failed call on the calling thread, "" when the last call succeeded.
/// Every function that returns a `brisk_status` sets or clears it; accessors, `*_free` and the
/// functions above leave it alone, so it can be read next to `brisk_status_name()`. The string
/// belongs to brisk and stays valid until the next status-returning call on this thread. Server
/// errors carry the server's own text; no message ever contains a password.
#[unsafe(no_mangle)]
pub extern "C" fn brisk_last_error_message() -> *const c_char {
    guard_value(c"".as_ptr(), last_error_ptr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn c_constants_match_the_rust_statuses() {
        let c = [
            BRISK_OK,
            BRISK_ERR_INVALID_ARGUMENT,
            BRISK_ERR_CONNECTION,
            BRISK_ERR_TIMEOUT,
            BRISK_ERR_AUTH,
            BRISK_ERR_SERVER,
            BRISK_ERR_BUSY_LOADING,
            BRISK_ERR_CLUSTER_DOWN,
            BRISK_ERR_READONLY,
            BRISK_ERR_WATCH,
            BRISK_ERR_POOL_EXHAUSTED,
            BRISK_ERR_PROTOCOL,
            BRISK_ERR_TLS,
            BRISK_ERR_SENTINEL,
            BRISK_ERR_CLOSED,
            BRISK_ERR_INTERNAL,
        ];
        for (value, status) in c.iter().zip(Status::ALL) {
            assert_eq!(*value, status as u32);
            // SAFETY: static NUL-terminated names.
            let name = unsafe { CStr::from_ptr(brisk_status_name(*value)) };
            assert_eq!(name.to_str().unwrap(), status.name());
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(brisk_status_name(99)) };
        assert_eq!(unknown.to_str().unwrap(), "BRISK_ERR_UNKNOWN");
        assert_eq!(brisk_status_category(99), BRISK_CATEGORY_GENERIC);
        assert!(!brisk_status_is_retryable(99));
    }
}
