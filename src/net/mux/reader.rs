//! The reading side of a mux's connection, and what it shares with the writing side: the
//! requests in flight, in the order they were written, and the connection's fate.
//!
//! The reader decodes replies and completes the requests front to back; a steady tick checks
//! the bounds (the oldest request's read timeout, every request's deadline) however the peer
//! sends its bytes.

use super::Request;
use super::express::Express;
use crate::core::protocol::Protocol;
use crate::core::{Error, Result, Status};
use crate::net::async_connect::AsyncStream;
use crate::net::errors::{closed_by_peer, io_error};
use crate::net::signal::batched;
use crate::resp::Reply;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, ReadHalf};

/// How often the reader looks for expired deadlines while it waits.
const TICK: Duration = Duration::from_millis(50);

/// A request written and not yet completed.
pub(super) struct InFlight {
    /// `None` once the request was completed early (deadline); its reply is then dropped.
    pub done: Option<Request>,
    pub deadline: Option<Instant>,
    pub skip_replies: u8,
    /// When its bytes were taken to be written (`None` before): its reply must arrive within
    /// the read timeout from then, however the peer trickles its bytes (or floods push frames).
    pub written: Option<Instant>,
}

/// What the reader and the writers of one connection share.
pub(super) struct Line {
    pub queue: VecDeque<InFlight>,
    /// Set (with the reason) when the connection died; nothing more may be queued.
    pub dead: Option<Error>,
    /// Bytes of the requests in `queue` not written yet, in the same order.
    pub outbox: BytesMut,
    /// Someone is writing the outbox (a sender, the reader, or the task): one at a time.
    pub writing: bool,
    /// Requests were appended while the reader handed out replies; it writes them next.
    pub flush_wanted: bool,
    /// The steady tick saw `flush_wanted` set and left it (see `Express::flush_stale`).
    pub flush_seen_by_tick: bool,
    /// How many requests at the back of `queue` have their bytes in `outbox` (not written):
    /// replies are coming only for the others.
    pub unsent: usize,
    /// When bytes were last taken to be written (an idle connection is health-checked before
    /// use).
    pub last_write: Instant,
    /// A health check is out: requests wait for its verdict with the task, not on this line.
    pub checking: bool,
    /// A sender that holds its requests was given this lane (`Express::send`) and noted it
    /// for its thread's next dispatch, since the outbox was last taken: the next ones append
    /// only (the dispatch writes them all), without noting the lane again.
    pub held: bool,
}

impl Line {
    pub fn new() -> Line {
        Line {
            queue: VecDeque::new(),
            dead: None,
            outbox: BytesMut::new(),
            writing: false,
            flush_wanted: false,
            flush_seen_by_tick: false,
            unsent: 0,
            last_write: Instant::now(),
            checking: false,
            held: false,
        }
    }

    /// Takes the outbox to write it (`into` must be empty; it becomes the next outbox). Its
    /// requests' read timeout runs from now: one clock read per write, not one per request.
    pub fn take_outbox(&mut self, into: &mut BytesMut) {
        std::mem::swap(&mut self.outbox, into);
        let now = Instant::now();
        let first_unsent = self.queue.len().saturating_sub(self.unsent);
        for entry in self.queue.range_mut(first_unsent..) {
            entry.written = Some(now);
        }
        self.unsent = 0;
        self.held = false;
        self.last_write = now;
    }

    /// Whether replies are coming: requests were written and not all answered.
    pub fn replies_coming(&self) -> bool {
        self.queue.len() > self.unsent
    }
}

pub(super) type SharedLine = Arc<Mutex<Line>>;

pub(super) fn lock(line: &SharedLine) -> std::sync::MutexGuard<'_, Line> {
    line.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the line dead (if it is not already) and fails everything in flight: as sent when its
/// bytes were taken to be written, as not sent (so retried like any request that did not
/// leave, a write too) when they were still in the outbox.
pub(super) fn kill(line: &SharedLine, error: Error) {
    let doomed = {
        let mut line = lock(line);
        if line.dead.is_some() {
            return;
        }
        line.dead = Some(error.clone());
        line.outbox.clear();
        line.unsent = 0;
        std::mem::take(&mut line.queue)
    };
    for entry in doomed {
        if let Some(done) = entry.done {
            done.complete(Err(error.clone().sent(entry.written.is_some())));
        }
    }
}

fn deadline_reached() -> Error {
    Error::new(Status::Timeout, "command deadline reached").sent(true)
}

/// What a connection's reads feed: decodes replies and completes requests in order, and
/// enforces the read timeout and the command deadlines. Driven by the tokio `Reader` below, or,
/// in caller dispatch on a plain socket, by the application's dispatching thread and a steady
/// tick (`loop_reads`).
pub(super) struct Replies {
    pub line: SharedLine,
    pub address: Arc<str>,
    pub read_timeout: Option<Duration>,
    pub proto: Protocol,
    /// The connection's express lane: what callbacks send while replies are handed out is
    /// written once they all are.
    pub express: Option<Arc<Express>>,
}

/// The reading side of a connection on a brisk runtime thread.
pub(super) struct Reader {
    pub replies: Replies,
    pub half: ReadHalf<AsyncStream>,
}

enum Wake {
    Read(std::io::Result<usize>),
    Tick,
}

/// A steady tick, not a sleep started afresh after each read: a peer that sends a byte (or a
/// push frame) more often than the tick must not keep the bounds from being checked.
pub(super) fn steady_tick() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

impl Reader {
    pub async fn run(self) {
        let Reader {
            mut replies,
            mut half,
        } = self;
        let mut tick = steady_tick();
        loop {
            let wake = tokio::select! {
                read = half.read_buf(replies.proto.input_buffer()) => Wake::Read(read),
                _ = tick.tick() => Wake::Tick,
            };
            let handled = match wake {
                Wake::Read(Ok(0)) => Err(closed_by_peer(&replies.address)),
                // Only after a read: a tick hands out nothing, and what senders left is the
                // tick's to write only once it has waited a whole tick (`on_tick`).
                Wake::Read(Ok(_)) => replies.hand_out_read(),
                Wake::Read(Err(e)) => Err(io_error(&e, "read from", &replies.address)),
                Wake::Tick => replies.on_tick(),
            };
            if let Err(e) = handled {
                return kill(&replies.line, e);
            }
        }
    }
}

impl Replies {
    /// Hands out the replies of the bytes read, as one batch: an application dispatching
    /// callbacks itself is woken once for all of them (`signal::batched`), and what was sent
    /// meanwhile is written after them (`Express::reading`).
    pub fn hand_out_read(&mut self) -> Result<()> {
        match self.express.clone() {
            Some(express) => express.reading(|| batched(|| self.hand_out())),
            None => batched(|| self.hand_out()),
        }
    }

    /// The steady tick's checks: deadlines and the read timeout, then what senders left for
    /// the reader a tick ago (requests behind replies that never come still go out).
    pub fn on_tick(&mut self) -> Result<()> {
        self.expire()?;
        if let Some(express) = &self.express {
            express.flush_stale();
        }
        Ok(())
    }

    /// Hands out every reply the bytes read so far complete.
    fn hand_out(&mut self) -> Result<()> {
        while let Some(reply) = self
            .proto
            .next_reply()
            .map_err(|e| e.context(format!("reading from {}", self.address)))?
        {
            self.complete(reply)?;
        }
        Ok(())
    }

    /// Hands a reply to the oldest request in flight.
    fn complete(&self, reply: Reply) -> Result<()> {
        let entry = {
            let mut line = lock(&self.line);
            // With every request in the queue still unwritten (or none), a reply would be
            // matched with a request the server has not seen.
            let written = line.replies_coming();
            match line.queue.front_mut() {
                Some(_) if !written => return Err(self.unasked()),
                None => return Err(self.unasked()),
                Some(front) if front.skip_replies > 0 => {
                    front.skip_replies -= 1;
                    return Ok(());
                }
                Some(_) => line.queue.pop_front(),
            }
        };
        // `None`: completed early (deadline); its reply is dropped.
        if let Some(InFlight {
            done: Some(done), ..
        }) = entry
        {
            done.complete(Ok(reply));
        }
        Ok(())
    }

    fn unasked(&self) -> Error {
        Error::new(
            Status::Protocol,
            format!("{} sent a reply nobody asked for", self.address),
        )
    }

    /// Fails requests past their deadline; an error when the read timeout has run out.
    fn expire(&self) -> Result<()> {
        let mut expired = Vec::new();
        {
            let mut line = lock(&self.line);
            let Some(oldest) = line.queue.front() else {
                return Ok(());
            };
            let now = Instant::now();
            if let Some(timeout) = self.read_timeout
                && let Some(written) = oldest.written
                && now.duration_since(written) >= timeout
            {
                return Err(Error::new(
                    Status::Timeout,
                    format!(
                        "read from {}: timed out (no whole reply within the read timeout, \
                             {} ms from the request)",
                        self.address,
                        timeout.as_millis()
                    ),
                ));
            }
            for entry in line.queue.iter_mut() {
                if entry.deadline.is_some_and(|d| d <= now)
                    && let Some(done) = entry.done.take()
                {
                    expired.push(done);
                }
            }
            // The oldest request was given up and its reply is arriving (an endless or trickled
            // reply): everything behind it would wait for that reply to end, so the connection
            // goes. A reply that has not started (a slow server) is waited for and dropped.
            let abandoned = line.queue.front().is_some_and(|e| e.done.is_none());
            if abandoned && self.proto.mid_reply() {
                drop(line);
                for done in expired {
                    done.complete(Err(deadline_reached()));
                }
                return Err(Error::new(
                    Status::Timeout,
                    format!(
                        "read from {}: timed out (a reply past its command deadline was still \
                         arriving)",
                        self.address
                    ),
                ));
            }
        }
        for done in expired {
            done.complete(Err(deadline_reached()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mux::HealthCheck;
    use tokio::sync::oneshot;

    /// A request whose bytes a writer took may have reached the server; one still in the
    /// outbox cannot have, so it fails as not sent (and is retried, a write too).
    #[test]
    fn killing_a_line_tells_taken_requests_from_those_left_in_the_outbox() {
        let (taken, mut taken_outcome) = oneshot::channel();
        let (left, mut left_outcome) = oneshot::channel();
        let line: SharedLine = Arc::new(Mutex::new(Line::new()));
        {
            let mut state = lock(&line);
            state.append(Box::new(HealthCheck(taken)));
            state.take_outbox(&mut BytesMut::new());
            state.append(Box::new(HealthCheck(left)));
        }
        kill(&line, Error::new(Status::Connection, "reset"));
        let sent = |outcome: &mut oneshot::Receiver<Result<Reply>>| {
            let outcome = outcome.try_recv().expect("completed by the kill");
            outcome.expect_err("the line was killed").is_sent()
        };
        assert!(sent(&mut taken_outcome), "a request a writer took");
        assert!(!sent(&mut left_outcome), "a request left in the outbox");
        assert!(lock(&line).dead.is_some());
    }
}
