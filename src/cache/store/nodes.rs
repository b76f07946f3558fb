//! The nodes' tracking state: which invalidation connection is live (and its client ID), which
//! data connections are tracked to it, what was read through the multiplexed connection, why a
//! node cannot track. A change to it (the invalidation connection up, lost or refused, a data
//! connection closed) decides what may be kept and drops what relied on the old state.

use super::entry::Identity;
use super::{NodeId, Store};
use std::collections::HashSet;
use std::sync::Arc;

/// The tracking state of one node.
pub(crate) struct NodeState {
    pub address: Arc<str>,
    /// The invalidation connection, while it is up: its server-side client ID and its push
    /// router id.
    pub live: Option<Live>,
    /// Data connections tracked (`CLIENT TRACKING ON REDIRECT`) to the live invalidation
    /// connection: the others are set up before their next cached read.
    pub(super) tracked: HashSet<u64, Identity>,
    /// Slots read through the node's multiplexed connection.
    pub(super) via_mux: HashSet<u64, Identity>,
    /// Why the node cannot track, once it said so.
    pub unsupported: Option<String>,
    /// Bumped when the invalidation connection comes or goes.
    pub epoch: u64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Live {
    pub client_id: u64,
    pub connection: u64,
}

impl Store {
    /// Registers a node (by address) and returns its number; the same address gets the same
    /// number.
    pub fn node(&self, address: &Arc<str>) -> NodeId {
        let mut index = self.lock();
        if let Some(id) = index.nodes.iter().position(|n| &n.address == address) {
            return id;
        }
        index.nodes.push(NodeState {
            address: address.clone(),
            live: None,
            tracked: HashSet::default(),
            via_mux: HashSet::default(),
            unsupported: None,
            epoch: 0,
        });
        index.nodes.len() - 1
    }

    /// Looks at one node's state.
    pub fn with_node<T>(&self, node: NodeId, f: impl FnOnce(&NodeState) -> T) -> Option<T> {
        self.lock().nodes.get(node).map(f)
    }

    /// The node at `address`, if registered.
    pub fn node_at(&self, address: &str) -> Option<NodeId> {
        self.lock()
            .nodes
            .iter()
            .position(|n| &*n.address == address)
    }

    /// The node's invalidation connection is up (server-side client ID, push router id):
    /// reads may be kept from now on.
    pub fn node_live(&self, node: NodeId, live: Live) {
        let mut index = self.lock();
        let state = &mut index.nodes[node];
        state.live = Some(live);
        state.unsupported = None;
        state.tracked.clear();
        state.epoch += 1;
    }

    /// The node's invalidation connection is gone (or in doubt): everything that came from the
    /// node goes, pending reads included, and nothing is kept until it is up again. `only`: act
    /// only if that connection (push router id) is still the live one. Returns the entries
    /// dropped, `None` when nothing changed.
    pub fn node_lost(&self, node: NodeId, only: Option<u64>) -> Option<usize> {
        let mut index = self.lock();
        let state = index.nodes.get_mut(node)?;
        let live = state.live?;
        if only.is_some_and(|c| c != live.connection) {
            return None;
        }
        state.live = None;
        state.tracked.clear();
        state.epoch += 1;
        Some(self.flush_node_locked(&mut index, node))
    }

    /// The node cannot track (the server refused): nothing from it is ever kept.
    pub fn node_unsupported(&self, node: NodeId, why: String) {
        let mut index = self.lock();
        if let Some(state) = index.nodes.get_mut(node) {
            state.unsupported = Some(why);
            state.live = None;
            state.epoch += 1;
        }
        self.flush_node_locked(&mut index, node);
    }

    /// The node whose invalidation connection is the push router's connection `connection`.
    pub fn listener_node(&self, connection: u64) -> Option<NodeId> {
        self.lock()
            .nodes
            .iter()
            .position(|n| n.live.is_some_and(|l| l.connection == connection))
    }

    /// A data connection of the node at `address` closed: what the server tracked for it is
    /// gone, so is everything read through it. A connection the cache did not set up may be
    /// the node's multiplexed one: what came through that goes too. Returns the entries dropped.
    pub fn connection_closed(&self, address: &str, connection: u64) -> usize {
        let mut index = self.lock();
        let Some(node) = index.nodes.iter().position(|n| &*n.address == address) else {
            return 0;
        };
        let mut hashes: Vec<u64> = index
            .by_conn
            .remove(&connection)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        let state = &mut index.nodes[node];
        if !state.tracked.remove(&connection) && hashes.is_empty() {
            hashes.extend(state.via_mux.drain());
        }
        let dropped = self.remove_all(&mut index, hashes);
        self.count_removed(&index);
        dropped
    }

    /// Whether the data connection (push router id) is tracked to the live invalidation
    /// connection of the node at `address`.
    pub fn is_tracked(&self, address: &str, connection: u64) -> bool {
        let index = self.lock();
        index
            .nodes
            .iter()
            .find(|n| &*n.address == address)
            .is_some_and(|n| n.live.is_some() && n.tracked.contains(&connection))
    }
}
