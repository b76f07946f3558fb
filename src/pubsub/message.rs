//! One message received by a subscriber: the frame as it was read, without a copy.

use crate::core::pubsub::Kind;
use crate::resp::{Node, Reply};

/// A message: its channel, the pattern that matched (pattern subscriptions only) and its
/// payload, all binary safe. The strings are the frame's own bytes, read off the connection
/// into one buffer and never copied; each is also NUL-terminated in place (for C).
pub struct Message {
    frame: Reply,
    kind: Kind,
}

impl Message {
    /// A frame that `core::pubsub::classify` found to be a message of `kind`.
    pub(crate) fn new(frame: Reply, kind: Kind) -> Message {
        Message { frame, kind }
    }

    /// Which kind of subscription delivered it.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn part(&self, index: usize) -> &Node {
        &self.frame.children()[index]
    }

    /// Where the channel is: after the pattern in a `pmessage`.
    fn channel_index(&self) -> usize {
        match self.kind {
            Kind::Pattern => 2,
            Kind::Channel | Kind::Shard => 1,
        }
    }

    pub(crate) fn channel_node(&self) -> &Node {
        self.part(self.channel_index())
    }

    pub(crate) fn pattern_node(&self) -> Option<&Node> {
        (self.kind == Kind::Pattern).then(|| self.part(1))
    }

    pub(crate) fn payload_node(&self) -> &Node {
        self.part(self.channel_index() + 1)
    }

    pub fn channel(&self) -> &[u8] {
        self.channel_node().as_bytes().unwrap_or_default()
    }

    /// The pattern that matched, for a pattern subscription's message.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.pattern_node().and_then(Node::as_bytes)
    }

    pub fn payload(&self) -> &[u8] {
        self.payload_node().as_bytes().unwrap_or_default()
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("channel", &String::from_utf8_lossy(self.channel()))
            .field("pattern", &self.pattern().map(String::from_utf8_lossy))
            .field("payload_len", &self.payload().len())
            .finish()
    }
}
