//! The async driver: one multiplexed connection per node, onto which concurrent requests are
//! pipelined automatically.
//!
//! (At ~700 lines this is one of src/'s longer files, on purpose: the writer, the hand-off to the
//! reader and every failure path share one connection state and one exactly-once rule; the
//! reader, the express lane, the writing side and the loop reads are already files of their
//! own in `mux/`.)
//!
//! A mux is a tokio task that owns a request channel. Its writer takes every request waiting in
//! the channel, writes them in one go and records them, in order, as in flight; its reader
//! decodes replies and completes the in-flight requests front to back. So N callers issuing
//! commands at once share one connection and (nearly) one round trip, like ioredis's or
//! Lettuce's auto-pipelining. With caller dispatch, a plain connection's replies are read by
//! the application's dispatching thread instead of a reader task (`loop_reads`).
//!
//! Every request is completed exactly once:
//! - with its reply (error replies included; the caller classifies them);
//! - with the connection's failure (CONNECTION, TIMEOUT, PROTOCOL, TLS; `sent` set) when the
//!   connection dies after the request was written;
//! - with the connect failure (`sent` unset) when no connection could be opened for it;
//! - with CLOSED when the client closes.
//!
//! A request taken from the channel but not yet written when its connection dies is carried over
//! to the next connection, untouched. The mux reconnects lazily, when the next request arrives;
//! backoff between attempts is the caller's retry policy, not the mux's.
//!
//! The bounds are the blocking path's: a connection with nothing in flight is peeked before it
//! is written to (a server's close is found before a request is lost to it), each write is
//! bounded by the write timeout, a command deadline also bounds the wait for a connection, and
//! closing the client interrupts a connect or a blocked write and waits until the mux has let go
//! of its connection (so no event is reported after `brisk_client_free` returns).

mod express;
mod loop_reads;
mod reader;
mod writer;

use crate::core::{Error, Result, Status};
use crate::net::ConnectSettings;
use crate::net::async_connect::{self, AsyncConnection, AsyncStream};
use crate::net::errors::{closed_by_peer, io_error};
use crate::resp::Reply;
use crate::telemetry::events::{Event, EventKind, Observer};
use crate::telemetry::stats::Stat;
use bytes::BytesMut;
use express::Express;
pub(crate) use express::Held;
pub(crate) use loop_reads::LoopReads;
use loop_reads::{LoopLine, Start};
use reader::{Line, Reader, Replies, SharedLine, kill, lock};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};
use writer::Writer;

/// A request the mux carries: what to write, and who hears the outcome. The caller's own
/// allocation (an async command's whole state, its callback included) travels through the mux
/// as it is: nothing is allocated per request on the way.
pub(crate) trait Pending: Send {
    /// Appends the request's bytes to `out`.
    fn write_to(&self, out: &mut BytesMut);

    /// The command deadline: past it the request completes with TIMEOUT even if its reply is
    /// still to come (the reply is then dropped when it arrives).
    fn deadline(&self) -> Option<Instant>;

    /// Replies to commands written ahead of the request's own (a cluster's `ASKING`), dropped
    /// before its reply.
    fn skip_replies(&self) -> u8 {
        0
    }

    /// The outcome, exactly once, on a brisk runtime thread.
    fn complete(self: Box<Self>, result: Result<Reply>);
}

pub(crate) type Request = Box<dyn Pending>;

fn fail(request: Request, error: Error) {
    request.complete(Err(error));
}

/// Settings a mux needs beyond how to connect.
#[derive(Clone)]
pub(crate) struct MuxSettings {
    pub read_timeout: Option<Duration>,
    pub health_check_interval: Option<Duration>,
    /// In caller dispatch: the client's connections read by its dispatching thread.
    pub loop_reads: Option<Arc<LoopReads>>,
}

/// The handle to a mux task; dropping every handle ends the task once it has drained.
pub(crate) struct Mux {
    tx: mpsc::UnboundedSender<Request>,
    busy: Arc<Busy>,
    /// The express lane of the current connection, when it has one (see `express`).
    lane: Lane,
}

/// Where the mux task publishes its connection's express lane for senders.
type Lane = Arc<Mutex<Option<Arc<Express>>>>;

/// Whether the mux task has a connection (or is opening one): until it has let go of it, it may
/// still report events (DISCONNECT), so closing the client waits for it.
#[derive(Default)]
struct Busy {
    busy: Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Busy {
    fn set(&self, busy: bool) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = busy;
        self.changed.notify_all();
    }
}

/// Most bytes gathered into one write before writing.
const MAX_BATCH: usize = 256 * 1024;

impl Mux {
    pub fn spawn(
        settings: Arc<ConnectSettings>,
        config: MuxSettings,
        observer: Arc<Observer>,
        closed: watch::Receiver<bool>,
    ) -> Mux {
        let (tx, rx) = mpsc::unbounded_channel();
        let busy = Arc::new(Busy::default());
        let lane = Lane::default();
        let task = Task {
            lane: lane.clone(),
            busy: busy.clone(),
            settings,
            config,
            observer,
            closed,
            rx,
        };
        if !crate::runtime::spawn(task.run()) {
            // No runtime (the process is out of threads): the receiver is gone, so `send`
            // fails every request at once instead of leaving it hanging.
        }
        Mux { tx, busy, lane }
    }

    /// Waits until the task has let go of its connection. Called by the client's close once every
    /// request was completed: after that, the closed task opens no connection and reports
    /// nothing more, so the event handler is not called after `brisk_client_free` returns.
    pub fn wait_idle(&self) {
        let mut busy = self.busy.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy {
            busy = self
                .busy
                .changed
                .wait(busy)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Sends a request: on the express lane when the connection has one and takes it, else
    /// through the task. It is completed exactly once whatever happens.
    pub fn send(&self, request: Request) {
        self.send_maybe_held(request, false);
    }

    /// As `send`, but a request its sender would write itself, or that would wait for the
    /// reader's next read, is only appended to the connection's outbox: the lane is returned,
    /// for the sender to write later (`Held::write`), one write for all it appended meanwhile.
    /// Until then the reader writes it after its next read or within two ticks (100 ms).
    pub fn send_held(&self, request: Request) -> Option<Held> {
        self.send_maybe_held(request, true)
    }

    fn send_maybe_held(&self, request: Request, hold: bool) -> Option<Held> {
        let lane = self.lane.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let request = match lane {
            Some(lane) => match lane.send(request, hold) {
                Ok(held) => return held,
                Err(request) => request,
            },
            None => request,
        };
        if let Err(mpsc::error::SendError(request)) = self.tx.send(request) {
            fail(
                request,
                Error::new(
                    Status::Closed,
                    "the async runtime is not running (could not start its threads)",
                ),
            );
        }
        None
    }
}

fn closed_error() -> Error {
    Error::new(
        Status::Closed,
        "the client was closed before the reply arrived",
    )
}

struct Task {
    settings: Arc<ConnectSettings>,
    config: MuxSettings,
    observer: Arc<Observer>,
    closed: watch::Receiver<bool>,
    rx: mpsc::UnboundedReceiver<Request>,
    busy: Arc<Busy>,
    lane: Lane,
}

impl Task {
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn event(&self, kind: EventKind, status: Status, duration: Duration) {
        if self.observer.enabled() {
            self.observer.emit(&Event {
                kind,
                status,
                command: b"",
                duration,
                attempt: 1,
                address: &self.settings.address_c,
                error_type: (status != Status::Ok).then(|| status.name()),
                batch_size: 1,
                db: self.observer.db(),
            });
        }
    }

    async fn run(mut self) {
        let mut held: VecDeque<Request> = VecDeque::new();
        // Whether the last connection was lost (not closed by us): the next one replaces it.
        let mut lost = false;
        loop {
            let first = match held.pop_front() {
                Some(request) => request,
                None => match self.rx.recv().await {
                    Some(request) => request,
                    // Every handle is gone: the client was dropped.
                    None => return,
                },
            };
            if self.is_closed() {
                fail(first, closed_error());
                for request in held.drain(..) {
                    fail(request, closed_error());
                }
                continue;
            }
            held.push_front(first);
            // Set while `first` is still owed, so a close waiting for every request to complete
            // then also waits for this connection to be let go.
            self.busy.set(true);
            let started = Instant::now();
            let Some(connected) = self.connect(&mut held).await else {
                // Closed while connecting: everything waiting was failed with CLOSED.
                self.busy.set(false);
                continue;
            };
            match connected {
                Ok(connection) => {
                    self.observer.stats.bump(Stat::Connects);
                    if std::mem::take(&mut lost) {
                        self.observer.stats.bump(Stat::Reconnects);
                    }
                    self.event(EventKind::Connect, Status::Ok, started.elapsed());
                    (held, lost) = self.serve(connection, held).await;
                }
                Err(error) => {
                    self.event(EventKind::Connect, error.status(), started.elapsed());
                    // Everyone waiting would meet the same failure now; their retry policies
                    // decide when to come back.
                    for request in held.drain(..) {
                        fail(request, error.clone());
                    }
                    while let Ok(request) = self.rx.try_recv() {
                        fail(request, error.clone());
                    }
                }
            }
            self.busy.set(false);
        }
    }

    /// Opens a connection while watching the requests waiting for it (more may arrive into
    /// `waiting` meanwhile): a request whose command deadline passes first is failed with
    /// TIMEOUT (not sent), as the blocking path's connect is bounded by the deadline, and the
    /// client closing fails them all with CLOSED at once (`None`) instead of waiting for the
    /// connect timeout.
    async fn connect(
        &mut self,
        waiting: &mut VecDeque<Request>,
    ) -> Option<Result<AsyncConnection>> {
        let connecting = async_connect::connect(&self.settings);
        tokio::pin!(connecting);
        let mut channel_open = true;
        loop {
            tokio::select! {
                result = &mut connecting => return Some(result),
                _ = earliest_deadline(waiting) => expire_waiting(waiting, &self.settings.address),
                request = self.rx.recv(), if channel_open => match request {
                    Some(request) => waiting.push_back(request),
                    None => channel_open = false,
                },
                _ = self.closed.wait_for(|closed| *closed) => {
                    for request in waiting.drain(..) {
                        fail(request, closed_error());
                    }
                    return None;
                }
            }
        }
    }

    /// Runs one connection until it dies or the client closes. Returns the requests that were
    /// taken from the channel but never written, for the next connection, and whether the
    /// connection was lost (rather than closed with the client).
    async fn serve(
        &mut self,
        connection: AsyncConnection,
        mut held: VecDeque<Request>,
    ) -> (VecDeque<Request>, bool) {
        // `_pushes` lives until the connection is let go of (the push router hears of it).
        let AsyncConnection {
            stream,
            proto,
            pushes: _pushes,
        } = connection;
        // Kept open by the stream's halves until this returns.
        let fd = stream.raw_fd();
        let express_socket = stream.express_socket();
        let line: SharedLine = Arc::new(Mutex::new(Line::new()));
        let handoff = Arc::new(Notify::new());
        let express = express_socket.map(|socket| {
            Arc::new(Express::new(
                line.clone(),
                socket,
                self.settings.address.clone(),
                handoff.clone(),
                self.config.health_check_interval,
            ))
        });
        let replies = Replies {
            line: line.clone(),
            address: self.settings.address.clone(),
            read_timeout: self.config.read_timeout,
            proto,
            express: express.clone(),
        };
        let reader_done = Arc::new(Notify::new());
        let (mut writer, reading) = match self.start_reading(stream, replies, &reader_done) {
            Ok(started) => started,
            Err(e) => {
                kill(
                    &line,
                    io_error(&e, "set up reading from", &self.settings.address),
                );
                self.event(EventKind::Disconnect, Status::Connection, Duration::ZERO);
                return (held, true);
            }
        };
        *self.lane.lock().unwrap_or_else(|p| p.into_inner()) = express;
        loop {
            let request = match held.pop_front() {
                Some(request) => Some(request),
                None => tokio::select! {
                    request = self.rx.recv() => match request {
                        Some(request) => Some(request),
                        None => break,
                    },
                    // A sender's write would have blocked: finish it.
                    _ = handoff.notified() => None,
                    _ = reader_done.notified() => break,
                    _ = self.closed.changed() => break,
                },
            };
            let Some(request) = request else {
                if !self
                    .drain(&line, &mut writer, &reader_done, &mut held)
                    .await
                {
                    break;
                }
                continue;
            };
            if self.is_closed() {
                held.push_front(request);
                break;
            }
            let idle = {
                let state = lock(&line);
                state.queue.is_empty() && !state.writing
            };
            // Nothing in flight: a server that closed the connection meanwhile (CLIENT KILL, an
            // idle timeout) is found now, before the request is written to it, even when the
            // reader has not run yet to see the close. The request goes, unsent, to a new
            // connection, as the pool's peek replaces a closed idle connection.
            if idle && async_connect::peer_closed(fd) {
                held.push_front(request);
                kill(&line, closed_by_peer(&self.settings.address));
                break;
            }
            let last_write = lock(&line).last_write;
            let idle_too_long = self
                .config
                .health_check_interval
                .is_some_and(|interval| idle && last_write.elapsed() >= interval);
            if idle_too_long {
                // The request waits in `held`, its deadline watched, while the PING is out.
                held.push_front(request);
                if !self
                    .health_check(&line, &mut writer, &reader_done, &mut held)
                    .await
                {
                    break;
                }
                continue;
            }
            // Everything already waiting goes into the outbox at once, in order.
            let start_writing = {
                let mut state = lock(&line);
                if state.dead.is_some() {
                    // Not written: it goes to the next connection.
                    drop(state);
                    held.push_front(request);
                    break;
                }
                state.append(request);
                while state.outbox.len() < MAX_BATCH {
                    match held
                        .pop_front()
                        .map(Ok)
                        .unwrap_or_else(|| self.rx.try_recv())
                    {
                        Ok(request) => state.append(request),
                        Err(_) => break,
                    }
                }
                // Whoever writes now goes on until the outbox is empty.
                !std::mem::replace(&mut state.writing, true)
            };
            if start_writing
                && !self
                    .drain(&line, &mut writer, &reader_done, &mut held)
                    .await
            {
                break;
            }
        }
        *self.lane.lock().unwrap_or_else(|p| p.into_inner()) = None;
        reading.stop();
        let reason = if self.is_closed() {
            closed_error()
        } else {
            closed_by_peer(&self.settings.address)
        };
        kill(&line, reason);
        if self.is_closed() {
            for request in held.drain(..) {
                fail(request, closed_error());
            }
        }
        let status = lock(&line).dead.as_ref().map_or(Status::Ok, Error::status);
        let status = if status == Status::Closed {
            Status::Ok
        } else {
            status
        };
        self.event(EventKind::Disconnect, status, Duration::ZERO);
        (held, status != Status::Ok)
    }

    /// Starts the connection's reading side: on the application's dispatching thread when the
    /// client dispatches its callbacks and the connection is a plain socket (`loop_reads`),
    /// else a reader task. `done` is told when the reading side finds the connection dead.
    fn start_reading(
        &self,
        stream: AsyncStream,
        replies: Replies,
        done: &Arc<Notify>,
    ) -> std::io::Result<(Writer, Reading)> {
        let (stream, replies) = match &self.config.loop_reads {
            None => (stream, replies),
            Some(reads) => match reads.start(stream, replies) {
                Start::Failed(e) => return Err(e),
                Start::Elsewhere(stream, replies) => (stream, replies),
                Start::OnLoop(writer, line) => {
                    let done = done.clone();
                    let tick = loop_reads::tick(reads.clone(), line.clone());
                    let task = tokio::spawn(async move {
                        tick.await;
                        done.notify_one();
                    });
                    let on_loop = Some((reads.clone(), line));
                    return Ok((writer, Reading { task, on_loop }));
                }
            },
        };
        let (half, writer) = tokio::io::split(stream);
        let done = done.clone();
        let task = tokio::spawn(async move {
            Reader { replies, half }.run().await;
            done.notify_one();
        });
        Ok((
            Writer::Stream(writer),
            Reading {
                task,
                on_loop: None,
            },
        ))
    }

    /// Writes the outbox until it is empty (the task owns `writing` and gives it up then).
    /// False when the connection is done for: its write failed (it is killed), the reader found
    /// it dead, or the client closes.
    ///
    /// A peer that stops reading (a stopped server, a full network) blocks the write: it is
    /// bounded by the write timeout, and given up at once when the reader has found the
    /// connection dead (the requests in flight were failed with it) or when the client closes
    /// (they are failed with CLOSED). Meanwhile, requests arriving through the channel wait in
    /// `held`, and their deadlines are watched.
    async fn drain(
        &mut self,
        line: &SharedLine,
        writer: &mut Writer,
        reader_done: &Notify,
        held: &mut VecDeque<Request>,
    ) -> bool {
        let mut out = BytesMut::new();
        let mut channel_open = true;
        loop {
            {
                let mut state = lock(line);
                if state.outbox.is_empty() || state.dead.is_some() {
                    state.writing = false;
                    return state.dead.is_none();
                }
                out.clear();
                state.take_outbox(&mut out);
            }
            let write = writer.write_all(&out, self.settings.write_timeout);
            tokio::pin!(write);
            let written = loop {
                tokio::select! {
                    written = &mut write => break Some(written),
                    _ = reader_done.notified() => break None,
                    _ = self.closed.wait_for(|closed| *closed) => break None,
                    request = self.rx.recv(), if channel_open => match request {
                        Some(request) => held.push_back(request),
                        None => channel_open = false,
                    },
                    _ = earliest_deadline(held) => expire_waiting(held, &self.settings.address),
                }
            };
            match written {
                Some(Ok(())) => lock(line).last_write = Instant::now(),
                Some(Err(e)) => {
                    kill(line, io_error(&e, "write to", &self.settings.address));
                    return false;
                }
                None => return false,
            }
        }
    }

    /// PINGs the connection before reuse after an idle spell; false when it is dead.
    async fn health_check(
        &mut self,
        line: &SharedLine,
        writer: &mut Writer,
        reader_done: &Notify,
        held: &mut VecDeque<Request>,
    ) -> bool {
        let started = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut state = lock(line);
            if state.dead.is_some() || state.writing {
                return state.dead.is_none();
            }
            state.append(Box::new(HealthCheck(tx)));
            state.writing = true;
            state.checking = true;
        }
        // Counted when sent ("health-check PINGs sent"): its verdict may take the read timeout.
        self.observer.stats.bump(Stat::HealthChecks);
        let address = self.settings.address.clone();
        // Only a broken connection fails the check (an error reply is an answer), and the
        // failure is reported with its own status (TIMEOUT, CONNECTION), as the blocking path
        // reports it.
        // Requests arriving meanwhile wait in `held` (for this connection or the next), their
        // deadlines watched, as during any write.
        let written = self.drain(line, writer, reader_done, held).await;
        let outcome = match written {
            false => Err(lock(line).dead.clone().unwrap_or_else(|| {
                Error::new(Status::Connection, format!("write to {address}: failed"))
            })),
            true => {
                tokio::pin!(rx);
                let mut channel_open = true;
                loop {
                    tokio::select! {
                        answer = &mut rx => break match answer {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(Error::new(
                                Status::Connection,
                                format!("health check of {address}: no answer"),
                            )),
                        },
                        request = self.rx.recv(), if channel_open => match request {
                            Some(request) => held.push_back(request),
                            None => channel_open = false,
                        },
                        _ = earliest_deadline(held) => expire_waiting(held, &address),
                    }
                }
            }
        };
        lock(line).checking = false;
        let healthy = outcome.is_ok();
        let status = outcome.as_ref().err().map_or(Status::Ok, Error::status);
        if let Err(e) = outcome {
            self.observer.stats.bump(Stat::HealthCheckFailures);
            kill(line, e.context("health check"));
        }
        self.event(EventKind::HealthCheck, status, started.elapsed());
        healthy
    }
}

/// A connection's reading side while it is served.
struct Reading {
    /// The reader task, or the tick of a connection read by the dispatching thread.
    task: tokio::task::JoinHandle<()>,
    on_loop: Option<(Arc<LoopReads>, Arc<LoopLine>)>,
}

impl Reading {
    /// Stops reading: the task ends, and the dispatching thread no longer reads the socket.
    fn stop(self) {
        self.task.abort();
        if let Some((reads, line)) = self.on_loop {
            reads.remove(&line);
        }
    }
}

/// A health check's PING in flight: its outcome goes to the check waiting for it.
struct HealthCheck(tokio::sync::oneshot::Sender<Result<Reply>>);

impl Pending for HealthCheck {
    fn write_to(&self, out: &mut BytesMut) {
        out.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn complete(self: Box<Self>, result: Result<Reply>) {
        let _ = self.0.send(result);
    }
}

/// Completes when the earliest deadline of `waiting` has passed (never without one).
fn earliest_deadline(waiting: &VecDeque<Request>) -> impl std::future::Future<Output = ()> {
    let earliest = waiting.iter().filter_map(|r| r.deadline()).min();
    async move {
        match earliest {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    }
}

/// Fails the requests of `waiting` (not written anywhere yet) whose deadline has passed.
fn expire_waiting(waiting: &mut VecDeque<Request>, address: &str) {
    let now = Instant::now();
    for request in std::mem::take(waiting) {
        if request.deadline().is_some_and(|d| d <= now) {
            fail(
                request,
                Error::new(
                    Status::Timeout,
                    format!("command deadline reached waiting for a connection to {address}"),
                ),
            );
        } else {
            waiting.push_back(request);
        }
    }
}
