//! The memory of `brisk_reply` handles, reused: a freed handle's block waits in a small table
//! for the next reply instead of going back to malloc.
//!
//! A program making sync calls gets one handle per command and frees it before the next one,
//! so malloc and free per command (about 150 instructions, the largest cost the C API adds to
//! the Rust API's) become an atomic swap and an atomic compare-exchange. The table has a slot
//! per hash of the thread, each on its own cache line, so threads rarely share one; a block
//! goes to the slot of the thread that frees it, and a full slot hands it to free() as before.
//! At most one block per slot is kept (16 blocks of a reply's size for the whole process).

use crate::resp::Reply;
use std::mem::MaybeUninit;
use std::ptr::null_mut;
use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

type Block = MaybeUninit<Reply>;

const SLOTS: usize = 16;
const _: () = assert!(
    SLOTS.is_power_of_two(),
    "my_slot takes the top bits of a hash"
);

#[repr(align(128))]
struct Slot(AtomicPtr<Block>);

static SPARE: [Slot; SLOTS] = [const { Slot(AtomicPtr::new(null_mut())) }; SLOTS];

/// The calling thread's slot: a thread-local variable would cost a call into the dynamic
/// loader in a shared library (see `thread_id`).
#[inline(always)]
fn my_slot() -> &'static AtomicPtr<Block> {
    let thread = crate::thread_id::current();
    // Fibonacci hashing: thread ids are addresses a fixed stride apart; the top bits of the
    // product spread them over the slots.
    let index = thread.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - SLOTS.ilog2());
    &SPARE[index].0
}

/// Memory for one reply handle, taken before the command runs so that its reply is moved once,
/// straight from where the command returns it into the handle. Dropped unfilled (the command
/// failed), it goes back to the table.
pub(crate) struct ReplyBlock(*mut Block);

impl ReplyBlock {
    #[inline]
    pub(crate) fn take() -> ReplyBlock {
        let mut block = my_slot().swap(null_mut(), Acquire);
        if block.is_null() {
            block = Box::into_raw(Box::<Block>::new_uninit()).cast();
        }
        ReplyBlock(block)
    }

    /// Moves `reply` into the block: the handle, a `Box<Reply>`'s allocation.
    #[inline]
    pub(crate) fn fill(self, reply: Reply) -> *mut Reply {
        let block = std::mem::ManuallyDrop::new(self).0;
        // SAFETY: an unused `Box<Reply>` allocation that only this `ReplyBlock` held (a fresh
        // one, or taken out of the table by the swap).
        unsafe { (*block).write(reply) }
    }
}

impl Drop for ReplyBlock {
    // Out of line: inlined, its slot address and hash constant were kept in two callee-saved
    // registers across the command for this failure path (brisk_command's fast path).
    #[cold]
    #[inline(never)]
    fn drop(&mut self) {
        give_back(self.0);
    }
}

/// Moves `reply` into a handle's block (a spare one when there is one) and returns it.
#[inline]
pub(crate) fn new_reply(reply: Reply) -> *mut Reply {
    ReplyBlock::take().fill(reply)
}

/// Drops the reply behind `ptr` and keeps its block for the next one (or frees it).
///
/// # Safety
/// `ptr` comes from [`new_reply`] or [`ReplyBlock::fill`] (or is a `Box<Reply>`'s) and is not
/// used afterwards.
#[inline]
pub(crate) unsafe fn free_reply(ptr: *mut Reply) {
    // SAFETY: per the contract, a live reply that nobody uses again.
    unsafe { ptr.drop_in_place() };
    give_back(ptr.cast());
}

/// Keeps an unused `Box<Reply>` allocation in the table, or frees it when the slot is taken.
#[inline]
fn give_back(block: *mut Block) {
    if my_slot()
        .compare_exchange(null_mut(), block, Release, Relaxed)
        .is_err()
    {
        // SAFETY: a `Box<Reply>` allocation holding no reply.
        drop(unsafe { Box::from_raw(block) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::ReplyKind;

    #[test]
    fn a_freed_block_is_reused_and_replies_stay_intact() {
        let first = new_reply(Reply::text(ReplyKind::String, b"one"));
        // SAFETY: from new_reply, not used again.
        unsafe { free_reply(first) };
        let second = new_reply(Reply::text(ReplyKind::String, b"two"));
        // Another test's thread may have hashed to the same slot and taken the block: the
        // reuse is checked only when the block is still there, the contents always.
        let third = new_reply(Reply::scalar(ReplyKind::Integer, 7));
        // SAFETY: live replies from new_reply.
        unsafe {
            assert_eq!((*second).as_bytes(), Some(&b"two"[..]));
            assert_eq!((*third).as_integer(), Some(7));
            assert_ne!(second, third);
            free_reply(second);
            free_reply(third);
        }
    }

    #[test]
    fn replies_made_and_freed_on_many_threads_keep_their_contents() {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2_000u64 {
                        let text = format!("{t}:{i}");
                        let r = new_reply(Reply::text(ReplyKind::String, text.as_bytes()));
                        // SAFETY: a live reply from new_reply, freed once.
                        unsafe {
                            assert_eq!((*r).as_bytes(), Some(text.as_bytes()));
                            free_reply(r);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
