//! The entries, and everything that decides when they go.
//!
//! Two halves with two kinds of lock:
//!
//! - **The shards** answer hits: 64 maps from a command's hash to its entry (the command as
//!   sent, a private copy of its reply, its expiry), each behind its own `RwLock`. A hit takes
//!   one shard's read lock and writes nothing shared (an entry's "recently used" bit is only
//!   written when it is clear), so hits on different threads do not wait for each other.
//! - **The index** (one `Mutex`) holds the rest: per entry its Redis keys (as hashes), its
//!   node and the connection its read came through; per Redis key (hash) the entries that read
//!   it (a multi-key read depends on every key; two keys whose hashes collide only make an
//!   invalidation drop more than it had to); pending reads; the nodes' tracking state; the eviction ring;
//!   the totals. Misses, fills, invalidations, writes and faults take it; they are rare next to
//!   hits and each comes with a network round trip or an invalidation message anyway. Its lock
//!   is always taken before a shard's.
//!
//! A read that misses takes a **token** before its request is sent: a pending slot registered
//! under the read's keys. Anything that would drop the entry (an invalidation of one of its
//! keys, a write by this client, the loss of the tracking state) drops the pending slot too, so
//! the reply that comes back is handed to the caller but not kept (guarantee 3). A token that
//! is neither filled nor cancelled by then is cancelled when dropped.
//!
//! Bounds: at most `max_entries` entries and `max_bytes` bytes (the command, the reply, the
//! keys and every structure's share, with the allocator's rounding), evicted by CLOCK (second
//! chance: an entry used since the hand last passed is spared once), an approximation of LRU;
//! entries past their TTL are never served, and are dropped when the hand or the sweep meets
//! them.

use super::read_mostly::ReadMostly;
use crate::core::cache::same_command;
use crate::resp::{Args, Reply};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A node (server) of the client, as the cache numbers them.
pub(crate) type NodeId = usize;

/// Maps of the hit side (a power of two, indexed by a hash's top bits): growing one rehashes
/// a 64th of the entries, which keeps a writer's pause for readers short.
const SHARDS: usize = 64;

/// Replies with at most this many bytes of text are copied for each hit (an allocation, but no
/// write to memory another core's hits write); larger ones share the entry's bytes (one
/// reference count).
const COPY_UP_TO: usize = 256;

type Maps = Box<[HashMap<u64, Entry, Identity>]>;

/// What a hit reads.
struct Entry {
    /// The node it was read from: its lease must be fresh for the entry to be served.
    node: u32,
    command: Box<[u8]>,
    reply: Reply,
    /// When it stops being served ([`now_ns`]); 0: never.
    expires: u64,
    /// Used since the eviction hand last passed.
    referenced: AtomicBool,
    copy: bool,
}

impl Entry {
    /// The reply a hit hands out.
    fn serve(&self) -> Reply {
        match self.copy {
            true => self.reply.detached(),
            false => self.reply.shared(),
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expires != 0 && now >= self.expires
    }
}

/// Nanoseconds on the monotonic clock (the one `Instant` reads) as a plain number, so that a
/// hit compares integers instead of doing `Instant`'s checked arithmetic. Read through the
/// vDSO: no system call.
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Maps keyed by a hash that is already well mixed.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`IdentityHasher`]s. (Spelled out where used rather than behind a type alias, which
/// cbindgen, reading the whole crate for the header, cannot follow.)
type Identity = BuildHasherDefault<IdentityHasher>;

/// The entries (or pending reads) that read one Redis key.
enum Readers {
    One(u64),
    /// A set: a hash read by thousands of `HGET h field` entries must not make each eviction
    /// a walk over all of them.
    Many(HashSet<u64, Identity>),
}

impl Readers {
    fn add(&mut self, hash: u64) {
        match self {
            Readers::One(h) if *h == hash => {}
            Readers::One(h) => *self = Readers::Many([*h, hash].into_iter().collect()),
            Readers::Many(set) => {
                set.insert(hash);
            }
        }
    }

    /// Removes `hash`; true when none is left.
    fn remove(&mut self, hash: u64) -> bool {
        match self {
            Readers::One(h) => *h == hash,
            Readers::Many(set) => {
                set.remove(&hash);
                set.is_empty()
            }
        }
    }

    fn hashes(&self) -> Vec<u64> {
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

enum State {
    Pending { token: u64 },
    Filled { bytes: usize, seq: u64 },
}

/// The hashes of an entry's Redis keys (no allocation for the usual single key).
enum KeyHashes {
    One(u64),
    Many(Box<[u64]>),
}

impl KeyHashes {
    fn as_slice(&self) -> &[u64] {
        match self {
            KeyHashes::One(h) => std::slice::from_ref(h),
            KeyHashes::Many(hs) => hs,
        }
    }
}

/// The index's record of one entry or pending read.
struct Slot {
    state: State,
    keys: KeyHashes,
    node: NodeId,
    via: Via,
}

/// The tracking state of one node.
pub(crate) struct NodeState {
    pub address: Arc<str>,
    /// The invalidation connection, while it is up: its server-side client ID and its push
    /// router id.
    pub live: Option<Live>,
    /// Data connections tracked (`CLIENT TRACKING ON REDIRECT`) to the live invalidation
    /// connection: the others are set up before their next cached read.
    tracked: HashSet<u64, Identity>,
    /// Slots read through the node's multiplexed connection.
    via_mux: HashSet<u64, Identity>,
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

struct Index {
    slots: HashMap<u64, Slot, Identity>,
    /// By key hash ([`Index::key_hash`]).
    by_key: HashMap<u64, Readers, Identity>,
    /// The seed of key hashes (applications choose keys).
    key_seed: u64,
    by_conn: HashMap<u64, HashSet<u64, Identity>, Identity>,
    nodes: Vec<NodeState>,
    /// Filled entries in fill order, with their fill number: the eviction hand's round.
    ring: VecDeque<(u64, u64)>,
    next_seq: u64,
    next_token: u64,
    entries: usize,
    bytes: usize,
}

/// The map of the hit side that holds `hash`.
#[inline]
fn shard(hash: u64) -> usize {
    (hash >> 58) as usize & (SHARDS - 1)
}

impl Index {
    /// A Redis key's hash, for the key index.
    fn key_hash(&self, key: &[u8]) -> u64 {
        crate::core::hash::fold_multiply(
            crate::core::hash::mix_bytes(self.key_seed ^ key.len() as u64, key),
            0x9E37_79B9_7F4A_7C15,
        )
    }
}

/// The bounds of a store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_entries: usize,
    /// `usize::MAX`: none.
    pub max_bytes: usize,
    pub ttl: Option<Duration>,
}

/// How fresh a node's lease must be for its entries to be served (see [`Leases`]).
pub(crate) const LEASE: Duration = Duration::from_micros(900);

/// Nodes whose entries can be served (a larger node number never is).
const MAX_NODES: usize = 1024;

/// Per node, the moment its invalidation connection last sent a PING whose answer has been
/// read, with everything before it. The server answers a connection in order, and queues an
/// invalidation on it while it runs the write, before it acknowledges the write; so every
/// write acknowledged before that PING was sent has had its invalidation read and applied.
///
/// A hit is served only while its node's lease is under [`LEASE`] old (under 1 ms: a write
/// acknowledged 1 ms before a read began is then always covered, guarantee 2), whatever the
/// scheduling of the server or of brisk's own threads: when the invalidation thread or the
/// server lags (an overloaded machine), hits turn into reads from the server until the leases
/// are fresh again, instead of serving what may have changed. While hits ask for them, the
/// invalidation thread keeps a PING in flight on each node they read from, every ~250 µs; with
/// no hits it only sends its health PING.
pub(crate) struct Leases {
    /// [`now_ns`] of the PING (0: never).
    confirmed: Box<[AtomicU64]>,
    /// Set by hits: someone wants this node's lease kept fresh.
    demand: Box<[AtomicBool]>,
    /// [`now_ns`] when this client last had the reply of a write with keys only the server
    /// can name (a script's undeclared keys, SORT's STORE key): only its invalidations name
    /// them, so a lease counts only when its PING was sent after that (the server answers a
    /// connection in order, and queued those invalidations before the write's reply).
    barrier: AtomicU64,
}

impl Leases {
    fn new() -> Leases {
        Leases {
            confirmed: (0..MAX_NODES).map(|_| AtomicU64::new(0)).collect(),
            demand: (0..MAX_NODES).map(|_| AtomicBool::new(false)).collect(),
            barrier: AtomicU64::new(0),
        }
    }

    #[inline]
    fn fresh(&self, node: u32, now: u64) -> bool {
        let Some(slot) = self.confirmed.get(node as usize) else {
            return false;
        };
        let confirmed = slot.load(Acquire);
        confirmed != 0
            && now.saturating_sub(confirmed) <= LEASE.as_nanos() as u64
            && confirmed > self.barrier.load(Acquire)
    }

    /// Such a write's reply has been read: no lease renewed by a PING sent before now counts.
    pub fn after_unnamed_writes(&self) {
        self.barrier.fetch_max(now_ns(), Release);
    }

    #[inline]
    fn want(&self, node: u32) {
        if let Some(demand) = self.demand.get(node as usize) {
            if !demand.load(Relaxed) {
                demand.store(true, Relaxed);
            }
        }
    }

    /// Everything node `node`'s server sent before answering a PING sent at `sent` ([`now_ns`])
    /// has been applied.
    pub fn renew(&self, node: NodeId, sent: u64) {
        if let Some(slot) = self.confirmed.get(node) {
            slot.fetch_max(sent, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether hits asked for node `node`'s lease since the last call.
    pub fn take_demand(&self, node: NodeId) -> bool {
        self.demand
            .get(node)
            .is_some_and(|d| d.swap(false, Relaxed))
    }
}

/// What a lookup found.
pub(crate) enum Lookup {
    Hit(Reply),
    /// An entry is there, but its node's lease is not fresh: read from the server.
    Unconfirmed,
    Miss,
}

pub(crate) struct Store {
    pub leases: Leases,
    maps: ReadMostly<Maps>,
    index: Mutex<Index>,
    limits: Limits,
    /// Mirrors of the index's totals, for the gauges.
    entries: AtomicU64,
    bytes: AtomicU64,
    /// Entries dropped for room (LRU) or age (TTL).
    evictions: AtomicU64,
}

/// A read in flight whose reply may be kept: see the module documentation.
pub(crate) struct Token {
    store: Arc<Store>,
    hash: u64,
    id: u64,
    node: NodeId,
    via: Via,
    epoch: u64,
    /// Before the read, the data connection must be tracked to this invalidation connection
    /// (its client ID): the caller sends `CLIENT TRACKING ON REDIRECT id` ahead of the read.
    pub setup: Option<u64>,
    /// For the multiplexed path: the invalidation connection's client ID, to re-assert tracking
    /// ahead of the read (the cache cannot know what the shared connection has set).
    pub redirect: u64,
    done: bool,
}

impl Drop for Token {
    fn drop(&mut self) {
        if !self.done {
            self.store.cancel(self.hash, self.id);
        }
    }
}

/// The allocator's share of one allocation of `n` bytes: glibc's chunks carry 8 bytes of
/// header and are rounded up to 16, at least 32.
fn allocated(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    ((n + 8 + 15) & !15).max(32)
}

/// A hash table's (or the ring's) cost per element: the element and its control byte, and the
/// spare room of a table that doubles when 7/8 full, counted at its emptiest (half full) so
/// that the byte bound holds whenever tables grew.
fn in_map<T>() -> usize {
    (std::mem::size_of::<T>() + 1) * 2
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        Store {
            leases: Leases::new(),
            maps: ReadMostly::new((0..SHARDS).map(|_| HashMap::default()).collect()),
            index: Mutex::new(Index {
                slots: HashMap::default(),
                by_key: HashMap::default(),
                key_seed: fastrand::u64(..),
                by_conn: HashMap::default(),
                nodes: Vec::new(),
                ring: VecDeque::new(),
                next_seq: 0,
                next_token: 1,
                entries: 0,
                bytes: 0,
            }),
            limits,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the entry of `hash`, if there is one, among other readers.
    #[inline]
    fn with_entry<R>(&self, hash: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        self.maps.read(|maps| f(maps[shard(hash)].get(&hash)))
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // Every change to the index is complete before anything that can panic.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached reply of `args` (hashed to `hash`), if there is one that may be served: not
    /// expired, its node's lease fresh. No lock (see `read_mostly`), no write to memory that
    /// hits on other cores write, no system call (the clock is read through the vDSO).
    ///
    /// The lease is checked while reading: an invalidation is applied (writing) before the
    /// lease that covers it is renewed, so an entry seen here under a fresh lease was not the
    /// subject of any invalidation that lease covers.
    #[inline]
    pub fn hit(&self, hash: u64, args: &Args<'_>) -> Lookup {
        self.with_entry(hash, |entry| {
            let Some(entry) = entry else {
                return Lookup::Miss;
            };
            if !same_command(&entry.command, args) {
                return Lookup::Miss;
            }
            let now = now_ns();
            if entry.expired(now) {
                return Lookup::Miss;
            }
            self.leases.want(entry.node);
            if !self.leases.fresh(entry.node, now) {
                return Lookup::Unconfirmed;
            }
            if !entry.referenced.load(Relaxed) {
                entry.referenced.store(true, Relaxed);
            }
            Lookup::Hit(entry.serve())
        })
    }

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

    /// Takes a token for a read of `keys` (hashed to `hash`) through `via` on the node at
    /// `address`, before the request is sent; `None` when the reply must not be kept: the
    /// node's invalidation connection is not up, the read is already in flight elsewhere, or
    /// an entry appeared meanwhile.
    pub fn begin(
        self: &Arc<Self>,
        address: &str,
        hash: u64,
        args: &Args<'_>,
        keys: &[usize],
        via: Via,
    ) -> Option<Token> {
        let mut index = self.lock();
        let node = index.nodes.iter().position(|n| &*n.address == address)?;
        let state = &index.nodes[node];
        let live = state.live?;
        let setup = match via {
            Via::Conn(conn) if !state.tracked.contains(&conn) => Some(live.client_id),
            _ => None,
        };
        let epoch = state.epoch;
        match index.slots.get(&hash).map(|s| &s.state) {
            None => {}
            Some(State::Pending { .. }) => return None,
            Some(State::Filled { .. }) => {
                // Past its TTL (else it would have been a hit, or another reader filled it
                // since: then this reply is not kept, the entry serves the next read).
                let expired = self.with_entry(hash, |e| e.is_none_or(|e| e.expired(now_ns())));
                if !expired {
                    return None;
                }
                self.remove_slot(&mut index, hash);
                self.evictions.fetch_add(1, Relaxed);
                self.count_removed(&index);
            }
        }
        let id = index.next_token;
        index.next_token += 1;
        let keys = match keys {
            [one] => KeyHashes::One(index.key_hash(args.get(*one))),
            many => KeyHashes::Many(many.iter().map(|&i| index.key_hash(args.get(i))).collect()),
        };
        for &key in keys.as_slice() {
            match index.by_key.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut readers) => {
                    readers.get_mut().add(hash)
                }
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert(Readers::One(hash));
                }
            }
        }
        match via {
            Via::Conn(conn) => {
                index.by_conn.entry(conn).or_default().insert(hash);
            }
            Via::Mux => {
                index.nodes[node].via_mux.insert(hash);
            }
            Via::Listener => {}
        }
        index.slots.insert(
            hash,
            Slot {
                state: State::Pending { token: id },
                keys,
                node,
                via,
            },
        );
        Some(Token {
            store: self.clone(),
            hash,
            id,
            node,
            via,
            epoch,
            setup,
            redirect: live.client_id,
            done: false,
        })
    }

    /// Keeps `reply` for the token's command `args` if nothing dropped the token since it was
    /// taken. `tracked`: the data connection was set up to track ahead of the read, and the
    /// server said OK. Returns whether that connection counts as tracked from now on.
    pub fn fill(&self, mut token: Token, args: &Args<'_>, reply: &Reply, tracked: bool) -> bool {
        token.done = true;
        let mut index = self.lock();
        let valid = matches!(
            index.slots.get(&token.hash).map(|s| &s.state),
            Some(State::Pending { token: id }) if *id == token.id
        ) && index.nodes[token.node].epoch == token.epoch;
        if !valid {
            return false;
        }
        let newly_tracked = match (tracked, token.via) {
            (true, Via::Conn(conn)) => index.nodes[token.node].tracked.insert(conn),
            _ => false,
        };
        let reply = reply.detached();
        let command = crate::core::cache::command_bytes(args);
        let keys = &index.slots[&token.hash].keys;
        // Each key's element in the key index; more than one key also takes a slice.
        let keys_size = keys.as_slice().len() * in_map::<(u64, Readers)>()
            + match keys {
                KeyHashes::One(_) => 0,
                KeyHashes::Many(hs) => allocated(std::mem::size_of_val(&**hs)),
            };
        let bytes = in_map::<(u64, Entry)>()
            + allocated(command.len())
            + allocated(reply.text_size())
            + allocated(reply.heap_size() - reply.text_size())
            + in_map::<(u64, Slot)>()
            + keys_size
            + in_map::<(u64, u64)>()
            + match token.via {
                Via::Conn(_) | Via::Mux => in_map::<u64>(),
                Via::Listener => 0,
            };
        if bytes > self.limits.max_bytes {
            // Never fits: the read is answered, not kept.
            self.remove_slot(&mut index, token.hash);
            return newly_tracked;
        }
        let seq = index.next_seq;
        index.next_seq += 1;
        let entry = Entry {
            node: u32::try_from(token.node).unwrap_or(u32::MAX),
            copy: reply.text_size() <= COPY_UP_TO,
            command,
            reply,
            expires: self
                .limits
                .ttl
                .map_or(0, |ttl| now_ns() + ttl.as_nanos() as u64),
            referenced: AtomicBool::new(false),
        };
        // Room first (the victims leave the index), then one write puts the entry in and
        // takes the victims out.
        let victims = self.make_room(&mut index, 1, bytes);
        if let Some(slot) = index.slots.get_mut(&token.hash) {
            slot.state = State::Filled { bytes, seq };
        }
        index.ring.push_back((token.hash, seq));
        index.entries += 1;
        index.bytes += bytes;
        self.remove_entries(&victims, Some((token.hash, entry)));
        self.count_removed(&index);
        newly_tracked
    }

    /// A token neither filled nor dropped by anything else: its pending slot goes.
    fn cancel(&self, hash: u64, id: u64) {
        let mut index = self.lock();
        if matches!(
            index.slots.get(&hash).map(|s| &s.state),
            Some(State::Pending { token }) if *token == id
        ) {
            self.remove_slot(&mut index, hash);
        }
    }

    /// Removes one slot (entry or pending read) and everything that points to it. Returns the
    /// bytes of a filled entry (`None` for a pending read or none at all).
    fn remove_slot(&self, index: &mut Index, hash: u64) -> Option<usize> {
        let bytes = Self::unindex(index, hash)?;
        // Dropped after the write: readers wait for as little as possible.
        let entry = self.maps.write(|maps| maps[shard(hash)].remove(&hash));
        drop(entry);
        Some(bytes)
    }

    /// The index's part of [`Store::remove_slot`]: everything but the entry itself, which the
    /// caller removes from the maps (several at once, in one write). Returns the bytes of a
    /// filled entry.
    fn unindex(index: &mut Index, hash: u64) -> Option<usize> {
        let slot = index.slots.remove(&hash)?;
        for key in slot.keys.as_slice() {
            if let Some(readers) = index.by_key.get_mut(key) {
                if readers.remove(hash) {
                    index.by_key.remove(key);
                }
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
    fn remove_all(&self, index: &mut Index, hashes: impl IntoIterator<Item = u64>) -> usize {
        let filled: Vec<u64> = hashes
            .into_iter()
            .filter(|&h| Self::unindex(index, h).is_some())
            .collect();
        self.remove_entries(&filled, None);
        filled.len()
    }

    /// Removes the entries of `hashes` from the maps, and inserts `add` if given, in one write;
    /// the removed entries are dropped after it.
    fn remove_entries(&self, hashes: &[u64], add: Option<(u64, Entry)>) {
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

    fn count_removed(&self, index: &Index) {
        self.entries.store(index.entries as u64, Relaxed);
        self.bytes.store(index.bytes as u64, Relaxed);
    }

    /// Chooses what to evict so that `entries` more entries and `bytes` more bytes fit: the
    /// CLOCK hand goes round the ring; an entry used since the last round is spared once, an
    /// expired one always goes. The victims leave the index here; their entries are for the
    /// caller to remove from the maps.
    fn make_room(&self, index: &mut Index, entries: usize, bytes: usize) -> Vec<u64> {
        let mut victims = Vec::new();
        // Two rounds at most: the first clears every "used" bit it passes.
        let mut budget = 2 * index.ring.len() + 1;
        while (index.entries + entries > self.limits.max_entries
            || index.bytes + bytes > self.limits.max_bytes)
            && budget > 0
        {
            budget -= 1;
            let Some((hash, seq)) = index.ring.pop_front() else {
                break;
            };
            if !Self::is_current(index, hash, seq) {
                continue;
            }
            let spare = self.with_entry(hash, |e| {
                e.is_some_and(|e| !e.expired(now_ns()) && e.referenced.swap(false, Relaxed))
            });
            if spare {
                index.ring.push_back((hash, seq));
            } else if Self::unindex(index, hash).is_some() {
                self.evictions.fetch_add(1, Relaxed);
                victims.push(hash);
            }
        }
        self.compact_ring(index);
        victims
    }

    fn is_current(index: &Index, hash: u64, seq: u64) -> bool {
        matches!(
            index.slots.get(&hash).map(|s| &s.state),
            Some(State::Filled { seq: s, .. }) if *s == seq
        )
    }

    /// Drops ring places whose entries are gone once they outnumber the live ones.
    fn compact_ring(&self, index: &mut Index) {
        if index.ring.len() > 2 * index.entries + 64 {
            let ring = std::mem::take(&mut index.ring);
            index.ring = ring
                .into_iter()
                .filter(|&(h, s)| Self::is_current(index, h, s))
                .collect();
        }
    }

    /// Drops up to `budget` expired entries, continuing round the ring from the last call.
    pub fn sweep(&self, budget: usize) -> usize {
        let mut index = self.lock();
        let now = now_ns();
        let mut expired = 0;
        for _ in 0..budget.min(index.ring.len()) {
            let Some((hash, seq)) = index.ring.pop_front() else {
                break;
            };
            if !Self::is_current(&index, hash, seq) {
                continue;
            }
            let gone = self.with_entry(hash, |e| e.is_none_or(|e| e.expired(now)));
            if gone {
                if self.remove_slot(&mut index, hash).is_some() {
                    expired += 1;
                }
            } else {
                index.ring.push_back((hash, seq));
            }
        }
        self.compact_ring(&mut index);
        self.count_removed(&index);
        self.evictions.fetch_add(expired as u64, Relaxed);
        expired
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
    fn flush_node_locked(&self, index: &mut Index, node: NodeId) -> usize {
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

    pub fn entries(&self) -> u64 {
        self.entries.load(Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }

    /// Consistency of the two halves and the totals (tests).
    #[cfg(test)]
    fn check(&self) {
        let index = self.lock();
        let filled = index
            .slots
            .values()
            .filter(|s| matches!(s.state, State::Filled { .. }))
            .count();
        let in_shards: usize = self.maps.read(|maps| maps.iter().map(HashMap::len).sum());
        assert_eq!(filled, index.entries);
        assert_eq!(in_shards, index.entries);
        let bytes: usize = index
            .slots
            .values()
            .map(|s| match s.state {
                State::Filled { bytes, .. } => bytes,
                State::Pending { .. } => 0,
            })
            .sum();
        assert_eq!(bytes, index.bytes);
        for (hash, slot) in &index.slots {
            for key in slot.keys.as_slice() {
                assert!(
                    index
                        .by_key
                        .get(key)
                        .is_some_and(|r| r.hashes().contains(hash)),
                    "key index lost an entry"
                );
            }
        }
        for readers in index.by_key.values() {
            for hash in readers.hashes() {
                assert!(index.slots.contains_key(&hash), "key index points nowhere");
            }
        }
    }
}

impl Token {
    pub fn node(&self) -> NodeId {
        self.node
    }
}

#[cfg(test)]
mod tests;
