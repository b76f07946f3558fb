//! A command's arguments as C passes them (`argc`, `argv`, `argvlen`), checked and viewed as
//! `resp::Args` without copying.

use crate::core::Error;
use crate::resp::Args;
use std::ffi::{CStr, c_char};
use std::mem::MaybeUninit;

/// Lengths measured for arguments passed as NUL-terminated strings (`argvlen` NULL): on the
/// stack for the usual few, on the heap beyond.
pub(crate) struct ArgLengths {
    /// Written before it is read, and only when `argvlen` is NULL: most commands come with
    /// their lengths and should not pay for initialising room they never use.
    inline: [MaybeUninit<usize>; INLINE],
    heap: Vec<usize>,
}

const INLINE: usize = 8;

impl ArgLengths {
    #[inline]
    pub fn new() -> ArgLengths {
        ArgLengths {
            inline: [const { MaybeUninit::uninit() }; INLINE],
            heap: Vec::new(),
        }
    }
}

impl ArgLengths {
    /// Measures `argc` NUL-terminated arguments; a pointer to their lengths, valid while
    /// `self` is.
    ///
    /// # Safety
    /// `argv` must point to `argc` non-null pointers to NUL-terminated strings.
    #[cold]
    unsafe fn measure(&mut self, argv: *const *const c_char, argc: usize) -> *const usize {
        // SAFETY: per the contract.
        let length = |i: usize| unsafe { CStr::from_ptr(*argv.add(i)) }.count_bytes();
        if argc <= INLINE {
            for (i, slot) in self.inline[..argc].iter_mut().enumerate() {
                slot.write(length(i));
            }
            // The first `argc` entries were just written.
            self.inline.as_ptr().cast::<usize>()
        } else {
            self.heap.extend((0..argc).map(length));
            self.heap.as_ptr()
        }
    }
}

/// What is wrong with arguments that `command_args` refused (out of line: the path of every
/// command stays small).
///
/// # Safety
/// As [`command_args`].
#[cold]
#[inline(never)]
unsafe fn invalid_args(argc: usize, argv: *const *const c_char) -> Error {
    if argc == 0 {
        return Error::invalid_argument("argc: a command needs at least its name");
    }
    if argv.is_null() {
        return Error::invalid_argument("argv: NULL");
    }
    // SAFETY: argv holds argc pointers per the contract.
    let i = (0..argc).position(|i| unsafe { (*argv.add(i)).is_null() });
    Error::invalid_argument(format!("argv[{}]: NULL", i.unwrap_or_default()))
}

/// Whether `argv` is non-null with `argc` (at least one) non-null entries.
///
/// # Safety
/// A non-null `argv` points to `argc` pointers.
#[inline(always)]
unsafe fn argv_valid(argc: usize, argv: *const *const c_char) -> bool {
    if argc == 0 || argv.is_null() {
        return false;
    }
    // From the last entry down, the count tested at the bottom (argc > 0 here): per entry a
    // load and test, and the decrement whose flags end the loop (an upward loop compares with
    // argc besides, ~4 instructions more per command; a test at the top, 2 more).
    let mut i = argc;
    loop {
        // SAFETY: argv holds argc pointers per the contract, and 0 < i <= argc.
        if unsafe { (*argv.add(i - 1)).is_null() } {
            return false;
        }
        i -= 1;
        if i == 0 {
            return true;
        }
    }
}

/// `argv` non-null with `argc` non-null entries.
///
/// # Safety
/// A non-null `argv` points to `argc` pointers.
#[inline(always)]
unsafe fn check_argv(argc: usize, argv: *const *const c_char) -> Result<(), Error> {
    // SAFETY: per this function's contract.
    if unsafe { argv_valid(argc, argv) } {
        return Ok(());
    }
    // SAFETY: as above.
    Err(unsafe { invalid_args(argc, argv) })
}

/// The arguments when nothing is wrong with them and their lengths are given (`argvlen`), else
/// `None` (no error built): the test of the fast paths, whose bodies then skip
/// [`with_command_args`]'s checks; on `None` they call the full body, which says what is wrong.
///
/// # Safety
/// As [`command_args`].
#[inline(always)]
pub(crate) unsafe fn given_args<'a>(
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
) -> Option<Args<'a>> {
    // SAFETY: per this function's contract.
    if argvlen.is_null() || !unsafe { argv_valid(argc, argv) } {
        return None;
    }
    // SAFETY: every entry checked non-null; `argvlen` holds `argc` lengths.
    Some(unsafe { Args::from_raw(argv.cast(), argvlen, argc) })
}

/// The arguments of a command from C, checked: `argv` non-null with `argc` non-null entries.
/// When `argvlen` is NULL every argument is a NUL-terminated string, measured once into
/// `lengths`.
///
/// # Safety
/// `argv` must point to `argc` pointers, each to `argvlen[i]` readable bytes (or to a NUL-terminated
/// string when `argvlen` is NULL), alive for `'a`.
#[inline(always)]
pub(crate) unsafe fn command_args<'a>(
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
    lengths: &'a mut ArgLengths,
) -> Result<Args<'a>, Error> {
    // SAFETY: per this function's contract.
    unsafe { check_argv(argc, argv) }?;
    let lens = match argvlen.is_null() {
        false => argvlen,
        // SAFETY: per this function's contract, with every entry checked non-null.
        true => unsafe { lengths.measure(argv, argc) },
    };
    // SAFETY: every entry checked non-null; `lens` holds `argc` lengths (the caller's, or
    // measured into `lengths`, which outlives the view).
    Ok(unsafe { Args::from_raw(argv.cast(), lens, argc) })
}

/// Runs `body` with the arguments of a command from C, checked as by [`command_args`]. With
/// their lengths given (`argvlen`, the usual case) nothing is set up around the call; the
/// measuring of NUL-terminated arguments is a path of its own, out of line.
///
/// # Safety
/// As [`command_args`], for the duration of the call.
#[inline(always)]
pub(crate) unsafe fn with_command_args<R>(
    argc: usize,
    argv: *const *const c_char,
    argvlen: *const usize,
    body: impl FnOnce(&Args<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    if argvlen.is_null() {
        // SAFETY: per this function's contract.
        return unsafe { with_measured_args(argc, argv, body) };
    }
    // SAFETY: per this function's contract.
    unsafe { check_argv(argc, argv) }?;
    // SAFETY: every entry checked non-null; `argvlen` holds `argc` lengths.
    body(&unsafe { Args::from_raw(argv.cast(), argvlen, argc) })
}

/// [`with_command_args`] for NUL-terminated arguments.
///
/// # Safety
/// As [`command_args`] with `argvlen` NULL.
#[cold]
#[inline(never)]
unsafe fn with_measured_args<R>(
    argc: usize,
    argv: *const *const c_char,
    body: impl FnOnce(&Args<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut lengths = ArgLengths::new();
    // SAFETY: per this function's contract.
    let args = unsafe { command_args(argc, argv, std::ptr::null(), &mut lengths) }?;
    body(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_args_refuses_a_null_anywhere() {
        let words = [c"SET".as_ptr(), c"k".as_ptr(), c"v".as_ptr()];
        let lens = [3, 1, 1];
        for argc in 1..=3 {
            // SAFETY: `argc` entries of `words`, their lengths in `lens`.
            let args = unsafe { given_args(argc, words.as_ptr(), lens.as_ptr()) };
            assert_eq!(args.map(|a| a.len()), Some(argc));
            for null_at in 0..argc {
                let mut argv = words;
                argv[null_at] = std::ptr::null();
                // SAFETY: as above, one entry NULL (which is checked).
                assert!(unsafe { given_args(argc, argv.as_ptr(), lens.as_ptr()) }.is_none());
            }
        }
        // SAFETY: NULL arrays and a zero count are checked.
        unsafe {
            assert!(given_args(0, words.as_ptr(), lens.as_ptr()).is_none());
            assert!(given_args(3, std::ptr::null(), lens.as_ptr()).is_none());
            assert!(given_args(3, words.as_ptr(), std::ptr::null()).is_none());
        }
    }

    #[test]
    fn nul_terminated_arguments_are_measured_once_on_the_stack_or_the_heap() {
        let words: Vec<std::ffi::CString> = (0..20)
            .map(|i| std::ffi::CString::new(format!("w{i}")).unwrap())
            .collect();
        let argv: Vec<*const c_char> = words.iter().map(|w| w.as_ptr()).collect();
        for argc in [1, 8, 9, 20] {
            let mut lengths = ArgLengths::new();
            // SAFETY: `argc` NUL-terminated strings.
            let args = unsafe { command_args(argc, argv.as_ptr(), std::ptr::null(), &mut lengths) }
                .unwrap();
            let got: Vec<&[u8]> = args.iter().collect();
            let want: Vec<&[u8]> = words[..argc].iter().map(|w| w.as_bytes()).collect();
            assert_eq!(got, want);
        }
        let mut lengths = ArgLengths::new();
        let null: [*const c_char; 1] = [std::ptr::null()];
        // SAFETY: the entry is NULL, which is checked.
        let result = unsafe { command_args(1, null.as_ptr(), std::ptr::null(), &mut lengths) };
        assert_eq!(result.err().unwrap().message(), "argv[0]: NULL");
    }
}
