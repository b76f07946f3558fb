//! A bounded pool of blocking connections to one node.
//!
//! Callers borrow a connection for one request (or a session) and give it back. Connections are
//! opened on demand up to the pool size; beyond that a caller waits up to the pool's max wait and
//! then gets POOL_EXHAUSTED with the numbers that explain why. A borrowed connection that the
//! server has closed meanwhile (a non-blocking peek sees EOF or stray bytes) is replaced before a
//! request is written to it; a broken connection is never put back.

use crate::core::{Error, Result, Status};
use crate::net::{ConnectSettings, Connection};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Pool {
    settings: ConnectSettings,
    size: usize,
    max_wait: Option<Duration>,
    state: Mutex<State>,
    returned: Condvar,
}

#[derive(Default)]
struct State {
    /// Most recently returned last: borrowing pops the warmest connection.
    idle: Vec<Connection>,
    /// Open connections, idle or borrowed, plus those being opened.
    open: usize,
    waiting: usize,
    closed: bool,
}

impl Pool {
    pub fn new(settings: ConnectSettings, size: usize, max_wait: Option<Duration>) -> Pool {
        Pool {
            settings,
            size: size.max(1),
            max_wait,
            state: Mutex::new(State::default()),
            returned: Condvar::new(),
        }
    }

    pub fn address(&self) -> &str {
        &self.settings.address
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` inconsistent (every update is a
        // single assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Borrows a connection: an idle one that is still good, a new one, or the first one given
    /// back within the max wait.
    pub fn get(&self) -> Result<Connection> {
        let started = Instant::now();
        let deadline = self.max_wait.map(|w| started + w);
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(closed());
            }
            if let Some(conn) = state.idle.pop() {
                drop(state);
                if !conn.is_stale() {
                    return Ok(conn);
                }
                drop(conn);
                state = self.lock();
                state.open -= 1;
                continue;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return Connection::connect(&self.settings).inspect_err(|_| {
                    let mut state = self.lock();
                    state.open -= 1;
                    drop(state);
                    self.returned.notify_one();
                });
            }
            state.waiting += 1;
            let timed_out = match deadline {
                None => {
                    state = self.returned.wait(state).unwrap_or_else(|p| p.into_inner());
                    false
                }
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let (guard, result) = self
                        .returned
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner());
                    state = guard;
                    result.timed_out() && state.idle.is_empty() && state.open >= self.size
                }
            };
            state.waiting -= 1;
            if timed_out {
                return Err(self.exhausted(&state, started.elapsed()));
            }
        }
    }

    fn exhausted(&self, state: &State, waited: Duration) -> Error {
        Error::new(
            Status::PoolExhausted,
            format!(
                "no connection to {} became free within {} ms: {} open, {} busy, {} other callers waiting; waited {} ms",
                self.settings.address,
                self.max_wait.unwrap_or_default().as_millis(),
                state.open,
                state.open - state.idle.len(),
                state.waiting,
                waited.as_millis()
            ),
        )
    }

    /// Gives a borrowed connection back; a broken one is closed instead.
    pub fn put(&self, conn: Connection) {
        let mut state = self.lock();
        if conn.is_broken() || state.closed {
            state.open -= 1;
            drop(state);
            drop(conn);
        } else {
            state.idle.push(conn);
            let waiting = state.waiting > 0;
            drop(state);
            if !waiting {
                return;
            }
        }
        self.returned.notify_one();
    }

    /// Closes the idle connections and fails every later `get` with CLOSED; borrowed
    /// connections are closed when they come back.
    pub fn close(&self) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            state.open -= state.idle.len();
            std::mem::take(&mut state.idle)
        };
        drop(idle);
        self.returned.notify_all();
    }

    pub fn open_connections(&self) -> usize {
        self.lock().open
    }

    pub fn idle_connections(&self) -> usize {
        self.lock().idle.len()
    }
}

pub fn closed() -> Error {
    Error::new(Status::Closed, "the client is closed")
}
