//! The blocking connection driver: one connection, I/O on the calling thread.
//!
//! (At ~670 lines this is one of src/'s longer files, on purpose: the handshake runner, the
//! time-bounded reads and the cache's drain and listen-only modes all drive the same socket,
//! buffers and broken flag; apart, each would reach into the others' fields.)
//!
//! It moves bytes between a [`Stream`] and the pure [`Protocol`] state, runs the handshake
//! (`core::handshake::Handshake` says what to write and read), and hands RESP3 push frames to
//! the client's push router. Any I/O failure, timeout or protocol error marks the connection
//! broken: a reply may be half read, so it must never carry another request.
//!
//! Time bounds are points in time, not per-read timeouts: a request's replies must all arrive
//! within the read timeout from when the request was sent (longer for a blocking command) and
//! before the command deadline, however the peer trickles its bytes. The socket's own timeout
//! bounds the first read (so the common one-read reply costs no clock and no system call);
//! before every further read the time left is checked and the socket timeout shortened to it.

use super::errors::{closed_by_peer, io_error};
use super::push::{AttachedConnection, PushOrigin};
pub use super::settings::ConnectSettings;
use super::socket::Socket;
use super::socket::{IdleInput, Interrupter};
use super::stream::Stream;
use crate::core::handshake::{self, Handshake, Step};
use crate::core::protocol::Protocol;
use crate::core::{Error, Result, Status};
use crate::resp::{Args, DEFAULT_MAX_REPLY_BYTES, Reply, ReplyKind};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `timeout`, shortened to what is left before `deadline` (at least 1 ms: 0 would mean "none").
fn until(timeout: Option<Duration>, deadline: Option<Instant>, now: Instant) -> Option<Duration> {
    let Some(deadline) = deadline else {
        return timeout;
    };
    let left = deadline
        .saturating_duration_since(now)
        .max(Duration::from_millis(1));
    Some(timeout.map_or(left, |t| t.min(left)))
}

/// The earlier of two optional points in time.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A connection is moved a lot (into and out of the pool, through `Result`s): it is one
/// pointer, its state boxed once when it is opened.
pub struct Connection(Box<State>);

#[doc(hidden)]
pub struct State {
    stream: Stream,
    proto: Protocol,
    address: Arc<str>,
    resp3: bool,
    broken: bool,
    /// The socket's read timeout now.
    read_timeout: Option<Duration>,
    /// The configured read timeout, which the socket is set back to after a request that needed
    /// another.
    default_read_timeout: Option<Duration>,
    /// The bounds of the request under way (see the module documentation).
    bounds: Bounds,
    /// The bounds or the socket's read timeout differ from the configured ones (set back when
    /// the request ends).
    bounds_changed: bool,
    created: Instant,
    /// Bytes written to the socket so far.
    wire_sent: u64,
    /// `bytes_acked - wire_sent` once everything sent has been acknowledged (after the
    /// handshake): how to tell from the socket whether the peer took any byte of a request.
    /// `None` where the socket cannot tell (TLS, Unix sockets, other systems).
    acked_offset: Option<u64>,
    /// Lent by the pool without the idle peek (it came back moments ago).
    unchecked: bool,
    /// A peek found the server had closed it (or sent something unasked for): it counts as
    /// broken from then on, so that whoever gives it back has it closed, not lent again.
    stale: bool,
    /// The last request failed on a connection the server had closed before any byte of it
    /// arrived: nothing was applied, and the pool's peek would have caught it had it looked.
    stale_on_reuse: bool,
    /// A read met the end of the stream: the peer closed the connection in order (FIN), which
    /// also carried its acknowledgements (a reset carries none that the client takes in).
    closed_in_order: bool,
    /// Its pushes go to the client's router, which hears when it closes (what a server tracks
    /// for a connection ends with it).
    _pushes: Option<AttachedConnection>,
}

/// When the replies to the request under way must have arrived.
#[derive(Clone, Copy)]
struct Bounds {
    /// When the request was sent (or the connection lent for it, moments before).
    started: Option<Instant>,
    /// How long its replies may take from then; `None`: no limit (a blocking command waiting
    /// for ever).
    budget: Option<Duration>,
    /// The command deadline.
    deadline: Option<Instant>,
}

impl Bounds {
    fn limit(&self) -> Option<Instant> {
        let by_budget = self.started.zip(self.budget).map(|(s, b)| s + b);
        earliest(by_budget, self.deadline)
    }
}

impl std::ops::Deref for Connection {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

impl Connection {
    /// Connects, runs the TLS and Redis handshakes, and returns a ready connection. Errors
    /// never count as "sent": no caller's request has been written yet.
    pub fn connect(settings: &ConnectSettings) -> Result<Connection> {
        Self::connect_by(settings, None)
    }

    /// [`Connection::connect`] for a command that must finish by `deadline`: connecting, the TLS
    /// handshake and the Redis handshake each wait no longer than the time left, and the ready
    /// connection then has the configured timeouts.
    pub fn connect_by(settings: &ConnectSettings, deadline: Option<Instant>) -> Result<Connection> {
        Self::open(settings, deadline).map_err(|e| e.sent(false))
    }

    fn open(settings: &ConnectSettings, deadline: Option<Instant>) -> Result<Connection> {
        let address = settings.address.clone();
        let started = Instant::now();
        let socket = Socket::connect(
            &settings.endpoint,
            until(settings.connect_timeout, deadline, started),
            settings.keepalive,
        )?;
        let read_timeout = until(settings.read_timeout, deadline, started);
        socket
            .set_timeouts(
                read_timeout,
                until(settings.write_timeout, deadline, started),
            )
            .map_err(|e| io_error(&e, "set timeouts on", &address))?;
        let mut stream = match &settings.tls {
            None => Stream::Plain(socket),
            Some((config, name)) => {
                let tls = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| Error::new(Status::Tls, format!("TLS setup: {e}")))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(tls, socket)))
            }
        };
        stream
            .finish_handshake()
            .map_err(|e| io_error(&e, "TLS handshake with", &address))?;
        let mut proto = Protocol::new(settings.limits);
        let pushes = settings
            .pushes
            .as_ref()
            .map(|router| router.attach(address.clone(), &mut proto));
        let mut conn = Connection(Box::new(State {
            stream,
            proto,
            address,
            resp3: false,
            broken: false,
            read_timeout,
            default_read_timeout: settings.read_timeout,
            bounds: Bounds {
                started: Some(Instant::now()),
                budget: settings.read_timeout,
                deadline,
            },
            bounds_changed: false,
            created: started,
            wire_sent: 0,
            acked_offset: None,
            unchecked: false,
            stale: false,
            stale_on_reuse: false,
            closed_in_order: false,
            _pushes: pushes,
        }));
        conn.handshake(&settings.handshake)?;
        // It may wait idle in a pool for long: without the handshake's buffers.
        conn.proto.release_buffers();
        if let Stream::Plain(socket) = &conn.stream {
            // Every handshake reply has been read, so the server has acknowledged every byte.
            conn.acked_offset = socket
                .bytes_acked()
                .and_then(|acked| acked.checked_sub(conn.wire_sent));
        }
        if deadline.is_some() || conn.read_timeout != settings.read_timeout {
            conn.stream
                .socket()
                .set_timeouts(settings.read_timeout, settings.write_timeout)
                .map_err(|e| io_error(&e, "set timeouts on", &settings.address))?;
            conn.read_timeout = settings.read_timeout;
        }
        // The first request's read timeout runs from now, unless the pool lends it later.
        conn.reset_bounds(Some(Instant::now()));
        Ok(conn)
    }

    /// Runs the handshake plan: writes and reads as `core::handshake` says.
    fn handshake(&mut self, params: &handshake::Params) -> Result<()> {
        let mut handshake = Handshake::new(params);
        let mut reads = 0;
        loop {
            let step = handshake
                .poll(&mut self.proto)
                .map_err(|e| e.context("handshake"));
            match step? {
                Step::Write => self.flush().map_err(|e| e.context("handshake"))?,
                Step::Read => {
                    if reads > 0 {
                        self.shorten_read_timeout()
                            .map_err(|e| e.context("handshake"))?;
                    }
                    self.read_once()
                        .map_err(|e| e.sent(false).context("handshake"))?;
                    reads += 1;
                }
                Step::Ready { resp3 } => {
                    self.resp3 = resp3;
                    return Ok(());
                }
            }
        }
    }

    pub fn address(&self) -> &Arc<str> {
        &self.address
    }

    pub fn is_resp3(&self) -> bool {
        self.resp3
    }

    /// Which of the client's connections this is, as its push router knows it (none when its
    /// pushes go nowhere).
    pub fn push_origin(&self) -> Option<&PushOrigin> {
        self._pushes.as_ref().map(AttachedConnection::origin)
    }

    pub fn is_broken(&self) -> bool {
        self.broken || self.stale
    }

    pub fn created(&self) -> Instant {
        self.created
    }

    /// A handle another thread can use to interrupt a read blocked on this connection.
    pub fn interrupter(&self) -> io::Result<Interrupter> {
        self.stream.socket().interrupter()
    }

    /// Marks the connection for closing: the pool drops it instead of lending it again.
    pub fn discard(&mut self) {
        self.broken = true;
    }

    /// Whether this idle connection can no longer carry a request: the server closed it, or
    /// sent something unasked for. Push frames that arrived while it was idle (invalidations,
    /// messages) are not that: they are read and routed, and the connection stays.
    pub fn is_stale(&mut self) -> bool {
        let stale = self.is_broken()
            || match self.stream.idle_input() {
                IdleInput::Nothing => false,
                IdleInput::Closed => true,
                IdleInput::Bytes => !self.route_idle_pushes(),
            };
        self.stale = stale;
        stale
    }

    /// Reads what arrived while the connection was idle and hands its push frames to the router;
    /// false when it held anything else (a reply nobody asked for: the stream is off), or the
    /// bytes cannot be read without waiting (TLS).
    #[cold]
    fn route_idle_pushes(&mut self) -> bool {
        let state = &mut *self.0;
        match state.stream.read_available(state.proto.input_buffer()) {
            Some(Ok(n)) if n > 0 => {}
            _ => return false,
        }
        // Every push frame is routed on the way; one still arriving stays in the buffer for
        // the next read.
        matches!(self.proto.next_reply(), Ok(None))
    }

    /// Whether the pool may lend this connection without peeking at it first: a request that
    /// then fails because the server had closed the connection is recognised afterwards (see
    /// [`Connection::stale_on_reuse`]).
    pub fn can_skip_peek(&self) -> bool {
        self.acked_offset.is_some()
    }

    /// Set by the pool when it lends the connection at `now`: whether it skipped the peek.
    /// The next requests' read timeout runs from `now` (moments before the first is sent; a
    /// second request on the same loan, rare, counts from there too).
    #[inline]
    pub fn lend(&mut self, unchecked: bool, now: Instant) {
        self.unchecked = unchecked;
        self.bounds.started = Some(now);
    }

    /// Bounds the next request other than by the configured read timeout from when the
    /// connection was lent: `budget` for its replies from `started` (a blocking command's
    /// wait plus the read timeout; `None` for no limit), and the command `deadline`. The socket
    /// timeout of the first read is set to match (a system call, only when it changes).
    pub fn bound_request(
        &mut self,
        started: Instant,
        budget: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.bounds = Bounds {
            started: Some(started),
            budget,
            deadline,
        };
        self.bounds_changed = true;
        let first_read = until(budget, deadline, started);
        self.set_read_timeout(first_read)
    }

    /// The last request failed only because the server had closed this connection before any
    /// byte of the request reached it (the connection was lent without the idle peek): nothing
    /// was applied, and the caller should take another connection as if the peek had found it.
    pub fn stale_on_reuse(&self) -> bool {
        self.stale_on_reuse
    }

    /// The socket's descriptor (a connection that only listens is watched with `poll`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.socket().raw_fd()
    }

    /// Turns this into a connection that only listens (the client-side cache's invalidation
    /// connection): reads and writes never wait; see [`Connection::drain`] and
    /// [`Connection::send_now`].
    pub fn listen_only(&mut self) -> Result<()> {
        self.stream
            .socket()
            .set_nonblocking()
            .map_err(|e| self.fail(&e, "set non-blocking on"))
    }

    /// Reads and decodes whatever has arrived, without waiting: push frames go to the push
    /// router, replies to `on_reply`. Returns the moment just before the read that found
    /// nothing more: everything that had arrived by then has been handed out. The peer closing
    /// or any failure breaks the connection.
    pub fn drain(&mut self, mut on_reply: impl FnMut(Reply)) -> Result<Instant> {
        loop {
            while let Some(reply) = self.proto.next_reply().map_err(|e| {
                self.broken = true;
                e.context(format!("reading from {}", self.address))
            })? {
                on_reply(reply);
            }
            let before = Instant::now();
            let state = &mut *self.0;
            match state.stream.read_into(state.proto.input_buffer()) {
                Ok(0) => {
                    self.broken = true;
                    return Err(closed_by_peer(&self.address));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(before),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(&e, "read from")),
            }
        }
    }

    /// Writes a small command (a PING) without waiting; a socket that cannot take all of it
    /// now fails (and breaks the connection).
    pub fn send_now(&mut self, args: &Args<'_>) -> Result<()> {
        self.proto.queue(args);
        while !self.proto.output().is_empty() {
            let state = &mut *self.0;
            match state.stream.write(state.proto.output()) {
                Ok(0) => {
                    self.broken = true;
                    return Err(closed_by_peer(&self.address));
                }
                Ok(n) => self.proto.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(&e, "write to")),
            }
        }
        Ok(())
    }

    /// Sends one command and reads its reply. An error reply becomes `Err` with the server's
    /// text; the connection stays usable after it.
    pub fn command(&mut self, args: &Args<'_>) -> Result<Reply> {
        let sent_before = self.wire_sent;
        self.proto.queue(args);
        let reply = self
            .flush()
            .and_then(|()| self.read_reply())
            .map_err(|e| self.check_reuse(e, sent_before))?;
        self.end_request()?;
        if reply.kind() == ReplyKind::Error {
            return Err(Error::from_reply(reply.as_bytes().unwrap_or_default()));
        }
        Ok(reply)
    }

    /// [`Connection::command`] for brisk's own metadata (COMMAND, CLUSTER SHARDS, SENTINEL
    /// queries, ROLE): a user's `max_reply_bytes` is about the replies to their commands, so
    /// these are bounded by the default limit at least. (With a bound of 1 KB the COMMAND
    /// reply failed, and with it every command of the client: ctests/test_reply.c.)
    pub fn metadata_command(&mut self, args: &Args<'_>) -> Result<Reply> {
        let own = self.proto.reply_bound();
        if own >= DEFAULT_MAX_REPLY_BYTES {
            return self.command(args);
        }
        self.proto.set_reply_bound(DEFAULT_MAX_REPLY_BYTES);
        let result = self.command(args);
        self.proto.set_reply_bound(own);
        result
    }

    /// Sends already encoded commands and reads `count` replies, error replies included.
    pub fn pipeline(&mut self, encoded: &[u8], count: usize) -> Result<Vec<Reply>> {
        self.pipeline_then(encoded, count, Protocol::take_batch_replies)
    }

    /// Like [`Connection::pipeline`], with the replies as one array whose strings stay in the
    /// buffers they were read into (split off once per read, not once per reply): no work per
    /// reply beyond decoding it.
    pub fn pipeline_array(&mut self, encoded: &[u8], count: usize) -> Result<Reply> {
        self.pipeline_then(encoded, count, Protocol::take_batch)
    }

    /// Sends `encoded`, decodes `count` replies in place and hands them over with `take`.
    fn pipeline_then<T>(
        &mut self,
        encoded: &[u8],
        count: usize,
        take: impl FnOnce(&mut Protocol) -> T,
    ) -> Result<T> {
        let sent_before = self.wire_sent;
        self.proto.queue_encoded(encoded);
        self.proto.expect_batch(count);
        let mut decoded = 0;
        let replies = self
            .flush()
            .and_then(|()| {
                self.read_until(|proto| {
                    while decoded < count {
                        if !proto.next_in_batch()? {
                            return Ok(false);
                        }
                        decoded += 1;
                    }
                    Ok(true)
                })
            })
            .map(|()| take(&mut self.proto))
            .map_err(|e| self.check_reuse(e, sent_before))?;
        self.end_request()?;
        Ok(replies)
    }

    /// The configured bounds: the read timeout from `started` (set again when the connection is
    /// lent), no deadline.
    fn reset_bounds(&mut self, started: Option<Instant>) {
        self.bounds = Bounds {
            started,
            budget: self.default_read_timeout,
            deadline: None,
        };
    }

    /// A request is over: the next one starts from the configured bounds.
    #[inline]
    fn end_request(&mut self) -> Result<()> {
        self.unchecked = false;
        // Bytes read past the replies (a hostile or broken peer): the next request would take
        // them for its reply, so this connection carries no other.
        if self.proto.read_past_replies() {
            self.broken = true;
        }
        if self.bounds_changed {
            self.restore_bounds()?;
        }
        Ok(())
    }

    /// Back to the configured bounds after a request that needed others; a socket timeout
    /// changed for it is set back (or the connection closed, if even that fails).
    #[cold]
    fn restore_bounds(&mut self) -> Result<()> {
        self.bounds_changed = false;
        self.reset_bounds(self.bounds.started);
        let default = self.default_read_timeout;
        self.set_read_timeout(default)
    }

    /// A request failed. On a connection lent without the peek, an orderly close by the server
    /// before any reply byte, with not one byte of the request acknowledged by the server's
    /// kernel, means the server had closed the connection before the request came: it was never
    /// read, so it is marked as not sent, and the connection as stale (see `stale_on_reuse`).
    /// A reset proves nothing: it can come from a proxy that forwarded the request to the server
    /// (which applied it) before the acknowledgement reached us.
    fn check_reuse(&mut self, error: Error, sent_before: u64) -> Error {
        if !std::mem::take(&mut self.unchecked)
            || !self.broken
            || !self.closed_in_order
            || error.status() != Status::Connection
            || self.proto.mid_reply()
        {
            return error;
        }
        let Some(offset) = self.acked_offset else {
            return error;
        };
        match self.stream.socket().bytes_acked() {
            Some(acked) if acked.saturating_sub(offset) <= sent_before => {
                self.stale_on_reuse = true;
                error.sent(false)
            }
            _ => error,
        }
    }

    /// Sets the socket's read timeout (a system call, only when it changes).
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if timeout != self.read_timeout {
            self.stream
                .socket()
                .set_read_timeout(timeout)
                .map_err(|e| self.fail(&e, "set read timeout on"))?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    fn fail(&mut self, e: &io::Error, op: &str) -> Error {
        self.broken = true;
        let error = io_error(e, op, &self.address);
        match (error.status(), self.read_timeout) {
            (Status::Timeout, Some(t)) if op.starts_with("read") => {
                error.detail(format!("read timeout {} ms", t.as_millis()))
            }
            _ => error,
        }
    }

    /// Writes everything queued. The error records whether any byte went out.
    fn flush(&mut self) -> Result<()> {
        let mut written_any = false;
        while !self.proto.output().is_empty() {
            if written_any {
                // A peer taking the request slowly must not stretch the command past its
                // deadline (the write timeout bounds each send).
                self.check_deadline("write to").map_err(|e| e.sent(true))?;
            }
            let state = &mut *self.0;
            match state.stream.write(state.proto.output()) {
                Ok(0) => {
                    self.broken = true;
                    return Err(closed_by_peer(&self.address).sent(written_any));
                }
                Ok(n) => {
                    written_any = true;
                    self.wire_sent += n as u64;
                    self.proto.consume_output(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(&e, "write to").sent(written_any)),
            }
        }
        Ok(())
    }

    /// A TIMEOUT (and the connection broken) when the command deadline has passed.
    fn check_deadline(&mut self, op: &str) -> Result<()> {
        match self.bounds.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                self.broken = true;
                Err(Error::new(
                    Status::Timeout,
                    format!("{op} {}: command deadline reached", self.address),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Reads until one reply (not a push) is complete.
    fn read_reply(&mut self) -> Result<Reply> {
        let mut reply = None;
        self.read_until(|proto| {
            reply = proto.next_reply()?;
            Ok(reply.is_some())
        })?;
        Ok(reply.expect("read_until returns once a reply is there"))
    }

    /// Reads until `decoded` (which decodes from the bytes read so far) says it has what it
    /// waits for.
    fn read_until(&mut self, mut decoded: impl FnMut(&mut Protocol) -> Result<bool>) -> Result<()> {
        let mut first = true;
        loop {
            match decoded(&mut self.proto) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e
                        .sent(true)
                        .context(format!("reading from {}", self.address)));
                }
            }
            // The first read is bounded by the socket's timeout alone; later ones by what is
            // left of the request's time.
            if !first {
                self.shorten_read_timeout().map_err(|e| e.sent(true))?;
            }
            first = false;
            self.read_once().map_err(|e| e.sent(true))?;
        }
    }

    /// Reads what the socket has into the protocol's input buffer.
    #[inline(always)]
    fn read_once(&mut self) -> Result<()> {
        loop {
            let state = &mut *self.0;
            match state.stream.read_into(state.proto.input_buffer()) {
                Ok(0) => {
                    self.broken = true;
                    self.closed_in_order = true;
                    return Err(closed_by_peer(&self.address));
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(&e, "read from")),
            }
        }
    }

    /// Before a read after the first: TIMEOUT when the request's time is up, else the socket's
    /// timeout shortened to the time left (when it is a quarter or more too long, so a reply
    /// read in many pieces shortens it a few times, not before every read).
    #[inline(never)]
    fn shorten_read_timeout(&mut self) -> Result<()> {
        let now = Instant::now();
        if self.bounds.started.is_none() {
            // A second request on one borrow (after the command table was fetched, say): its
            // start was not timed, so its time runs from its first read's end, a little late.
            self.bounds.started = Some(now);
        }
        let Some(limit) = self.bounds.limit() else {
            return Ok(());
        };
        if now >= limit {
            self.broken = true;
            let why = match (self.bounds.deadline, self.bounds.budget) {
                (Some(deadline), _) if deadline <= limit => "command deadline reached".to_owned(),
                (_, Some(budget)) => format!(
                    "no whole reply within the read timeout, {} ms from the request",
                    budget.as_millis()
                ),
                _ => "no whole reply in time".to_owned(),
            };
            return Err(Error::new(
                Status::Timeout,
                format!("read from {}: timed out ({why})", self.address),
            ));
        }
        let left = (limit - now).max(Duration::from_millis(1));
        if self.read_timeout.is_none_or(|t| t > left + left / 4) {
            self.bounds_changed = true;
            self.set_read_timeout(Some(left))?;
        }
        Ok(())
    }
}
