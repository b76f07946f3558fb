//! Pipelines and transactions: commands encoded as they are appended, sent in one write, and
//! their replies read back in order.

use crate::client::{Shared, check_args};
use crate::cluster::batch::{self, Entry};
use crate::cluster::keys;
use crate::core::{Error, Result, Status};
use crate::execute::{Executor, Job};
use crate::resp::{Args, Reply, ReplyKind, all_encoded, encode_command};
use bytes::BytesMut;
use std::sync::Arc;

pub struct Pipeline {
    shared: Arc<Shared>,
    encoded: BytesMut,
    count: usize,
    /// In cluster mode, where each command goes.
    entries: Vec<Entry>,
    transaction: bool,
}

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

impl Pipeline {
    pub(crate) fn new(shared: Arc<Shared>, transaction: bool) -> Pipeline {
        Pipeline {
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
    pub fn append(&mut self, args: &Args<'_>) -> Result<()> {
        check_args(args, false)?;
        if self.shared.cluster().is_some() {
            let executor = &self.shared.executor;
            let slot = keys::single_slot(executor.command_table(), args)?;
            let read_only = executor.is_read_only(args);
            let entry = Entry::encode(&mut self.encoded, args, slot, read_only);
            self.entries.push(entry);
        } else {
            encode_command(&mut self.encoded, args);
        }
        self.count += 1;
        Ok(())
    }

    /// Sends everything and returns an ARRAY with one reply per command (error replies are
    /// ERROR elements). A transaction whose WATCHed keys changed fails with WATCH; one the server
    /// discarded (EXECABORT) fails with SERVER and the first queued error. The batch is retried
    /// like a command: if it only reads, or if it failed before anything was sent. The pipeline
    /// is empty afterwards, whatever the outcome.
    pub fn exec(&mut self) -> Result<Reply> {
        let count = std::mem::replace(&mut self.count, 0);
        let transaction = self.transaction;
        let entries = std::mem::take(&mut self.entries);
        if count == 0 {
            return Ok(Reply::aggregate(ReplyKind::Array, Vec::new()));
        }
        let shared = self.shared.clone();
        if let (Some(cluster), false) = (shared.cluster(), self.transaction) {
            let work = batch::Work {
                name: b"PIPELINE",
                encoded: &self.encoded,
                entries: &entries,
                blocking: None,
            };
            let result = batch::run(cluster, &shared.executor, &work);
            self.encoded.clear();
            return result.map(|replies| Reply::aggregate(ReplyKind::Array, replies));
        }
        // A transaction runs on one node: in a cluster, the one owning all of its keys.
        let mut slots = entries.iter().filter_map(|e| e.slot);
        let slot = slots.next();
        if slots.any(|s| Some(s) != slot) {
            self.encoded.clear();
            return Err(Error::invalid_argument(
                "CROSSSLOT: a transaction in cluster mode runs on one node, so all its keys \
                 must hash to one slot; use a hash tag ({user1}:a, {user1}:b)",
            ));
        }
        let pool = match shared.pinned_pool(slot) {
            Ok(pool) => pool,
            Err(e) => {
                self.encoded.clear();
                return Err(e);
            }
        };
        if self.transaction {
            let mut framed = BytesMut::with_capacity(self.encoded.len() + MULTI.len() + EXEC.len());
            framed.extend_from_slice(MULTI);
            framed.extend_from_slice(&self.encoded);
            framed.extend_from_slice(EXEC);
            self.encoded = framed;
        }
        // Asked only when a sent batch failed, so the commands are looked up then, from their
        // encoding, rather than one table lookup per append.
        let encoded = &self.encoded;
        let is_read_only = move |executor: &Executor| {
            let commands = if transaction {
                &encoded[MULTI.len()..encoded.len() - EXEC.len()]
            } else {
                &encoded[..]
            };
            all_encoded(commands, |args| executor.is_read_only(args))
        };
        let job = Job {
            name: if self.transaction {
                b"MULTI"
            } else {
                b"PIPELINE"
            },
            batch_size: u32::try_from(count).unwrap_or(u32::MAX),
            blocking: None,
            read_only: &is_read_only,
            recorded: true,
        };
        let result = shared.executor.run(&pool, &job, |conn| {
            if transaction {
                conn.pipeline_array(encoded, count + 2)
                    .and_then(transaction_result)
            } else {
                conn.pipeline_array(encoded, count)
            }
        });
        // Keep the allocation for the next round.
        self.encoded.clear();
        result
    }
}

/// MULTI's reply, one QUEUED (or error) per command, then EXEC's reply, as one array.
fn transaction_result(all: Reply) -> Result<Reply> {
    let replies = all.children();
    let (Some(multi), Some(exec)) = (replies.first(), replies.last()) else {
        return Err(Error::new(
            Status::Protocol,
            "a transaction without replies",
        ));
    };
    if multi.kind() == ReplyKind::Error {
        return Err(Error::from_reply(multi.as_bytes().unwrap_or_default()).context("MULTI"));
    }
    match exec.kind() {
        ReplyKind::Array => {
            let last = replies.len() - 1;
            Ok(all.into_element(last).expect("EXEC's reply is the last"))
        }
        ReplyKind::Nil => Err(watch_aborted()),
        ReplyKind::Error => {
            let mut error = Error::from_reply(exec.as_bytes().unwrap_or_default());
            if let Some((i, queued)) = replies[..replies.len() - 1]
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, r)| r.kind() == ReplyKind::Error)
            {
                error = error.detail(format!(
                    "command {} was rejected: {}",
                    i,
                    queued.as_str().unwrap_or("?")
                ));
            }
            Err(error)
        }
        other => Err(Error::new(
            Status::Protocol,
            format!("EXEC answered with a {other:?} instead of an array"),
        )),
    }
}

/// EXEC answered nil: a WATCHed key changed and nothing was applied.
pub(crate) fn watch_aborted() -> Error {
    Error::new(
        Status::Watch,
        "transaction aborted: a WATCHed key changed (EXEC returned nil), nothing was applied",
    )
}
