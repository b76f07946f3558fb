//! The descriptor an event loop waits on: readable while a queue holds something (a
//! subscriber's messages, the async callbacks a client owes in caller dispatch).
//!
//! A non-blocking pipe. The queue raises it (one byte) when it goes from empty to non-empty and
//! lowers it (drains the byte) when it becomes empty, both under the queue's lock, so the pipe
//! holds at most one byte and is readable exactly while the queue holds something.

use crate::core::{Error, Result, Status};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

pub(crate) struct Signal {
    read: OwnedFd,
    write: OwnedFd,
}

impl Signal {
    pub fn new() -> Result<Signal> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::new(
                Status::Internal,
                format!("cannot create a readiness descriptor (pipe): {e}"),
            ));
        }
        // SAFETY: pipe() succeeded: both descriptors are open and ours alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            set_flags(fd.as_raw_fd());
        }
        Ok(Signal { read, write })
    }

    /// The end an event loop polls.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Makes the descriptor readable (the queue went from empty to non-empty).
    pub fn raise(&self) {
        let byte = 1u8;
        // SAFETY: a one-byte write from a local to our own pipe. A full pipe (impossible: it
        // holds at most one byte) would only mean it is readable already.
        let _ = unsafe { libc::write(self.write.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    }

    /// Makes the descriptor unreadable (the queue became empty).
    pub fn lower(&self) {
        let mut buffer = [0u8; 16];
        loop {
            // SAFETY: reads into a local buffer of the given size from our own non-blocking pipe.
            let n = unsafe {
                libc::read(
                    self.read.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if n < buffer.len() as isize {
                // Drained (0 bytes left: EAGAIN) or failed: either way nothing more to read.
                let interrupted = n < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
                if !interrupted {
                    return;
                }
            }
        }
    }
}

/// A queue whose descriptor may be raised at the end of a batch (see [`batched`]) rather than
/// at each item.
pub(crate) trait Wake: Send + Sync {
    /// Raises the descriptor if the queue holds something and it is not raised yet.
    fn wake(&self);
}

thread_local! {
    /// The queues to wake at the end of the batch this thread is in (`None`: not in one).
    static BATCH: RefCell<Option<Vec<Arc<dyn Wake>>>> = const { RefCell::new(None) };
}

/// Runs `work` (the hand-out of one read's replies) as one batch: the queues it fills are woken
/// once at its end, not at their first item, so that an event loop wakes once per read and finds
/// all of its replies waiting.
pub(crate) fn batched<T>(work: impl FnOnce() -> T) -> T {
    struct End(bool);
    impl Drop for End {
        fn drop(&mut self) {
            if self.0 {
                let woken = BATCH
                    .with(|batch| batch.borrow_mut().take())
                    .unwrap_or_default();
                for queue in woken {
                    queue.wake();
                }
            }
        }
    }
    let opened = BATCH.with(|batch| {
        let mut batch = batch.borrow_mut();
        batch.is_none() && batch.replace(Vec::new()).is_none()
    });
    let _end = End(opened);
    work()
}

/// Leaves the wake-up of `queue` (at `id`) to the end of this thread's batch; false when the
/// thread is in none (the caller wakes it now).
pub(crate) fn defer(id: *const (), queue: impl FnOnce() -> Arc<dyn Wake>) -> bool {
    BATCH.with(|batch| match batch.borrow_mut().as_mut() {
        None => false,
        Some(queues) => {
            if !queues.iter().any(|q| std::ptr::addr_eq(Arc::as_ptr(q), id)) {
                queues.push(queue());
            }
            true
        }
    })
}

/// Non-blocking (the queue never waits on the pipe) and close-on-exec (a child process must
/// not inherit it).
fn set_flags(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own, with flags read from it first.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let fd_flags = libc::fcntl(fd, libc::F_GETFD);
        if fd_flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, fd_flags | libc::FD_CLOEXEC);
        }
    }
}

/// Whether `fd` is readable now (tests of the descriptors made here).
#[cfg(test)]
pub(crate) fn readable(fd: RawFd) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n == 1 && poll.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_between_raise_and_lower() {
        let signal = Signal::new().unwrap();
        assert!(!readable(signal.fd()));
        signal.raise();
        assert!(readable(signal.fd()));
        signal.lower();
        assert!(!readable(signal.fd()));
        signal.lower();
        assert!(!readable(signal.fd()));
        signal.raise();
        signal.raise();
        signal.lower();
        assert!(!readable(signal.fd()), "lower drains everything");
    }
}
