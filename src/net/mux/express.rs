//! The express lane: on a plain TCP or Unix connection, a request is appended to the
//! connection's outbox by the thread that sends it, and written by that thread too when nobody
//! is writing already, with a non-blocking send. The mux task is woken only when a write would
//! block (it then finishes it) or when the connection needs it (a health check, a reconnect):
//! a caller keeping many commands in flight costs no wake-up of another thread per command.
//!
//! A request sent while replies are coming (other requests in flight), or from a callback on the
//! thread that reads the connection, is only appended: the reader writes everything so appended
//! once it has handed out every reply of the bytes it read (one write per read, not one per
//! command, and no other thread woken). Only a request on an idle connection is written at once
//! by its sender, unless it is sent from a callback the application dispatches (caller
//! dispatch): those are written once, when the dispatch ends (`corked`).
//!
//! Order is the whole point: a request's bytes and its place in the in-flight queue are added
//! under one lock, and the outbox is written by one writer at a time (`Line::writing`), front to
//! back, so replies meet their requests.

use super::Request;
use super::reader::{InFlight, SharedLine, kill, lock};
use crate::net::async_connect::peer_closed;
use crate::net::errors::{closed_by_peer, io_error};
use bytes::BytesMut;
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A connection's express lane, while it is up.
pub(crate) struct Express {
    pub line: SharedLine,
    /// A duplicate of the connection's socket, so that a sender holding the lane writes to this
    /// connection even if the mux lets go of it meanwhile.
    socket: socket2::Socket,
    address: Arc<str>,
    /// Wakes the mux task to finish a write that would block.
    pub handoff: Arc<Notify>,
    /// A connection idle this long is health-checked by the task before it carries a request.
    health_check_interval: Option<Duration>,
}

thread_local! {
    /// The line whose replies this thread is handing out right now (as an address: only
    /// compared), whose requests are written when the reader is done.
    static READING: Cell<usize> = const { Cell::new(0) };
    /// While this thread runs callbacks in a batch (`corked`): the lanes its sends were left
    /// on, written when the batch ends (`None`: not in one).
    static CORK: RefCell<Option<Vec<Arc<Express>>>> = const { RefCell::new(None) };
}

/// Runs `work` (an application's dispatch of queued callbacks) as one batch of sends: a
/// request its callbacks send is only appended to its connection's outbox, and each connection
/// so appended to is written once when `work` ends (one write for all of them, as the reader
/// writes what callbacks send while it hands out replies), instead of the first request on an
/// idle connection being written alone and the rest after its reply. Nested calls join the
/// outer batch.
pub(crate) fn corked<T>(work: impl FnOnce() -> T) -> T {
    struct End(bool);
    impl Drop for End {
        fn drop(&mut self) {
            if self.0 {
                let lanes = CORK
                    .with(|cork| cork.borrow_mut().take())
                    .unwrap_or_default();
                for lane in lanes {
                    lane.flush_wanted();
                }
            }
        }
    }
    let opened = CORK.with(|cork| {
        let mut cork = cork.borrow_mut();
        cork.is_none() && cork.replace(Vec::new()).is_none()
    });
    let _end = End(opened);
    work()
}

/// Leaves the write of `lane` to the end of this thread's batch of sends; false when the
/// thread is in none.
fn cork(lane: &Arc<Express>) -> bool {
    CORK.with(|cork| match cork.borrow_mut().as_mut() {
        None => false,
        Some(lanes) => {
            if !lanes.iter().any(|l| Arc::ptr_eq(l, lane)) {
                lanes.push(lane.clone());
            }
            true
        }
    })
}

impl Express {
    pub fn new(
        line: SharedLine,
        socket: socket2::Socket,
        address: Arc<str>,
        handoff: Arc<Notify>,
        health_check_interval: Option<Duration>,
    ) -> Express {
        Express {
            line,
            socket,
            address,
            handoff,
            health_check_interval,
        }
    }

    /// Sends `request` on this lane; gives it back when it must go through the task (the
    /// connection died or closed, or wants a health check first).
    pub fn send(self: &Arc<Self>, request: Request) -> Result<(), Request> {
        let mut line = lock(&self.line);
        if line.dead.is_some() || line.checking {
            return Err(request);
        }
        let idle = line.queue.is_empty() && !line.writing;
        if idle {
            if self
                .health_check_interval
                .is_some_and(|interval| line.last_write.elapsed() >= interval)
            {
                return Err(request);
            }
            // As the task does before writing to an idle connection: a server that closed it
            // meanwhile is found now, and the request goes, unsent, to a new connection.
            if peer_closed(self.socket.as_raw_fd()) {
                drop(line);
                kill(&self.line, closed_by_peer(&self.address));
                return Err(request);
            }
        }
        let replies_coming = !line.queue.is_empty();
        line.append(request);
        if line.writing {
            // Whoever writes goes on until the outbox is empty.
            return Ok(());
        }
        if replies_coming || READING.get() == line_id(&self.line) {
            // The reader is about to hand out replies (or is doing so on this very thread, a
            // callback sending): it writes everything appended meanwhile once it has, one
            // write for them all, and no other thread need be woken.
            line.flush_wanted = true;
            return Ok(());
        }
        if cork(self) {
            // Sent from a callback the application dispatches: written when its dispatch ends.
            line.flush_wanted = true;
            return Ok(());
        }
        line.writing = true;
        drop(line);
        self.flush();
        Ok(())
    }

    /// Hands out replies with `complete` and then writes what was sent meanwhile (by callbacks
    /// on this thread, or by senders that saw replies coming).
    pub fn reading<T>(&self, complete: impl FnOnce() -> T) -> T {
        READING.set(line_id(&self.line));
        let result = complete();
        READING.set(0);
        self.flush_wanted();
        result
    }

    /// Writes what senders left for the reader, if nobody is writing already. The reader also
    /// calls this on its steady tick, so that requests left behind replies that never come (a
    /// stalled server) still go out.
    pub fn flush_wanted(&self) {
        let mut line = lock(&self.line);
        if std::mem::take(&mut line.flush_wanted) && !line.writing && line.dead.is_none() {
            line.writing = true;
            drop(line);
            self.flush();
        }
    }

    /// Writes the outbox until it is empty (then gives up `writing`), or hands the rest to the
    /// task when the socket would block (which then owns `writing`). The caller took `writing`.
    fn flush(&self) {
        let mut out = BytesMut::new();
        loop {
            {
                let mut line = lock(&self.line);
                if line.outbox.is_empty() || line.dead.is_some() {
                    line.writing = false;
                    if line.outbox.is_empty() {
                        // Keep the allocation for the next appends.
                        out.clear();
                        std::mem::swap(&mut line.outbox, &mut out);
                    }
                    return;
                }
                std::mem::swap(&mut line.outbox, &mut out);
            }
            match send_nonblocking(&self.socket, &out) {
                Ok(written) if written == out.len() => {
                    out.clear();
                    lock(&self.line).last_write = Instant::now();
                }
                Ok(written) => {
                    // The socket is full: the rest goes back in front, and the task, which can
                    // wait for the socket, finishes the write (it owns `writing` now).
                    let rest = out.split_off(written);
                    let mut line = lock(&self.line);
                    let mut front = rest;
                    front.extend_from_slice(&line.outbox);
                    line.outbox = front;
                    drop(line);
                    self.handoff.notify_one();
                    return;
                }
                Err(e) => {
                    kill(&self.line, io_error(&e, "write to", &self.address));
                    lock(&self.line).writing = false;
                    return;
                }
            }
        }
    }
}

/// Writes as much of `bytes` as the socket takes now; how much that was.
fn send_nonblocking(socket: &socket2::Socket, mut bytes: &[u8]) -> io::Result<usize> {
    let total = bytes.len();
    while !bytes.is_empty() {
        match socket.send_with_flags(bytes, SEND_FLAGS) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total - bytes.len())
}

/// Never waits; never raises SIGPIPE (brisk lives in programs that have not ignored it).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

fn line_id(line: &SharedLine) -> usize {
    Arc::as_ptr(line) as usize
}

impl super::reader::Line {
    /// Adds a request: its bytes to the outbox, itself to the in-flight queue, in one step.
    pub fn append(&mut self, request: Request) {
        request.write_to(&mut self.outbox);
        self.queue.push_back(InFlight {
            deadline: request.deadline(),
            skip_replies: request.skip_replies(),
            done: Some(request),
            written: Instant::now(),
        });
    }
}
