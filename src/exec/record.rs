//! Counting and reporting: what finished (a COMMAND event and the counters) and what is tried
//! again (a RETRY event).

use super::Shared;
use crate::core::{Error, Status};
use crate::telemetry::events::{Event, EventKind};
use crate::telemetry::stats::Stat;
use std::ffi::CStr;
use std::time::Instant;

/// What to report about the command a driver runs.
#[derive(Clone, Copy)]
pub(crate) struct Report<'a> {
    /// The command name (or "PIPELINE"/"MULTI").
    pub name: &'a [u8],
    pub batch_size: u32,
    /// When it started (`None` when nobody needed the time).
    pub started: Option<Instant>,
}

impl Shared {
    /// Counts a finished command (or batch) and reports it to the event handler, with the
    /// address of the node that answered it and the tries it took.
    #[inline]
    pub fn record(
        &self,
        report: &Report<'_>,
        address: &CStr,
        attempts: u32,
        error: Option<&Error>,
    ) {
        let stats = &self.observer.stats;
        stats.add(Stat::Commands, u64::from(report.batch_size));
        if error.is_some() {
            stats.bump(Stat::Errors);
        }
        if self.observer.enabled() {
            self.emit_command(report, address, attempts, error);
        }
    }

    #[cold]
    fn emit_command(
        &self,
        report: &Report<'_>,
        address: &CStr,
        attempts: u32,
        error: Option<&Error>,
    ) {
        if let Some(started) = report.started {
            self.observer.emit(&Event {
                kind: EventKind::Command,
                status: error.map_or(Status::Ok, Error::status),
                command: report.name,
                duration: started.elapsed(),
                attempt: attempts,
                address,
                error_type: error.map(Error::error_type),
                batch_size: report.batch_size,
                db: self.observer.db(),
            });
        }
    }

    /// A command answered from the client-side cache: counted and reported like any other
    /// (no attempt reached a server; the address is the client's home node).
    #[inline]
    pub fn record_hit(&self, name: &[u8]) {
        self.observer.stats.bump(Stat::Commands);
        if self.observer.enabled() {
            let report = Report {
                name,
                batch_size: 1,
                started: Some(Instant::now()),
            };
            self.emit_command(&report, self.route.home().address_c(), 0, None);
        }
    }

    /// A failed try that will be made again (the engine's `Next::Again` says which, if any):
    /// counted, and reported with when the try started.
    pub fn record_retry(
        &self,
        report: &Report<'_>,
        address: &CStr,
        attempt: u32,
        retried: Option<&Error>,
        try_started: Option<Instant>,
    ) {
        let Some(error) = retried else { return };
        self.observer.stats.bump(Stat::Retries);
        if let (true, Some(started)) = (self.observer.enabled(), try_started) {
            self.observer.emit(&Event {
                kind: EventKind::Retry,
                status: error.status(),
                command: report.name,
                duration: started.elapsed(),
                attempt,
                address,
                error_type: Some(error.error_type()),
                batch_size: report.batch_size,
                db: self.observer.db(),
            });
        }
    }

    /// A try failed: timeouts are counted as they happen, whatever follows.
    pub fn count_failure(&self, error: &Error) {
        if error.status() == Status::Timeout {
            self.observer.stats.bump(Stat::Timeouts);
        }
    }
}
