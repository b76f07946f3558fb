//! Sessions: one pooled connection pinned to one caller, for flows that need the same
//! connection across commands (WATCH/MULTI/EXEC, blocking commands, per-connection CLIENT
//! commands).
//!
//! When a session ends its connection goes back to the pool clean: an open transaction is
//! discarded and WATCHes are dropped (one pipelined round trip, only if the session used them);
//! a connection whose state the session changed in other ways (SELECT, AUTH, CLIENT SETNAME,
//! ...) is closed rather than returned.

use crate::client::{Shared, check_args};
use crate::core::commands::{ConnectionUse, blocking_timeout, connection_use, is_exec};
use crate::core::{Error, Result, Status};
use crate::execute::{Executor, Job};
use crate::net::Connection;
use crate::pipeline::watch_aborted;
use crate::resp::{Args, Reply};
use std::sync::Arc;

pub struct Session {
    shared: Arc<Shared>,
    conn: Option<Connection>,
    /// The transaction state open on the connection.
    transaction: Transaction,
    /// Transaction state that died with a lost connection and has not been reported yet.
    lost: Option<Transaction>,
    /// The session changed connection state that a reset cannot undo.
    dirty: bool,
}

/// WATCH and MULTI state of a connection.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Transaction {
    watching: bool,
    in_multi: bool,
}

impl Transaction {
    fn is_open(self) -> bool {
        self.watching || self.in_multi
    }

    /// Follows a command that ran on the connection.
    fn after(&mut self, name: &[u8]) {
        match name.to_ascii_uppercase().as_slice() {
            b"WATCH" => self.watching = true,
            b"MULTI" => self.in_multi = true,
            b"EXEC" | b"DISCARD" | b"RESET" => *self = Transaction::default(),
            b"UNWATCH" => self.watching = false,
            _ => {}
        }
    }

    /// Whether `name` starts the lost transaction over (so the loss need not be reported):
    /// WATCH, UNWATCH, DISCARD or RESET always do; MULTI does unless a WATCH was lost with it.
    fn restarted_by(self, name: &[u8]) -> bool {
        let upper = name.to_ascii_uppercase();
        match upper.as_slice() {
            b"WATCH" | b"UNWATCH" | b"DISCARD" | b"RESET" => true,
            b"MULTI" => !self.watching,
            _ => false,
        }
    }
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Session> {
        let conn = shared.route(None).get(None)?;
        Ok(Session {
            shared,
            conn: Some(conn),
            transaction: Transaction::default(),
            lost: None,
            dirty: false,
        })
    }

    /// Runs one command on the session's connection. An EXEC answered with nil is WATCH.
    ///
    /// When the connection is lost, the next command runs on a new one. If a WATCH or MULTI was
    /// open, that transaction is gone: the first command afterwards that does not start it over
    /// fails once with CONNECTION saying so, since carrying on silently would let an EXEC succeed
    /// without its WATCH.
    pub fn command(&mut self, args: &Args<'_>) -> Result<Reply> {
        check_args(args, true)?;
        let shared = self.shared.clone();
        let pool = shared.route(None);
        if pool.is_closed() {
            return Err(crate::pool::closed());
        }
        // Like a pooled command, a session checks (with a non-blocking peek) that the server has
        // not closed its connection before writing to it.
        if self.conn.as_ref().is_none_or(Connection::is_stale) {
            if let Some(old) = self.conn.take() {
                self.forget_connection_state();
                pool.put(old);
            }
            self.conn = Some(pool.get(None)?);
        }
        let name = args.name();
        if let Some(lost) = self.lost.take() {
            if !lost.restarted_by(name) {
                return Err(Error::new(
                    Status::Connection,
                    "the session's connection was lost with a WATCH or MULTI open; that \
                     transaction is gone (start it again with WATCH or MULTI)",
                ));
            }
        }
        let conn = self.conn.as_mut().expect("a connection was just ensured");
        let never_read_only = |_: &Executor| false;
        let job = Job {
            name,
            batch_size: 1,
            blocking: blocking_timeout(args),
            read_only: &never_read_only,
        };
        let result = shared
            .executor
            .run_pinned(pool, conn, &job, |conn| conn.command(args));
        let broken = conn.is_broken();
        let subcommand = (args.len() > 1).then(|| args.get(1));
        if connection_use(name, subcommand) == ConnectionUse::ConnectionState {
            self.transaction.after(name);
            let transactional = [&b"WATCH"[..], b"MULTI", b"EXEC", b"DISCARD", b"UNWATCH"];
            if !transactional.iter().any(|t| name.eq_ignore_ascii_case(t)) {
                self.dirty = true;
            }
        }
        if broken {
            // This command's own failure reports the loss of the connection.
            self.forget_connection_state();
        }
        match result {
            Ok(reply) if reply.is_nil() && is_exec(name) => Err(watch_aborted()),
            other => other,
        }
    }

    /// The connection is gone, and with it everything the session set on it; an open
    /// transaction is remembered as lost, to be reported.
    fn forget_connection_state(&mut self) {
        if self.transaction.is_open() {
            self.lost = Some(self.transaction);
        }
        self.transaction = Transaction::default();
        self.dirty = false;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.dirty {
            // Close it: the next borrower must get a connection as the config describes it.
            conn.discard();
        } else if self.transaction.is_open() {
            // DISCARD fails harmlessly when no MULTI is open; UNWATCH always succeeds. If the
            // exchange fails the connection is broken and the pool closes it.
            const RESET: &[u8] = b"*1\r\n$7\r\nDISCARD\r\n*1\r\n$7\r\nUNWATCH\r\n";
            let _ = conn.pipeline(RESET, 2);
        }
        self.shared.route(None).put(conn);
    }
}
