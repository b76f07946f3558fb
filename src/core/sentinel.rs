//! Redis Sentinel, the pure parts: reading the sentinels' answers (`SENTINEL
//! get-master-addr-by-name`, `SENTINEL replicas`, `SENTINEL sentinels`), a node's `ROLE`, and
//! the `+switch-master` announcement.
//!
//! The live side (asking the sentinels in order, checking the master, following failovers) is
//! `route::sentinel`.

use super::cluster::NodeAddress;
use super::error::{Error, Result};
use super::status::Status;
use crate::resp::{Node, ReplyKind};

fn protocol(what: &str) -> Error {
    Error::new(
        Status::Protocol,
        format!("unexpected sentinel reply: {what}"),
    )
}

fn text(node: &Node) -> Option<&str> {
    node.as_str()
}

fn port(node: &Node) -> Option<u16> {
    node.as_integer()
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| text(node).and_then(|t| t.parse().ok()))
        .filter(|&p| p != 0)
}

/// `SENTINEL get-master-addr-by-name`: the master's address, or `None` when this sentinel does
/// not monitor a master of that name (a nil reply).
pub fn parse_master_address(reply: &Node) -> Result<Option<NodeAddress>> {
    if reply.is_nil() {
        return Ok(None);
    }
    match reply.children() {
        [] if reply.kind() == ReplyKind::Array => Ok(None),
        [host, port_node] => {
            let host = text(host).ok_or_else(|| protocol("master host is not text"))?;
            let port = port(port_node).ok_or_else(|| protocol("master port is not a port"))?;
            Ok(Some(NodeAddress {
                host: host.to_owned(),
                port,
            }))
        }
        _ => Err(protocol("get-master-addr-by-name is not [host, port]")),
    }
}

/// What a node says it is (`ROLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
    Sentinel,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Sentinel => "sentinel",
        }
    }
}

/// The first element of a `ROLE` reply.
pub fn parse_role(reply: &Node) -> Result<Role> {
    let first = reply
        .children()
        .first()
        .and_then(text)
        .ok_or_else(|| protocol("ROLE is not an array starting with the role"))?;
    match first {
        "master" | "primary" => Ok(Role::Master),
        "slave" | "replica" => Ok(Role::Replica),
        "sentinel" => Ok(Role::Sentinel),
        other => Err(protocol(&format!("unknown role {other:?}"))),
    }
}

/// One instance a sentinel lists (`SENTINEL replicas` or `SENTINEL sentinels`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub address: NodeAddress,
    /// `flags`: `slave`, `s_down`, `o_down`, `disconnected`, ... comma-separated.
    pub flags: String,
    /// `role-reported` (replicas only): what the instance itself said it was at the sentinel's
    /// last look. A demoted master is listed as a replica at once but reports `master` until
    /// the sentinels have reconfigured it, seconds later.
    pub role_reported: Option<String>,
}

impl Instance {
    fn flagged(&self, flag: &str) -> bool {
        self.flags.split(',').any(|f| f == flag)
    }

    /// Whether the sentinel believes the instance is down (subjectively or objectively).
    pub fn is_down(&self) -> bool {
        self.flagged("s_down") || self.flagged("o_down")
    }

    /// Whether the sentinel believes the instance is up and its link to it is connected (a
    /// sentinel it learnt of moments ago is still `disconnected` until it has linked to it).
    pub fn is_up(&self) -> bool {
        !(self.is_down() || self.flagged("disconnected"))
    }

    /// A replica that may serve reads: up, and saying it is a replica (not a demoted master
    /// that still takes writes).
    pub fn is_usable_replica(&self) -> bool {
        self.is_up() && self.role_reported.as_deref().is_none_or(|r| r == "slave")
    }
}

/// `SENTINEL replicas` / `SENTINEL sentinels`: a list of instances, each a map (RESP3) or a flat
/// key/value array (RESP2). An error reply (an unknown master name) is the caller's `Err` before
/// this is called.
pub fn parse_instances(reply: &Node) -> Result<Vec<Instance>> {
    if reply.kind() != ReplyKind::Array {
        return Err(protocol("the instance list is not an array"));
    }
    let mut instances = Vec::new();
    for entry in reply.children() {
        let field = |name: &str| entry.get(name);
        let host = field("ip")
            .and_then(text)
            .ok_or_else(|| protocol("instance without ip"))?;
        let port = field("port")
            .and_then(port)
            .ok_or_else(|| protocol("instance without port"))?;
        instances.push(Instance {
            address: NodeAddress {
                host: host.to_owned(),
                port,
            },
            flags: field("flags").and_then(text).unwrap_or("").to_owned(),
            role_reported: field("role-reported").and_then(text).map(str::to_owned),
        });
    }
    Ok(instances)
}

/// The channel sentinels announce a master switch on.
pub const SWITCH_MASTER: &[u8] = b"+switch-master";

/// The new address a `+switch-master` message announces for `master_name`
/// (`<name> <old ip> <old port> <new ip> <new port>`); `None` for another master or an
/// unreadable message.
pub fn parse_switch_master(payload: &[u8], master_name: &str) -> Option<NodeAddress> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut words = text.split_ascii_whitespace();
    if words.next()? != master_name {
        return None;
    }
    let mut words = words.skip(2);
    let host = words.next()?;
    let port = words.next()?.parse().ok().filter(|&p| p != 0)?;
    Some(NodeAddress {
        host: host.to_owned(),
        port,
    })
}

/// The channels on which sentinels announce a change of a master's replicas: one found, down,
/// back, reconfigured to replicate, or reporting another role.
pub const REPLICA_EVENTS: [&[u8]; 5] = [
    b"+slave",
    b"+sdown",
    b"-sdown",
    b"+convert-to-slave",
    b"+role-change",
];

/// Whether an instance event (`<type> <name> <ip> <port> @ <master> <ip> <port>`, as on the
/// [`REPLICA_EVENTS`] channels) is about a replica of `master_name`.
pub fn is_replica_event(payload: &[u8], master_name: &str) -> bool {
    let Ok(text) = std::str::from_utf8(payload) else {
        return false;
    };
    let mut words = text.split_ascii_whitespace();
    if words.next() != Some("slave") {
        return false;
    }
    let mut after_at = words.skip_while(|w| *w != "@").skip(1);
    after_at.next() == Some(master_name)
}

/// A Pub/Sub message on a subscribed RESP2 connection: `["message", channel, payload]`.
pub fn parse_message(reply: &Node) -> Option<(&[u8], &[u8])> {
    match reply.children() {
        [kind, channel, payload] if kind.as_bytes() == Some(b"message") => {
            Some((channel.as_bytes()?, payload.as_bytes()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
