//! The `brisk-cache` thread's loop: it takes what other threads sent, reads every invalidation
//! connection up to what has arrived (applying invalidations as they are read), checks the
//! tracked data connections for closes, renews leases from PING answers (dropping a node's
//! entries first when the answer says its role changed), PINGs and reconnects,
//! sweeps expired entries, and sleeps in `ppoll` until something arrives or is due.

use super::connect::connect;
use super::scheduling::ask_for_prompt_wakeups;
use super::watched::{State, Watched};
use super::{ACTIVE_FOR, Attempt, Cache, Inbox, Message, SWEEP_BUDGET, SWEEP_EVERY, thread_error};
use crate::cache::store::{Live, NodeId, now_ns};
use crate::core::cache::{LEASE_PROBE, hello_role, parse_message};
use crate::core::{Error, Status};
use crate::resp::Args;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// A data connection tracked to an invalidation connection: the server forgets what it tracked
/// for it when it closes it (CLIENT KILL, its idle `timeout`), so its entries must go at once.
/// Only its descriptor's number is kept (the pool owns the socket): a number reused after the
/// connection closed can at worst make its entries, already gone, go again.
struct DataConn {
    node: NodeId,
    connection: u64,
    fd: std::os::fd::RawFd,
}

/// A lease probe answered.
struct Answered {
    node: NodeId,
    /// When it was sent, as [`now_ns`].
    sent: u64,
    /// The node's role is not the one it said before.
    role_changed: bool,
}

pub(super) struct Watcher {
    cache: Arc<Cache>,
    inbox: Arc<Inbox>,
    nodes: Vec<Watched>,
    data: Vec<DataConn>,
    next_sweep: Instant,
}

impl Watcher {
    pub(super) fn new(cache: Arc<Cache>, inbox: Arc<Inbox>) -> Watcher {
        Watcher {
            cache,
            inbox,
            nodes: Vec::new(),
            data: Vec::new(),
            next_sweep: Instant::now() + SWEEP_EVERY,
        }
    }

    pub(super) fn run(mut self) {
        ask_for_prompt_wakeups();
        while !self.inbox.stop.load(SeqCst) {
            for message in self.inbox.take() {
                self.handle(message);
            }
            // PINGs answered renew leases only after the data connections closed by then are
            // known: the server closed such a connection before it answered a later PING.
            let answered = self.read_all();
            self.check_data_connections();
            for answer in answered {
                // What was read while the node had its old role goes before the answer renews
                // the lease (a former primary's writes now happen elsewhere, and reach it only
                // once it has caught up with its new primary).
                if answer.role_changed {
                    self.cache.role_changed(answer.node);
                }
                self.cache.store.leases.renew(answer.node, answer.sent);
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
                    Attempt::Up(conn, client_id, role) => {
                        let connection = conn.push_origin().map_or(u64::MAX, |o| o.connection);
                        let now = Instant::now();
                        watched.state = State::Up {
                            conn,
                            since: now,
                            ping_sent: None,
                            last_ping: now,
                            role,
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

    /// Reads every connection up to what has arrived, applying invalidations; returns the
    /// probes answered (what came before each answer is applied).
    fn read_all(&mut self) -> Vec<Answered> {
        let mut answered = Vec::new();
        for index in 0..self.nodes.len() {
            let node = self.nodes[index].node;
            let State::Up {
                conn,
                ping_sent,
                role,
                ..
            } = &mut self.nodes[index].state
            else {
                continue;
            };
            let cache = &self.cache;
            let drained = conn.drain(|reply| match parse_message(&reply) {
                // RESP2: an invalidation message on the subscribed channel.
                Some(invalidation) => cache.invalidation(Some(node), invalidation),
                // The answer to the probe (RESP3 pushes never come out here).
                None => {
                    if let Some((_, sent)) = ping_sent.take() {
                        let said = hello_role(&reply);
                        let role_changed =
                            matches!((*role, said), (Some(was), Some(is)) if was != is);
                        if said.is_some() {
                            *role = said;
                        }
                        answered.push(Answered {
                            node,
                            sent,
                            role_changed,
                        });
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
                        // RESP3: HELLO, whose answer also says the node's role. A RESP2
                        // subscriber may only PING.
                        let ping: &[&[u8]] = match conn.is_resp3() {
                            true => &LEASE_PROBE,
                            false => &[b"PING"],
                        };
                        let (sent, sent_ns) = (Instant::now(), now_ns());
                        match conn.send_now(&Args::from_slices(ping)) {
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
