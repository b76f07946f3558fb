//! Events: what a program's telemetry sees of brisk's work, and where it is sent.
//!
//! An event describes one finished piece of work (a command with all its attempts, a retry, a
//! connect, a health check, ...). Fields follow the OpenTelemetry database-client conventions
//! (`db.operation.name`, `server.address`, `error.type`, `db.operation.batch.size`,
//! `db.namespace`); no argument or value of a command ever appears in one. Events are delivered
//! synchronously on the thread that did the work. With no handler installed, emitting costs a
//! branch.

use super::otel::Otel;
use super::stats::Stats;
use crate::core::Status;
use std::ffi::CStr;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The numbers are the C API's `brisk_event_kind` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A command (or pipeline, or transaction) finished, after all its attempts.
    Command = 0,
    /// An attempt failed and will be retried.
    Retry = 1,
    /// A connection attempt finished (status OK: the connection is ready).
    Connect = 2,
    /// A connection was closed (OK: on purpose, e.g. idle timeout) or lost (CONNECTION).
    Disconnect = 3,
    /// A health-check PING finished.
    HealthCheck = 4,
    /// A caller waited for a pooled connection (OK: got one; POOL_EXHAUSTED: gave up).
    PoolWait = 5,
    Topology = 6,
    CacheInvalidate = 7,
    /// A subscriber reconnected (or followed a moved slot) and subscribed again to everything
    /// it had there; `batch_size`: how many subscriptions, `duration`: how long they were gone.
    Resubscribe = 8,
}

#[derive(Clone, Copy)]
pub struct Event<'a> {
    pub kind: EventKind,
    pub status: Status,
    /// The command name as sent ("get", "SET"), "PIPELINE", "MULTI", or empty.
    pub command: &'a [u8],
    pub duration: Duration,
    /// COMMAND: attempts made; RETRY: the number of the attempt that failed (1-based).
    pub attempt: u32,
    /// `host:port` or the Unix socket path.
    pub address: &'a CStr,
    /// The server's error code ("WRONGTYPE") or the status name; `None` on success.
    pub error_type: Option<&'a str>,
    /// Commands in a pipeline or transaction; 1 otherwise.
    pub batch_size: u32,
    pub db: u32,
}

/// Receives events. Must not block: it runs inside brisk's calls, on the working thread.
pub type EventHandler = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// A config slot for the handler (which has no `Debug` of its own).
#[derive(Clone, Default)]
pub struct HandlerSlot(pub Option<EventHandler>);

impl fmt::Debug for HandlerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(handler)"
        } else {
            "None"
        })
    }
}

/// Counters, the event handler and the OpenTelemetry exporter of one client, shared by its
/// pools.
pub struct Observer {
    pub stats: Stats,
    handler: Option<EventHandler>,
    /// OpenTelemetry hears every event too (`None`: off).
    otel: Option<Arc<Otel>>,
    /// A handler or OpenTelemetry is there.
    enabled: bool,
    db: u32,
}

impl Observer {
    pub fn new(handler: Option<EventHandler>, db: u32) -> Observer {
        Observer::with_otel(handler, None, db)
    }

    pub fn with_otel(handler: Option<EventHandler>, otel: Option<Arc<Otel>>, db: u32) -> Observer {
        Observer {
            stats: Stats::default(),
            enabled: handler.is_some() || otel.is_some(),
            handler,
            otel,
            db,
        }
    }

    /// Whether anyone listens: callers skip timing work when not.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The client's OpenTelemetry, when it is on.
    #[inline]
    pub fn otel(&self) -> Option<&Arc<Otel>> {
        self.otel.as_ref()
    }

    pub fn db(&self) -> u32 {
        self.db
    }

    /// Delivers an event to the handler, if one is installed. Callers that must do work to
    /// build the event check [`Observer::enabled`] first.
    #[inline]
    pub fn emit(&self, event: &Event<'_>) {
        if let Some(handler) = &self.handler {
            handler(event);
        }
        if let Some(otel) = &self.otel {
            otel.on_event(event);
        }
    }
}
