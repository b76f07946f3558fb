//! `brisk_reply`: read-only access to a reply tree.

#![allow(non_camel_case_types)]

use super::boundary::{Handle, clear_last_error, guard_cleared, guard_value};
use super::reply_memory::{ReplyBlock, free_reply, new_reply};
use super::status::brisk_status;
use crate::core::Error;
use crate::resp::{Node, Reply, ReplyKind};
use std::ffi::c_char;

/// A reply from the server: a tree of values.
///
/// A top-level reply (from `brisk_command()`, `brisk_pipeline_exec()`, ...) is owned by the
/// caller and freed (exactly once) with `brisk_reply_free()`. Elements returned by
/// `brisk_reply_element()` are borrowed: they live as long as their top-level reply and are
/// never freed on their own. Replies are immutable; any thread may read them. Strings are not
/// copied out of the network buffer: they stay valid until the top-level reply is freed.
pub struct brisk_reply {
    _private: [u8; 0],
}

// SAFETY: `brisk_reply` pointers are made by `into_reply_handle` (top-level replies: a
// `Box<Reply>`'s memory, see reply_memory.rs) or point to a `Node` inside one (elements). A
// `Reply` is `repr(C)` with its root `Node` first, so both kinds can be read as a `Node`; only
// top-level ones are ever freed as a `Reply`.
unsafe impl Handle for brisk_reply {
    type Target = Reply;
    const NAME: &'static str = "brisk_reply";
}

/// The type of a reply.
pub type brisk_reply_type = u32;

/// RESP2 null bulk/array, RESP3 null. Also what accessors report for a NULL reply.
pub const BRISK_REPLY_NIL: brisk_reply_type = 0;
/// Bulk string (binary safe).
pub const BRISK_REPLY_STRING: brisk_reply_type = 1;
/// Simple string, such as "OK".
pub const BRISK_REPLY_STATUS: brisk_reply_type = 2;
/// An error reply inside a pipeline or aggregate (a failed command is a failed call instead).
pub const BRISK_REPLY_ERROR: brisk_reply_type = 3;
/// 64-bit signed integer.
pub const BRISK_REPLY_INTEGER: brisk_reply_type = 4;
/// RESP3 double; `brisk_reply_string()` gives the server's text of it.
pub const BRISK_REPLY_DOUBLE: brisk_reply_type = 5;
/// RESP3 boolean; `brisk_reply_integer()` gives 0 or 1.
pub const BRISK_REPLY_BOOL: brisk_reply_type = 6;
/// RESP3 big number, as its decimal text.
pub const BRISK_REPLY_BIGNUM: brisk_reply_type = 7;
/// RESP3 verbatim string: the text without its format prefix (see `brisk_reply_verbatim_format()`).
pub const BRISK_REPLY_VERBATIM: brisk_reply_type = 8;
/// Array of elements.
pub const BRISK_REPLY_ARRAY: brisk_reply_type = 9;
/// RESP3 map: elements alternate key, value.
pub const BRISK_REPLY_MAP: brisk_reply_type = 10;
/// RESP3 set.
pub const BRISK_REPLY_SET: brisk_reply_type = 11;
/// RESP3 push (out-of-band data; only seen through Pub/Sub and caching APIs).
pub const BRISK_REPLY_PUSH: brisk_reply_type = 12;

/// Hands a reply to C through `out` (or drops it when `out` is NULL): the shared shape of every
/// function that returns a reply.
///
/// # Safety
/// `out` is NULL or valid for writing a pointer.
pub(crate) unsafe fn reply_handle(
    out: *mut *mut brisk_reply,
    body: impl FnOnce() -> Result<Reply, Error>,
) -> brisk_status {
    clear_last_error();
    // SAFETY: per this function's contract.
    unsafe { reply_handle_cleared(out, body) }
}

/// [`reply_handle`] after the last error is cleared (or found absent, `no_last_error`): the
/// fast paths' call.
///
/// # Safety
/// As [`reply_handle`].
#[inline(always)]
pub(crate) unsafe fn reply_handle_cleared(
    out: *mut *mut brisk_reply,
    body: impl FnOnce() -> Result<Reply, Error>,
) -> brisk_status {
    if !out.is_null() {
        // SAFETY: valid for writes per the contract.
        unsafe { *out = std::ptr::null_mut() };
    }
    guard_cleared(|| {
        // The handle's memory first: the reply then moves once, straight from the result into
        // it (matched here rather than with `?`, which made the compiler copy it through one
        // more temporary: ~12 instructions per command).
        let block = (!out.is_null()).then(ReplyBlock::take);
        let result = body();
        let Some(block) = block else {
            return result.map(drop);
        };
        match result {
            Ok(reply) => {
                // SAFETY: as above (`block` is only taken when `out` is non-null).
                unsafe { *out = block.fill(reply).cast() };
                Ok(())
            }
            Err(e) => Err(e),
        }
    })
}

/// A top-level reply as the handle C holds; `brisk_reply_free()` frees it.
#[inline]
pub(crate) fn into_reply_handle(reply: Reply) -> *mut brisk_reply {
    new_reply(reply).cast()
}

/// # Safety
/// `r` is NULL, a live top-level reply or an element of one.
unsafe fn node<'a>(r: *const brisk_reply) -> Option<&'a Node> {
    // SAFETY: see the `Handle` impl: every brisk_reply pointer can be read as a Node.
    unsafe { r.cast::<Node>().as_ref() }
}

/// The type of `r`; `BRISK_REPLY_NIL` for NULL.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_type_of(r: *const brisk_reply) -> brisk_reply_type {
    // SAFETY: per this function's contract.
    guard_value(BRISK_REPLY_NIL, || {
        unsafe { node(r) }.map_or(BRISK_REPLY_NIL, |n| n.kind() as u32)
    })
}

/// The bytes of a STRING, STATUS, ERROR, VERBATIM, BIGNUM or DOUBLE reply, NUL-terminated for
/// convenience but possibly containing NULs (use `*len`). NULL for other types and for a NULL
/// reply. `len` may be NULL; it is set to 0 when the result is NULL. The bytes belong to the
/// top-level reply.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_string(
    r: *const brisk_reply,
    len: *mut usize,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: per this function's contract.
        let (ptr, n) = match unsafe { node(r) } {
            Some(n) => n.text_parts(),
            None => (std::ptr::null(), 0),
        };
        if !len.is_null() {
            // SAFETY: writable per the contract.
            unsafe { *len = n };
        }
        ptr.cast()
    })
}

/// The value of an INTEGER reply, or 0/1 for BOOL; 0 for anything else.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_integer(r: *const brisk_reply) -> i64 {
    // SAFETY: per this function's contract.
    guard_value(0, || {
        unsafe { node(r) }.and_then(Node::as_integer).unwrap_or(0)
    })
}

/// The value of a DOUBLE reply (inf, -inf and nan included); 0.0 for anything else.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_double(r: *const brisk_reply) -> f64 {
    // SAFETY: per this function's contract.
    guard_value(0.0, || {
        unsafe { node(r) }.and_then(Node::as_double).unwrap_or(0.0)
    })
}

/// The number of elements of an ARRAY, SET or PUSH; for a MAP, 2 x its pairs (keys and values
/// alternate). 0 for other types.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_length(r: *const brisk_reply) -> usize {
    // SAFETY: per this function's contract.
    guard_value(0, || unsafe { node(r) }.map_or(0, |n| n.children().len()))
}

/// Element `index` of an aggregate, borrowed from it (never free it); NULL when out of range or
/// not an aggregate.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_element(
    r: *const brisk_reply,
    index: usize,
) -> *const brisk_reply {
    guard_value(std::ptr::null(), || {
        // SAFETY: per this function's contract.
        match unsafe { node(r) }.and_then(|n| n.children().get(index)) {
            Some(child) => (child as *const Node).cast(),
            None => std::ptr::null(),
        }
    })
}

/// One element of an aggregate as `brisk_reply_elements()` describes it: what the one-value
/// accessors would say about it, read for many elements in one call. The pointers are borrowed
/// from the top-level reply, like `brisk_reply_element()`'s.
#[repr(C)]
pub struct brisk_reply_item {
    /// The element's type (`brisk_reply_type_of()`).
    pub kind: brisk_reply_type,
    /// The text of a STRING, STATUS, ERROR, VERBATIM, BIGNUM or DOUBLE element
    /// (`brisk_reply_string()`: NUL-terminated, possibly containing NULs); NULL otherwise.
    pub str: *const c_char,
    /// The text's length in bytes; for an ARRAY, MAP, SET or PUSH its number of elements (a
    /// MAP's keys and values both counted, as `brisk_reply_length()`); 0 otherwise.
    pub len: usize,
    /// An INTEGER's value, a BOOL's 0 or 1; 0 otherwise.
    pub integer: i64,
    /// A DOUBLE's value; 0.0 otherwise.
    pub number: f64,
    /// The element itself: pass it to `brisk_reply_elements()` to read an aggregate's elements,
    /// or to any accessor. Borrowed; never freed on its own.
    pub reply: *const brisk_reply,
}

impl brisk_reply_item {
    /// Writes the item of `n` to `out`: its fields read in one go (`Node::item_parts`, no
    /// branch per field); only a DOUBLE's value is parsed, out of line, and written over the
    /// 0.0 the item is written with (a constant store instead of a register merged from both
    /// paths).
    ///
    /// # Safety
    /// `out` is valid for writing an item.
    #[inline(always)]
    unsafe fn write(out: *mut brisk_reply_item, n: &Node) {
        let (kind, str, len, integer) = n.item_parts();
        // SAFETY: per this function's contract.
        unsafe {
            out.write(brisk_reply_item {
                kind: kind as u32,
                str: str.cast(),
                len,
                integer,
                number: 0.0,
                reply: (n as *const Node).cast(),
            });
            if kind == ReplyKind::Double {
                (*out).number = double_of(n);
            }
        }
    }
}

/// A DOUBLE's value for its item (parsed from its text: rare, so kept out of the item loop).
#[cold]
#[inline(never)]
fn double_of(n: &Node) -> f64 {
    n.as_double().unwrap_or(0.0)
}

/// Describes elements `start`, `start + 1`, ... of an aggregate into `out`, at most `cap` of
/// them, and returns how many it wrote: `min(cap, length - start)`, or 0 when `start` is past
/// the end, `r` is not an aggregate, or `r` or `out` is NULL. One call per aggregate instead of
/// several per element, which matters to languages whose calls into C are costly (Python's
/// ctypes or cffi, Go's cgo): read a 1,000-element LRANGE into a 1,000-item array at once, or in
/// chunks of `cap` by moving `start`. Thread-safe like every accessor. For an aggregate of
/// strings only, `brisk_reply_strings()` writes less per element.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one; `out` is NULL or points to `cap`
/// writable items.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_elements(
    r: *const brisk_reply,
    start: usize,
    out: *mut brisk_reply_item,
    cap: usize,
) -> usize {
    guard_value(0, || {
        if out.is_null() {
            return 0;
        }
        // SAFETY: per this function's contract.
        let children = unsafe { node(r) }.map_or(&[][..], Node::children);
        let wanted = children.get(start..).unwrap_or_default();
        let n = wanted.len().min(cap);
        for (i, child) in wanted[..n].iter().enumerate() {
            // SAFETY: `out` has room for `cap` items and `i < n <= cap`.
            unsafe { brisk_reply_item::write(out.add(i), child) };
        }
        n
    })
}

/// Reads the strings of elements `start` .. `start + count - 1` of an aggregate in one call:
/// `strs[i]` and `lens[i]` get what `brisk_reply_string()` gives for element `start + i` (NULL
/// and 0 for an element without text). Returns how many elements were read: `count`, or fewer
/// where the aggregate ends; 0 for a NULL reply, a non-aggregate or `start` past the end.
/// `strs` and `lens` may each be NULL (then not written). The strings belong to the top-level
/// reply. For walking a large array (LRANGE, MGET, ...) without two calls per element; for
/// elements of any type, `brisk_reply_elements()`.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one; `strs` and `lens` are NULL or
/// have room for `count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_strings(
    r: *const brisk_reply,
    start: usize,
    count: usize,
    strs: *mut *const c_char,
    lens: *mut usize,
) -> usize {
    guard_value(0, || {
        // SAFETY: per this function's contract.
        let children = unsafe { node(r) }.map_or(&[][..], Node::children);
        let from = children.get(start..).unwrap_or_default();
        let chosen = &from[..count.min(from.len())];
        for (i, child) in chosen.iter().enumerate() {
            let (ptr, len) = child.text_parts();
            // SAFETY: room for `count` entries per the contract, and `i < count`.
            unsafe {
                if !strs.is_null() {
                    *strs.add(i) = ptr.cast();
                }
                if !lens.is_null() {
                    *lens.add(i) = len;
                }
            }
        }
        chosen.len()
    })
}

/// The three-letter format of a VERBATIM reply ("txt", "mkd") as a NUL-terminated string
/// written to `out` (4 bytes); returns false (and writes "") for other types.
///
/// # Safety
/// `r` is NULL, a live top-level reply or an element of one; `out` is NULL or 4 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_verbatim_format(
    r: *const brisk_reply,
    out: *mut c_char,
) -> bool {
    guard_value(false, || {
        if out.is_null() {
            return false;
        }
        // SAFETY: per this function's contract.
        let format = unsafe { node(r) }.and_then(Node::verbatim_format);
        let bytes = format.unwrap_or([0; 3]);
        // SAFETY: 4 writable bytes per the contract.
        unsafe {
            for (i, b) in bytes.iter().chain(&[0]).enumerate() {
                *out.add(i) = *b as c_char;
            }
        }
        format.is_some()
    })
}

/// Frees a top-level reply and everything in it. NULL is a no-op. Never pass an element.
///
/// # Safety
/// `r` is NULL or a top-level reply not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_reply_free(r: *mut brisk_reply) {
    // SAFETY: per this function's contract.
    guard_value((), || {
        if !r.is_null() {
            // SAFETY: per this function's contract, a top-level reply, made by
            // `into_reply_handle`.
            unsafe { free_reply(r.cast::<<brisk_reply as Handle>::Target>()) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_type_numbers_match_the_rust_kinds() {
        let pairs = [
            (BRISK_REPLY_NIL, ReplyKind::Nil),
            (BRISK_REPLY_STRING, ReplyKind::String),
            (BRISK_REPLY_STATUS, ReplyKind::Status),
            (BRISK_REPLY_ERROR, ReplyKind::Error),
            (BRISK_REPLY_INTEGER, ReplyKind::Integer),
            (BRISK_REPLY_DOUBLE, ReplyKind::Double),
            (BRISK_REPLY_BOOL, ReplyKind::Bool),
            (BRISK_REPLY_BIGNUM, ReplyKind::BigNumber),
            (BRISK_REPLY_VERBATIM, ReplyKind::Verbatim),
            (BRISK_REPLY_ARRAY, ReplyKind::Array),
            (BRISK_REPLY_MAP, ReplyKind::Map),
            (BRISK_REPLY_SET, ReplyKind::Set),
            (BRISK_REPLY_PUSH, ReplyKind::Push),
        ];
        for (c, kind) in pairs {
            assert_eq!(c, kind as u32);
        }
    }
}
