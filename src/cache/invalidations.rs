//! What the invalidation side reports, applied to the store: the invalidation connections
//! coming up, failing or being refused (from the `brisk-cache` thread), invalidation messages,
//! tracking in doubt, data connections closed; and the cache as the push router's consumer of
//! `invalidate` frames, `tracking-redir-broken` and connection closes.

use super::Cache;
use super::events::Reason;
use super::lock;
use super::store::{Live, NodeId};
use crate::core::cache::{self as rules, Invalidation};
use crate::core::{Error, Result};
use crate::net::push::{PushConsumer, PushOrigin};
use crate::resp::Reply;
use std::sync::Weak;

impl Cache {
    pub(super) fn listener_live(&self, node: NodeId, live: Live) {
        self.store.node_live(node, live);
        self.settle_ready(node, Ok(()));
    }

    pub(super) fn listener_lost(&self, node: NodeId, error: Error) {
        let dropped = self.store.node_lost(node, None);
        if let Some(dropped) = dropped {
            self.report(Some(node), Reason::ConnectionLost, dropped, dropped);
        }
        self.settle_ready(node, Err(error));
    }

    pub(super) fn listener_unsupported(&self, node: NodeId, error: Error) {
        self.store
            .node_unsupported(node, error.message().to_owned());
        self.settle_ready(node, Err(error));
    }

    /// Records how the first attempt went (later ones change nothing here).
    fn settle_ready(&self, node: NodeId, outcome: Result<()>) {
        lock(&self.ready).entry(node).or_insert(outcome);
        self.ready_changed.notify_all();
    }

    /// An invalidation message from `node` (unknown: a push whose connection is not a live
    /// invalidation connection yet).
    pub(super) fn invalidation(&self, node: Option<NodeId>, invalidation: Invalidation<'_>) {
        match invalidation {
            Invalidation::Keys(keys) => {
                let count = keys.len();
                let dropped = self.store.invalidate(keys);
                self.report(node, Reason::Invalidation, count, dropped);
            }
            // FLUSHALL / FLUSHDB on that node.
            Invalidation::All => match node {
                Some(node) => {
                    let dropped = self.store.flush_node(node);
                    self.report(Some(node), Reason::Flush, dropped, dropped);
                }
                None => self.flush_all(Reason::Flush),
            },
        }
    }

    /// The node's tracking state is in doubt: its entries go and its invalidation connection
    /// starts over.
    pub(super) fn in_doubt(&self, node: NodeId) {
        if let Some(dropped) = self.store.node_lost(node, None) {
            self.report(Some(node), Reason::ConnectionLost, dropped, dropped);
        }
        self.listeners.doubt(node);
    }

    /// The node's lease probe says it changed roles (a failover: a primary turned replica, or
    /// a replica promoted): everything read there goes. A former primary would otherwise keep
    /// answering the lease while its new primary acknowledges writes it has not seen yet (it
    /// sends their invalidations only once it has caught up).
    pub(super) fn role_changed(&self, node: NodeId) {
        let dropped = self.store.flush_node(node);
        self.report(Some(node), Reason::Topology, dropped, dropped);
    }

    /// A data connection the server closed (seen by the invalidation thread): what the server
    /// tracked for it is gone, so is everything read through it.
    pub(super) fn data_connection_lost(&self, node: NodeId, connection: u64) {
        let address = self.store.with_node(node, |n| n.address.clone());
        let Some(address) = address else {
            return;
        };
        let dropped = self.store.connection_closed(&address, connection);
        if dropped > 0 {
            self.report(Some(node), Reason::ConnectionLost, dropped, dropped);
        }
    }

    pub(super) fn sweep(&self, budget: usize) {
        self.store.sweep(budget);
    }
}

/// The cache as a push consumer: `invalidate` frames, `tracking-redir-broken`, and every
/// connection close. Holds the cache weakly: the router outlives it.
pub(super) struct Consumer(pub(super) Weak<Cache>);

impl PushConsumer for Consumer {
    fn push(&self, origin: &PushOrigin, frame: &Reply) {
        let Some(cache) = self.0.upgrade() else {
            return;
        };
        let node = cache.store.listener_node(origin.connection);
        if let Some(invalidation) = rules::parse_push(frame) {
            return cache.invalidation(node, invalidation);
        }
        // `tracking-redir-broken` on a data connection: the server lost the invalidation
        // connection it redirects to. Only a connection tracked to the live one matters (one
        // left over from before a reconnect says nothing new).
        if cache.store.is_tracked(&origin.address, origin.connection)
            && let Some(node) = cache.store.node_at(&origin.address)
        {
            cache.in_doubt(node);
        }
    }

    fn connection_closed(&self, origin: &PushOrigin) {
        let Some(cache) = self.0.upgrade() else {
            return;
        };
        cache.listeners.unwatch(origin.connection);
        if let Some(node) = cache.store.listener_node(origin.connection) {
            // The listener task sees it too and starts over; dropping now is what matters.
            if let Some(dropped) = cache.store.node_lost(node, Some(origin.connection)) {
                cache.report(Some(node), Reason::ConnectionLost, dropped, dropped);
            }
            return;
        }
        let dropped = cache
            .store
            .connection_closed(&origin.address, origin.connection);
        if dropped > 0 {
            match cache.store.node_at(&origin.address) {
                Some(node) => cache.report(Some(node), Reason::ConnectionLost, dropped, dropped),
                None => cache.count_invalidated(dropped),
            }
        }
    }
}
