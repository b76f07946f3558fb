//! A lock for data read far more often than written (the cache's entries): readers never
//! write a cache line another reader writes, so hits on different cores do not slow each
//! other down, as they would taking one `RwLock` (whose read side still writes the lock's
//! word, which then bounces between cores).
//!
//! Each reader announces itself in a slot of its own (threads are spread over the slots
//! round-robin, the first time they read); a writer raises a flag, waits until every slot is
//! empty, writes, and lowers the flag. A reader that finds the flag raised steps back out of
//! its slot and waits for it to go down. The announcement and the flag check are sequentially
//! consistent on both sides (a reader's slot increment before its flag load, a writer's flag
//! store before its slot loads), so either the reader sees the flag or the writer sees the
//! reader: never neither.
//!
//! Writers are rare here (fills, invalidations, evictions, all already serialised by the
//! cache's index mutex) and short; a writer that meets another spins.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};

/// Reader slots: threads beyond this share slots (still correct, just contended).
const SLOTS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicUsize);

pub(crate) struct ReadMostly<T> {
    slots: Box<[Slot]>,
    writer: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only read while the reader is announced in a slot and no writer holds the
// flag, and only written while the writer holds the flag and no reader is announced (see the
// module documentation); `T` itself crosses threads, hence the bounds.
unsafe impl<T: Send + Sync> Sync for ReadMostly<T> {}
unsafe impl<T: Send> Send for ReadMostly<T> {}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn my_slot() -> usize {
    MY_SLOT.with(|slot| {
        let mut index = slot.get();
        if index == usize::MAX {
            index = NEXT_SLOT.fetch_add(1, Relaxed) % SLOTS;
            slot.set(index);
        }
        index
    })
}

/// Spins politely, yielding the core once it has spun a while.
fn pause(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

impl<T> ReadMostly<T> {
    pub fn new(value: T) -> ReadMostly<T> {
        ReadMostly {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            writer: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value, alongside any other readers.
    #[inline]
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let slot = &self.slots[my_slot()].0;
        let mut spins = 0;
        loop {
            slot.fetch_add(1, SeqCst);
            if !self.writer.load(SeqCst) {
                break;
            }
            slot.fetch_sub(1, Release);
            while self.writer.load(Relaxed) {
                pause(&mut spins);
            }
        }
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Release);
            }
        }
        let _leave = Leave(slot);
        // SAFETY: announced in a slot with no writer's flag raised: no writer runs until this
        // reader leaves (see the module documentation).
        f(unsafe { &*self.value.get() })
    }

    /// Runs `f` on the value alone.
    pub fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut spins = 0;
        while self
            .writer
            .compare_exchange(false, true, SeqCst, Relaxed)
            .is_err()
        {
            pause(&mut spins);
        }
        for slot in self.slots.iter() {
            while slot.0.load(SeqCst) != 0 {
                pause(&mut spins);
            }
        }
        struct Lower<'a>(&'a AtomicBool);
        impl Drop for Lower<'_> {
            fn drop(&mut self) {
                self.0.store(false, Release);
            }
        }
        let _lower = Lower(&self.writer);
        // SAFETY: the flag is ours and every reader has left: nobody else reads or writes.
        f(unsafe { &mut *self.value.get() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Writers keep two counters equal under the lock; readers must never see them apart. The
    /// writer goes on until the readers have read often enough to have met it (on a busy machine
    /// they may not have run at all during its first 20,000 writes), within a deadline.
    #[test]
    fn readers_never_see_a_write_half_done() {
        use std::sync::atomic::AtomicU64;
        use std::time::{Duration, Instant};
        const MIN_WRITES: u64 = 20_000;
        const MIN_READS: u64 = 20_000;
        let lock = Arc::new(ReadMostly::new((0u64, 0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (lock, stop, reads) = (lock.clone(), stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    while !stop.load(Relaxed) {
                        lock.read(|&(a, b)| assert_eq!(a, b));
                        reads.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut writes = 0u64;
        while writes < MIN_WRITES || reads.load(Relaxed) < MIN_READS {
            assert!(
                Instant::now() < deadline,
                "readers made {} reads in 60 s",
                reads.load(Relaxed)
            );
            lock.write(|(a, b)| {
                *a += 1;
                std::hint::black_box(&*a);
                *b += 1;
            });
            writes += 1;
        }
        stop.store(true, Relaxed);
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(lock.read(|&(a, _)| a), writes);
    }
}
