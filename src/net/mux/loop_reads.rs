//! Caller dispatch reads on the application's thread: the connections of a client whose
//! callbacks the application dispatches are read by the thread that dispatches, as hiredis's
//! event loop reads its context, instead of by a runtime thread that then wakes it.
//!
//! Why: with a runtime thread reading, every batch of replies cost two wake-ups (the runtime
//! thread's, then the application's through the completion pipe) and the system calls of both.
//! Here the descriptor the application polls (`brisk_client_async_fd`) is an epoll instance
//! holding the completion pipe and, level-triggered, the socket of every plain (TCP or Unix)
//! connection of the client's muxes: a reply arriving wakes the application's loop directly,
//! and its dispatch reads the socket, hands the replies out and runs their callbacks on the same
//! thread. Such a socket is not in tokio's epoll for reading (its mux waits only for it to be
//! writable, after a write that would block), so no runtime thread is woken per batch.
//!
//! A runtime task still ticks every 50 ms per connection: it reads what nobody dispatched
//! (nobody dispatching does not stop the commands, and the read timeout keeps its meaning: a
//! whole reply within the timeout from its request, however late the application dispatches),
//! fails requests past their deadline, and writes requests left behind. TLS connections are
//! read by a runtime thread as without caller dispatch (their records need the TLS state, which
//! the mux task owns); their callbacks still run on the dispatching thread.

mod epoll;

use super::reader::{Replies, kill, lock, steady_tick};
use super::writer::Writer;
use crate::core::{Error, Result};
use crate::net::async_connect::AsyncStream;
use crate::net::errors::{closed_by_peer, io_error};
use crate::net::signal::batched;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// The epoll token of the completion pipe; a connection's token is its `id` (never 0).
const PIPE: u64 = 0;

/// Most bytes one dispatch reads from one connection: a peer flooding it cannot keep a dispatch
/// going (the descriptor stays readable, and the loop comes back).
const READ_BUDGET: usize = 1 << 20;

/// A client's connections read by its dispatching thread, and the descriptor that says when.
pub(crate) struct LoopReads {
    /// The completion queue's descriptor.
    pipe: RawFd,
    /// `None` where epoll is missing (or could not be had): connections are then read by
    /// runtime threads, and the application polls the pipe alone.
    epoll: Option<OwnedFd>,
    lines: Mutex<Vec<Arc<LoopLine>>>,
}

/// One connection read by the dispatching thread (and by its tick).
pub(super) struct LoopLine {
    id: u64,
    socket: socket2::Socket,
    replies: Mutex<Replies>,
    /// Tells the connection's tick task (and through it the mux) that the connection died.
    pub died: Notify,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(PIPE + 1);

impl LoopReads {
    /// An epoll instance holding `pipe` (the completion queue's descriptor), to which the
    /// client's plain connections are added as they open.
    pub fn new(pipe: RawFd) -> LoopReads {
        let epoll = epoll::create().and_then(|e| epoll::add(&e, pipe, PIPE).map(|()| e));
        LoopReads {
            pipe,
            epoll: epoll.ok(),
            lines: Mutex::new(Vec::new()),
        }
    }

    /// The descriptor the application polls: readable while the pipe is, or while a connection
    /// has bytes (or its end) to read.
    pub fn fd(&self) -> RawFd {
        self.epoll.as_ref().map_or(self.pipe, AsRawFd::as_raw_fd)
    }

    /// Adds a connection, read from `socket` (a descriptor of its own, kept open by the line).
    fn add(
        &self,
        epoll: &OwnedFd,
        socket: socket2::Socket,
        replies: Replies,
    ) -> io::Result<Arc<LoopLine>> {
        let line = Arc::new(LoopLine {
            id: NEXT_ID.fetch_add(1, Relaxed),
            socket,
            replies: Mutex::new(replies),
            died: Notify::new(),
        });
        let mut lines = lock_lines(&self.lines);
        epoll::add(epoll, line.socket.as_raw_fd(), line.id)?;
        lines.push(line.clone());
        Ok(line)
    }

    /// Takes a connection out (it died or its mux let go of it); again is a no-op.
    pub(super) fn remove(&self, line: &LoopLine) {
        let mut lines = lock_lines(&self.lines);
        if let Some(at) = lines.iter().position(|l| l.id == line.id) {
            lines.swap_remove(at);
            // Before the line's descriptor can close (the line is alive: `line` borrows it), so
            // the registration cannot outlive it. Failure means it was not registered.
            if let Some(epoll) = &self.epoll {
                let _ = epoll::remove(epoll, line.socket.as_raw_fd());
            }
        }
    }

    /// Reads every connection that has bytes waiting and hands out their replies (their
    /// callbacks are queued, for the dispatch running on this thread to run). With one
    /// connection (a single server) its socket is read without asking epoll first, unless
    /// `only_if_expecting` and it expects no reply.
    pub fn read_ready(&self, only_if_expecting: bool) {
        let one = {
            let lines = lock_lines(&self.lines);
            match lines.len() {
                0 => return,
                1 => Some(lines[0].clone()),
                _ => None,
            }
        };
        if let Some(line) = one {
            if only_if_expecting && !line.expecting() {
                return;
            }
            return self.read(&line);
        }
        let Some(epoll) = &self.epoll else { return };
        let mut ready = [0u64; 16];
        let n = epoll::ready(epoll, &mut ready);
        for &id in ready[..n].iter().filter(|&&id| id != PIPE) {
            let line = lock_lines(&self.lines).iter().find(|l| l.id == id).cloned();
            if let Some(line) = line {
                self.read(&line);
            }
        }
    }

    fn read(&self, line: &LoopLine) {
        if let Err(e) = line.read_now() {
            self.fail(line, e);
        }
    }

    /// The connection is dead: what it had in flight fails with `error`, epoll lets go of it
    /// (its end would keep the descriptor readable), and its mux hears of it.
    pub(super) fn fail(&self, line: &LoopLine, error: Error) {
        kill(&line.lock().line, error);
        self.remove(line);
        line.died.notify_one();
    }
}

impl LoopLine {
    pub(super) fn lock(&self) -> MutexGuard<'_, Replies> {
        self.replies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether replies are coming on the connection (requests written, not all answered).
    fn expecting(&self) -> bool {
        lock(&self.lock().line).replies_coming()
    }

    /// Reads what the socket holds now (up to `READ_BUDGET`) and hands out the replies.
    pub(super) fn read_now(&self) -> Result<()> {
        let mut replies = self.lock();
        if lock(&replies.line).dead.is_some() {
            return Ok(());
        }
        let mut budget = READ_BUDGET;
        loop {
            let buffer = replies.proto.input_buffer();
            let room = buffer.spare_capacity_mut();
            let wanted = room.len();
            let read = match self.socket.recv(room) {
                Ok(0) => return Err(closed_by_peer(&replies.address)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&e, "read from", &replies.address)),
            };
            // SAFETY: recv initialised the first `read` bytes of the spare capacity.
            unsafe { buffer.set_len(buffer.len() + read) };
            replies.hand_out_read()?;
            budget = budget.saturating_sub(read);
            if read < wanted || budget == 0 {
                // Short read: the socket is drained (a later arrival makes the descriptor
                // readable again). Budget spent: the level-triggered descriptor brings the
                // loop back for the rest.
                return Ok(());
            }
        }
    }
}

fn lock_lines(lines: &Mutex<Vec<Arc<LoopLine>>>) -> MutexGuard<'_, Vec<Arc<LoopLine>>> {
    lines.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a connection is read, once `LoopReads::start` has looked at it. (Large, but made and
/// matched once per connection, on the mux task's stack.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Start {
    /// By the dispatching thread: the mux task writes with `Writer`, and ticks `LoopLine`.
    OnLoop(Writer, Arc<LoopLine>),
    /// By a runtime thread (TLS, or a socket that cannot be duplicated): given back untouched.
    Elsewhere(AsyncStream, Replies),
    /// Taking the socket out of tokio's reactor failed; the connection is lost.
    Failed(io::Error),
}

impl LoopReads {
    /// Moves a new connection's reading to the dispatching thread when it is a plain socket.
    pub(super) fn start(&self, stream: AsyncStream, replies: Replies) -> Start {
        let Some(epoll) = &self.epoll else {
            return Start::Elsewhere(stream, replies);
        };
        let Some(read_side) = stream.express_socket() else {
            return Start::Elsewhere(stream, replies);
        };
        let socket = match stream.into_plain() {
            Err(stream) => return Start::Elsewhere(stream, replies),
            Ok(Err(e)) => return Start::Failed(e),
            Ok(Ok(socket)) => socket,
        };
        // Writable only: bytes arriving must not wake tokio's epoll (the reason for all this).
        // SAFETY: a socket2::Socket owns its descriptor, which stays open and the same until
        // the AsyncFd (its owner from now on) drops it.
        let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::WRITABLE) };
        let writer = match registered {
            Ok(socket) => Writer::Socket(socket),
            Err(e) => return Start::Failed(e.into_parts().1),
        };
        match self.add(epoll, read_side, replies) {
            Ok(line) => Start::OnLoop(writer, line),
            Err(e) => Start::Failed(e),
        }
    }
}

/// A connection's runtime side, on its steady tick: reads what nobody dispatched, fails
/// requests past their deadline (or the connection, past the read timeout) and writes requests
/// left behind. Returns when the connection dies.
pub(super) async fn tick(reads: Arc<LoopReads>, line: Arc<LoopLine>) {
    let mut tick = steady_tick();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = line.died.notified() => return,
        }
        let checked = batched(|| line.read_now()).and_then(|()| line.lock().on_tick());
        if let Err(e) = checked {
            return reads.fail(&line, e);
        }
    }
}
