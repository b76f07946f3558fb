//! The invalidation connections: one per node, all watched by one thread of the client's own
//! (`brisk-cache`) that does nothing else: it reads them as invalidations arrive and applies
//! each the moment it is read (guarantee 2), and PINGs them. Each PING answered renews the
//! node's lease (see `store::Leases`): while hits ask for a node's lease, a PING is kept in
//! flight on its connection (one every ~250 µs); otherwise only the health PING is sent, every
//! 500 ms. The thread sleeps until something arrives or something is due.
//!
//! Setup, on a short-lived thread per attempt (connecting blocks): the node's usual connection
//! (TLS, HELLO, AUTH), then `CLIENT ID` (the connection data connections redirect their
//! invalidations to) and `CLIENT TRACKING OFF`, which a server without client-side caching
//! refuses; in BROADCAST mode `CLIENT TRACKING ON BCAST PREFIX ...` on the connection itself;
//! over RESP2, `SUBSCRIBE __redis__:invalidate` (RESP2 has no push frames: invalidations come
//! as messages on that channel, and a RESP2 BROADCAST connection redirects to itself). RESP3
//! invalidations are push frames, which the connection hands to the client's push router like
//! every other connection; the cache is the consumer of `invalidate`.
//!
//! A connection that closes, fails, or leaves its PING unanswered for the read timeout is
//! lost: the node's entries go (`Cache::listener_lost`) and a new one is opened, with a growing
//! pause between attempts (10 ms to 1 s).

use super::Cache;
use super::store::{Live, NodeId, now_ns};
use crate::core::cache::{INVALIDATE_CHANNEL, Mode, broadcast_on, parse_message};
use crate::core::{Error, Result, Status};
use crate::net::{ConnectSettings, Connection};
use crate::resp::{Args, Reply, ReplyKind, encode_owned};
use bytes::BytesMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    Up(Connection, u64),
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
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn thread_error(why: &str) -> Error {
    Error::new(
        Status::Internal,
        format!("client-side caching: could not start the brisk-cache thread: {why}"),
    )
}

/// One node's invalidation connection, as the watching thread keeps it.
struct Watched {
    node: NodeId,
    settings: Arc<ConnectSettings>,
    state: State,
    /// Numbers attempts, so that a late result of an abandoned one is ignored.
    attempt: u64,
    pause: Duration,
    /// Hits want this node's lease until then.
    active_until: Option<Instant>,
}

impl Watched {
    /// How often to PING now: often while hits want the node's lease.
    fn ping_every(&self, now: Instant) -> Duration {
        match self.active_until.is_some_and(|until| now < until) {
            true => LEASE_PING_EVERY,
            false => PING_EVERY,
        }
    }

    /// How long a PING may go unanswered before the connection counts as lost.
    fn ping_timeout(&self) -> Duration {
        self.settings.read_timeout.unwrap_or(Duration::from_secs(5))
    }
}

enum State {
    /// A thread is connecting.
    Connecting,
    Up {
        conn: Connection,
        since: Instant,
        /// When the PING in flight was sent (one at a time), also as `store::now_ns`.
        ping_sent: Option<(Instant, u64)>,
        /// When the last PING was sent.
        last_ping: Instant,
    },
    /// Connect again at this time.
    Waiting(Instant),
    /// The server cannot track: never again.
    Unsupported,
}

/// A data connection tracked to an invalidation connection: the server forgets what it tracked
/// for it when it closes it (CLIENT KILL, its idle `timeout`), so its entries must go at once.
/// Only its descriptor's number is kept (the pool owns the socket): a number reused after the
/// connection closed can at worst make its entries, already gone, go again.
struct DataConn {
    node: NodeId,
    connection: u64,
    fd: std::os::fd::RawFd,
}

struct Watcher {
    cache: Arc<Cache>,
    inbox: Arc<Inbox>,
    nodes: Vec<Watched>,
    data: Vec<DataConn>,
    next_sweep: Instant,
}

impl Watcher {
    fn new(cache: Arc<Cache>, inbox: Arc<Inbox>) -> Watcher {
        Watcher {
            cache,
            inbox,
            nodes: Vec::new(),
            data: Vec::new(),
            next_sweep: Instant::now() + SWEEP_EVERY,
        }
    }

    fn run(mut self) {
        ask_for_prompt_wakeups();
        while !self.inbox.stop.load(SeqCst) {
            for message in self.inbox.take() {
                self.handle(message);
            }
            // PINGs answered renew leases only after the data connections closed by then are
            // known: the server closed such a connection before it answered a later PING.
            let answered = self.read_all();
            self.check_data_connections();
            for (node, sent) in answered {
                self.cache.store.leases.renew(node, sent);
            }
            let now = Instant::now();
            for watched in &mut self.nodes {
                if self.cache.store.leases.take_demand(watched.node) {
                    watched.active_until = Some(now + ACTIVE_FOR);
                }
            }
            self.ping_and_reconnect(now);
            if now >= self.next_sweep {
                self.cache.sweep(SWEEP_BUDGET);
                self.next_sweep = now + SWEEP_EVERY;
            }
            self.wait(Instant::now());
        }
        // Dropping the connections tells the push router (and the cache) they are gone.
        self.nodes.clear();
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Join(node, settings) => {
                if self.nodes.iter().all(|w| w.node != node) {
                    self.nodes.push(Watched {
                        node,
                        settings,
                        state: State::Waiting(Instant::now()),
                        attempt: 0,
                        pause: Duration::from_millis(10),
                        active_until: None,
                    });
                }
            }
            Message::Attempted(node, attempt, outcome) => {
                let Some(watched) = self.nodes.iter_mut().find(|w| w.node == node) else {
                    return;
                };
                if watched.attempt != attempt || !matches!(watched.state, State::Connecting) {
                    return;
                }
                match outcome {
                    Attempt::Up(conn, client_id) => {
                        let connection = conn.push_origin().map_or(u64::MAX, |o| o.connection);
                        let now = Instant::now();
                        watched.state = State::Up {
                            conn,
                            since: now,
                            ping_sent: None,
                            last_ping: now,
                        };
                        self.cache.listener_live(
                            node,
                            Live {
                                client_id,
                                connection,
                            },
                        );
                    }
                    Attempt::Lost(error) => {
                        watched.state = State::Waiting(Instant::now() + watched.pause);
                        watched.pause = (watched.pause * 2).min(Duration::from_secs(1));
                        self.cache.listener_lost(node, error);
                    }
                    Attempt::Unsupported(error) => {
                        watched.state = State::Unsupported;
                        self.cache.listener_unsupported(node, error);
                    }
                }
            }
            Message::Watch(node, connection, fd) => {
                self.data.retain(|d| d.connection != connection);
                self.data.push(DataConn {
                    node,
                    connection,
                    fd,
                });
            }
            Message::Unwatch(connection) => self.data.retain(|d| d.connection != connection),
            Message::Doubt(node) => {
                if let Some(index) = self.nodes.iter().position(|w| w.node == node) {
                    let error = Error::new(
                        Status::Connection,
                        "the invalidation connection is in doubt (the server no longer knows it)",
                    );
                    self.lose(index, error);
                }
            }
        }
    }

    /// Drops node `index`'s connection (the cache drops the node's entries) and schedules the
    /// next attempt.
    fn lose(&mut self, index: usize, error: Error) {
        let watched = &mut self.nodes[index];
        let State::Up { since, .. } = &watched.state else {
            return;
        };
        // A connection that lived a while was not a failed attempt: start the pauses over.
        if since.elapsed() > Duration::from_secs(5) {
            watched.pause = Duration::from_millis(10);
        }
        watched.state = State::Waiting(Instant::now() + watched.pause);
        watched.pause = (watched.pause * 2).min(Duration::from_secs(1));
        let node = watched.node;
        self.cache.listener_lost(node, error);
    }

    /// Drops what was read through the data connections the server has closed.
    fn check_data_connections(&mut self) {
        if self.data.is_empty() {
            return;
        }
        let mut fds: Vec<libc::pollfd> = self
            .data
            .iter()
            .map(|d| libc::pollfd {
                fd: d.fd,
                events: libc::POLLRDHUP,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` holds `fds.len()` initialised pollfd structs; a zero timeout.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if ready <= 0 {
            return;
        }
        let closed = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
        let mut lost = Vec::new();
        for (d, fd) in self.data.iter().zip(&fds) {
            if fd.revents & closed != 0 {
                lost.push((d.node, d.connection));
            }
        }
        self.data
            .retain(|d| !lost.iter().any(|&(_, c)| c == d.connection));
        for (node, connection) in lost {
            self.cache.data_connection_lost(node, connection);
        }
    }

    /// Reads every connection up to what has arrived, applying invalidations; returns, per
    /// PING answered, its node and when it was sent (what came before the answer is applied).
    fn read_all(&mut self) -> Vec<(NodeId, u64)> {
        let mut answered = Vec::new();
        for index in 0..self.nodes.len() {
            let node = self.nodes[index].node;
            let State::Up {
                conn, ping_sent, ..
            } = &mut self.nodes[index].state
            else {
                continue;
            };
            let cache = &self.cache;
            let drained = conn.drain(|reply| match parse_message(&reply) {
                // RESP2: an invalidation message on the subscribed channel.
                Some(invalidation) => cache.invalidation(Some(node), invalidation),
                // The answer to the PING (RESP3 pushes never come out here).
                None => {
                    if let Some((_, sent)) = ping_sent.take() {
                        answered.push((node, sent));
                    }
                }
            });
            if let Err(error) = drained {
                self.lose(index, error);
            }
        }
        answered
    }

    fn ping_and_reconnect(&mut self, now: Instant) {
        for index in 0..self.nodes.len() {
            let watched = &mut self.nodes[index];
            let timeout = watched.ping_timeout();
            let every = watched.ping_every(now);
            let lost = match &mut watched.state {
                State::Up {
                    conn,
                    ping_sent,
                    last_ping,
                    ..
                } => match *ping_sent {
                    Some((sent, _)) if now - sent >= timeout => Some(Error::new(
                        Status::Timeout,
                        format!(
                            "the invalidation connection to {} left its PING unanswered for \
                             {} ms",
                            watched.settings.address,
                            timeout.as_millis()
                        ),
                    )),
                    None if now >= *last_ping + every => {
                        let ping: [&[u8]; 1] = [b"PING"];
                        let (sent, sent_ns) = (Instant::now(), now_ns());
                        match conn.send_now(&Args::from_slices(&ping)) {
                            Ok(()) => {
                                *ping_sent = Some((sent, sent_ns));
                                *last_ping = sent;
                                None
                            }
                            Err(error) => Some(error),
                        }
                    }
                    _ => None,
                },
                State::Waiting(at) if now >= *at => {
                    self.start_attempt(index, now);
                    None
                }
                _ => None,
            };
            if let Some(error) = lost {
                self.lose(index, error);
            }
        }
    }

    /// Connects node `index` again, on a thread of its own.
    fn start_attempt(&mut self, index: usize, now: Instant) {
        let watched = &mut self.nodes[index];
        watched.attempt += 1;
        watched.state = State::Connecting;
        let (node, attempt) = (watched.node, watched.attempt);
        let settings = watched.settings.clone();
        let (mode, prefixes) = (self.cache.mode, self.cache.prefixes.clone());
        let inbox = self.inbox.clone();
        let spawned = std::thread::Builder::new()
            .name("brisk-cache-connect".into())
            .spawn(move || {
                let outcome = connect(&settings, mode, &prefixes);
                inbox.send(Message::Attempted(node, attempt, outcome));
            });
        if let Err(e) = spawned {
            self.nodes[index].state = State::Waiting(now + Duration::from_secs(1));
            self.cache.listener_lost(node, thread_error(&e.to_string()));
        }
    }

    /// Sleeps until something arrives or the next thing is due: a PING (very soon while a
    /// lease is wanted), a PING's deadline, a reconnect, the sweep.
    fn wait(&mut self, now: Instant) {
        let mut until = self.next_sweep;
        for watched in &self.nodes {
            match &watched.state {
                State::Up {
                    ping_sent,
                    last_ping,
                    ..
                } => {
                    let due = match ping_sent {
                        Some((sent, _)) => *sent + watched.ping_timeout(),
                        None => *last_ping + watched.ping_every(now),
                    };
                    until = until.min(due);
                }
                State::Waiting(at) => until = until.min(*at),
                _ => {}
            }
        }
        let timeout = until.saturating_duration_since(now);
        let mut fds = vec![libc::pollfd {
            fd: self.inbox.wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for watched in &self.nodes {
            if let State::Up { conn, .. } = &watched.state {
                fds.push(libc::pollfd {
                    fd: conn.raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        for d in &self.data {
            fds.push(libc::pollfd {
                fd: d.fd,
                events: libc::POLLRDHUP,
                revents: 0,
            });
        }
        let spec = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `fds` holds `fds.len()` initialised pollfd structs with descriptors that stay
        // open during the call; `spec` is a valid timespec; no signal mask.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &spec,
                std::ptr::null(),
            )
        };
        if fds[0].revents != 0 {
            let mut counter: u64 = 0;
            // SAFETY: reading 8 bytes into a local from our own (non-blocking) eventfd.
            unsafe {
                libc::read(
                    self.inbox.wake.as_raw_fd(),
                    (&mut counter as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }
}

/// Opens and sets up one invalidation connection (on a thread of its own: it blocks).
fn connect(settings: &ConnectSettings, mode: Mode, prefixes: &[Vec<u8>]) -> Attempt {
    let mut conn = match Connection::connect(settings) {
        Ok(conn) => conn,
        Err(e) => return Attempt::Lost(e),
    };
    let resp3 = conn.is_resp3();
    // CLIENT ID, and the probe a server without tracking refuses.
    let mut encoded = BytesMut::new();
    encode_owned(&mut encoded, &[b"CLIENT".to_vec(), b"ID".to_vec()]);
    encode_owned(
        &mut encoded,
        &[b"CLIENT".to_vec(), b"TRACKING".to_vec(), b"OFF".to_vec()],
    );
    let replies = match conn.pipeline(&encoded, 2) {
        Ok(replies) => replies,
        Err(e) => return Attempt::Lost(e),
    };
    let Some(client_id) = replies[0]
        .as_integer()
        .and_then(|id| u64::try_from(id).ok())
    else {
        return Attempt::Unsupported(refused("CLIENT ID", &replies[0]));
    };
    if replies[1].kind() == ReplyKind::Error {
        return Attempt::Unsupported(refused("CLIENT TRACKING", &replies[1]));
    }
    let mut setup: Vec<Vec<Vec<u8>>> = Vec::new();
    if mode == Mode::Broadcast {
        setup.push(broadcast_on((!resp3).then_some(client_id), prefixes));
    }
    if !resp3 {
        setup.push(vec![b"SUBSCRIBE".to_vec(), INVALIDATE_CHANNEL.to_vec()]);
    }
    for command in &setup {
        let words: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        match conn.command(&Args::from_slices(&words)) {
            Ok(_) => {}
            Err(e) if e.server_kind().is_some() => {
                return Attempt::Unsupported(e.context(
                    "client-side caching: the server refused to set up the invalidation \
                     connection",
                ));
            }
            Err(e) => return Attempt::Lost(e),
        }
    }
    match conn.listen_only() {
        Ok(()) => Attempt::Up(conn, client_id),
        Err(e) => Attempt::Lost(e),
    }
}

/// The server's refusal of a setup command, with its status (SERVER for an unknown command,
/// AUTH for NOPERM...).
fn refused(what: &str, reply: &Reply) -> Error {
    let error = match reply.kind() {
        ReplyKind::Error => Error::from_reply(reply.as_bytes().unwrap_or_default()),
        _ => Error::new(Status::Protocol, format!("unexpected reply {reply:?}")),
    };
    error.context(format!(
        "client-side caching needs CLIENT TRACKING (Redis 6+ or Valkey); the server refused \
         {what}"
    ))
}

/// Asks the scheduler to run this thread promptly when it wakes, even when the application's
/// threads keep every core busy: a short slice (0.1 ms) for a normal thread, which Linux 6.12+
/// (EEVDF) lets preempt a running thread with a longer one on wakeup; and precise timers (no
/// slack), since leases are renewed every ~150 µs. No privilege is needed; kernels that do not
/// know a setting ignore or refuse it, which changes nothing but latency.
fn ask_for_prompt_wakeups() {
    /// `struct sched_attr` (linux/sched/types.h).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }
    #[cfg(target_os = "linux")]
    {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            sched_policy: libc::SCHED_OTHER as u32,
            sched_flags: 0,
            sched_nice: 0,
            sched_priority: 0,
            sched_runtime: 100_000,
            sched_deadline: 0,
            sched_period: 0,
            sched_util_min: 0,
            sched_util_max: 0,
        };
        // SAFETY: sched_setattr(2) on the calling thread (0) with a valid, fully initialised
        // attribute struct of the size it declares; it only reads it. prctl(2) with an integer
        // argument.
        unsafe {
            libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        }
    }
}
