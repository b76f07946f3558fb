//! Pub/Sub on a subscriber's connection, without the connection: what each frame read on it is
//! (a message, a confirmation, the answer to the health PING, an error reply), which request a
//! confirmation answers, and the commands that (re)establish a set of subscriptions.
//!
//! A subscriber's connection carries two kinds of traffic at once: messages, and the answers to
//! the (un)subscribe commands and PINGs the subscriber writes. Confirmations are matched to the
//! request waiting for them by kind and channel ([`InFlight`]), never by position: the server
//! also sends confirmations nobody asked for (a `sunsubscribe` for every shard channel of a slot
//! that moved away), and taking one of those for the answer to the next command is how a
//! subscriber desynchronises. An error reply answers a whole command, so it goes to the oldest
//! request still waiting (the server answers commands in order). RESP3 (push frames) and RESP2
//! (arrays) read the same.

use super::cluster::key_slot;
use super::error::Error;
use crate::resp::{Node, ReplyKind};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a subscription is to. The numbers are the C API's `brisk_subscription` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A channel (`SUBSCRIBE`, `PUBLISH`).
    Channel = 0,
    /// A glob-style pattern of channels (`PSUBSCRIBE`); keyspace notifications arrive this way.
    Pattern = 1,
    /// A shard channel (`SSUBSCRIBE`, `SPUBLISH`): lives on the node that owns its slot.
    Shard = 2,
}

impl Kind {
    pub fn from_u32(n: u32) -> Option<Kind> {
        Some(match n {
            0 => Kind::Channel,
            1 => Kind::Pattern,
            2 => Kind::Shard,
            _ => return None,
        })
    }

    /// The command that subscribes (or unsubscribes) names of this kind.
    pub fn command(self, action: Action) -> &'static [u8] {
        match (action, self) {
            (Action::Subscribe, Kind::Channel) => b"SUBSCRIBE",
            (Action::Subscribe, Kind::Pattern) => b"PSUBSCRIBE",
            (Action::Subscribe, Kind::Shard) => b"SSUBSCRIBE",
            (Action::Unsubscribe, Kind::Channel) => b"UNSUBSCRIBE",
            (Action::Unsubscribe, Kind::Pattern) => b"PUNSUBSCRIBE",
            (Action::Unsubscribe, Kind::Shard) => b"SUNSUBSCRIBE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Subscribe,
    Unsubscribe,
}

/// One frame read on a subscriber's connection, classified.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Message {
        kind: Kind,
        /// The pattern that matched (pattern messages only).
        pattern: Option<&'a [u8]>,
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// `subscribe ch n`, `sunsubscribe ch n`, ...: the server (un)subscribed `channel` (none for
    /// an `unsubscribe` that found nothing to do).
    Confirmation {
        action: Action,
        kind: Kind,
        channel: Option<&'a [u8]>,
    },
    /// The answer to PING (`+PONG`, or `pong` in RESP2's subscribed mode).
    Pong,
    /// An error reply: the server refused a command.
    Error(&'a [u8]),
    /// Anything else (a push of another kind): answers nothing a subscriber sent.
    Other,
}

/// Where a frame at `index` holds text.
fn text(children: &[Node], index: usize) -> Option<&[u8]> {
    children.get(index).and_then(Node::as_bytes)
}

/// What `frame` is. Messages come first: they are nearly all of the traffic.
pub fn classify(frame: &Node) -> Frame<'_> {
    match frame.kind() {
        ReplyKind::Push | ReplyKind::Array => {}
        ReplyKind::Error => return Frame::Error(frame.as_bytes().unwrap_or_default()),
        ReplyKind::Status | ReplyKind::String
            if frame
                .as_bytes()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"PONG")) =>
        {
            return Frame::Pong;
        }
        _ => return Frame::Other,
    }
    let parts = frame.children();
    let Some(name) = text(parts, 0) else {
        return Frame::Other;
    };
    let message = |kind, pattern, at: usize| match (text(parts, at), text(parts, at + 1)) {
        (Some(channel), Some(payload)) if parts.len() == at + 2 => Frame::Message {
            kind,
            pattern,
            channel,
            payload,
        },
        _ => Frame::Other,
    };
    match name {
        b"message" => message(Kind::Channel, None, 1),
        b"smessage" => message(Kind::Shard, None, 1),
        b"pmessage" => match text(parts, 1) {
            Some(pattern) => message(Kind::Pattern, Some(pattern), 2),
            None => Frame::Other,
        },
        b"pong" => Frame::Pong,
        _ => confirmation(name, parts),
    }
}

fn confirmation<'a>(name: &[u8], parts: &'a [Node]) -> Frame<'a> {
    let (action, kind) = match name {
        b"subscribe" => (Action::Subscribe, Kind::Channel),
        b"psubscribe" => (Action::Subscribe, Kind::Pattern),
        b"ssubscribe" => (Action::Subscribe, Kind::Shard),
        b"unsubscribe" => (Action::Unsubscribe, Kind::Channel),
        b"punsubscribe" => (Action::Unsubscribe, Kind::Pattern),
        b"sunsubscribe" => (Action::Unsubscribe, Kind::Shard),
        _ => return Frame::Other,
    };
    if parts.len() != 3 {
        return Frame::Other;
    }
    Frame::Confirmation {
        action,
        kind,
        channel: text(parts, 1),
    }
}

/// What a frame that is not a message answers, as far as the requests in flight go.
#[derive(Debug)]
pub enum Answer<T> {
    /// Every confirmation of request `T` arrived.
    Done(T),
    /// The server refused request `T` (the whole command).
    Refused(T, Error),
    /// The health PING was answered.
    Pong,
    /// A confirmation no request waits for: the server acted on its own (a `sunsubscribe` for
    /// each shard channel of a slot that moved to another node, say).
    Unsolicited {
        action: Action,
        kind: Kind,
        channel: Vec<u8>,
    },
    /// Answers nothing sent (an `unsubscribe` of nothing, a push of another kind).
    Ignored,
}

enum Request<T> {
    Change {
        token: T,
        action: Action,
        kind: Kind,
        /// Names whose confirmation has not arrived yet.
        waiting: Vec<Vec<u8>>,
    },
    Ping,
}

/// The requests written on one subscriber connection and not yet answered in full, oldest
/// first. `T` identifies a request to whoever sent it.
pub struct InFlight<T> {
    requests: VecDeque<Request<T>>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            requests: VecDeque::new(),
        }
    }
}

impl<T> InFlight<T> {
    /// A `(P|S)(UN)SUBSCRIBE names...` was written.
    pub fn sent(&mut self, token: T, action: Action, kind: Kind, names: Vec<Vec<u8>>) {
        debug_assert!(!names.is_empty(), "a command names what it changes");
        self.requests.push_back(Request::Change {
            token,
            action,
            kind,
            waiting: names,
        });
    }

    /// A health `PING` was written.
    pub fn sent_ping(&mut self) {
        self.requests.push_back(Request::Ping);
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Whether a health PING waits for its answer.
    pub fn ping_pending(&self) -> bool {
        self.requests.iter().any(|r| matches!(r, Request::Ping))
    }

    /// What a frame other than a message answers.
    pub fn answer(&mut self, frame: &Frame<'_>) -> Answer<T> {
        match *frame {
            Frame::Confirmation {
                action,
                kind,
                channel: Some(channel),
            } => self.confirmed(action, kind, channel),
            Frame::Confirmation { channel: None, .. } | Frame::Other | Frame::Message { .. } => {
                Answer::Ignored
            }
            Frame::Pong => {
                match self
                    .requests
                    .iter()
                    .position(|r| matches!(r, Request::Ping))
                {
                    Some(i) => {
                        self.requests.remove(i);
                        Answer::Pong
                    }
                    None => Answer::Ignored,
                }
            }
            Frame::Error(text) => match self.requests.pop_front() {
                Some(Request::Change { token, .. }) => {
                    Answer::Refused(token, Error::from_reply(text))
                }
                // A refused PING (an ACL without it) still shows the connection answers.
                Some(Request::Ping) => Answer::Pong,
                None => Answer::Ignored,
            },
        }
    }

    fn confirmed(&mut self, action: Action, kind: Kind, channel: &[u8]) -> Answer<T> {
        let found = self
            .requests
            .iter_mut()
            .enumerate()
            .find_map(|(i, r)| match r {
                Request::Change {
                    action: a,
                    kind: k,
                    waiting,
                    ..
                } if *a == action && *k == kind => waiting
                    .iter()
                    .position(|name| name.as_slice() == channel)
                    .map(|at| (i, waiting, at)),
                _ => None,
            });
        let Some((i, waiting, at)) = found else {
            return Answer::Unsolicited {
                action,
                kind,
                channel: channel.to_vec(),
            };
        };
        waiting.swap_remove(at);
        if !waiting.is_empty() {
            return Answer::Ignored;
        }
        match self.requests.remove(i) {
            Some(Request::Change { token, .. }) => Answer::Done(token),
            _ => unreachable!("request {i} was just found to be a change"),
        }
    }

    /// The connection is gone: the tokens of every request still waiting, oldest first.
    pub fn abandon(&mut self) -> Vec<T> {
        self.requests
            .drain(..)
            .filter_map(|r| match r {
                Request::Change { token, .. } => Some(token),
                Request::Ping => None,
            })
            .collect()
    }
}

/// Where a subscription lives. Shard channels of a Redis Cluster live on the node that owns their
/// slot, so each slot's shard channels are a group of their own; every other subscription (and
/// every subscription on a deployment without slots) is in the home group, on any one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Home,
    Slot(u16),
}

impl Group {
    /// The group of a subscription; `by_slot`: the deployment places shard channels by slot.
    pub fn of(kind: Kind, name: &[u8], by_slot: bool) -> Group {
        match kind {
            Kind::Shard if by_slot => Group::Slot(key_slot(name)),
            _ => Group::Home,
        }
    }

    /// The slot whose owner serves this group; `None`: any node.
    pub fn slot(self) -> Option<u16> {
        match self {
            Group::Home => None,
            Group::Slot(slot) => Some(slot),
        }
    }
}

/// Most names in one (un)subscribe command written by brisk.
pub(crate) const MAX_NAMES_PER_COMMAND: usize = 1000;

/// The commands that apply `action` to `names` of `kind`: shard channels grouped by slot (one
/// `SSUBSCRIBE` may not span slots on a cluster), at most [`MAX_NAMES_PER_COMMAND`] names each,
/// in the order given otherwise.
pub fn commands<'a>(
    action: Action,
    kind: Kind,
    names: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Vec<Vec<u8>>> {
    let mut by_slot: BTreeMap<Option<u16>, Vec<&[u8]>> = BTreeMap::new();
    for name in names {
        let slot = (kind == Kind::Shard).then(|| key_slot(name));
        by_slot.entry(slot).or_default().push(name);
    }
    let mut commands = Vec::new();
    for names in by_slot.values() {
        for chunk in names.chunks(MAX_NAMES_PER_COMMAND) {
            let mut command = Vec::with_capacity(chunk.len() + 1);
            command.push(kind.command(action).to_vec());
            command.extend(chunk.iter().map(|n| n.to_vec()));
            commands.push(command);
        }
    }
    commands
}

/// The subscriptions of one group, by kind, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    names: BTreeSet<(Kind, Vec<u8>)>,
}

impl Members {
    /// Adds a subscription; false when it was there already.
    pub fn insert(&mut self, kind: Kind, name: &[u8]) -> bool {
        self.names.insert((kind, name.to_vec()))
    }

    /// Removes a subscription; false when it was not there.
    pub fn remove(&mut self, kind: Kind, name: &[u8]) -> bool {
        self.names.remove(&(kind, name.to_vec()))
    }

    pub fn contains(&self, kind: Kind, name: &[u8]) -> bool {
        self.names.contains(&(kind, name.to_vec()))
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The commands that subscribe every member (after a reconnect, or at a slot's new owner).
    pub fn subscribe_commands(&self) -> Vec<(Kind, Vec<Vec<u8>>)> {
        [Kind::Channel, Kind::Pattern, Kind::Shard]
            .into_iter()
            .flat_map(|kind| {
                let names = self
                    .names
                    .iter()
                    .filter(move |(k, _)| *k == kind)
                    .map(|(_, n)| n.as_slice());
                commands(Action::Subscribe, kind, names)
                    .into_iter()
                    .map(move |c| (kind, c))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
