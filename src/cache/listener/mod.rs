//! The invalidation connections: one per node, all watched by one thread of the client's own
//! (`brisk-cache`) that does nothing else: it reads them as invalidations arrive and applies
//! each the moment it is read (guarantee 2), and probes them. Each probe answered renews the
//! node's lease (see `store::Leases`): while hits ask for a node's lease, a probe is kept in
//! flight on its connection (one every ~250 µs); otherwise only the health probe is sent, every
//! 500 ms. The thread sleeps until something arrives or something is due.
//!
//! The probe is `HELLO 3` over RESP3 (a PING that also says the node's role): a node that
//! changed roles failed over, and what was read there goes (a former primary would keep
//! renewing its lease while its successor acknowledges writes it has not seen yet; their
//! invalidations come only once it has caught up). A RESP2 subscriber may only `PING`, so the
//! connection speaks RESP3 whatever the client does, unless the server does not know HELLO.
//!
//! Setup, on a short-lived thread per attempt (connecting blocks): the node's usual connection
//! (TLS, HELLO, AUTH), then `CLIENT ID` (the connection data connections redirect their
//! invalidations to) and `CLIENT TRACKING OFF`, which a server without client-side caching
//! refuses, and over RESP3 the first probe (the role the next ones are compared with); in
//! BROADCAST mode `CLIENT TRACKING ON BCAST PREFIX ...` on the connection itself;
//! over RESP2, `SUBSCRIBE __redis__:invalidate` (RESP2 has no push frames: invalidations come
//! as messages on that channel, and a RESP2 BROADCAST connection redirects to itself). RESP3
//! invalidations are push frames, which the connection hands to the client's push router like
//! every other connection; the cache is the consumer of `invalidate`.
//!
//! A connection that closes, fails, or leaves its PING unanswered for the read timeout is
//! lost: the node's entries go (`Cache::listener_lost`) and a new one is opened, with a growing
//! pause between attempts (10 ms to 1 s).
//!
//! The parts:
//!
//! - This file: [`Listeners`], the handle other threads use (join a node, doubt it, watch a
//!   data connection, wake the thread, close), and the inbox that carries it to the thread.
//! - [`watcher`]: the thread's loop: apply what arrives, read the connections, renew leases
//!   (and drop a node's entries when its role changed), probe, reconnect, sweep, sleep.
//! - [`watched`]: one node's invalidation connection as the thread keeps it (its state, when
//!   to PING).
//! - [`connect`]: opening and setting up one invalidation connection.
//! - [`scheduling`]: asking the kernel to run the thread promptly.

mod connect;
mod scheduling;
mod watched;
mod watcher;

use super::Cache;
use super::store::NodeId;
use crate::core::cache::Role;
use crate::core::{Error, Result, Status};
use crate::net::{ConnectSettings, Connection};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use watcher::Watcher;

/// How often an invalidation connection is PINGed for its health.
const PING_EVERY: Duration = Duration::from_millis(500);
/// How often it is PINGed while hits want its node's lease (well within `store::LEASE`, with
/// room for the round trip).
const LEASE_PING_EVERY: Duration = Duration::from_micros(250);
/// How long a node's lease is kept fresh after the last hit that wanted it.
const ACTIVE_FOR: Duration = Duration::from_millis(200);
/// How often expired entries are swept, and how many are looked at each time.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_BUDGET: usize = 4096;

/// The `brisk-cache` thread and how to reach it.
pub(crate) struct Listeners {
    shared: Arc<Inbox>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What other threads hand the watching thread, and the eventfd that wakes it.
struct Inbox {
    wake: OwnedFd,
    messages: Mutex<Vec<Message>>,
    stop: AtomicBool,
}

enum Message {
    /// A node joined: keep an invalidation connection to it.
    Join(NodeId, Arc<ConnectSettings>),
    /// A connection attempt ended.
    Attempted(NodeId, u64, Attempt),
    /// The node's tracking is in doubt: start its connection over.
    Doubt(NodeId),
    /// Watch a tracked data connection (node, push router id, descriptor) for the server
    /// closing it.
    Watch(NodeId, u64, std::os::fd::RawFd),
    /// That connection closed on our side.
    Unwatch(u64),
}

enum Attempt {
    /// Up, with its `CLIENT ID` and the role the node said it has (none over RESP2).
    Up(Connection, u64, Option<Role>),
    Lost(Error),
    Unsupported(Error),
}

impl Inbox {
    fn send(&self, message: Message) {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
        self.wake();
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a local to our own eventfd.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Listeners {
    pub fn new() -> Result<Listeners> {
        // SAFETY: eventfd(2) with valid flags; the descriptor is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(thread_error(&std::io::Error::last_os_error().to_string()));
        }
        Ok(Listeners {
            shared: Arc::new(Inbox {
                // SAFETY: `fd` was just opened and nothing else owns it.
                wake: unsafe { OwnedFd::from_raw_fd(fd) },
                messages: Mutex::default(),
                stop: AtomicBool::new(false),
            }),
            thread: Mutex::new(None),
        })
    }

    /// Starts the thread (it keeps `cache` until the client closes).
    pub fn start(&self, cache: Arc<Cache>) -> Result<()> {
        let inbox = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("brisk-cache".into())
            .spawn(move || Watcher::new(cache, inbox).run())
            .map_err(|e| thread_error(&e.to_string()))?;
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }

    pub fn join(&self, node: NodeId, settings: ConnectSettings) {
        self.shared.send(Message::Join(node, Arc::new(settings)));
    }

    pub fn doubt(&self, node: NodeId) {
        self.shared.send(Message::Doubt(node));
    }

    pub fn watch(&self, node: NodeId, connection: u64, fd: std::os::fd::RawFd) {
        self.shared.send(Message::Watch(node, connection, fd));
    }

    pub fn unwatch(&self, connection: u64) {
        self.shared.send(Message::Unwatch(connection));
    }

    /// A hit found a lease that is not fresh: the thread should read its connections now.
    pub fn wake(&self) {
        self.shared.wake();
    }

    /// Ends every connection and the thread (waits for it, unless called on it).
    pub fn close(&self) {
        self.shared.stop.store(true, SeqCst);
        self.shared.wake();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

fn thread_error(why: &str) -> Error {
    Error::new(
        Status::Internal,
        format!("client-side caching: could not start the brisk-cache thread: {why}"),
    )
}
