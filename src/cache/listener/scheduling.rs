//! Scheduler hints for the `brisk-cache` thread: leases are only as fresh as this thread is
//! prompt, so it asks to be run soon after it wakes.

/// Asks the scheduler to run this thread promptly when it wakes, even when the application's
/// threads keep every core busy: a short slice (0.1 ms) for a normal thread, which Linux 6.12+
/// (EEVDF) lets preempt a running thread with a longer one on wakeup; and precise timers (no
/// slack), since leases are renewed every ~150 µs. No privilege is needed; kernels that do not
/// know a setting ignore or refuse it, which changes nothing but latency.
pub(super) fn ask_for_prompt_wakeups() {
    /// `struct sched_attr` (linux/sched/types.h).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }
    #[cfg(target_os = "linux")]
    {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            sched_policy: libc::SCHED_OTHER as u32,
            sched_flags: 0,
            sched_nice: 0,
            sched_priority: 0,
            sched_runtime: 100_000,
            sched_deadline: 0,
            sched_period: 0,
            sched_util_min: 0,
            sched_util_max: 0,
        };
        // SAFETY: sched_setattr(2) on the calling thread (0) with a valid, fully initialised
        // attribute struct of the size it declares; it only reads it. prctl(2) with an integer
        // argument.
        unsafe {
            libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        }
    }
}
