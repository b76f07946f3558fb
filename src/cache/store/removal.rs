//! Taking entries and pending reads out of both halves: one slot, a batch in one write to the
//! shards, every reader of some keys (invalidations, this client's writes), everything from one
//! node, everything. Removed entries are dropped after the shards' write, so hits wait as
//! little as possible.

use super::entry::{Entry, Maps, SHARDS, shard};
use super::index::{Index, State, Via};
use super::{NodeId, Store};
use std::collections::{HashMap, HashSet, VecDeque};

impl Store {
    /// Removes one slot (entry or pending read) and everything that points to it. Returns the
    /// bytes of a filled entry (`None` for a pending read or none at all).
    pub(super) fn remove_slot(&self, index: &mut Index, hash: u64) -> Option<usize> {
        let bytes = Self::unindex(index, hash)?;
        // Dropped after the write: readers wait for as little as possible.
        let entry = self.maps.write(|maps| maps[shard(hash)].remove(&hash));
        drop(entry);
        Some(bytes)
    }

    /// The index's part of [`Store::remove_slot`]: everything but the entry itself, which the
    /// caller removes from the maps (several at once, in one write). Returns the bytes of a
    /// filled entry.
    pub(super) fn unindex(index: &mut Index, hash: u64) -> Option<usize> {
        let slot = index.slots.remove(&hash)?;
        for key in slot.keys.as_slice() {
            if let Some(readers) = index.by_key.get_mut(key)
                && readers.remove(hash)
            {
                index.by_key.remove(key);
            }
        }
        match slot.via {
            Via::Conn(conn) => {
                if let Some(set) = index.by_conn.get_mut(&conn) {
                    set.remove(&hash);
                    if set.is_empty() {
                        index.by_conn.remove(&conn);
                    }
                }
            }
            Via::Mux => {
                if let Some(node) = index.nodes.get_mut(slot.node) {
                    node.via_mux.remove(&hash);
                }
            }
            Via::Listener => {}
        }
        match slot.state {
            State::Pending { .. } => None,
            State::Filled { bytes, .. } => {
                index.entries -= 1;
                index.bytes -= bytes;
                Some(bytes)
            }
        }
    }

    /// Removes every slot in `hashes` (the entries in one write); counts the entries that were
    /// filled.
    pub(super) fn remove_all(
        &self,
        index: &mut Index,
        hashes: impl IntoIterator<Item = u64>,
    ) -> usize {
        let filled: Vec<u64> = hashes
            .into_iter()
            .filter(|&h| Self::unindex(index, h).is_some())
            .collect();
        self.remove_entries(&filled, None);
        filled.len()
    }

    /// Removes the entries of `hashes` from the maps, and inserts `add` if given, in one write;
    /// the removed entries are dropped after it.
    pub(super) fn remove_entries(&self, hashes: &[u64], add: Option<(u64, Entry)>) {
        match hashes {
            [] if add.is_none() => {}
            // The usual fill: one entry in, at most one out; nothing to collect.
            [] | [_] => {
                let removed = self.maps.write(|maps| {
                    if let Some((hash, entry)) = add {
                        maps[shard(hash)].insert(hash, entry);
                    }
                    hashes.first().and_then(|h| maps[shard(*h)].remove(h))
                });
                drop(removed);
            }
            _ => {
                let removed: Vec<Entry> = self.maps.write(|maps| {
                    if let Some((hash, entry)) = add {
                        maps[shard(hash)].insert(hash, entry);
                    }
                    hashes
                        .iter()
                        .filter_map(|h| maps[shard(*h)].remove(h))
                        .collect()
                });
                drop(removed);
            }
        }
    }

    /// Drops every entry and pending read that depends on one of `keys`; the number of entries
    /// dropped.
    pub fn invalidate<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> usize {
        let mut index = self.lock();
        let mut dropped = 0;
        for key in keys {
            let key = index.key_hash(key);
            if let Some(readers) = index.by_key.remove(&key) {
                dropped += self.remove_all(&mut index, readers.hashes());
            }
        }
        self.count_removed(&index);
        dropped
    }

    /// Drops everything (entries and pending reads); the number of entries dropped.
    pub fn flush(&self) -> usize {
        let mut index = self.lock();
        let dropped = index.entries;
        // New, empty structures: the memory goes back too.
        index.slots = HashMap::default();
        index.by_key = HashMap::default();
        index.by_conn = HashMap::default();
        index.ring = VecDeque::new();
        for node in &mut index.nodes {
            node.via_mux = HashSet::default();
        }
        index.entries = 0;
        index.bytes = 0;
        // New maps: the old ones' memory goes back too (dropped after the write).
        let fresh: Maps = (0..SHARDS).map(|_| HashMap::default()).collect();
        let old = self.maps.write(|maps| std::mem::replace(maps, fresh));
        drop(old);
        self.count_removed(&index);
        dropped
    }

    /// Drops everything that came from `node`; the number of entries dropped.
    pub(super) fn flush_node_locked(&self, index: &mut Index, node: NodeId) -> usize {
        let hashes: Vec<u64> = index
            .slots
            .iter()
            .filter(|(_, s)| s.node == node)
            .map(|(&h, _)| h)
            .collect();
        let dropped = self.remove_all(index, hashes);
        self.count_removed(index);
        dropped
    }

    /// Drops everything that came from `node`.
    pub fn flush_node(&self, node: NodeId) -> usize {
        let mut index = self.lock();
        self.flush_node_locked(&mut index, node)
    }
}
