//! Pipelines and transactions: commands encoded as they are appended, sent in one write, and
//! their replies read back in order.
//!
//! On a topology that routes by key (a cluster) each command's key is noted as it is appended:
//! a pipeline may then span nodes (`exec::batch`), a transaction must stay on one slot.

use crate::core::cluster::keys::cross_slot;
use crate::core::commands::check_args;
use crate::core::transaction::transaction_result;
use crate::core::{Error, Result};
use crate::exec::Shared;
use crate::exec::batch::{self, Entry};
use crate::exec::blocking::{self, Request, needs_time};
use crate::exec::record::Report;
use crate::resp::{Args, Reply, ReplyKind, all_encoded, encode_command};
use crate::route::{Key, Placement};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Instant;

pub struct Pipeline {
    shared: Arc<Shared>,
    encoded: BytesMut,
    count: usize,
    /// Where each command goes, when the topology routes by key.
    entries: Vec<Entry>,
    routes_by_key: bool,
    transaction: bool,
}

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

/// A transaction taken out of its pipeline, for a session to run on its own connection.
pub(crate) struct QueuedTransaction {
    /// MULTI, the commands, EXEC.
    pub framed: BytesMut,
    /// The number of commands, MULTI and EXEC not counted.
    pub count: usize,
    /// The slot of the commands' keys on a topology that routes by key.
    pub slot: Option<u16>,
}

/// The one slot all `entries` use (None: no keys, or a topology without slots); CROSSSLOT when
/// they use several, since a transaction runs on one node.
fn one_slot(entries: &[Entry]) -> Result<Option<u16>> {
    let mut slots = entries.iter().filter_map(|e| e.key.slot);
    let slot = slots.next();
    if slots.any(|s| Some(s) != slot) {
        return Err(Error::invalid_argument(
            "CROSSSLOT: a transaction in cluster mode runs on one node, so all its keys \
             must hash to one slot; use a hash tag ({user1}:a, {user1}:b)",
        ));
    }
    Ok(slot)
}

impl Pipeline {
    pub(crate) fn new(shared: Arc<Shared>, transaction: bool) -> Pipeline {
        Pipeline {
            routes_by_key: shared.route.routes_by_key(),
            shared,
            encoded: BytesMut::new(),
            count: 0,
            entries: Vec::new(),
            transaction,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a command. Commands that would change the connection's state (SELECT, WATCH,
    /// MULTI, ...) are refused: the connection goes back to the pool afterwards.
    ///
    /// Inline, with the routing by key out of line: the usual append is a check and an encode,
    /// and the C API's `brisk_pipeline_append` then makes one call less per command.
    #[inline]
    pub fn append(&mut self, args: &Args<'_>) -> Result<()> {
        check_args(args, false)?;
        if self.routes_by_key {
            return self.append_routed(args);
        }
        encode_command(&mut self.encoded, args);
        self.count += 1;
        Ok(())
    }

    /// [`Pipeline::append`] on a topology that routes by key: the command's key is noted.
    #[inline(never)]
    fn append_routed(&mut self, args: &Args<'_>) -> Result<()> {
        let shared = &self.shared;
        let key = match shared.route.placement(shared.command_table(), args) {
            Placement::One(key) => key,
            Placement::Spread => return Err(cross_slot(args.name())),
        };
        let read_only = shared.is_read_only(args);
        let entry = Entry::encode(&mut self.encoded, args, key, read_only);
        self.entries.push(entry);
        self.count += 1;
        Ok(())
    }

    /// Wraps the encoded commands in MULTI ... EXEC.
    fn frame_transaction(&mut self) {
        let mut framed = BytesMut::with_capacity(self.encoded.len() + MULTI.len() + EXEC.len());
        framed.extend_from_slice(MULTI);
        framed.extend_from_slice(&self.encoded);
        framed.extend_from_slice(EXEC);
        self.encoded = framed;
    }

    /// Takes the queued commands out as a transaction for a session of the same client to run
    /// (`Session::exec`). The pipeline is empty afterwards, whatever the outcome.
    /// INVALID_ARGUMENT for a plain pipeline, one of another client, or keys in several slots.
    pub(crate) fn take_transaction(&mut self, shared: &Arc<Shared>) -> Result<QueuedTransaction> {
        let count = std::mem::replace(&mut self.count, 0);
        let entries = std::mem::take(&mut self.entries);
        if !self.transaction {
            self.encoded.clear();
            return Err(Error::invalid_argument(
                "tx: a pipeline, not a transaction (make it with brisk_transaction_new)",
            ));
        }
        if !Arc::ptr_eq(&self.shared, shared) {
            self.encoded.clear();
            return Err(Error::invalid_argument(
                "tx: made from another client than the session",
            ));
        }
        let slot = match one_slot(&entries) {
            Ok(slot) => slot,
            Err(e) => {
                self.encoded.clear();
                return Err(e);
            }
        };
        self.frame_transaction();
        Ok(QueuedTransaction {
            framed: std::mem::take(&mut self.encoded),
            count,
            slot,
        })
    }

    /// Sends everything and returns an ARRAY with one reply per command (error replies are
    /// ERROR elements). A transaction whose WATCHed keys changed fails with WATCH; one the server
    /// discarded (EXECABORT) fails with SERVER and the first queued error. The batch is retried
    /// like a command: if it only reads, or if it failed before anything was sent. The pipeline
    /// is empty afterwards, whatever the outcome.
    pub fn exec(&mut self) -> Result<Reply> {
        let count = std::mem::replace(&mut self.count, 0);
        let entries = std::mem::take(&mut self.entries);
        let result = match count {
            0 => Ok(Reply::aggregate(ReplyKind::Array, Vec::new())),
            _ if self.routes_by_key && !self.transaction => {
                let work = batch::Work {
                    name: b"PIPELINE",
                    encoded: &self.encoded,
                    entries: &entries,
                };
                batch::run(&self.shared, &work)
                    .map(|replies| Reply::aggregate(ReplyKind::Array, replies))
            }
            _ => self.exec_on_one_node(count, &entries),
        };
        if let Some(cache) = &self.shared.cache {
            // Reads here bypass the cache; writes drop their keys' entries before the replies
            // are handed back (whatever the outcome: some may have been applied).
            cache.after_batch(self.shared.command_table(), &self.encoded);
        }
        // Keep the allocation for the next round.
        self.encoded.clear();
        result
    }

    /// A pipeline on a topology with one node per command set, or a transaction: one request
    /// to one node (in a cluster, the one owning all of the transaction's keys).
    fn exec_on_one_node(&mut self, count: usize, entries: &[Entry]) -> Result<Reply> {
        let slot = one_slot(entries)?;
        let transaction = self.transaction;
        if transaction {
            self.frame_transaction();
        }
        // Asked only when a sent batch failed, so the commands are looked up then, from their
        // encoding, rather than one table lookup per append.
        let encoded = &self.encoded;
        let is_read_only = move |shared: &Shared| {
            let commands = match transaction {
                true => &encoded[MULTI.len()..encoded.len() - EXEC.len()],
                false => &encoded[..],
            };
            all_encoded(commands, |args| shared.is_read_only(args))
        };
        let request = Request {
            report: Report {
                name: if transaction { b"MULTI" } else { b"PIPELINE" },
                batch_size: u32::try_from(count).unwrap_or(u32::MAX),
                started: needs_time(&self.shared).then(Instant::now),
            },
            key: Key {
                slot,
                replica_ok: false,
            },
            blocking: None,
            read_only: &is_read_only,
            follows_redirects: false,
        };
        blocking::run(&self.shared, &request, |conn| match transaction {
            true => conn
                .pipeline_array(encoded, count + 2)
                .and_then(transaction_result),
            false => conn.pipeline_array(encoded, count),
        })
    }
}
