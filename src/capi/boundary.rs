//! Plumbing shared by every exported function: casting between C handles and Rust objects,
//! NULL checks, the panic guard, and the thread-local last-error message.
//!
//! Every handle C holds is a `Box` of its Rust object, created by [`into_handle`] and destroyed
//! by [`free_handle`]. The C-visible structs are opaque and never instantiated; the
//! [`Handle`] trait ties each one to the Rust type behind it so no cast is written by hand.

use crate::core::{Error, Status};
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Ties an opaque C type to the Rust type its pointers really point to.
///
/// # Safety
/// Pointers of type `*mut Self` handed to C must only ever be created by [`into_handle`] for
/// `Self::Target` (or point inside such an object where the implementing module says so).
pub(crate) unsafe trait Handle {
    type Target;
    /// The C type's name, for messages ("brisk_config").
    const NAME: &'static str;
}

/// Moves `value` to the heap and returns the pointer C will hold.
pub(crate) fn into_handle<H: Handle>(value: H::Target) -> *mut H {
    Box::into_raw(Box::new(value)).cast()
}

/// Borrows the object behind a handle, or says which argument was NULL.
///
/// # Safety
/// A non-null `ptr` must come from [`into_handle`] and not have been freed.
#[inline]
pub(crate) unsafe fn try_ref<'a, H: Handle>(
    ptr: *const H,
    arg: &str,
) -> Result<&'a H::Target, Error> {
    // SAFETY: per this function's contract.
    unsafe { handle_ref(ptr) }.ok_or_else(|| null_argument(arg, H::NAME))
}

/// The object behind a handle, `None` for NULL (no error built: the fast paths' test).
///
/// # Safety
/// As [`try_ref`].
#[inline(always)]
pub(crate) unsafe fn handle_ref<'a, H: Handle>(ptr: *const H) -> Option<&'a H::Target> {
    // SAFETY: per the contract, a non-null pointer is a live `H::Target`.
    unsafe { ptr.cast::<H::Target>().as_ref() }
}

/// Mutably borrows the object behind a handle, or says which argument was NULL.
///
/// # Safety
/// As [`try_ref`], and no other reference to the object may be live (C promises to use
/// single-threaded handles from one thread at a time).
#[inline]
pub(crate) unsafe fn try_mut<'a, H: Handle>(
    ptr: *mut H,
    arg: &str,
) -> Result<&'a mut H::Target, Error> {
    // SAFETY: per this function's contract.
    unsafe { handle_mut(ptr) }.ok_or_else(|| null_argument(arg, H::NAME))
}

/// The object behind a handle, mutably, `None` for NULL (no error built: the fast paths' test).
///
/// # Safety
/// As [`try_mut`].
#[inline(always)]
pub(crate) unsafe fn handle_mut<'a, H: Handle>(ptr: *mut H) -> Option<&'a mut H::Target> {
    // SAFETY: per the contract.
    unsafe { ptr.cast::<H::Target>().as_mut() }
}

/// Destroys the object behind a handle; NULL is a no-op.
///
/// # Safety
/// A non-null `ptr` must come from [`into_handle`] and is invalid afterwards.
pub(crate) unsafe fn free_handle<H: Handle>(ptr: *mut H) {
    if !ptr.is_null() {
        // SAFETY: per the contract, the pointer owns a boxed `H::Target`.
        drop(unsafe { Box::from_raw(ptr.cast::<H::Target>()) });
    }
}

#[cold]
fn null_argument(arg: &str, type_name: &str) -> Error {
    Error::invalid_argument(format!("{arg}: NULL {type_name} pointer"))
}

/// A C caller's `void *userdata`, carried to its callback on whichever thread runs it and passed
/// back untouched. brisk never reads what it points to: only the pointer value crosses
/// threads. Whether the callback may use it there is the caller's side of each function's
/// contract (its header says on which threads the callback runs).
pub(crate) struct UserData(pub *mut c_void);

// SAFETY: see the type's doc: brisk moves and shares the pointer value only.
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}

/// The error for a number from C that is not one of its type's constants.
pub(crate) fn unknown_value(arg: &str, type_name: &str, value: u32) -> Error {
    Error::invalid_argument(format!("{arg}: unknown {type_name} value {value}"))
}

/// Reads a required C string argument as UTF-8.
///
/// # Safety
/// A non-null `ptr` must point to a NUL-terminated string.
pub(crate) unsafe fn try_str<'a>(ptr: *const c_char, arg: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(Error::invalid_argument(format!("{arg}: NULL string")));
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Error::invalid_argument(format!("{arg}: not valid UTF-8")))
}

/// Reads an optional C string argument as UTF-8: NULL is `None`.
///
/// # Safety
/// As [`try_str`].
pub(crate) unsafe fn try_optional_str<'a>(
    ptr: *const c_char,
    arg: &str,
) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: per this function's contract.
    unsafe { try_str(ptr, arg) }.map(Some)
}

/// A thread's last-error message; a thread that ends holding one gives up its place in
/// [`THREADS_WITH_AN_ERROR`].
struct LastError(RefCell<Option<CString>>);

impl Drop for LastError {
    fn drop(&mut self) {
        if self.0.get_mut().is_some() {
            THREADS_WITH_AN_ERROR.fetch_sub(1, Relaxed);
        }
    }
}

thread_local! {
    static LAST_ERROR: LastError = const { LastError(RefCell::new(None)) };
}

/// How many threads hold a last-error message. Every call clears its thread's message, and a
/// thread-local access is a call into the dynamic loader in a shared library; while no thread
/// holds one (a program whose calls succeed), the clear is this one load instead. A thread
/// always sees its own increment, so it never skips clearing a message of its own.
static THREADS_WITH_AN_ERROR: AtomicUsize = AtomicUsize::new(0);

fn set_last_error(message: &str) {
    // An interior NUL would truncate the C string; show it instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| {
        if slot.0.borrow_mut().replace(text).is_none() {
            THREADS_WITH_AN_ERROR.fetch_add(1, Relaxed);
        }
    });
}

/// True when no thread holds a last-error message, so that clearing this thread's would do
/// nothing: the first test of the fast paths, which then call [`guard_cleared`].
#[inline(always)]
pub(crate) fn no_last_error() -> bool {
    THREADS_WITH_AN_ERROR.load(Relaxed) == 0
}

pub(crate) fn clear_last_error() {
    if no_last_error() {
        return;
    }
    LAST_ERROR.with(|slot| {
        if let Ok(mut slot) = slot.0.try_borrow_mut()
            && slot.take().is_some()
        {
            THREADS_WITH_AN_ERROR.fetch_sub(1, Relaxed);
        }
    });
}

/// The calling thread's last error message, "" when there is none. Valid until the next call
/// that sets or clears it on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|slot| match &*slot.0.borrow() {
        Some(text) => text.as_ptr(),
        None => c"".as_ptr(),
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (a bug in brisk, please report it): {what}")
}

/// Runs the body of a status-returning function: clears the thread's last error, catches
/// panics (INTERNAL), and records the message of a failure.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> u32 {
    clear_last_error();
    guard_cleared(body)
}

/// [`guard`] after the last error is cleared (or found absent, [`no_last_error`]).
#[inline(always)]
pub(crate) fn guard_cleared(body: impl FnOnce() -> Result<(), Error>) -> u32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::Ok as u32,
        Ok(Err(e)) => failed(e),
        Err(payload) => panicked(payload),
    }
}

/// A failed call's message and status, out of line: the successful path of every call stays
/// small (fewer registers to save and restore around it).
#[cold]
#[inline(never)]
fn failed(e: Error) -> u32 {
    set_last_error(e.message());
    e.status() as u32
}

#[cold]
#[inline(never)]
fn panicked(payload: Box<dyn std::any::Any + Send>) -> u32 {
    set_last_error(&panic_message(&*payload));
    Status::Internal as u32
}

/// [`guard`] for functions that return a value through `out`: `*out` is NULL unless the call
/// succeeds. A NULL `out` is INVALID_ARGUMENT.
///
/// # Safety
/// A non-null `out` must be valid for writing one pointer.
pub(crate) unsafe fn guard_out<T>(
    out: *mut *mut T,
    arg: &str,
    body: impl FnOnce() -> Result<*mut T, Error>,
) -> u32 {
    if !out.is_null() {
        // SAFETY: valid for writes per the contract.
        unsafe { *out = std::ptr::null_mut() };
    }
    guard(|| {
        if out.is_null() {
            return Err(Error::invalid_argument(format!("{arg}: NULL out-pointer")));
        }
        let value = body()?;
        // SAFETY: checked non-null above; valid for writes per the contract.
        unsafe { *out = value };
        Ok(())
    })
}

/// Runs the body of a function that cannot report a status (accessors, `*_free`): a panic
/// yields `fallback` instead of unwinding into C.
pub(crate) fn guard_value<R>(fallback: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}
