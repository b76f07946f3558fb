//! `brisk_commandf` and its relatives: commands written as hiredis-style formats.
//!
//! C variadic functions cannot be defined in stable Rust, so they are defined in C
//! (`commandf.c`, compiled by build.rs), which hands the caller's arguments as a `va_list *` to
//! [`run_format`] here. The format is parsed by `core::format`, the one parser (unit tests
//! there, fuzz target `command_format`); the values are taken one per conversion through the C
//! helpers `brisk_shim_arg_string` / `brisk_shim_arg_binary`, only after the whole format was
//! found valid.
//!
//! The public names must be exported from libbrisk.so, and rustc exports only what Rust
//! defines: a symbol from a C object stays local to the library. So each public name is a naked
//! Rust function that jumps to its C definition (`brisk_commandf` -> `brisk_shim_commandf`): a
//! jump leaves every register and the stack as the caller set them, so the C function sees the
//! variadic call exactly as it was made. The C side reaches `run_format` through a hidden alias,
//! so nothing else is exported.

use super::boundary::{guard, try_mut, try_ref};
use super::client::brisk_client;
use super::pipeline::brisk_pipeline;
use super::reply::{brisk_reply, reply_handle};
use super::session::brisk_session;
use super::status::brisk_status;
use crate::core::Error;
use crate::core::format::{self, Built, Conversion};
use crate::resp::Args;
use std::ffi::{CStr, c_char, c_void};

unsafe extern "C" {
    fn brisk_shim_commandf();
    fn brisk_shim_vcommandf();
    fn brisk_shim_pipeline_appendf();
    fn brisk_shim_pipeline_vappendf();
    fn brisk_shim_session_commandf();
    fn brisk_shim_session_vcommandf();
    fn brisk_shim_arg_string(ap: *mut c_void) -> *const c_char;
    fn brisk_shim_arg_binary(ap: *mut c_void, len: *mut usize) -> *const c_void;
}

/// Exports `$name`, a jump to the C function `$target` (see the module's documentation). Its
/// declaration in brisk.h comes from `commandf.h`.
macro_rules! jump_to_c {
    ($name:ident => $target:ident) => {
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {}", sym $target);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {}", sym $target);
            #[cfg(target_arch = "riscv64")]
            core::arch::naked_asm!("tail {}", sym $target);
        }
    };
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
compile_error!("brisk_commandf's jump to C is written for x86_64, aarch64 and riscv64 only");

jump_to_c!(brisk_commandf => brisk_shim_commandf);
jump_to_c!(brisk_vcommandf => brisk_shim_vcommandf);
jump_to_c!(brisk_pipeline_appendf => brisk_shim_pipeline_appendf);
jump_to_c!(brisk_pipeline_vappendf => brisk_shim_pipeline_vappendf);
jump_to_c!(brisk_session_commandf => brisk_shim_session_commandf);
jump_to_c!(brisk_session_vcommandf => brisk_shim_session_vcommandf);

// `brisk_shim_run_format`, what commandf.c calls: a hidden alias of `run_format`.
core::arch::global_asm!(
    ".globl brisk_shim_run_format",
    ".hidden brisk_shim_run_format",
    ".set brisk_shim_run_format, {run}",
    run = sym run_format,
);

/// What a format's command goes to; the numbers are commandf.c's.
const TARGET_CLIENT: u32 = 0;
const TARGET_PIPELINE: u32 = 1;
const TARGET_SESSION: u32 = 2;

/// Parses `format`, takes its values from `ap` and runs the command on `target`.
///
/// # Safety
/// Called by commandf.c only: `target` is what the public function's first argument is
/// (`kind` says which), `reply` as for that function, `format` NULL or NUL-terminated, `ap` a
/// live `va_list *` holding the values the format names.
unsafe extern "C" fn run_format(
    target: *mut c_void,
    kind: u32,
    reply: *mut *mut brisk_reply,
    format: *const c_char,
    ap: *mut c_void,
) -> brisk_status {
    // SAFETY (all blocks below): per this function's contract.
    match kind {
        TARGET_CLIENT => unsafe {
            reply_handle(reply, || {
                let client = try_ref(target.cast::<brisk_client>(), "client")?;
                let built = take_arguments(format, ap)?;
                client.command(&Args::from_slices(&built.args()))
            })
        },
        TARGET_SESSION => unsafe {
            reply_handle(reply, || {
                let session = try_mut(target.cast::<brisk_session>(), "s")?;
                let built = take_arguments(format, ap)?;
                session.command(&Args::from_slices(&built.args()))
            })
        },
        TARGET_PIPELINE => guard(|| unsafe {
            let pipeline = try_mut(target.cast::<brisk_pipeline>(), "p")?;
            let built = take_arguments(format, ap)?;
            pipeline.append(&Args::from_slices(&built.args()))
        }),
        other => unreachable!("commandf.c passes a known target, not {other}"),
    }
}

/// The command's arguments: `format` checked whole, then one value per conversion from `ap`.
///
/// # Safety
/// `format` is NULL or NUL-terminated; `ap` a live `va_list *` with the format's values.
unsafe fn take_arguments(format: *const c_char, ap: *mut c_void) -> Result<Built, Error> {
    if format.is_null() {
        return Err(Error::invalid_argument("format: NULL"));
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    let parsed = format::parse(unsafe { CStr::from_ptr(format) }.to_bytes())?;
    let mut values = Vec::with_capacity(parsed.conversions().len());
    for (i, conversion) in parsed.conversions().iter().enumerate() {
        let value: &[u8] = match conversion {
            Conversion::String => {
                // SAFETY: the format says the next value is a `const char *`.
                let text = unsafe { brisk_shim_arg_string(ap) };
                if text.is_null() {
                    return Err(Error::invalid_argument(format!(
                        "format: the value of conversion {} (%s) is NULL",
                        i + 1
                    )));
                }
                // SAFETY: a non-null %s value is NUL-terminated per brisk_commandf's contract.
                unsafe { CStr::from_ptr(text) }.to_bytes()
            }
            Conversion::Binary => {
                let mut len = 0usize;
                // SAFETY: the format says the next values are a pointer and a `size_t`.
                let data = unsafe { brisk_shim_arg_binary(ap, &mut len) };
                match (data.is_null(), len) {
                    (_, 0) => &[],
                    (true, _) => {
                        return Err(Error::invalid_argument(format!(
                            "format: the pointer of conversion {} (%b) is NULL with length {len}",
                            i + 1
                        )));
                    }
                    // SAFETY: `len` readable bytes at `data` per brisk_commandf's contract.
                    (false, _) => unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) },
                }
            }
        };
        values.push(value);
    }
    Ok(parsed.build(&values))
}
