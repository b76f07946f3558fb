//! One connection of a subscriber: a task on brisk's runtime that opens it, writes the
//! (un)subscribe commands its supervisor sends, reads frames, puts messages in the queue and
//! reports everything else back, PINGs it when it is idle, and ends when it is lost (or no
//! longer wanted). It never reconnects by itself: the supervisor decides where its
//! subscriptions go next.
//!
//! Messages go from here straight into the queue (a whole read's worth under one lock); only
//! confirmations, refusals and the server's own unsubscriptions travel to the supervisor.
//!
//! Bounds: a command's confirmations must arrive within the read timeout of its write; a PING
//! is sent after `health.interval` without a byte read and must be answered within
//! `health.timeout` (bytes arriving meanwhile extend it: the connection is alive, just busy).
//! While a BLOCK queue is full the link stops reading, and those clocks stop with it.

use super::Core;
use super::message::Message;
use crate::config::pubsub::HealthCheck;
use crate::core::protocol::Protocol;
use crate::core::pubsub::{Action, Answer, Frame, InFlight, Kind, classify};
use crate::core::{Error, Status};
use crate::net::ConnectSettings;
use crate::net::async_connect::{self, AsyncConnection, AsyncStream, within};
use crate::net::errors::{closed_by_peer, io_error};
use crate::telemetry::events::{Event, EventKind, Observer};
use crate::telemetry::stats::Stat;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

/// Messages of a read smaller than this are copied out of the read buffer (`Message::copied`):
/// a read buffer (up to 64 KiB) stays allocated while any message read into it waits in the
/// queue, so a slow consumer of a trickle would otherwise hold a buffer per message. Larger
/// reads keep their messages in place (zero copy): their buffer is at least a quarter full of
/// them.
const COMPACT_BELOW: usize = 16 * 1024;

/// What a link is, as its supervisor made it.
pub(crate) struct LinkSpec {
    pub id: u64,
    pub settings: ConnectSettings,
    /// It replaces a connection that was lost (counted as a reconnect).
    pub replaces_lost: bool,
    pub health: HealthCheck,
    pub read_timeout: Option<Duration>,
}

/// A command for the link to write: `command` is the whole (un)subscribe command.
pub(crate) struct Change {
    pub token: u64,
    pub action: Action,
    pub kind: Kind,
    pub command: Vec<Vec<u8>>,
}

/// What links (and the supervisor's topology reads) report to the supervisor.
pub(crate) enum News {
    /// Every confirmation of `token` arrived (`Ok`), or the server refused it.
    Answered {
        token: u64,
        result: crate::core::Result<()>,
    },
    /// The server unsubscribed on its own (a shard channel whose slot moved away).
    Unsolicited {
        link: u64,
        action: Action,
        kind: Kind,
        channel: Vec<u8>,
    },
    /// The link ended: lost with `error`, or closed on purpose (`None`). `abandoned`: the
    /// tokens it had written without their answers; `was_up`: it had connected.
    Down {
        link: u64,
        error: Option<Error>,
        abandoned: Vec<u64>,
        was_up: bool,
    },
    /// A topology read the supervisor started has finished.
    Refreshed,
}

/// What a link shares with its subscriber.
#[derive(Clone)]
pub(crate) struct LinkContext {
    pub core: Arc<Core>,
    pub observer: Arc<Observer>,
    pub news: mpsc::UnboundedSender<News>,
    /// Set when the subscriber closes: every link ends at once.
    pub stop: watch::Receiver<bool>,
    /// Set when the client closes: from then on nothing is reported to its event handler
    /// (whose userdata may die with the client).
    pub client_closed: watch::Receiver<bool>,
}

/// Runs a link until it is lost or closed, then reports [`News::Down`].
pub(crate) async fn run(
    spec: LinkSpec,
    mut changes: mpsc::UnboundedReceiver<Change>,
    ctx: LinkContext,
) {
    let mut stop = ctx.stop.clone();
    let started = Instant::now();
    let connected = tokio::select! {
        connected = async_connect::connect(&spec.settings) => connected,
        _ = stopped(&mut stop) => return,
    };
    let link = Link::new(&spec, &ctx);
    let connection = match connected {
        Ok(connection) => connection,
        Err(error) => {
            link.event(EventKind::Connect, error.status(), started.elapsed());
            let _ = ctx.news.send(News::Down {
                link: spec.id,
                error: Some(error),
                abandoned: Vec::new(),
                was_up: false,
            });
            return;
        }
    };
    ctx.observer.stats.bump(Stat::Connects);
    if spec.replaces_lost {
        ctx.observer.stats.bump(Stat::Reconnects);
    }
    link.event(EventKind::Connect, Status::Ok, started.elapsed());
    let mut link = link;
    let error = link.serve(connection, &mut changes, &mut stop).await;
    let status = error.as_ref().map_or(Status::Ok, Error::status);
    link.event(EventKind::Disconnect, status, Duration::ZERO);
    let _ = ctx.news.send(News::Down {
        link: spec.id,
        error,
        abandoned: link.flight.abandon(),
        was_up: true,
    });
}

struct Link<'a> {
    spec: &'a LinkSpec,
    ctx: &'a LinkContext,
    flight: InFlight<u64>,
    /// When each change in flight was written, oldest first.
    written: VecDeque<(u64, Instant)>,
    /// When the health PING in flight was written.
    ping_sent: Option<Instant>,
    last_read: Instant,
}

/// Completes once `stop` is set (or its sender is gone). The receiver's guard is not held
/// across an await: the future stays `Send`.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Waits until `at`, or for ever.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl<'a> Link<'a> {
    fn new(spec: &'a LinkSpec, ctx: &'a LinkContext) -> Link<'a> {
        Link {
            spec,
            ctx,
            flight: InFlight::default(),
            written: VecDeque::new(),
            ping_sent: None,
            last_read: Instant::now(),
        }
    }

    fn address(&self) -> &str {
        &self.spec.settings.address
    }

    fn event(&self, kind: EventKind, status: Status, duration: Duration) {
        let observer = &self.ctx.observer;
        if observer.enabled() && !*self.ctx.client_closed.borrow() {
            observer.emit(&Event {
                kind,
                status,
                command: b"",
                duration,
                attempt: 1,
                address: &self.spec.settings.address_c,
                error_type: (status != Status::Ok).then(|| status.name()),
                batch_size: 1,
                db: observer.db(),
            });
        }
    }

    /// Serves the connection until it is lost (the error) or closed on purpose (`None`).
    async fn serve(
        &mut self,
        connection: AsyncConnection,
        changes: &mut mpsc::UnboundedReceiver<Change>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Error> {
        let AsyncConnection {
            mut stream,
            mut proto,
            ..
        } = connection;
        let core = self.ctx.core.clone();
        let mut batch: VecDeque<Message> = VecDeque::new();
        self.last_read = Instant::now();
        loop {
            if !batch.is_empty() {
                let dropped = core.queue.offer(&mut batch);
                core.counters.dropped(&self.ctx.observer, dropped);
                if !batch.is_empty() {
                    // BLOCK, and the queue is full: stop reading until there is room.
                    tokio::select! {
                        _ = core.queue.wait_for_room() => self.resume(),
                        change = changes.recv() => match change {
                            Some(change) => {
                                if let Err(e) = self.write(&mut stream, &mut proto, change, changes).await {
                                    return Some(e);
                                }
                            }
                            None => return None,
                        },
                        _ = stopped(stop) => return None,
                    }
                    continue;
                }
            }
            let wake = self.next_check();
            tokio::select! {
                _ = stopped(stop) => return None,
                change = changes.recv() => match change {
                    Some(change) => {
                        if let Err(e) = self.write(&mut stream, &mut proto, change, changes).await {
                            return Some(e);
                        }
                    }
                    None => return None,
                },
                read = stream.read_buf(proto.input_buffer()) => {
                    let n = match read {
                        Ok(0) => return Some(closed_by_peer(self.address())),
                        Ok(n) => n,
                        Err(e) => return Some(io_error(&e, "read from", self.address())),
                    };
                    self.last_read = Instant::now();
                    if let Err(e) = self.decode(&mut proto, &mut batch, n < COMPACT_BELOW) {
                        return Some(e);
                    }
                }
                _ = until(wake) => {
                    if let Err(e) = self.check(&mut stream, &mut proto).await {
                        return Some(e);
                    }
                }
            }
        }
    }

    /// Decodes every whole frame read so far: messages into `batch` (`compact`: each in an
    /// allocation of its own, see [`COMPACT_BELOW`]), the rest answered. Only the frames' buffer
    /// travels on with the messages.
    fn decode(
        &mut self,
        proto: &mut Protocol,
        batch: &mut VecDeque<Message>,
        compact: bool,
    ) -> Result<(), Error> {
        let mut received = 0;
        let outcome = loop {
            let frame = match proto.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.context(format!("reading from {}", self.address()))),
            };
            match classify(&frame) {
                Frame::Message {
                    kind,
                    pattern,
                    channel,
                    payload,
                } => {
                    let message =
                        Message::from_frame(&frame, kind, channel, pattern, payload, compact);
                    batch.push_back(message);
                    received += 1;
                }
                other => {
                    let answer = self.flight.answer(&other);
                    self.answered(answer);
                }
            }
            // The frame's tree is freed here, on the thread that made it.
        };
        self.ctx
            .core
            .counters
            .received(&self.ctx.observer, received);
        outcome
    }

    fn answered(&mut self, answer: Answer<u64>) {
        let link = self.spec.id;
        let news = match answer {
            Answer::Done(token) => {
                self.forget(token);
                News::Answered {
                    token,
                    result: Ok(()),
                }
            }
            Answer::Refused(token, error) => {
                self.forget(token);
                News::Answered {
                    token,
                    result: Err(error),
                }
            }
            Answer::Unsolicited {
                action,
                kind,
                channel,
            } => News::Unsolicited {
                link,
                action,
                kind,
                channel,
            },
            Answer::Pong => {
                if let Some(sent) = self.ping_sent.take() {
                    self.event(EventKind::HealthCheck, Status::Ok, sent.elapsed());
                }
                return;
            }
            Answer::Ignored => return,
        };
        let _ = self.ctx.news.send(news);
    }

    fn forget(&mut self, token: u64) {
        if let Some(at) = self.written.iter().position(|(t, _)| *t == token) {
            self.written.remove(at);
        }
    }

    /// Writes `first` and every other change already waiting, in one write.
    async fn write(
        &mut self,
        stream: &mut AsyncStream,
        proto: &mut Protocol,
        first: Change,
        changes: &mut mpsc::UnboundedReceiver<Change>,
    ) -> Result<(), Error> {
        let now = Instant::now();
        let mut next = Some(first);
        while let Some(change) = next {
            proto.queue_owned(&change.command);
            let names = change.command[1..].to_vec();
            self.flight
                .sent(change.token, change.action, change.kind, names);
            self.written.push_back((change.token, now));
            next = changes.try_recv().ok();
        }
        self.flush(stream, proto).await
    }

    async fn flush(&self, stream: &mut AsyncStream, proto: &mut Protocol) -> Result<(), Error> {
        let write = async_connect::write_all(stream, proto, self.address());
        within(self.spec.settings.write_timeout, "write", write).await
    }

    /// The BLOCK queue has room again: the time spent not reading does not count against the
    /// connection.
    fn resume(&mut self) {
        let now = Instant::now();
        self.last_read = now;
        if self.ping_sent.is_some() {
            self.ping_sent = Some(now);
        }
        for (_, at) in &mut self.written {
            *at = now;
        }
    }

    fn ping_timeout(&self) -> Duration {
        self.spec.health.timeout
    }

    /// When [`Link::check`] has something to look at next.
    fn next_check(&self) -> Option<Instant> {
        let health = match self.ping_sent {
            Some(sent) => Some(sent.max(self.last_read) + self.ping_timeout()),
            None => self.spec.health.interval.map(|i| self.last_read + i),
        };
        let confirmation = self
            .spec
            .read_timeout
            .zip(self.written.front())
            .map(|(timeout, (_, at))| *at + timeout);
        match (health, confirmation) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fails the connection when a PING or a confirmation is overdue; PINGs it when idle.
    async fn check(&mut self, stream: &mut AsyncStream, proto: &mut Protocol) -> Result<(), Error> {
        let now = Instant::now();
        let observer = &self.ctx.observer;
        if let Some(sent) = self.ping_sent
            && now >= sent.max(self.last_read) + self.ping_timeout()
        {
            observer.stats.bump(Stat::HealthCheckFailures);
            self.event(EventKind::HealthCheck, Status::Timeout, sent.elapsed());
            return Err(Error::new(
                Status::Timeout,
                format!(
                    "health-check PING to {} not answered within {} ms",
                    self.address(),
                    self.ping_timeout().as_millis()
                ),
            ));
        }
        if let (Some(timeout), Some((_, at))) = (self.spec.read_timeout, self.written.front())
            && now >= *at + timeout
        {
            return Err(Error::new(
                Status::Timeout,
                format!(
                    "read from {}: timed out (no confirmation within the read timeout, {} ms)",
                    self.address(),
                    timeout.as_millis()
                ),
            ));
        }
        let idle = self
            .spec
            .health
            .interval
            .is_some_and(|interval| now >= self.last_read + interval);
        if idle && self.ping_sent.is_none() {
            proto.queue_owned(&[b"PING".to_vec()]);
            self.flight.sent_ping();
            self.ping_sent = Some(now);
            observer.stats.bump(Stat::HealthChecks);
            self.flush(stream, proto).await?;
        }
        Ok(())
    }
}
