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
//! by its sender, unless the sender holds it (`Mux::send_held`: caller dispatch, a thread that
//! dispatches sending to its own client): then its outbox is written when that thread next
//! dispatches, one write for everything it sent in between, or by the reader after its next
//! read or within two ticks (50 to 100 ms), whichever comes first.
//!
//! Order is the whole point: a request's bytes and its place in the in-flight queue are added
//! under one lock, and the outbox is written by one writer at a time (`Line::writing`), front to
//! back, so replies meet their requests.

use super::Request;
use super::reader::{InFlight, Line, SharedLine, kill, lock};
use crate::net::async_connect::peer_closed;
use crate::net::errors::{closed_by_peer, io_error};
use bytes::BytesMut;
use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
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
}

/// A lane whose outbox holds requests left for later by their senders (`Mux::send_held`):
/// `write` writes them, unless someone did already.
pub(crate) struct Held(Arc<Express>);

impl Held {
    pub fn write(&self) {
        self.0.flush_wanted();
    }

    /// Whether both are the same connection's lane.
    pub fn same(&self, other: &Held) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
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
    /// connection died or closed, or wants a health check first). With `hold`, a request that
    /// this thread would write now, or that waits for the reader's next read, is only appended
    /// (the reader writes it after its next read, or its tick a tick later, if nobody did
    /// before): `Some` then, for the sender to write later, unless a held request appended
    /// since the outbox was last taken got it already (`Line::held`; its sender's dispatch
    /// writes this one too): then `None`, and nothing is cloned or locked beyond the line.
    pub fn send(self: &Arc<Self>, request: Request, hold: bool) -> Result<Option<Held>, Request> {
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
        let replies_coming = line.replies_coming();
        line.append(request);
        if line.writing {
            // Whoever writes goes on until the outbox is empty. A held request is still said
            // to be held (its sender's next dispatch then finds nothing to write), so that what
            // the dispatching thread sends always leaves the descriptor readable until that
            // dispatch, whether or not a writer was busy (the mux task may still be leaving its
            // last write when the reply it wrote for has been dispatched already).
            return Ok(hold.then(|| self.held(&mut line)).flatten());
        }
        if hold {
            line.flush_wanted = true;
            return Ok(self.held(&mut line));
        }
        if replies_coming || READING.get() == line_id(&self.line) {
            // The reader is about to hand out replies (or is doing so on this very thread, a
            // callback sending): it writes everything appended meanwhile once it has, one
            // write for them all, and no other thread need be woken.
            line.flush_wanted = true;
            return Ok(None);
        }
        line.writing = true;
        drop(line);
        self.flush();
        Ok(None)
    }

    /// The lane for a sender that holds its request, unless one appended since the outbox was
    /// last taken has it (see `send`).
    fn held(self: &Arc<Self>, line: &mut Line) -> Option<Held> {
        (!std::mem::replace(&mut line.held, true)).then(|| Held(self.clone()))
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

    /// Writes what senders left for the reader, if nobody is writing already. The reader's
    /// steady tick calls it too (`flush_stale`), so that requests left behind replies that
    /// never come (a stalled server) still go out.
    pub fn flush_wanted(&self) {
        let mut line = lock(&self.line);
        line.flush_seen_by_tick = false;
        if std::mem::take(&mut line.flush_wanted) && !line.writing && line.dead.is_none() {
            line.writing = true;
            drop(line);
            self.flush();
        }
    }

    /// The steady tick's `flush_wanted`: writes what senders left only once it has waited since
    /// the previous tick (50 to 100 ms), so that requests a dispatching thread holds for its
    /// next dispatch, a moment away, are not written by a tick that happens to fall in between
    /// (which split the thread's batch in two).
    pub fn flush_stale(&self) {
        let mut line = lock(&self.line);
        if !line.flush_wanted {
            line.flush_seen_by_tick = false;
        } else if std::mem::replace(&mut line.flush_seen_by_tick, true) {
            drop(line);
            self.flush_wanted();
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
                line.take_outbox(&mut out);
            }
            match send_nonblocking(&self.socket, &out) {
                Ok(written) if written == out.len() => out.clear(),
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
pub(super) const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

fn line_id(line: &SharedLine) -> usize {
    Arc::as_ptr(line) as usize
}

impl super::reader::Line {
    /// Adds a request: its bytes to the outbox, itself to the in-flight queue, in one step.
    pub fn append(&mut self, request: Request) {
        request.write_to(&mut self.outbox);
        self.unsent += 1;
        self.queue.push_back(InFlight {
            deadline: request.deadline(),
            skip_replies: request.skip_replies(),
            done: Some(request),
            written: None,
        });
    }
}
