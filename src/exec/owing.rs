//! What an async client owes: a count of the callbacks not yet run (a counter, not a lock, on
//! every command's path), which `close` waits to reach zero; and, in runtime dispatch, the
//! application's batch-end hook, called after the callbacks a runtime thread runs in a row.
//!
//! The hook is deferred like the caller-dispatch descriptor's wake-up (`net::signal::batched`):
//! a runtime thread handing out one read's replies calls it once at the end, after all of their
//! callbacks; a callback run outside such a batch (a failure, a timeout, a retry's outcome) is
//! followed by the hook at once. A deferred call counts as owed, so `close` (and with it
//! `brisk_client_free`) returns only after it did: the hook's data may be freed then.

use crate::config::BatchEnd;
use crate::net::signal::{self, Wake};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};

/// The callbacks (and deferred hook calls) a client owes.
#[derive(Default)]
pub(crate) struct Owing {
    pending: AtomicUsize,
    /// Taken only to wait for `pending` to reach zero, and to say it did.
    drained_lock: Mutex<()>,
    /// Closes waiting on `drained`: the last callback wakes them only when there are any (a
    /// condition variable's notify is a system call even when nobody waits).
    closers: AtomicUsize,
    drained: Condvar,
}

impl Owing {
    pub fn begin(&self) {
        self.pending.fetch_add(1, SeqCst);
    }

    pub fn end(&self) {
        // SeqCst on both sides: a `close` that registered after this load sees zero when it
        // checks `pending` next, and does not wait.
        if self.pending.fetch_sub(1, SeqCst) == 1 && self.closers.load(SeqCst) > 0 {
            // Taking the lock orders this with a `close` about to wait: it either sees zero or
            // is waiting when told.
            drop(self.drained_lock.lock().unwrap_or_else(|p| p.into_inner()));
            self.drained.notify_all();
        }
    }

    pub fn is_drained(&self) -> bool {
        self.pending.load(SeqCst) == 0
    }

    /// Waits until nothing is owed.
    pub fn wait_drained(&self) {
        self.closers.fetch_add(1, SeqCst);
        let mut guard = self.drained_lock.lock().unwrap_or_else(|p| p.into_inner());
        while !self.is_drained() {
            guard = self.drained.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
        drop(guard);
        self.closers.fetch_sub(1, SeqCst);
    }
}

/// The application's batch-end hook (runtime dispatch), woken like a queue at the end of the
/// batch its callbacks ran in.
pub(crate) struct BatchEndCall {
    hook: BatchEnd,
    owing: Arc<Owing>,
}

impl BatchEndCall {
    pub fn new(hook: BatchEnd, owing: Arc<Owing>) -> Arc<BatchEndCall> {
        Arc::new(BatchEndCall { hook, owing })
    }

    /// A callback just ran on this thread (and is still owed): the hook runs at the end of the
    /// thread's batch, or now when it is in none.
    pub fn after_callback(self: &Arc<Self>) {
        let id = Arc::as_ptr(self).cast::<()>();
        let deferred = signal::defer(id, || {
            self.owing.begin();
            self.clone()
        });
        if !deferred {
            self.call();
        }
    }

    fn call(&self) {
        // A panic must not cross into the runtime (the C hook cannot unwind; a Rust one may).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.hook)()));
    }
}

impl Wake for BatchEndCall {
    fn wake(&self) {
        self.call();
        self.owing.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn counting() -> (Arc<BatchEndCall>, Arc<AtomicU64>, Arc<Owing>) {
        let calls = Arc::new(AtomicU64::new(0));
        let seen = calls.clone();
        let owing = Arc::new(Owing::default());
        let hook: BatchEnd = Arc::new(move || {
            seen.fetch_add(1, SeqCst);
        });
        (BatchEndCall::new(hook, owing.clone()), calls, owing)
    }

    #[test]
    fn outside_a_batch_the_hook_follows_each_callback() {
        let (call, calls, owing) = counting();
        for n in 1..=3 {
            call.after_callback();
            assert_eq!(calls.load(SeqCst), n);
        }
        assert!(owing.is_drained());
    }

    #[test]
    fn in_a_batch_the_hook_runs_once_at_its_end_and_is_owed_until_then() {
        let (call, calls, owing) = counting();
        signal::batched(|| {
            for _ in 0..5 {
                call.after_callback();
            }
            assert_eq!(calls.load(SeqCst), 0);
            assert!(!owing.is_drained(), "a deferred call is owed");
        });
        assert_eq!(calls.load(SeqCst), 1);
        assert!(owing.is_drained());
    }

    #[test]
    fn a_panicking_hook_is_contained() {
        let owing = Arc::new(Owing::default());
        let hook: BatchEnd = Arc::new(|| panic!("the hook"));
        let call = BatchEndCall::new(hook, owing.clone());
        call.after_callback();
        signal::batched(|| call.after_callback());
        assert!(owing.is_drained());
    }
}
