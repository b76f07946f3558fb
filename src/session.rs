//! Sessions: one pooled connection pinned to one caller, for flows that need the same
//! connection across commands (WATCH/MULTI/EXEC, blocking commands, per-connection CLIENT
//! commands).
//!
//! When a session ends its connection goes back to the pool clean: an open transaction is
//! discarded and WATCHes are dropped (one pipelined round trip, only if the session used them);
//! a connection whose state the session changed in other ways (SELECT, AUTH, CLIENT SETNAME,
//! ...) is closed rather than returned.

use crate::core::cluster::keys::cross_slot;
use crate::core::commands::{ConnectionUse, blocking_timeout, check_args, connection_use, is_exec};
use crate::core::transaction::{transaction_result, watch_aborted};
use crate::core::{Error, Result, Status};
use crate::exec::Shared;
use crate::exec::blocking::{self, Request};
use crate::exec::record::Report;
use crate::net::Connection;
use crate::node::Node;
use crate::pipeline::Pipeline;
use crate::resp::{Args, Reply};
use crate::route::{Key, Placement};
use std::sync::Arc;

pub struct Session {
    shared: Arc<Shared>,
    /// The node. On a topology that routes by key (a cluster) it is chosen by the first
    /// command (the primary of its slot), and the session stays on that node and slot.
    node: Option<Arc<Node>>,
    slot: Option<u16>,
    conn: Option<Connection>,
    /// The transaction state open on the connection.
    transaction: Transaction,
    /// Transaction state that died with a lost connection and has not been reported yet.
    lost: Option<Transaction>,
    /// The session changed connection state that a reset cannot undo.
    dirty: bool,
    /// Writes queued in MULTI, for the client-side cache to drop again at EXEC.
    cache_writes: crate::cache::SessionWrites,
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
        let (node, conn) = if shared.route.routes_by_key() {
            (None, None)
        } else {
            let node = shared.route.pinned(None)?.to_arc();
            let conn = node.pool().get(None)?;
            (Some(node), Some(conn))
        };
        Ok(Session {
            shared,
            node,
            slot: None,
            conn,
            transaction: Transaction::default(),
            lost: None,
            dirty: false,
            cache_writes: Default::default(),
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
        let node = self.pin(args)?;
        let name = args.name();
        let node = self.ensure_connection(node, name)?;
        let conn = self.conn.as_mut().expect("a connection was just ensured");
        let request = Request {
            report: Report {
                name,
                batch_size: 1,
                started: None,
            },
            key: Key::default(),
            blocking: blocking_timeout(args),
            read_only: &|_| false,
            follows_redirects: false,
        };
        let result =
            blocking::run_pinned(&shared, &node, conn, &request, |conn| conn.command(args));
        if let Some(cache) = &shared.cache {
            cache.session_command(shared.command_table(), args, &mut self.cache_writes);
        }
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

    /// Makes sure the session has a live connection to `node` (or, when `node`'s pool refuses
    /// because the topology left it, to the node that replaced it) for a command called `name`:
    /// replaces a stale connection, and refuses (once) a command that would carry on a
    /// transaction lost with an earlier connection. Returns the node the connection is to.
    fn ensure_connection(&mut self, mut node: Arc<Node>, name: &[u8]) -> Result<Arc<Node>> {
        if let Some(refused) = node.pool().refusal() {
            if refused.status() == Status::Closed {
                return Err(Shared::closed_error());
            }
            node = self.move_on()?;
        }
        let pool = node.pool();
        // Like a pooled command, a session checks (with a non-blocking peek) that the server has
        // not closed its connection before writing to it.
        if self.conn.as_mut().is_none_or(Connection::is_stale) {
            if let Some(old) = self.conn.take() {
                self.forget_connection_state();
                pool.put(old);
            }
            if self.shared.is_closed() {
                return Err(Shared::closed_error());
            }
            self.conn = Some(pool.get(None)?);
        }
        if let Some(lost) = self.lost.take()
            && !lost.restarted_by(name)
        {
            return Err(Error::new(
                Status::Connection,
                "the session's connection was lost with a WATCH or MULTI open; that \
                     transaction is gone (start it again with WATCH or MULTI)",
            ));
        }
        Ok(node)
    }

    /// Runs the transaction queued in `tx` (made by the same client) on the session's
    /// connection in one round trip: MULTI, its commands, EXEC. WATCHes the session sent before
    /// guard it: WATCH when a watched key changed (nothing applied). Returns EXEC's array.
    /// Afterwards no WATCH or MULTI is open (EXEC ends both) and `tx` is empty.
    pub fn exec(&mut self, tx: &mut Pipeline) -> Result<Reply> {
        let queued = tx.take_transaction(&self.shared)?;
        if self.transaction.in_multi {
            return Err(Error::invalid_argument(
                "the session has a MULTI open: send EXEC or DISCARD before running a transaction",
            ));
        }
        let shared = self.shared.clone();
        let node = self.pin_slot(queued.slot, b"MULTI")?;
        let node = self.ensure_connection(node, b"MULTI")?;
        let conn = self.conn.as_mut().expect("a connection was just ensured");
        let request = Request {
            report: Report {
                name: b"MULTI",
                batch_size: u32::try_from(queued.count).unwrap_or(u32::MAX),
                started: None,
            },
            key: Key::default(),
            blocking: None,
            read_only: &|_| false,
            follows_redirects: false,
        };
        let result = blocking::run_pinned(&shared, &node, conn, &request, |conn| {
            conn.pipeline_array(&queued.framed, queued.count + 2)
                .and_then(transaction_result)
        });
        if conn.is_broken() {
            self.forget_connection_state();
        } else {
            self.transaction = Transaction::default();
        }
        result
    }

    /// The node this command runs on. On a topology that routes by key the first command picks
    /// the node (the primary of its slot, any primary when it has no keys); later commands must
    /// belong to the same slot (or, after keyless ones, to a slot of that node), since a
    /// session's WATCH and MULTI only mean something on one node.
    fn pin(&mut self, args: &Args<'_>) -> Result<Arc<Node>> {
        let shared = &self.shared;
        if !shared.route.routes_by_key() {
            return Ok(self
                .node
                .clone()
                .expect("a session on one node has it from the start"));
        }
        let slot = match shared.route.placement(shared.command_table(), args) {
            Placement::One(key) => key.slot,
            Placement::Spread => return Err(cross_slot(args.name())),
        };
        self.pin_slot(slot, args.name())
    }

    /// [`Session::pin`] for a command `name` whose keys are in `slot` (None: no keys).
    fn pin_slot(&mut self, slot: Option<u16>, name: &[u8]) -> Result<Arc<Node>> {
        let shared = &self.shared;
        if !shared.route.routes_by_key() {
            return Ok(self
                .node
                .clone()
                .expect("a session on one node has it from the start"));
        }
        let node = match (&self.node, slot, self.slot) {
            (None, _, _) => shared.route.pinned(slot)?.to_arc(),
            (Some(node), Some(s), Some(pinned)) if s != pinned => {
                return Err(Error::invalid_argument(format!(
                    "a session in cluster mode stays on one slot: {} uses slot {s}, the \
                     session slot {pinned}; use a hash tag to keep the keys together",
                    String::from_utf8_lossy(name).to_ascii_uppercase()
                )));
            }
            (Some(node), Some(s), None) => {
                let owner = shared.route.pinned(Some(s))?.to_arc();
                if !Arc::ptr_eq(node, &owner) {
                    return Err(Error::invalid_argument(format!(
                        "a session in cluster mode stays on one node: slot {s} of {} is served \
                         by {}, the session's node is {}",
                        String::from_utf8_lossy(name).to_ascii_uppercase(),
                        owner.address(),
                        node.address()
                    )));
                }
                node.clone()
            }
            (Some(node), _, _) => node.clone(),
        };
        if self.slot.is_none() {
            self.slot = slot;
        }
        self.node = Some(node.clone());
        Ok(node)
    }

    /// The session's node left the topology (a Sentinel master that was replaced, drained):
    /// the session goes on on the node that serves now, as after a lost connection (an open
    /// transaction is reported lost).
    fn move_on(&mut self) -> Result<Arc<Node>> {
        if let (Some(conn), Some(node)) = (self.conn.take(), self.node.clone()) {
            self.forget_connection_state();
            node.pool().put(conn);
        }
        let node = self.shared.route.pinned(self.slot)?.to_arc();
        self.node = Some(node.clone());
        Ok(node)
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
        if let Some(node) = &self.node {
            node.pool().put(conn);
        }
    }
}
