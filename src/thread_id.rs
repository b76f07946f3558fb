//! A cheap identity for the calling thread, for spreading threads over the slots of a table
//! (the stats shards, the spare reply blocks of the C API). Platform code, so not in `core`.
//!
//! Not a thread-local variable: in a shared library (libbrisk.so) each access to one is a call
//! into the dynamic loader. `pthread_self()` is a load behind a call through the GOT; on x86-64
//! and AArch64 Linux the thread pointer register gives the same kind of value (the address of
//! the thread's control block, unique among live threads, fixed for a thread's life) in one
//! instruction, with no call that makes the caller save its registers.

/// The calling thread's identity: the address of its control block. Two live threads never
/// share it; a thread's never changes.
#[inline(always)]
pub(crate) fn current() -> usize {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let tp: usize;
        // SAFETY: the x86-64 TLS ABI keeps the thread pointer at %fs:0 (the control block
        // points to itself) for every thread of the process; reading it has no side effects.
        unsafe {
            std::arch::asm!(
                "mov {}, qword ptr fs:[0]",
                out(reg) tp,
                options(nostack, readonly, preserves_flags, pure)
            );
        }
        tp
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    {
        let tp: usize;
        // SAFETY: TPIDR_EL0 is the thread pointer, readable from user space; no side effects.
        unsafe {
            std::arch::asm!(
                "mrs {}, tpidr_el0",
                out(reg) tp,
                options(nomem, nostack, preserves_flags, pure)
            );
        }
        tp
    }
    #[cfg(not(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        target_os = "linux"
    )))]
    {
        // SAFETY: no preconditions.
        unsafe { libc::pthread_self() as usize }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn threads_differ_and_a_thread_keeps_its_own() {
        let mine = super::current();
        assert_eq!(mine, super::current());
        assert_ne!(mine, 0);
        let other = std::thread::spawn(super::current).join().unwrap();
        assert_ne!(mine, other);
    }
}
