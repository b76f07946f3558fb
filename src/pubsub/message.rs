//! One message received by a subscriber: the frame as it was read, without a copy.

use crate::core::pubsub::Kind;
use crate::resp::{Node, Reply, ReplyKind};
use bytes::Bytes;

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

    /// The same message in an allocation of its own. A frame points into the buffer it was read
    /// into, which stays allocated while any frame read into it lives: a queue of messages each
    /// read alone (a trickle) would hold one whole read buffer (up to 64 KiB) per message. The
    /// link compacts the messages of small reads, so a queue's memory follows its messages'.
    pub(crate) fn compacted(self) -> Message {
        let parts = self.frame.children();
        let size: usize = parts
            .iter()
            .map(|p| p.as_bytes().map_or(0, <[u8]>::len) + 1)
            .sum();
        let mut buffer = Vec::with_capacity(size);
        let mut nodes = Vec::with_capacity(parts.len());
        for part in parts {
            let text = part.as_bytes().unwrap_or_default();
            nodes.push(Node::text_at(ReplyKind::String, buffer.len(), text.len()));
            buffer.extend_from_slice(text);
            // Each string stays a C string in place, as the decoder leaves them.
            buffer.push(0);
        }
        let buffer = Bytes::from(buffer);
        let mut root = Node::aggregate(self.frame.kind(), nodes);
        // SAFETY: every offset above, with its length and NUL, lies within `buffer`, and the
        // root's strings all point into it.
        let frame = unsafe {
            root.rebase(buffer.as_ptr());
            Reply::from_buffer(root, buffer)
        };
        Message {
            frame,
            kind: self.kind,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::protocol::Protocol;
    use crate::core::pubsub::{Frame, classify};

    fn decoded(bytes: &[u8]) -> Message {
        let mut proto = Protocol::default();
        proto.input_buffer().extend_from_slice(bytes);
        let frame = proto.next_frame().unwrap().unwrap();
        let Frame::Message { kind, .. } = classify(&frame) else {
            panic!("not a message")
        };
        Message::new(frame, kind)
    }

    #[test]
    fn a_compacted_message_says_the_same_in_its_own_buffer() {
        for bytes in [
            &b">4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$6\r\n\0\r\n$1\r\r\n"[..],
            b"*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$0\r\n\r\n",
        ] {
            let message = decoded(bytes);
            let (kind, channel, pattern, payload) = (
                message.kind(),
                message.channel().to_vec(),
                message.pattern().map(<[u8]>::to_vec),
                message.payload().to_vec(),
            );
            let compact = message.compacted();
            assert_eq!(compact.kind(), kind);
            assert_eq!(compact.channel(), channel);
            assert_eq!(compact.pattern().map(<[u8]>::to_vec), pattern);
            assert_eq!(compact.payload(), payload);
            for node in [compact.channel_node(), compact.payload_node()] {
                let len = node.as_bytes().unwrap().len();
                // SAFETY: as_c_ptr promises a NUL after the text.
                assert_eq!(unsafe { *node.as_c_ptr().add(len) }, 0);
            }
        }
    }
}
