//! The write side of the hooks the drivers call: after this client's writes (one command, a
//! pipeline or transaction, a session's commands and its MULTI/EXEC), the entries of the keys
//! they wrote go, and reads of them in flight are not kept (guarantee 1). Writes whose keys
//! only the server can name make hits wait for a fresh lease.

use super::Cache;
use super::events::Reason;
use crate::core::cache::{Access, access, changes_tracking};
use crate::core::command_table::{CommandTable, Positions};
use crate::resp::{Args, all_encoded};

/// The keys (argument positions) a write changes, or all of them.
pub(crate) enum Write {
    Keys(Positions),
    Everything,
    /// These keys, and maybe others that only the server can name (a script's undeclared
    /// keys, SORT's STORE key).
    KeysAndMore(Positions),
}

/// Writes queued in a session's MULTI, applied (and evicted again) at EXEC.
#[derive(Default)]
pub(crate) struct SessionWrites {
    in_multi: bool,
    keys: Vec<Vec<u8>>,
    everything: bool,
    /// A write with keys only the server can name is queued: it runs at EXEC.
    unnamed: bool,
}

impl Cache {
    /// After a write ran (whatever its outcome: it may have been applied): the entries of its
    /// keys go, and reads of them in flight are not kept (guarantee 1).
    pub fn written(&self, args: &Args<'_>, write: &Write) {
        match write {
            Write::Keys(positions) => self.invalidate_at(args, positions),
            Write::Everything => self.flush_all(Reason::Flush),
            Write::KeysAndMore(positions) => {
                self.invalidate_at(args, positions);
                self.after_unnamed_writes();
            }
        }
    }

    fn invalidate_at(&self, args: &Args<'_>, positions: &Positions) {
        let dropped = self
            .store
            .invalidate(positions.iter().map(|&i| args.get(i)));
        self.count_invalidated(dropped);
    }

    /// The reply of a write with keys only the server can name (a script's undeclared keys,
    /// SORT's STORE key) has been read: its invalidations name them, so hits wait for a lease
    /// PING sent from now on (the thread is woken to send it).
    fn after_unnamed_writes(&self) {
        self.store.leases.after_unnamed_writes();
        self.listeners.wake();
    }

    /// [`Cache::written`] for a command held encoded (the async path).
    pub fn written_encoded(&self, encoded: &[u8], write: &Write) {
        all_encoded(encoded, |args| {
            self.written(args, write);
            false
        });
    }

    /// After a pipeline or transaction ran: the keys of its writes go.
    pub fn after_batch(&self, table: Option<&CommandTable>, encoded: &[u8]) {
        let mut everything = false;
        let mut unnamed = false;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        all_encoded(encoded, |args| {
            match access(table, args) {
                Access::Writes(positions) => {
                    keys.extend(positions.iter().map(|&i| args.get(i).to_vec()));
                }
                Access::WritesMore(positions) => {
                    keys.extend(positions.iter().map(|&i| args.get(i).to_vec()));
                    unnamed = true;
                }
                Access::WritesUnknown => everything = true,
                _ => {}
            }
            true
        });
        if unnamed {
            self.after_unnamed_writes();
        }
        if everything {
            return self.flush_all(Reason::Flush);
        }
        if !keys.is_empty() {
            let dropped = self.store.invalidate(keys.iter().map(Vec::as_slice));
            self.count_invalidated(dropped);
        }
    }

    /// After a session's command: its writes' keys go (again at EXEC for writes queued in
    /// MULTI); a command that changes what the server tracks for the connection (RESET,
    /// CLIENT TRACKING, HELLO 2, AUTH, SELECT) drops everything, since entries may have been
    /// read through that connection when it was pooled.
    pub fn session_command(
        &self,
        table: Option<&CommandTable>,
        args: &Args<'_>,
        queued: &mut SessionWrites,
    ) {
        let name = args.name();
        if changes_tracking(args) {
            *queued = SessionWrites::default();
            return self.flush_all(Reason::ConnectionLost);
        }
        if name.eq_ignore_ascii_case(b"MULTI") {
            queued.in_multi = true;
            return;
        }
        if name.eq_ignore_ascii_case(b"EXEC") || name.eq_ignore_ascii_case(b"DISCARD") {
            let done = std::mem::take(queued);
            if name.eq_ignore_ascii_case(b"EXEC") {
                if done.unnamed {
                    self.after_unnamed_writes();
                }
                if done.everything {
                    return self.flush_all(Reason::Flush);
                }
                let dropped = self.store.invalidate(done.keys.iter().map(Vec::as_slice));
                self.count_invalidated(dropped);
            }
            return;
        }
        let write = match access(table, args) {
            Access::Writes(keys) => Write::Keys(keys),
            Access::WritesUnknown => Write::Everything,
            Access::WritesMore(keys) => Write::KeysAndMore(keys),
            _ => return,
        };
        self.written(args, &write);
        if queued.in_multi {
            match write {
                Write::Keys(positions) => queued
                    .keys
                    .extend(positions.iter().map(|&i| args.get(i).to_vec())),
                Write::KeysAndMore(positions) => {
                    queued.unnamed = true;
                    queued
                        .keys
                        .extend(positions.iter().map(|&i| args.get(i).to_vec()));
                }
                Write::Everything => queued.everything = true,
            }
        }
    }
}
