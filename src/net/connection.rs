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
        let tls = if cfg.tls.enabled {
            let host = match &endpoint {
                Endpoint::Tcp { host, .. } => host.as_str(),
                Endpoint::Unix(_) => "localhost",
            };
            Some((
                tls::client_config(&cfg.tls)?,
                tls::server_name(&cfg.tls, host)?,
            ))
        } else {
            None
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
        }));
        conn.handshake(&settings.handshake)?;
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
        self.broken
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
        self.broken || self.stream.is_stale()
    }

    /// Sends one command and reads its reply. An error reply becomes `Err` with the server's
    /// text; the connection stays usable after it.
    pub fn command(&mut self, args: &Args<'_>) -> Result<Reply> {
        self.proto.queue(args);
        self.flush()?;
        let reply = self.read_reply()?;
        if reply.kind() == ReplyKind::Error {
            return Err(Error::from_reply(reply.as_bytes().unwrap_or_default()));
        }
        Ok(reply)
    }

    /// Sends already encoded commands and reads `count` replies, error replies included.
    pub fn pipeline(&mut self, encoded: &[u8], count: usize) -> Result<Vec<Reply>> {
        self.proto.queue_encoded(encoded);
        self.flush()?;
        let mut replies = Vec::with_capacity(count);
        for _ in 0..count {
            replies.push(self.read_reply()?);
        }
        Ok(replies)
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
        loop {
            match self.proto.next_reply() {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
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
