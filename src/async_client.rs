//! The async command path: a command is encoded at once, handed to the node's multiplexed
//! connection (`mux.rs`), and its outcome goes through the same retry rules, deadline, stats and
//! events as a blocking command before the caller's callback runs, exactly once, on a brisk
//! runtime thread.
//!
//! Blocking commands (BLPOP, XREAD BLOCK, ...) would stall every request pipelined behind them
//! on a shared connection, so they run on a pooled connection on a runtime blocking thread
//! instead.
//!
//! The client counts the callbacks it owes. Closing it wakes everything waiting (retry backoffs,
//! requests queued or in flight), completes it with CLOSED, and waits until every callback has
//! returned.

use crate::client::Shared;
use crate::core::retry::{CommandNature, Verdict};
use crate::core::{Error, Result, Status};
use crate::events::{Event, EventKind};
use crate::execute::explain;
use crate::mux::{Mux, MuxSettings, Request};
use crate::resp::{Reply, ReplyKind};
use crate::stats::Stat;
use bytes::Bytes;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Receives the outcome of an async command, exactly once, on a brisk runtime thread.
pub type Callback = Box<dyn FnOnce(Result<Reply>) + Send>;

/// The async side of a client.
pub(crate) struct AsyncState {
    mux: OnceLock<Mux>,
    closed: watch::Sender<bool>,
    /// Callbacks owed; `close` waits for zero.
    pending: Mutex<usize>,
    drained: Condvar,
}

impl Default for AsyncState {
    fn default() -> Self {
        AsyncState {
            mux: OnceLock::new(),
            closed: watch::channel(false).0,
            pending: Mutex::new(0),
            drained: Condvar::new(),
        }
    }
}

impl AsyncState {
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn begin(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn end(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending -= 1;
        if *pending == 0 {
            self.drained.notify_all();
        }
    }

    /// Fails everything outstanding with CLOSED and waits until every callback has returned
    /// (unless called from a brisk runtime thread, where waiting could wait for itself).
    pub fn close(&self) {
        self.closed.send_replace(true);
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        while *pending > 0 {
            pending = self
                .drained
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// An async command between attempts.
pub(crate) struct Job {
    pub encoded: Bytes,
    /// The command name, for events.
    pub name: Box<[u8]>,
    pub read_only: bool,
    pub started: Instant,
    pub deadline: Option<Instant>,
    pub attempt: u32,
    pub previous_delay: u32,
    pub callback: Callback,
}

/// Sends `job` on the node's multiplexed connection (started on first use).
pub(crate) fn dispatch(shared: &Arc<Shared>, job: Job) {
    let state = &shared.async_state;
    let mux = state.mux.get_or_init(|| {
        let pool = shared.route(None);
        Mux::spawn(
            pool.connect_settings().clone(),
            MuxSettings {
                read_timeout: shared.executor.read_timeout(),
                health_check_interval: pool.settings().health_check_interval,
            },
            shared.executor.observer.clone(),
            state.closed.subscribe(),
        )
    });
    let encoded = job.encoded.clone();
    let deadline = job.deadline;
    let shared = shared.clone();
    mux.send(Request {
        encoded,
        deadline,
        done: Box::new(move |result| settle(shared, job, result)),
    });
}

/// Decides what happens after an attempt: done, or another attempt after a backoff.
fn settle(shared: Arc<Shared>, mut job: Job, result: Result<Reply>) {
    let result = result.and_then(|reply| match reply.kind() {
        ReplyKind::Error => Err(Error::from_reply(reply.as_bytes().unwrap_or_default())),
        _ => Ok(reply),
    });
    let error = match result {
        Ok(reply) => return finish(&shared, job, Ok(reply)),
        Err(e) => e,
    };
    let executor = &shared.executor;
    let observer = &executor.observer;
    if error.status() == Status::Timeout {
        observer.stats.bump(Stat::Timeouts);
    }
    let nature = CommandNature {
        read_only: job.read_only,
        blocking: false,
    };
    let verdict = match error.status() {
        Status::Closed => Verdict::NotRetryable,
        _ => executor.rules().verdict(&error, job.attempt, nature),
    };
    let delay = match verdict {
        Verdict::Retry => {
            executor
                .rules()
                .policy
                .delay_ms(job.attempt, job.previous_delay, fastrand::u64(..))
        }
        _ => 0,
    };
    let delay = Duration::from_millis(u64::from(delay));
    let out_of_time = job.deadline.is_some_and(|d| Instant::now() + delay >= d);
    if verdict != Verdict::Retry || out_of_time || shared.async_state.is_closed() {
        let error = explain(error, verdict, job.attempt + 1, out_of_time);
        return finish(&shared, job, Err(error));
    }
    observer.stats.bump(Stat::Retries);
    if observer.enabled() {
        observer.emit(&Event {
            kind: EventKind::Retry,
            status: error.status(),
            command: &job.name,
            duration: job.started.elapsed(),
            attempt: job.attempt + 1,
            address: shared.route(None).address_c(),
            error_type: Some(error.error_type()),
            batch_size: 1,
            db: observer.db(),
        });
    }
    job.attempt += 1;
    job.previous_delay = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
    let mut closed = shared.async_state.closed.subscribe();
    crate::runtime::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => dispatch(&shared, job),
            _ = closed.wait_for(|closed| *closed) => {
                let error = Error::new(Status::Closed, "the client was closed during a retry backoff");
                finish(&shared, job, Err(error));
            }
        }
    });
}

/// Counts the outcome, reports it, and runs the caller's callback.
pub(crate) fn finish(shared: &Shared, job: Job, result: Result<Reply>) {
    shared.executor.record(
        shared.route(None).address_c(),
        &job.name,
        1,
        Some(job.started),
        job.attempt + 1,
        result.as_ref().err(),
    );
    (job.callback)(result);
    shared.async_state.end();
}

/// Starts an async command: registers the callback as owed and sends the job. A closed client
/// refuses it (and the callback is never called).
pub(crate) fn start(shared: &Arc<Shared>, job: Job) -> Result<()> {
    if shared.async_state.is_closed() {
        return Err(crate::pool::closed());
    }
    shared.async_state.begin();
    dispatch(shared, job);
    Ok(())
}

/// Starts a blocking command off the caller's thread, on a pooled connection.
pub(crate) fn start_blocking(
    shared: &Arc<Shared>,
    args: Vec<Vec<u8>>,
    callback: Callback,
) -> Result<()> {
    if shared.async_state.is_closed() {
        return Err(crate::pool::closed());
    }
    shared.async_state.begin();
    let worker = shared.clone();
    let spawned = crate::runtime::spawn_blocking(move || {
        let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let result = worker.command(&crate::resp::Args::from_slices(&slices));
        callback(result);
        worker.async_state.end();
    });
    if !spawned {
        shared.async_state.end();
        return Err(Error::new(
            Status::Internal,
            "the async runtime is not running (could not start its threads)",
        ));
    }
    Ok(())
}
