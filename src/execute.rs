//! Running one command (or batch) to completion: attempts, retries with backoff, the command
//! deadline, read timeouts for blocking commands, stats and events.
//!
//! The retry decisions themselves are pure (`core::retry`); this module applies them with a
//! clock, a random source and real connections.

use crate::core::command_table::{self, CommandTable};
use crate::core::commands::Blocking;
use crate::core::retry::{CommandNature, RetryRules, Verdict};
use crate::core::{Error, Result, Status};
use crate::events::{Event, EventKind, Observer};
use crate::net::Connection;
use crate::pool::Pool;
use crate::resp::Args;
use crate::stats::Stat;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What the executor needs to know about the work it runs.
pub(crate) struct Job<'a> {
    /// The command name (or "PIPELINE"/"MULTI"), for events and messages.
    pub name: &'a [u8],
    pub batch_size: u32,
    pub blocking: Option<Blocking>,
    /// Whether running the job twice is harmless; asked only when a sent request failed.
    pub read_only: &'a dyn Fn(&Executor) -> bool,
    /// Whether the outcome is counted and reported here (`false`: the job is one node's part
    /// of a cluster command, which is counted once, when all its parts are done).
    pub recorded: bool,
}

pub(crate) struct Executor {
    rules: RetryRules,
    command_deadline: Option<Duration>,
    read_timeout: Option<Duration>,
    pub observer: Arc<Observer>,
    /// The server's own command table, fetched on the first connection used; `None` inside
    /// when the server would not give it (an ACL user without COMMAND, say).
    commands: OnceLock<Option<CommandTable>>,
    fetching_commands: AtomicBool,
}

impl Executor {
    pub fn new(
        rules: RetryRules,
        command_deadline: Option<Duration>,
        read_timeout: Option<Duration>,
        observer: Arc<Observer>,
    ) -> Executor {
        Executor {
            rules,
            command_deadline,
            read_timeout,
            observer,
            commands: OnceLock::new(),
            fetching_commands: AtomicBool::new(false),
        }
    }

    pub fn rules(&self) -> &RetryRules {
        &self.rules
    }

    pub fn command_deadline(&self) -> Option<Duration> {
        self.command_deadline
    }

    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// Fetches the server's command table on `conn` if nobody has yet: one round trip, once
    /// per client. A connection failure leaves it for a later connection and is returned (as
    /// not sent: the caller's request has not been written): the connection may hold part of
    /// the COMMAND reply, so it must not carry the caller's request.
    fn ensure_command_table(&self, conn: &mut Connection) -> Result<()> {
        if self.commands.get().is_some() || self.fetching_commands.swap(true, Relaxed) {
            return Ok(());
        }
        let command: [&[u8]; 1] = [b"COMMAND"];
        match conn.command(&Args::from_slices(&command)) {
            Ok(reply) => {
                let _ = self
                    .commands
                    .set(Some(CommandTable::from_command_reply(&reply)));
            }
            Err(_) if !conn.is_broken() => {
                let _ = self.commands.set(None);
            }
            Err(e) => {
                self.fetching_commands.store(false, Relaxed);
                return Err(e.sent(false).context("fetching the command table"));
            }
        }
        Ok(())
    }

    /// Whether `args` only reads: from the server's table when fetched, else the built-in one.
    pub fn is_read_only(&self, args: &Args<'_>) -> bool {
        command_table::read_only(self.command_table(), args)
    }

    /// The server's command table, once fetched (and if the server gave it).
    pub fn command_table(&self) -> Option<&CommandTable> {
        self.commands.get().and_then(Option::as_ref)
    }

    /// The read timeout an attempt needs when it differs from the connection's default: longer
    /// for a blocking command, shorter when the command deadline is closer.
    fn attempt_read_timeout(
        &self,
        blocking: Option<Blocking>,
        deadline: Option<Instant>,
    ) -> Option<Option<Duration>> {
        let mut timeout = self.read_timeout;
        let mut changed = false;
        if let Some(blocking) = blocking {
            changed = true;
            timeout = match (blocking, timeout) {
                (Blocking::Forever, _) | (_, None) => None,
                (Blocking::Millis(ms), Some(t)) => Some(t + Duration::from_millis(ms)),
            };
        }
        if let Some(deadline) = deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            if timeout.is_none_or(|t| t > left) {
                changed = true;
                timeout = Some(left);
            }
        }
        changed.then_some(timeout)
    }

    /// Runs `work` on `conn` with the read timeout this job needs, then restores the default.
    /// A blocking command is registered with the pool while it runs, so that closing the client
    /// can interrupt it (it may wait on the server forever).
    fn with_timeouts<T>(
        &self,
        pool: &Pool,
        conn: &mut Connection,
        job: &Job<'_>,
        deadline: Option<Instant>,
        work: &mut impl FnMut(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let Some(timeout) = self.attempt_read_timeout(job.blocking, deadline) else {
            return work(conn);
        };
        let interruptible = job.blocking.is_some();
        if interruptible && !pool.track_blocking(conn) {
            return Err(crate::pool::closed());
        }
        let result = conn.set_read_timeout(timeout).and_then(|()| work(conn));
        if interruptible {
            pool.untrack_blocking(conn);
        }
        // Back to the default, or close the connection if even that fails.
        if !conn.is_broken() && conn.set_read_timeout(self.read_timeout).is_err() {
            conn.discard();
        }
        match result {
            Err(e) if interruptible && pool.is_closed() => Err(Error::new(
                Status::Closed,
                format!("interrupted: the client was closed ({})", e.message()),
            )),
            other => other,
        }
    }

    /// One attempt: borrow, run, give back.
    fn attempt<T>(
        &self,
        pool: &Pool,
        job: &Job<'_>,
        deadline: Option<Instant>,
        work: &mut impl FnMut(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        loop {
            let mut conn = pool.get(deadline)?;
            let result = self
                .ensure_command_table(&mut conn)
                .and_then(|()| self.with_timeouts(pool, &mut conn, job, deadline, work));
            // Closed by the server before the request arrived (lent without the pool's peek):
            // replaced as the peek would have, not a failed attempt.
            let replace = result.is_err() && conn.stale_on_reuse();
            pool.put(conn);
            if !replace {
                return result;
            }
        }
    }

    fn deadline(&self, started: Option<Instant>) -> Option<Instant> {
        self.command_deadline.zip(started).map(|(d, s)| s + d)
    }

    fn start(&self) -> Option<Instant> {
        (self.observer.enabled() || self.command_deadline.is_some()).then(Instant::now)
    }

    /// Runs `work` once on a connection the caller holds (a session's): timeouts, stats and
    /// events as for any command, but no retry, since the connection carries state.
    pub fn run_pinned<T>(
        &self,
        pool: &Pool,
        conn: &mut Connection,
        job: &Job<'_>,
        mut work: impl FnMut(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let started = self.start();
        let result = self.with_timeouts(pool, conn, job, self.deadline(started), &mut work);
        if let Err(e) = &result {
            if e.status() == Status::Timeout {
                self.observer.stats.bump(Stat::Timeouts);
            }
        }
        self.record_job(pool, job, started, 1, result.as_ref().err());
        result
    }

    /// Runs `work` on connections from `pool` until it succeeds or the retry rules give up.
    pub fn run<T>(
        &self,
        pool: &Pool,
        job: &Job<'_>,
        mut work: impl FnMut(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let started = self.start();
        let deadline = self.deadline(started);
        let mut previous_delay = self.rules.policy.base_ms;
        let mut attempt = 0u32;
        loop {
            let attempt_started = self.observer.enabled().then(Instant::now);
            let error = match self.attempt(pool, job, deadline, &mut work) {
                Ok(value) => {
                    self.record_job(pool, job, started, attempt + 1, None);
                    return Ok(value);
                }
                Err(e) => e,
            };
            if error.status() == Status::Timeout {
                self.observer.stats.bump(Stat::Timeouts);
            }
            let nature = CommandNature {
                read_only: error.is_sent() && (job.read_only)(self),
                blocking: job.blocking.is_some(),
            };
            let verdict = self.rules.verdict(&error, attempt, nature);
            let delay = match verdict {
                Verdict::Retry => Duration::from_millis(u64::from(self.rules.policy.delay_ms(
                    attempt,
                    previous_delay,
                    fastrand::u64(..),
                ))),
                _ => Duration::ZERO,
            };
            let out_of_time = deadline.is_some_and(|d| Instant::now() + delay >= d);
            if verdict != Verdict::Retry || out_of_time {
                let error = explain(error, verdict, attempt + 1, out_of_time);
                self.record_job(pool, job, started, attempt + 1, Some(&error));
                return Err(error);
            }
            self.observer.stats.bump(Stat::Retries);
            if let Some(attempt_started) = attempt_started {
                self.observer.emit(&Event {
                    kind: EventKind::Retry,
                    status: error.status(),
                    command: job.name,
                    duration: attempt_started.elapsed(),
                    attempt: attempt + 1,
                    address: pool.address_c(),
                    error_type: Some(error.error_type()),
                    batch_size: job.batch_size,
                    db: self.observer.db(),
                });
            }
            std::thread::sleep(delay);
            previous_delay = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
            attempt += 1;
        }
    }

    /// [`Executor::record`] for `job` on `pool`, unless its caller counts it (`job.recorded`).
    fn record_job(
        &self,
        pool: &Pool,
        job: &Job<'_>,
        started: Option<Instant>,
        attempts: u32,
        error: Option<&Error>,
    ) {
        if job.recorded {
            let address = pool.address_c();
            self.record(address, job.name, job.batch_size, started, attempts, error);
        }
    }

    /// Counts a finished command (or batch of `batch_size`) and reports it to the event handler.
    pub fn record(
        &self,
        address: &CStr,
        name: &[u8],
        batch_size: u32,
        started: Option<Instant>,
        attempts: u32,
        error: Option<&Error>,
    ) {
        self.observer
            .stats
            .add(Stat::Commands, u64::from(batch_size));
        if error.is_some() {
            self.observer.stats.bump(Stat::Errors);
        }
        if let (true, Some(started)) = (self.observer.enabled(), started) {
            self.observer.emit(&Event {
                kind: EventKind::Command,
                status: error.map_or(Status::Ok, Error::status),
                command: name,
                duration: started.elapsed(),
                attempt: attempts,
                address,
                error_type: error.map(Error::error_type),
                batch_size,
                db: self.observer.db(),
            });
        }
    }
}

/// Adds to the final error what the caller needs to judge it: how many attempts were made and,
/// for a write that was not replayed, that it may have been applied.
pub(crate) fn explain(error: Error, verdict: Verdict, attempts: u32, out_of_time: bool) -> Error {
    let mut notes = Vec::new();
    if attempts > 1 {
        notes.push(format!("after {attempts} attempts"));
    }
    match verdict {
        Verdict::MayHaveBeenApplied => notes.push(
            "the request was sent, so this write may have been applied; not retried \
             (retry_writes SAFE)"
                .into(),
        ),
        Verdict::BlockingSent => notes.push("a blocking command is not replayed once sent".into()),
        Verdict::Retry if out_of_time => notes.push("command deadline reached".into()),
        _ => {}
    }
    if notes.is_empty() {
        error
    } else {
        error.detail(notes.join("; "))
    }
}
