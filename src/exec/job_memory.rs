//! The memory of async jobs, reused per thread: a finished job's allocation waits on the thread
//! that finished it for the next job that thread starts, instead of going back to malloc.
//!
//! An application keeping N commands in flight frees N jobs in a row (a dispatch runs a read's
//! callbacks) and then allocates N in a row (it tops up). glibc's per-thread cache keeps only 7
//! blocks of a size, so most of those went through malloc's and free's slow paths: about 380
//! instructions per command, the largest single cost of the caller-dispatch loop. Here they are
//! a thread-local push and pop. Used with caller dispatch only, where the thread that runs the
//! callbacks is the one that sends, so a job's memory is freed and reused on the thread that
//! made it. (With runtime dispatch a runtime thread finishes the jobs other threads start: the
//! blocks it kept would never be taken, and every job would pay for the look.)
//!
//! At most [`KEPT`] blocks of one layout per thread: a program starts jobs of one type (the C
//! API's) or a few (Rust closures); a block of another layout goes back to the allocator. A
//! thread's blocks are freed when it ends. Every block comes from the global allocator with its
//! type's layout, so a job dropped anywhere else (a failure path) is an ordinary `Box` drop.

use std::alloc::Layout;
use std::cell::RefCell;
use std::ptr::NonNull;

/// Blocks kept per thread: a window of commands in flight (at most `KEPT` x the job's size per
/// thread that finished jobs: 22 KB for the C API's 344-byte jobs).
const KEPT: usize = 64;

struct Spares {
    layout: Layout,
    blocks: Vec<NonNull<u8>>,
}

impl Drop for Spares {
    fn drop(&mut self) {
        for block in self.blocks.drain(..) {
            // SAFETY: every kept block was allocated by the global allocator with `layout`
            // (`Box<T>` of that layout) and holds no value any more.
            unsafe { std::alloc::dealloc(block.as_ptr(), self.layout) };
        }
    }
}

thread_local! {
    static SPARES: RefCell<Spares> = const {
        RefCell::new(Spares {
            layout: Layout::new::<()>(),
            blocks: Vec::new(),
        })
    };
}

/// `Box::new(value)`, in a block this thread kept if it has one of `T`'s layout.
#[inline(always)]
pub(crate) fn boxed<T>(value: T) -> Box<T> {
    let layout = Layout::new::<T>();
    let spare = SPARES
        .try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.layout == layout {
                spares.blocks.pop()
            } else {
                None
            }
        })
        .ok()
        .flatten();
    match spare {
        Some(block) => {
            let raw = block.as_ptr().cast::<T>();
            // SAFETY: a block of `T`'s layout from the global allocator (see `unboxed`), holding
            // no value and owned by nobody else: writing `value` and boxing it is what
            // `Box::new` does with a fresh one.
            unsafe {
                raw.write(value);
                Box::from_raw(raw)
            }
        }
        None => Box::new(value),
    }
}

/// `*boxed`: moves the value out and keeps its block on this thread for the next [`boxed`] of
/// the same layout (frees it when the thread keeps enough already).
#[inline(always)]
pub(crate) fn unboxed<T>(boxed: Box<T>) -> T {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return *boxed;
    }
    let raw = Box::into_raw(boxed);
    // SAFETY: `raw` came from a live `Box<T>`: the value is moved out once, and the block is
    // then either kept (no value in it) or freed with the layout it was allocated with.
    let value = unsafe { raw.read() };
    let block = NonNull::new(raw.cast::<u8>()).expect("a Box is never null");
    let kept = SPARES
        .try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.layout != layout {
                if !spares.blocks.is_empty() {
                    return false;
                }
                spares.layout = layout;
            }
            if spares.blocks.len() >= KEPT {
                return false;
            }
            spares.blocks.push(block);
            true
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: see above; nobody else holds the block.
        unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_given_back_is_the_next_one_taken_on_the_thread() {
        std::thread::spawn(|| {
            let first = boxed([7u64; 8]);
            let address = &*first as *const [u64; 8];
            assert_eq!(unboxed(first), [7u64; 8]);
            let second = boxed([9u64; 8]);
            assert_eq!(&*second as *const [u64; 8], address, "the kept block");
            assert_eq!(*second, [9u64; 8]);
            // Another layout is neither served from nor kept with those blocks.
            let other = boxed(5u32);
            assert_eq!(unboxed(other), 5);
            assert_eq!(unboxed(second), [9u64; 8]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn at_most_kept_blocks_stay_and_values_drop_once() {
        use std::sync::Arc;
        std::thread::spawn(|| {
            let counter = Arc::new(());
            let jobs: Vec<_> = (0..KEPT + 10).map(|_| boxed(counter.clone())).collect();
            assert_eq!(Arc::strong_count(&counter), KEPT + 11);
            for job in jobs {
                drop(unboxed(job));
            }
            assert_eq!(Arc::strong_count(&counter), 1, "every value dropped once");
            SPARES.with(|spares| assert_eq!(spares.borrow().blocks.len(), KEPT));
            // A box dropped the ordinary way frees its block as usual.
            drop(boxed(counter.clone()));
            assert_eq!(Arc::strong_count(&counter), 1);
        })
        .join()
        .unwrap();
    }
}
