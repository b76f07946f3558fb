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
    /// MULTI or WATCH was sent and not yet ended by EXEC/DISCARD/UNWATCH.
    transaction_state: bool,
    /// The session changed connection state that a reset cannot undo.
    dirty: bool,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Session> {
        let conn = shared.route(None).get(None)?;
        Ok(Session {
            shared,
            conn: Some(conn),
            transaction_state: false,
            dirty: false,
        })
    }

    /// Runs one command on the session's connection. An EXEC answered with nil is WATCH.
    pub fn command(&mut self, args: &Args<'_>) -> Result<Reply> {
        check_args(args, true)?;
        if self.shared.route(None).is_closed() {
            return Err(crate::pool::closed());
        }
        // Like a pooled command, a session checks (with a non-blocking peek) that the server has
        // not closed its connection before writing to it.
        if self.conn.as_ref().is_none_or(Connection::is_stale) {
            self.replace_connection()?;
        }
        let shared = self.shared.clone();
        let conn = self.conn.as_mut().expect("a connection was just ensured");
        let name = args.name();
        let never_read_only = |_: &Executor| false;
        let job = Job {
            name,
            batch_size: 1,
            blocking: blocking_timeout(args),
            read_only: &never_read_only,
        };
        let pool = shared.route(None);
        let result = shared
            .executor
            .run_pinned(pool, conn, &job, |conn| conn.command(args));
        let subcommand = (args.len() > 1).then(|| args.get(1));
        if connection_use(name, subcommand) == ConnectionUse::ConnectionState {
            match name.to_ascii_uppercase().as_slice() {
                b"MULTI" | b"WATCH" => self.transaction_state = true,
                b"EXEC" | b"DISCARD" | b"UNWATCH" => self.transaction_state = false,
                _ => self.dirty = true,
            }
        }
        if conn.is_broken() {
            // This command's failure reports the loss; whatever transaction state there was is
            // gone with the connection, and the next command starts afresh.
            self.transaction_state = false;
            self.dirty = false;
        }
        match result {
            Ok(reply) if reply.is_nil() && is_exec(name) => Err(watch_aborted()),
            other => other,
        }
    }

    /// The pinned connection broke. Without transaction state a new one is as good; with it,
    /// carrying on silently would drop a WATCH and let EXEC succeed when it must not.
    fn replace_connection(&mut self) -> Result<()> {
        let pool = self.shared.route(None);
        if let Some(old) = self.conn.take() {
            pool.put(old);
        }
        if std::mem::take(&mut self.transaction_state) {
            return Err(Error::new(
                Status::Connection,
                "the session's connection was lost with a WATCH or MULTI open; that transaction \
                 is gone (start it again)",
            ));
        }
        self.dirty = false;
        self.conn = Some(pool.get(None)?);
        Ok(())
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
        } else if self.transaction_state {
            // DISCARD fails harmlessly when no MULTI is open; UNWATCH always succeeds. If the
            // exchange fails the connection is broken and the pool closes it.
            const RESET: &[u8] = b"*1\r\n$7\r\nDISCARD\r\n*1\r\n$7\r\nUNWATCH\r\n";
            let _ = conn.pipeline(RESET, 2);
        }
        self.shared.route(None).put(conn);
    }
}
