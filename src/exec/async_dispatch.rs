//! Caller dispatch: async callbacks run on the application's thread, not on a runtime thread.
//!
//! A finished async command is queued as it is (its own allocation, the outcome stored in it)
//! instead of running its callback; the application polls a descriptor that is readable while
//! the queue holds something and runs the waiting callbacks in completion order
//! (`Client::async_dispatch`). The descriptor is raised only when the queue goes from empty to
//! non-empty, and a reader queues the replies of one read before it raises it
//! (`signal::batched`), so one read costs one wake-up of the application's loop, not one per
//! command (the runtime dispatch wakes whoever waits for each reply).
//!
//! The queue has no bound of its own: it holds at most the commands in flight, which the
//! application bounds by what it submits.
//!
//! A thread that dispatches is the application's event loop: what it sends to the same client
//! (from the callbacks, or after the dispatch) is held in the connection's outbox and written
//! when the callbacks have run, or at its next dispatch, one write for all of it, as hiredis
//! writes what a loop turn queued at the next turn. The descriptor is readable while something
//! is held, so the loop comes back at once; the reader writes held requests too after its next
//! read or within 100 ms (two ticks), whichever comes first. Without this, the first request
//! sent after a dispatch went out alone on the idle connection and the rest after its reply:
//! two half batches in flight, each costing a read, a write and two wake-ups.

use crate::core::Result;
use crate::net::mux::{Held, LoopReads};
use crate::net::signal::{self, Signal, Wake};
use std::cell::Cell;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

/// A finished async command whose callback is owed: running it calls the callback with the
/// stored outcome and tells the client the callback is paid.
pub(crate) trait Owed: Send {
    fn run(self: Box<Self>);
}

/// The callbacks waiting for the application, and the descriptor that says so.
pub(crate) struct Completions {
    /// Names the client's queue to the threads that dispatch it (`HOLDING`); never reused.
    id: u64,
    queue: Mutex<Queue>,
    /// Taken by the thread running callbacks (one at a time, so they run in completion order);
    /// holds the part of the queue it took and has not run yet.
    batch: Mutex<VecDeque<Box<dyn Owed>>>,
    signal: Signal,
    /// What the application polls: the signal's pipe and the client's plain connections,
    /// which the dispatching thread reads itself (`net::mux::LoopReads`).
    reads: Arc<LoopReads>,
}

struct Queue {
    waiting: VecDeque<Box<dyn Owed>>,
    /// Whether the descriptor is readable (a write to it is a system call: made only on the
    /// edge from nothing waiting to something waiting).
    raised: bool,
    /// Connections with requests held for the next dispatch (see the module's doc).
    held: Vec<Held>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The queue whose callbacks this thread is running (its address), so that a callback that
    /// dispatches the same client gets 0 instead of a deadlock.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
    /// The queue (its `id`) this thread dispatched callbacks of last: its requests to that
    /// client are held for its next dispatch.
    static HOLDING: Cell<u64> = const { Cell::new(0) };
}

impl Completions {
    pub fn new() -> Result<Completions> {
        let signal = Signal::new()?;
        let reads = Arc::new(LoopReads::new(signal.fd()));
        Ok(Completions {
            id: NEXT_ID.fetch_add(1, Relaxed),
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                raised: false,
                held: Vec::new(),
            }),
            batch: Mutex::new(VecDeque::new()),
            signal,
            reads,
        })
    }

    /// Readable while callbacks wait, requests are held, or a connection has bytes to read.
    pub fn fd(&self) -> RawFd {
        self.reads.fd()
    }

    pub fn loop_reads(&self) -> &Arc<LoopReads> {
        &self.reads
    }

    /// Queues a finished command; the descriptor becomes readable if it was not: now, or at
    /// the end of the read this thread is handing out.
    pub fn push(self: &Arc<Self>, owed: Box<dyn Owed>) {
        let mut queue = lock(&self.queue);
        queue.waiting.push_back(owed);
        if queue.raised {
            return;
        }
        drop(queue);
        let id = Arc::as_ptr(self).cast::<()>();
        if !signal::defer(id, || self.clone()) {
            self.wake();
        }
    }

    /// Whether this thread's requests to the client are held for its next dispatch (it
    /// dispatched callbacks of this client last).
    pub fn holds_here(&self) -> bool {
        HOLDING.get() == self.id
    }

    /// Notes a connection whose outbox holds requests this thread sent (`holds_here`): written
    /// at the end of the dispatch running now on this thread, or at the next one, which the
    /// descriptor (readable from now) calls for.
    pub fn hold(&self, lane: Held) {
        let raise = {
            let mut queue = lock(&self.queue);
            if !queue.held.iter().any(|h| h.same(&lane)) {
                queue.held.push(lane);
            }
            let dispatching = RUNNING.get() == self as *const Completions as usize;
            let raise = !queue.raised && !dispatching;
            queue.raised |= raise;
            raise
        };
        if raise {
            self.signal.raise();
        }
    }

    /// Writes the held requests (see `hold`).
    pub fn write_held(&self) {
        let held = std::mem::take(&mut lock(&self.queue).held);
        for lane in &held {
            lane.write();
        }
    }

    /// Runs up to `max` waiting callbacks (0: all those waiting now) on this thread, oldest
    /// first, and returns how many ran. Callbacks queued meanwhile wait for the next call, so a
    /// callback that starts a command whose reply comes at once cannot keep this call going.
    /// Another thread dispatching meanwhile is waited for; a callback dispatching its own client
    /// gets 0.
    pub fn dispatch(&self, max: usize) -> usize {
        let me = self as *const Completions as usize;
        if RUNNING.with(Cell::get) == me {
            return 0;
        }
        let mut batch = lock(&self.batch);
        let _running = Running::enter(me);
        if batch.is_empty() {
            // The replies waiting in the sockets are read here and their callbacks queued,
            // in one batch that raises nothing: they are taken at once, with those queued
            // before. Swapped, not copied: both deques keep their capacity, so nothing is
            // allocated once they have grown to the number of commands in flight. With the
            // pipe raised, what woke the loop may be the pipe alone (requests held for this
            // dispatch, callbacks queued by a runtime thread): then a connection expecting
            // no reply is not read (a system call that would find nothing); should it hold
            // something after all (its end, a push), the descriptor is still readable for it
            // once the pipe is lowered, and the next dispatch, with the pipe down, reads it.
            let pipe_raised = lock(&self.queue).raised;
            signal::batched(|| {
                self.reads.read_ready(pipe_raised);
                std::mem::swap(&mut lock(&self.queue).waiting, &mut *batch);
            });
        }
        // What was held for this dispatch goes out (after the reads: their requests would
        // otherwise count as replies coming).
        self.write_held();
        let count = match max {
            0 => batch.len(),
            max => max.min(batch.len()),
        };
        if count > 0 {
            // This thread is the client's event loop: what it sends to the client from now on
            // (from the callbacks too) is held, and written once the callbacks have run or at
            // its next dispatch.
            HOLDING.set(self.id);
        }
        for _ in 0..count {
            if let Some(owed) = batch.pop_front() {
                owed.run();
            }
        }
        self.write_held();
        let mut queue = lock(&self.queue);
        if batch.is_empty() && queue.waiting.is_empty() && queue.held.is_empty() {
            // Lowered under the lock, so that no byte for a callback queued meanwhile is taken.
            // Also when `raised` is unset but nothing ran: a raise whose `raised` was undone by
            // a dispatch before its byte was written left that byte behind (see `wake`); the
            // wake-up it caused ends here.
            if queue.raised || count == 0 {
                queue.raised = false;
                self.signal.lower();
            }
        } else if !batch.is_empty() && !queue.raised {
            // Left over (`max`) from a batch taken before its wake-up came.
            queue.raised = true;
            drop(queue);
            self.signal.raise();
        }
        count
    }
}

impl Wake for Completions {
    /// The byte is written after the lock is let go: the application's thread, woken by it,
    /// takes the same lock at once to dispatch, and would otherwise sleep on it (a futex wait
    /// and a wake per batch). `raised` set under the lock means no other raise writes a byte;
    /// a dispatch that runs the callbacks before the byte is written leaves that byte behind,
    /// which costs one spurious wake-up (the dispatch that finds nothing lowers it).
    fn wake(&self) {
        let raise = {
            let mut queue = lock(&self.queue);
            let raise = !queue.raised && !queue.waiting.is_empty();
            queue.raised |= raise;
            raise
        };
        if raise {
            self.signal.raise();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks this thread as running a queue's callbacks until dropped (a panic included).
struct Running(usize);

impl Running {
    fn enter(me: usize) -> Running {
        Running(RUNNING.with(|running| running.replace(me)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|running| running.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::signal::readable;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    struct Note(Arc<Mutex<Vec<u32>>>, u32);

    impl Owed for Note {
        fn run(self: Box<Self>) {
            lock(&self.0).push(self.1);
        }
    }

    #[test]
    fn runs_in_order_and_is_readable_exactly_while_callbacks_wait() {
        let completions = Arc::new(Completions::new().unwrap());
        let ran = Arc::new(Mutex::new(Vec::new()));
        assert!(!readable(completions.fd()));
        assert_eq!(completions.dispatch(0), 0);
        for i in 0..5 {
            completions.push(Box::new(Note(ran.clone(), i)));
        }
        assert!(readable(completions.fd()));
        assert_eq!(completions.dispatch(2), 2);
        assert!(readable(completions.fd()), "3 still wait");
        completions.push(Box::new(Note(ran.clone(), 5)));
        assert_eq!(completions.dispatch(0), 3, "the rest of the batch taken");
        assert!(readable(completions.fd()), "the one queued meanwhile waits");
        assert_eq!(completions.dispatch(0), 1);
        assert!(!readable(completions.fd()));
        assert_eq!(*lock(&ran), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_byte_left_behind_by_a_late_raise_costs_one_wake_up() {
        let completions = Arc::new(Completions::new().unwrap());
        let ran = Arc::new(Mutex::new(Vec::new()));
        // A raise whose callback was dispatched (and the descriptor lowered) before its byte
        // was written: the byte arrives with nothing waiting.
        completions.push(Box::new(Note(ran.clone(), 0)));
        assert_eq!(completions.dispatch(0), 1);
        completions.signal.raise();
        assert!(readable(completions.fd()));
        assert_eq!(completions.dispatch(0), 0);
        assert!(
            !readable(completions.fd()),
            "the dispatch that found nothing lowered it"
        );
        completions.push(Box::new(Note(ran.clone(), 1)));
        assert!(readable(completions.fd()));
        assert_eq!(completions.dispatch(0), 1);
        assert!(!readable(completions.fd()));
    }

    struct Reenter(Arc<Completions>, Arc<AtomicUsize>);

    impl Owed for Reenter {
        fn run(self: Box<Self>) {
            self.1.store(self.0.dispatch(0) + 100, SeqCst);
        }
    }

    #[test]
    fn a_batch_raises_the_descriptor_once_at_its_end() {
        let completions = Arc::new(Completions::new().unwrap());
        let ran = Arc::new(Mutex::new(Vec::new()));
        signal::batched(|| {
            for i in 0..3 {
                completions.push(Box::new(Note(ran.clone(), i)));
                assert!(!readable(completions.fd()), "not before the batch ends");
            }
        });
        assert!(readable(completions.fd()));
        // A second batch adds to what waits; one dispatch takes it all.
        signal::batched(|| {
            completions.push(Box::new(Note(ran.clone(), 3)));
        });
        assert_eq!(completions.dispatch(0), 4);
        assert!(!readable(completions.fd()));
        signal::batched(|| {
            completions.push(Box::new(Note(ran.clone(), 4)));
            assert_eq!(completions.dispatch(0), 1);
        });
        assert!(!readable(completions.fd()), "nothing waits, nothing raised");
        assert_eq!(*lock(&ran), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_callback_dispatching_its_own_queue_gets_zero() {
        let completions = Arc::new(Completions::new().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        completions.push(Box::new(Reenter(completions.clone(), seen.clone())));
        completions.push(Box::new(Note(Arc::default(), 0)));
        assert_eq!(completions.dispatch(1), 1);
        assert_eq!(seen.load(SeqCst), 100);
        assert_eq!(
            completions.dispatch(0),
            1,
            "usable again after the callback"
        );
    }
}
