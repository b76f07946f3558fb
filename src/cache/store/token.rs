//! Pending reads. A read that misses takes a [`Token`] before its request is sent: a pending
//! slot registered under the read's keys. Anything that would drop the entry (an invalidation
//! of one of its keys, a write by this client, the loss of the tracking state) drops the
//! pending slot too, so the reply that comes back is handed to the caller but not kept
//! (guarantee 3). A token that is neither filled nor cancelled by then is cancelled when
//! dropped. Filling one sizes the entry (for the byte bound) and makes room for it.

use super::entry::{COPY_UP_TO, Entry, now_ns};
use super::index::{KeyHashes, Readers, Slot, State, Via};
use super::{NodeId, Store};
use crate::resp::{Args, Reply};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

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
}

impl Token {
    pub fn node(&self) -> NodeId {
        self.node
    }
}
