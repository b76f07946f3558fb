//! Redis Cluster, the pure parts: which slot a key hashes to, and the slot map read from
//! `CLUSTER SHARDS` (Redis 7+) or `CLUSTER SLOTS` (older servers).

pub mod keys;

use super::error::{Error, Result};
use super::status::Status;
use crate::resp::{Node, ReplyKind};
use crc::{CRC_16_XMODEM, Crc};

/// cbindgen:ignore
pub const SLOTS: usize = 16384;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The slot of a key: CRC16 of the key, or of its hash tag (the part between the first `{` and
/// the next `}`, when that is not empty), modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    CRC16.checksum(hashed) % SLOTS as u16
}

/// A node's address as the cluster announces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddress {
    pub host: String,
    pub port: u16,
}

impl NodeAddress {
    /// Parses `host:port` (`[v6]:port` too), as MOVED and ASK give it.
    pub fn parse(text: &str) -> Option<NodeAddress> {
        let (host, port) = text.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(NodeAddress {
            host: host.to_owned(),
            port: port.parse().ok()?,
        })
    }
}

impl std::fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One shard: a primary, its replicas, and the slot ranges it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub primary: NodeAddress,
    pub replicas: Vec<NodeAddress>,
    /// Inclusive ranges.
    pub slots: Vec<(u16, u16)>,
}

fn protocol(what: &str) -> Error {
    Error::new(
        Status::Protocol,
        format!("unexpected cluster topology reply: {what}"),
    )
}

fn as_int(node: &Node) -> Option<i64> {
    node.as_integer()
        .or_else(|| node.as_str().and_then(|s| s.parse().ok()))
}

fn slot_number(node: &Node) -> Result<u16> {
    as_int(node)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| (n as usize) < SLOTS)
        .ok_or_else(|| protocol("slot number out of range"))
}

/// An empty announced host means "the address you asked": `queried_host` stands in.
fn host_or(announced: Option<&str>, queried_host: &str) -> String {
    match announced {
        Some(h) if !h.is_empty() && h != "?" => h.to_owned(),
        _ => queried_host.to_owned(),
    }
}

/// Reads `CLUSTER SHARDS` (map or flat key/value arrays in RESP2). Nodes that are not online
/// are left out; shards without slots are skipped.
pub fn parse_shards(reply: &Node, queried_host: &str) -> Result<Vec<Shard>> {
    if reply.kind() != ReplyKind::Array {
        return Err(protocol("CLUSTER SHARDS is not an array"));
    }
    let mut shards = Vec::new();
    for shard in reply.children() {
        let slots_node = shard
            .get("slots")
            .ok_or_else(|| protocol("shard without slots"))?;
        let bounds = slots_node.children();
        if bounds.len() % 2 != 0 {
            return Err(protocol("odd number of slot bounds"));
        }
        let mut slots = Vec::new();
        for pair in bounds.chunks_exact(2) {
            slots.push((slot_number(&pair[0])?, slot_number(&pair[1])?));
        }
        let mut primary = None;
        let mut replicas = Vec::new();
        for node in shard.get("nodes").map(Node::children).unwrap_or_default() {
            if node
                .get("health")
                .and_then(Node::as_str)
                .is_some_and(|h| h != "online")
            {
                continue;
            }
            let port = node
                .get("port")
                .or_else(|| node.get("tls-port"))
                .and_then(as_int)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| protocol("node without port"))?;
            let announced = node
                .get("endpoint")
                .and_then(Node::as_str)
                .filter(|e| !e.is_empty() && *e != "?")
                .or_else(|| node.get("ip").and_then(Node::as_str));
            let address = NodeAddress {
                host: host_or(announced, queried_host),
                port,
            };
            match node.get("role").and_then(Node::as_str) {
                Some("master") | Some("primary") => primary = Some(address),
                _ => replicas.push(address),
            }
        }
        // A shard whose primary failed and has no promoted replica yet serves nothing: its
        // slots stay uncovered (commands for them get CLUSTER_DOWN) while the rest is usable.
        let Some(primary) = primary.filter(|_| !slots.is_empty()) else {
            continue;
        };
        shards.push(Shard {
            primary,
            replicas,
            slots,
        });
    }
    Ok(shards)
}

/// Reads `CLUSTER SLOTS`: `[start, end, [host, port, id], [replica...]...]` per range.
pub fn parse_slots(reply: &Node, queried_host: &str) -> Result<Vec<Shard>> {
    if reply.kind() != ReplyKind::Array {
        return Err(protocol("CLUSTER SLOTS is not an array"));
    }
    let mut shards: Vec<Shard> = Vec::new();
    for range in reply.children() {
        let fields = range.children();
        if fields.len() < 3 {
            return Err(protocol("slot range without a primary"));
        }
        let bounds = (slot_number(&fields[0])?, slot_number(&fields[1])?);
        let mut nodes = Vec::new();
        for node in &fields[2..] {
            let parts = node.children();
            let port = parts
                .get(1)
                .and_then(as_int)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| protocol("node without port"))?;
            nodes.push(NodeAddress {
                host: host_or(parts.first().and_then(Node::as_str), queried_host),
                port,
            });
        }
        let primary = nodes.remove(0);
        match shards.iter_mut().find(|s| s.primary == primary) {
            Some(shard) => shard.slots.push(bounds),
            None => shards.push(Shard {
                primary,
                replicas: nodes,
                slots: vec![bounds],
            }),
        }
    }
    Ok(shards)
}

/// Which shard owns each slot.
#[derive(Clone, Debug)]
pub struct SlotMap {
    shards: Vec<Shard>,
    /// Index into `shards` per slot; `NO_SHARD` when unassigned.
    owner: Box<[u16]>,
}

const NO_SHARD: u16 = u16::MAX;

impl SlotMap {
    pub fn new(shards: Vec<Shard>) -> SlotMap {
        let mut owner = vec![NO_SHARD; SLOTS].into_boxed_slice();
        for (i, shard) in shards.iter().enumerate() {
            for &(start, end) in &shard.slots {
                for slot in start..=end.min(SLOTS as u16 - 1) {
                    owner[slot as usize] = i as u16;
                }
            }
        }
        SlotMap { shards, owner }
    }

    pub fn empty() -> SlotMap {
        SlotMap::new(Vec::new())
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard serving `slot`, if any.
    pub fn shard(&self, slot: u16) -> Option<&Shard> {
        let index = *self.owner.get(slot as usize)?;
        self.shards.get(index as usize)
    }

    /// Slots with no owner.
    pub fn uncovered(&self) -> usize {
        self.owner.iter().filter(|&&o| o == NO_SHARD).count()
    }

    /// The map after `MOVED slot address`: the slot now belongs to the shard whose primary is
    /// `address` (a new shard if none is known yet).
    pub fn moved(&self, slot: u16, address: &NodeAddress) -> SlotMap {
        let mut next = self.clone();
        let index = match next.shards.iter().position(|s| &s.primary == address) {
            Some(i) => i,
            None => {
                next.shards.push(Shard {
                    primary: address.clone(),
                    replicas: Vec::new(),
                    slots: Vec::new(),
                });
                next.shards.len() - 1
            }
        };
        if let Some(owner) = next.owner.get_mut(slot as usize) {
            *owner = index as u16;
        }
        next
    }

    /// Whether every slot has the same primary and replicas in both maps: a client-side cache
    /// keeps what it read only while that holds (a failover or a slot move drops it).
    pub fn same_owners(&self, other: &SlotMap) -> bool {
        fn owners(map: &SlotMap, slot: u16) -> Option<(&NodeAddress, Vec<&NodeAddress>)> {
            map.shard(slot).map(|s| {
                let mut replicas: Vec<&NodeAddress> = s.replicas.iter().collect();
                replicas.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
                (&s.primary, replicas)
            })
        }
        (0..SLOTS as u16).all(|slot| owners(self, slot) == owners(other, slot))
    }

    /// Every node address the map knows, primaries first.
    pub fn addresses(&self) -> Vec<NodeAddress> {
        let mut all: Vec<NodeAddress> = self.shards.iter().map(|s| s.primary.clone()).collect();
        for shard in &self.shards {
            all.extend(shard.replicas.iter().cloned());
        }
        all
    }
}

#[cfg(test)]
mod tests;
