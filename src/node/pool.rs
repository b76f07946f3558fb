//! A bounded pool of blocking connections to one node.
//!
//! Callers borrow a connection for one request (or a session) and give it back. Connections are
//! opened on demand up to the pool size; beyond that a caller waits up to the max wait and then
//! gets POOL_EXHAUSTED with the numbers that explain why. Before a borrowed connection carries a
//! request it is checked: past its idle timeout or max lifetime it is closed; a non-blocking peek
//! that sees EOF or stray bytes means the server dropped it (a TCP connection given back less
//! than a millisecond ago skips the peek: a close is then recognised from the failed request,
//! see `Connection::stale_on_reuse`); idle longer than the health-check interval it is PINGed.
//! A connection that fails any check is replaced silently, so none of this ever surfaces as an
//! error when a fresh connection works. A broken connection is never put back. `maintain`, run
//! periodically in the background, closes expired idle connections and keeps `min_idle` open.
//!
//! A pool stops lending when the client closes (CLOSED) or when its node leaves the topology
//! (`drain`: a Sentinel master that was replaced), after which borrowing fails with CONNECTION,
//! nothing sent, so that the attempt engine routes the command again.

use crate::config::{Config, limit};
use crate::core::{Error, Result, Status};
use crate::net::socket::Interrupter;
use crate::net::{ConnectSettings, Connection};
use crate::resp::Args;
use crate::telemetry::events::{Event, EventKind, Observer};
use crate::telemetry::stats::Stat;
use std::ffi::CStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The pool's share of the client configuration.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub size: usize,
    pub min_idle: usize,
    pub max_wait: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub health_check_interval: Option<Duration>,
}

impl PoolSettings {
    pub fn from_config(cfg: &Config) -> PoolSettings {
        PoolSettings {
            size: cfg.pool.size.max(1) as usize,
            min_idle: cfg.pool.min_idle as usize,
            max_wait: cfg.pool_max_wait(),
            idle_timeout: limit(cfg.pool.idle_timeout_ms),
            max_lifetime: limit(cfg.pool.max_lifetime_ms),
            health_check_interval: limit(cfg.health_check_interval_ms),
        }
    }

    /// How often background maintenance should look at the pool, if it has anything to do.
    pub fn maintenance_period(&self) -> Option<Duration> {
        let shortest = [self.idle_timeout, self.max_lifetime]
            .into_iter()
            .flatten()
            .min();
        match (shortest, self.min_idle > 0) {
            (None, false) => None,
            (None, true) => Some(Duration::from_secs(1)),
            (Some(t), replenish) => {
                let period = (t / 2).clamp(Duration::from_millis(10), Duration::from_secs(60));
                Some(if replenish {
                    period.min(Duration::from_secs(1))
                } else {
                    period
                })
            }
        }
    }
}

struct Idle {
    conn: Connection,
    since: Instant,
}

#[derive(Default)]
struct State {
    /// Most recently returned last: borrowing pops the warmest connection.
    idle: Vec<Idle>,
    /// Open connections, idle or borrowed, plus those being opened.
    open: usize,
    waiting: usize,
    /// Connections running a blocking command (which may wait forever), by ticket: closing the
    /// pool interrupts them so those commands return.
    blocking: Vec<(u64, Interrupter)>,
    next_ticket: u64,
    /// Connections lost (not closed on purpose) not yet replaced: the next connects count as
    /// reconnects.
    lost: usize,
    lending: Lending,
}

/// Whether a pool still lends connections.
#[derive(Clone, Default)]
enum Lending {
    #[default]
    Open,
    /// The client was closed.
    Closed,
    /// The node left the topology, for this reason.
    Drained(Arc<str>),
}

impl Lending {
    #[inline]
    fn lends(&self) -> bool {
        matches!(self, Lending::Open)
    }
}

pub struct Pool {
    settings: Arc<ConnectSettings>,
    config: PoolSettings,
    observer: Arc<Observer>,
    state: Mutex<State>,
    returned: Condvar,
}

/// Why a connection leaves the pool.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// On purpose: idle timeout, max lifetime, the pool closing, a session's leftover state.
    Closed,
    /// The server dropped it, or an error broke it.
    Lost,
}

const PING: [&[u8]; 1] = [b"PING"];

/// Connections given back less than this long ago skip the peek for a server-side close (see
/// `check_idle`); longer idle ones, which servers, proxies and load balancers close, are peeked.
pub const STALE_CHECK_AFTER: Duration = Duration::from_millis(1);

impl Pool {
    pub fn new(settings: ConnectSettings, config: PoolSettings, observer: Arc<Observer>) -> Pool {
        Pool {
            settings: Arc::new(settings),
            config,
            observer,
            state: Mutex::new(State::default()),
            returned: Condvar::new(),
        }
    }

    pub fn address(&self) -> &str {
        &self.settings.address
    }

    /// The address as a C string, for events.
    pub fn address_c(&self) -> &CStr {
        &self.settings.address_c
    }

    /// How to connect to this pool's node (the async driver connects the same way).
    pub fn connect_settings(&self) -> &Arc<ConnectSettings> {
        &self.settings
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.config
    }

    pub fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of `State` is complete before anything that can panic, so a poisoned
        // lock still guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Borrows a connection: a checked idle one, a new one, or the first one given back within
    /// the max wait (or before `deadline`, the command's own, if that comes first).
    pub fn get(&self, deadline: Option<Instant>) -> Result<Connection> {
        let mut wait_started: Option<Instant> = None;
        let mut state = self.lock();
        loop {
            if !state.lending.lends() {
                return Err(self.refusal_of(&state));
            }
            if let Some(idle) = state.idle.pop() {
                drop(state);
                if let Some(conn) = self.check_idle(idle, deadline) {
                    self.finish_wait(wait_started, Status::Ok);
                    return Ok(conn);
                }
                state = self.lock();
                continue;
            }
            if state.open < self.config.size {
                state.open += 1;
                drop(state);
                self.finish_wait(wait_started, Status::Ok);
                return self.open_connection(deadline);
            }
            let started = *wait_started.get_or_insert_with(|| {
                self.observer.stats.bump(Stat::PoolWaits);
                Instant::now()
            });
            let max_wait = self.config.max_wait.map(|w| started + w);
            let until = match (max_wait, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            state.waiting += 1;
            state = match until {
                None => self.returned.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    self.returned
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            state.waiting -= 1;
            let expired = until.is_some_and(|u| Instant::now() >= u);
            if expired
                && state.idle.is_empty()
                && state.open >= self.config.size
                && state.lending.lends()
            {
                let waited = started.elapsed();
                if deadline.is_some_and(|d| Some(d) == until) {
                    drop(state);
                    self.finish_wait(wait_started, Status::Timeout);
                    return Err(Error::new(
                        Status::Timeout,
                        format!(
                            "command deadline reached after waiting {} ms for a connection to {}",
                            waited.as_millis(),
                            self.settings.address
                        ),
                    ));
                }
                let error = self.exhausted(&state, waited);
                drop(state);
                self.observer.stats.bump(Stat::PoolExhausted);
                self.finish_wait(wait_started, Status::PoolExhausted);
                return Err(error);
            }
        }
    }

    fn finish_wait(&self, started: Option<Instant>, status: Status) {
        if let Some(started) = started
            && self.observer.enabled()
        {
            self.observer
                .emit(&self.event(EventKind::PoolWait, status, started.elapsed()));
        }
    }

    fn event(&self, kind: EventKind, status: Status, duration: Duration) -> Event<'_> {
        Event {
            kind,
            status,
            command: b"",
            duration,
            attempt: 1,
            address: self.address_c(),
            error_type: (status != Status::Ok).then(|| status.name()),
            batch_size: 1,
            db: self.observer.db(),
        }
    }

    fn exhausted(&self, state: &State, waited: Duration) -> Error {
        Error::new(
            Status::PoolExhausted,
            format!(
                "no connection to {} became free within the pool's max wait of {} ms: {} open \
                 (pool size {}), {} busy, {} other callers waiting; this one waited {} ms",
                self.settings.address,
                self.config.max_wait.unwrap_or_default().as_millis(),
                state.open,
                self.config.size,
                state.open - state.idle.len(),
                state.waiting,
                waited.as_millis()
            ),
        )
    }

    /// Whether an idle connection may carry a request: expired ones are closed, stale ones and
    /// those failing their health check are dropped (to be replaced by the caller's next try).
    fn check_idle(&self, idle: Idle, deadline: Option<Instant>) -> Option<Connection> {
        let Idle { mut conn, since } = idle;
        let now = Instant::now();
        let expired =
            self.config.idle_timeout.is_some_and(|t| now - since >= t) || self.outlived(&conn, now);
        if expired {
            self.retire(conn, Retire::Closed);
            return None;
        }
        // A connection back moments ago is lent without the peek (a system call per command):
        // if the server closed it in between, the request fails untouched and the connection
        // says so (`Connection::stale_on_reuse`), and the executor takes another, as here.
        let recent = now - since < STALE_CHECK_AFTER && conn.can_skip_peek();
        conn.lend(recent, now);
        if !recent && conn.is_stale() {
            self.retire(conn, Retire::Lost);
            return None;
        }
        if self
            .config
            .health_check_interval
            .is_some_and(|interval| now - since >= interval)
        {
            let healthy = self.health_check(&mut conn, deadline);
            if !healthy {
                self.retire(conn, Retire::Lost);
                return None;
            }
        }
        Some(conn)
    }

    fn outlived(&self, conn: &Connection, now: Instant) -> bool {
        self.config
            .max_lifetime
            .is_some_and(|t| now - conn.created() >= t)
    }

    /// PINGs a connection; false when it failed with a connection-level error. The PING waits
    /// no longer than the command's deadline, if that is closer than the read timeout.
    fn health_check(&self, conn: &mut Connection, deadline: Option<Instant>) -> bool {
        let started = Instant::now();
        let ping = Args::from_slices(&PING);
        let result = match deadline {
            None => conn.command(&ping),
            Some(_) => conn
                .bound_request(started, self.settings.read_timeout, deadline)
                .and_then(|()| conn.command(&ping)),
        };
        self.observer.stats.bump(Stat::HealthChecks);
        let status = result.as_ref().err().map_or(Status::Ok, Error::status);
        // Only a broken connection fails the check: an error reply (LOADING, say) would greet a
        // fresh connection too, and is the command's to report.
        let healthy = !conn.is_broken();
        if !healthy {
            self.observer.stats.bump(Stat::HealthCheckFailures);
        }
        if self.observer.enabled() {
            self.observer
                .emit(&self.event(EventKind::HealthCheck, status, started.elapsed()));
        }
        healthy
    }

    /// Opens a new connection for a caller that already counted it in `open`, by `deadline`
    /// when the caller's command has one.
    fn open_connection(&self, deadline: Option<Instant>) -> Result<Connection> {
        let started = Instant::now();
        let result = Connection::connect_by(&self.settings, deadline);
        let status = result.as_ref().err().map_or(Status::Ok, Error::status);
        match &result {
            Ok(_) => {
                self.observer.stats.bump(Stat::Connects);
                let mut state = self.lock();
                if state.lost > 0 {
                    state.lost -= 1;
                    drop(state);
                    self.observer.stats.bump(Stat::Reconnects);
                }
            }
            Err(_) => {
                self.lock().open -= 1;
                self.returned.notify_one();
            }
        }
        if self.observer.enabled() {
            self.observer
                .emit(&self.event(EventKind::Connect, status, started.elapsed()));
        }
        result
    }

    /// Closes a connection that left the pool's hands for good.
    fn retire(&self, conn: Connection, why: Retire) {
        {
            let mut state = self.lock();
            state.open -= 1;
            if why == Retire::Lost {
                state.lost += 1;
            }
        }
        self.returned.notify_one();
        drop(conn);
        if self.observer.enabled() {
            let status = match why {
                Retire::Closed => Status::Ok,
                Retire::Lost => Status::Connection,
            };
            self.observer
                .emit(&self.event(EventKind::Disconnect, status, Duration::ZERO));
        }
    }

    /// Gives a borrowed connection back; a broken or expired one is closed instead.
    pub fn put(&self, conn: Connection) {
        if conn.is_broken() {
            return self.retire(conn, Retire::Lost);
        }
        let now = Instant::now();
        if self.outlived(&conn, now) {
            return self.retire(conn, Retire::Closed);
        }
        let mut state = self.lock();
        if !state.lending.lends() {
            drop(state);
            return self.retire(conn, Retire::Closed);
        }
        state.idle.push(Idle { conn, since: now });
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.returned.notify_one();
        }
    }

    /// Background upkeep: closes idle connections past their idle timeout or lifetime and
    /// opens connections until `min_idle` are idle (never beyond the pool size).
    pub fn maintain(&self) {
        let now = Instant::now();
        let expired: Vec<Idle> = {
            let mut state = self.lock();
            if !state.lending.lends() {
                return;
            }
            let (keep, expired) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|idle| {
                    !(self
                        .config
                        .idle_timeout
                        .is_some_and(|t| now - idle.since >= t)
                        || self.outlived(&idle.conn, now))
                });
            state.idle = keep;
            expired
        };
        for idle in expired {
            self.retire(idle.conn, Retire::Closed);
        }
        for _ in 0..self.config.min_idle {
            {
                let mut state = self.lock();
                if !state.lending.lends()
                    || state.idle.len() >= self.config.min_idle
                    || state.open >= self.config.size
                {
                    return;
                }
                state.open += 1;
            }
            match self.open_connection(None) {
                Ok(conn) => self.put(conn),
                Err(_) => return,
            }
        }
    }

    /// Registers a borrowed connection that is about to run a blocking command, so that closing
    /// the pool interrupts it; the ticket unregisters it. CLOSED when the pool is closed already.
    pub fn track_blocking(&self, conn: &Connection) -> Result<u64> {
        let interrupter = conn
            .interrupter()
            .map_err(|e| crate::net::errors::io_error(&e, "prepare", conn.address()))?;
        let mut state = self.lock();
        if !state.lending.lends() {
            return Err(self.refusal_of(&state));
        }
        state.next_ticket += 1;
        let ticket = state.next_ticket;
        state.blocking.push((ticket, interrupter));
        Ok(ticket)
    }

    pub fn untrack_blocking(&self, ticket: u64) {
        self.lock().blocking.retain(|(t, _)| *t != ticket);
    }

    /// Closes the idle connections, interrupts blocking commands, and fails every later `get`
    /// with CLOSED; borrowed connections are closed when they come back.
    pub fn close(&self) {
        self.stop_lending(Lending::Closed);
    }

    /// The node left the topology (`why` says how, for the error): idle connections are closed,
    /// blocking commands interrupted (what they wait for will happen elsewhere), borrowed
    /// connections closed when they come back, and later borrows fail with CONNECTION, not
    /// sent. Nothing is lent again; a closed pool stays closed.
    pub fn drain(&self, why: &str) {
        self.stop_lending(Lending::Drained(why.into()));
    }

    fn stop_lending(&self, lending: Lending) {
        let idle = {
            let mut state = self.lock();
            if !matches!(state.lending, Lending::Closed) {
                state.lending = lending;
            }
            for (_, interrupter) in &state.blocking {
                interrupter.interrupt();
            }
            std::mem::take(&mut state.idle)
        };
        for idle in idle {
            self.retire(idle.conn, Retire::Closed);
        }
        self.returned.notify_all();
    }

    /// Why the pool would refuse a borrow now (CLOSED, or CONNECTION once drained); `None`
    /// while it lends.
    pub fn refusal(&self) -> Option<Error> {
        let state = self.lock();
        match state.lending.lends() {
            true => None,
            false => Some(self.refusal_of(&state)),
        }
    }

    /// Why a pool that stopped lending refuses a borrow.
    #[cold]
    fn refusal_of(&self, state: &State) -> Error {
        match &state.lending {
            Lending::Drained(why) => Error::new(
                Status::Connection,
                format!("{}: {why}", self.settings.address),
            ),
            _ => closed(),
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.lock().lending, Lending::Closed)
    }

    pub fn open_connections(&self) -> usize {
        self.lock().open
    }

    /// Callers waiting for a connection now.
    pub fn waiting_callers(&self) -> usize {
        self.lock().waiting
    }

    pub fn idle_connections(&self) -> usize {
        self.lock().idle.len()
    }
}

pub fn closed() -> Error {
    Error::new(Status::Closed, "the client is closed")
}
