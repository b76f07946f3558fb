//! The blocking connection driver: one connection, I/O on the calling thread.
//!
//! It moves bytes between a [`Stream`] and the pure [`Protocol`] state and runs the handshake
//! plan from `core::handshake`. Any I/O failure, timeout or protocol error marks the connection
//! broken: a reply may be half read, so it must never carry another request.

use super::errors::{closed_by_peer, io_error};
use super::socket::Socket;
use super::stream::Stream;
use super::tls;
use crate::config::{self, Config, Endpoint, Keepalive};
use crate::core::handshake::{self, Outcome};
use crate::core::protocol::Protocol;
use crate::core::{Error, Result};
use crate::resp::{Args, Limits, Node, Reply, ReplyKind};
use rustls::pki_types::ServerName;
use std::ffi::CString;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything needed to open a connection, derived once from a [`Config`].
pub struct ConnectSettings {
    pub endpoint: Endpoint,
    /// `host:port` or the socket path, for messages and events.
    pub address: Arc<str>,
    /// The same as a C string, for events.
    pub address_c: CString,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub keepalive: Option<Keepalive>,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub handshake: handshake::Params,
    pub limits: Limits,
}

impl ConnectSettings {
    pub fn new(cfg: &Config, endpoint: Endpoint) -> Result<ConnectSettings> {
        let tls = match cfg.tls.enabled {
            true => Some(tls::client_config(&cfg.tls)?),
            false => None,
        };
        ConnectSettings::with_tls(cfg, endpoint, tls)
    }

    /// The same settings for another node of the same deployment (a cluster node learnt from
    /// the topology): the TLS configuration, whose certificates were read from disk once, is
    /// shared rather than built again.
    pub fn for_endpoint(&self, cfg: &Config, endpoint: Endpoint) -> Result<ConnectSettings> {
        let tls = self.tls.as_ref().map(|(config, _)| config.clone());
        ConnectSettings::with_tls(cfg, endpoint, tls)
    }

    fn with_tls(
        cfg: &Config,
        endpoint: Endpoint,
        tls_config: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<ConnectSettings> {
        let tls = match tls_config {
            Some(config) => {
                let host = match &endpoint {
                    Endpoint::Tcp { host, .. } => host.as_str(),
                    Endpoint::Unix(_) => "localhost",
                };
                Some((config, tls::server_name(&cfg.tls, host)?))
            }
            None => None,
        };
        let address = endpoint.address();
        Ok(ConnectSettings {
            // A path with a NUL byte cannot be opened anyway; the event shows it truncated.
            address_c: CString::new(address.replace('\0', "")).unwrap_or_default(),
            address: address.into(),
            endpoint,
            connect_timeout: config::limit(cfg.connect_timeout_ms),
            read_timeout: config::limit(cfg.read_timeout_ms),
            write_timeout: config::limit(cfg.write_timeout_ms),
            keepalive: cfg.keepalive,
            tls,
            handshake: handshake::Params {
                username: cfg.username.clone(),
                password: cfg.password.as_ref().map(|p| p.expose().to_owned()),
                client_name: cfg.client_name.clone(),
                db: cfg.db,
                protocol: cfg.protocol,
                readonly: false,
            },
            limits: Limits::default(),
        })
    }
}

/// `timeout`, shortened to what is left before `deadline` (at least 1 ms: 0 would mean "none").
fn until(timeout: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
    let Some(deadline) = deadline else {
        return timeout;
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    Some(timeout.map_or(left, |t| t.min(left)))
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
    read_timeout: Option<Duration>,
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
    stale: std::cell::Cell<bool>,
    /// The last request failed on a connection the server had closed before any byte of it
    /// arrived: nothing was applied, and the pool's peek would have caught it had it looked.
    stale_on_reuse: bool,
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
        let socket = Socket::connect(
            &settings.endpoint,
            until(settings.connect_timeout, deadline),
            settings.keepalive,
        )?;
        let read_timeout = until(settings.read_timeout, deadline);
        socket
            .set_timeouts(read_timeout, until(settings.write_timeout, deadline))
            .map_err(|e| io_error(&e, "set timeouts on", &address))?;
        let mut stream = match &settings.tls {
            None => Stream::Plain(socket),
            Some((config, name)) => {
                let tls = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| Error::new(crate::core::Status::Tls, format!("TLS setup: {e}")))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(tls, socket)))
            }
        };
        stream
            .finish_handshake()
            .map_err(|e| io_error(&e, "TLS handshake with", &address))?;
        let mut conn = Connection(Box::new(State {
            stream,
            proto: Protocol::new(settings.limits),
            address,
            resp3: false,
            broken: false,
            read_timeout,
            created: Instant::now(),
            wire_sent: 0,
            acked_offset: None,
            unchecked: false,
            stale: std::cell::Cell::new(false),
            stale_on_reuse: false,
        }));
        conn.handshake(&settings.handshake)?;
        if let Stream::Plain(socket) = &conn.stream {
            // Every handshake reply has been read, so the server has acknowledged every byte.
            conn.acked_offset = socket
                .bytes_acked()
                .and_then(|acked| acked.checked_sub(conn.wire_sent));
        }
        if deadline.is_some() {
            conn.stream
                .socket()
                .set_timeouts(settings.read_timeout, settings.write_timeout)
                .map_err(|e| io_error(&e, "set timeouts on", &settings.address))?;
            conn.read_timeout = settings.read_timeout;
        }
        Ok(conn)
    }

    fn handshake(&mut self, params: &handshake::Params) -> Result<()> {
        let mut stage = params.first_stage();
        loop {
            let commands = params.commands(stage);
            if commands.is_empty() {
                self.resp3 = false;
                return Ok(());
            }
            for command in &commands {
                self.proto.queue_owned(command);
            }
            let replies: Vec<Reply> = self
                .flush()
                .and_then(|()| (0..commands.len()).map(|_| self.read_reply()).collect())
                .map_err(|e| e.context("handshake"))?;
            let nodes: Vec<&Node> = replies.iter().map(|r| r.node()).collect();
            match params.check(stage, &nodes) {
                Outcome::Ready { resp3 } => {
                    self.resp3 = resp3;
                    return Ok(());
                }
                Outcome::Fallback => stage = handshake::Stage::Legacy,
                Outcome::Failed(e) => return Err(e),
            }
        }
    }

    pub fn address(&self) -> &Arc<str> {
        &self.address
    }

    pub fn is_resp3(&self) -> bool {
        self.resp3
    }

    pub fn is_broken(&self) -> bool {
        self.broken || self.stale.get()
    }

    pub fn created(&self) -> Instant {
        self.created
    }

    /// The socket's file descriptor (to interrupt a blocking read from another thread).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.socket().raw_fd()
    }

    /// Marks the connection for closing: the pool drops it instead of lending it again.
    pub fn discard(&mut self) {
        self.broken = true;
    }

    /// Whether the server closed this (idle) connection or sent something unasked for.
    pub fn is_stale(&self) -> bool {
        let stale = self.is_broken() || self.stream.is_stale();
        self.stale.set(stale);
        stale
    }

    /// Whether the pool may lend this connection without peeking at it first: a request that
    /// then fails because the server had closed the connection is recognised afterwards (see
    /// [`Connection::stale_on_reuse`]).
    pub fn can_skip_peek(&self) -> bool {
        self.acked_offset.is_some()
    }

    /// Set by the pool when it lends the connection: whether it skipped the peek.
    pub fn set_unchecked(&mut self, unchecked: bool) {
        self.unchecked = unchecked;
    }

    /// The last request failed only because the server had closed this connection before any
    /// byte of the request reached it (the connection was lent without the idle peek): nothing
    /// was applied, and the caller should take another connection as if the peek had found it.
    pub fn stale_on_reuse(&self) -> bool {
        self.stale_on_reuse
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
        self.unchecked = false;
        if reply.kind() == ReplyKind::Error {
            return Err(Error::from_reply(reply.as_bytes().unwrap_or_default()));
        }
        Ok(reply)
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
        self.unchecked = false;
        Ok(replies)
    }

    /// A request failed. On a connection lent without the peek, a connection failure before
    /// any reply byte, with not one byte of the request acknowledged by the server's kernel,
    /// means the server had closed the connection before the request came: it was never read,
    /// so it is marked as not sent, and the connection as stale (see `stale_on_reuse`).
    fn check_reuse(&mut self, error: Error, sent_before: u64) -> Error {
        if !std::mem::take(&mut self.unchecked)
            || !self.broken
            || error.status() != crate::core::Status::Connection
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

    /// Changes the read timeout for the next reads (blocking commands need a longer one).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
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
            (crate::core::Status::Timeout, Some(t)) if op.starts_with("read") => {
                error.detail(format!("read timeout {} ms", t.as_millis()))
            }
            _ => error,
        }
    }

    /// Writes everything queued. The error records whether any byte went out.
    fn flush(&mut self) -> Result<()> {
        let mut written_any = false;
        while !self.proto.output().is_empty() {
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
            let state = &mut *self.0;
            match state.stream.read_into(state.proto.input_buffer()) {
                Ok(0) => {
                    self.broken = true;
                    return Err(closed_by_peer(&self.address).sent(true));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(&e, "read from").sent(true)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A cluster node's settings share the seed's TLS configuration (no certificate read per
    /// node) but name their own server and address.
    #[test]
    fn settings_for_another_node_share_the_tls_configuration() {
        let mut cfg = Config::default();
        cfg.tls.enabled = true;
        cfg.tls.insecure_skip_verify = true;
        let seed = ConnectSettings::new(&cfg, tcp("seed.example", 7000)).unwrap();
        let node = seed.for_endpoint(&cfg, tcp("node2.example", 7001)).unwrap();
        let (seed_tls, seed_name) = seed.tls.as_ref().unwrap();
        let (node_tls, node_name) = node.tls.as_ref().unwrap();
        assert!(Arc::ptr_eq(seed_tls, node_tls));
        assert_eq!(seed_name.to_str(), "seed.example");
        assert_eq!(node_name.to_str(), "node2.example");
        assert_eq!(&*node.address, "node2.example:7001");

        cfg.tls.enabled = false;
        let plain = ConnectSettings::new(&cfg, tcp("seed.example", 7000)).unwrap();
        assert!(plain.for_endpoint(&cfg, tcp("n", 1)).unwrap().tls.is_none());
    }
}
