//! The index's records (behind the store's one `Mutex`): per entry or pending read its slot
//! (state, key hashes, node, the connection its read came through); per Redis key (hash) the
//! slots that read it; per data connection the slots read through it; the eviction ring and
//! the totals. The operations on them live with their job (`token`, `removal`, `nodes`,
//! `eviction`).

use super::NodeId;
use super::entry::Identity;
use super::nodes::NodeState;
use std::collections::{HashMap, HashSet, VecDeque};

/// The entries (or pending reads) that read one Redis key.
pub(super) enum Readers {
    One(u64),
    /// A set: a hash read by thousands of `HGET h field` entries must not make each eviction
    /// a walk over all of them.
    Many(HashSet<u64, Identity>),
}

impl Readers {
    pub(super) fn add(&mut self, hash: u64) {
        match self {
            Readers::One(h) if *h == hash => {}
            Readers::One(h) => *self = Readers::Many([*h, hash].into_iter().collect()),
            Readers::Many(set) => {
                set.insert(hash);
            }
        }
    }

    /// Removes `hash`; true when none is left.
    pub(super) fn remove(&mut self, hash: u64) -> bool {
        match self {
            Readers::One(h) => *h == hash,
            Readers::Many(set) => {
                set.remove(&hash);
                set.is_empty()
            }
        }
    }

    pub(super) fn hashes(&self) -> Vec<u64> {
        match self {
            Readers::One(h) => vec![*h],
            Readers::Many(set) => set.iter().copied().collect(),
        }
    }
}

/// Which tracking state an entry depends on, beyond its node's invalidation connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Read through this data connection (by its push-router id): the server tracks the keys
    /// for that connection, and forgets them when it closes.
    Conn(u64),
    /// Read through the node's multiplexed (async) connection, which the cache cannot tell
    /// apart from the node's other connections: it goes when any of them closes.
    Mux,
    /// BROADCAST mode: the invalidation connection itself asked for every key.
    Listener,
}

pub(super) enum State {
    Pending { token: u64 },
    Filled { bytes: usize, seq: u64 },
}

/// The hashes of an entry's Redis keys (no allocation for the usual single key).
pub(super) enum KeyHashes {
    One(u64),
    Many(Box<[u64]>),
}

impl KeyHashes {
    pub(super) fn as_slice(&self) -> &[u64] {
        match self {
            KeyHashes::One(h) => std::slice::from_ref(h),
            KeyHashes::Many(hs) => hs,
        }
    }
}

/// The index's record of one entry or pending read.
pub(super) struct Slot {
    pub(super) state: State,
    pub(super) keys: KeyHashes,
    pub(super) node: NodeId,
    pub(super) via: Via,
}

pub(super) struct Index {
    pub(super) slots: HashMap<u64, Slot, Identity>,
    /// By key hash ([`Index::key_hash`]).
    pub(super) by_key: HashMap<u64, Readers, Identity>,
    /// The seed of key hashes (applications choose keys).
    pub(super) key_seed: u64,
    pub(super) by_conn: HashMap<u64, HashSet<u64, Identity>, Identity>,
    pub(super) nodes: Vec<NodeState>,
    /// Filled entries in fill order, with their fill number: the eviction hand's round.
    pub(super) ring: VecDeque<(u64, u64)>,
    pub(super) next_seq: u64,
    pub(super) next_token: u64,
    pub(super) entries: usize,
    pub(super) bytes: usize,
}

impl Index {
    /// A Redis key's hash, for the key index.
    pub(super) fn key_hash(&self, key: &[u8]) -> u64 {
        crate::core::hash::fold_multiply(
            crate::core::hash::mix_bytes(self.key_seed ^ key.len() as u64, key),
            0x9E37_79B9_7F4A_7C15,
        )
    }
}
