//! Why entries went, and how that is told: the invalidation counter, and `CacheInvalidate`
//! events carrying a [`Reason`] as their command name and the node's address.

use super::Cache;
use super::store::NodeId;
use crate::core::Status;
use crate::telemetry::events::{Event, EventKind};
use crate::telemetry::stats::Stat;
use std::ffi::CString;
use std::time::Duration;

/// Why entries went, as events report it (as their command name; `brisk_event_cache_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The server said these keys changed.
    Invalidation,
    /// A flush: `brisk_client_cache_flush`, a FLUSHALL/FLUSHDB (by anyone), a write whose keys
    /// cannot be named.
    Flush,
    /// The tracking state that covered them is gone or in doubt: the invalidation connection
    /// (lost, killed, unanswered PING, `tracking-redir-broken`), a data connection they were
    /// read through, or a session changed its connection's tracking.
    ConnectionLost,
    /// A cluster failover or slot move (or a Sentinel master switch).
    Topology,
}

impl Reason {
    /// The event's command name for this reason.
    pub fn name(self) -> &'static [u8] {
        match self {
            Reason::Invalidation => b"INVALIDATE",
            Reason::Flush => b"FLUSH",
            Reason::ConnectionLost => b"CONNECTION_LOST",
            Reason::Topology => b"TOPOLOGY",
        }
    }

    /// The reason an event's command name stands for.
    pub fn from_name(name: &[u8]) -> Option<Reason> {
        [
            Reason::Invalidation,
            Reason::Flush,
            Reason::ConnectionLost,
            Reason::Topology,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

impl Cache {
    /// Tells that entries went: the event (`count` keys, or entries), then the counter
    /// (`dropped` entries). In that order, so that whoever sees the counter move has been told:
    /// the event callback runs on this thread.
    pub(super) fn report(
        &self,
        node: Option<NodeId>,
        reason: Reason,
        count: usize,
        dropped: usize,
    ) {
        match node {
            Some(node) => self.emit_for(node, reason, count),
            None => self.emit(reason, count, c""),
        }
        self.count_invalidated(dropped);
    }

    pub(super) fn count_invalidated(&self, dropped: usize) {
        if dropped > 0 {
            self.observer
                .stats
                .add(Stat::CacheInvalidations, dropped as u64);
        }
    }

    pub(super) fn emit_for(&self, node: NodeId, reason: Reason, count: usize) {
        if !self.observer.enabled() {
            return;
        }
        let address = self
            .store
            .with_node(node, |n| n.address.replace('\0', ""))
            .unwrap_or_default();
        let address = CString::new(address).unwrap_or_default();
        self.emit(reason, count, &address);
    }

    pub(super) fn emit(&self, reason: Reason, count: usize, address: &std::ffi::CStr) {
        if !self.observer.enabled() {
            return;
        }
        let status = match reason {
            Reason::ConnectionLost => Status::Connection,
            _ => Status::Ok,
        };
        self.observer.emit(&Event {
            kind: EventKind::CacheInvalidate,
            status,
            command: reason.name(),
            duration: Duration::ZERO,
            attempt: 1,
            address,
            error_type: (status != Status::Ok).then(|| status.name()),
            batch_size: u32::try_from(count).unwrap_or(u32::MAX),
            db: self.observer.db(),
        });
    }
}
