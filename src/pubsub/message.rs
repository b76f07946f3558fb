//! One message received by a subscriber: where its strings are in the buffer it was read into.

use crate::core::pubsub::Kind;
use crate::resp::Reply;
use bytes::Bytes;

/// A message: its channel, the pattern that matched (pattern subscriptions only) and its
/// payload, all binary safe. The strings are not copied: the message keeps (a reference to) the
/// buffer the frame was read into and where its strings are in it, each followed by a NUL in
/// place (the decoder writes one over each `\r`), so C gets them as C strings too.
///
/// The frame's decoded tree is dropped where it was decoded (the connection's task): a message
/// crossing to the consumer's thread carries no allocation of its own, only the shared buffer.
pub struct Message {
    buffer: Bytes,
    kind: Kind,
    channel: Span,
    pattern: Option<Span>,
    payload: Span,
}

/// Where a string is in the buffer.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// Where `text` (which lies in `buffer`, with a NUL after it) is.
    fn of(buffer: &Bytes, text: &[u8]) -> Option<Span> {
        let start = (text.as_ptr() as usize).checked_sub(buffer.as_ptr() as usize)?;
        (start + text.len() < buffer.len()).then_some(Span {
            start,
            len: text.len(),
        })
    }
}

impl Message {
    /// The message a frame is, from what `core::pubsub::classify` found in it (`channel`,
    /// `pattern` and `payload` point into `frame`). `copy`: in an allocation of its own instead
    /// of the frame's buffer (see [`Message::copied`]).
    pub(crate) fn from_frame(
        frame: &Reply,
        kind: Kind,
        channel: &[u8],
        pattern: Option<&[u8]>,
        payload: &[u8],
        copy: bool,
    ) -> Message {
        if !copy && let Some(message) = Self::in_place(frame, kind, channel, pattern, payload) {
            return message;
        }
        Self::copied(kind, channel, pattern, payload)
    }

    fn in_place(
        frame: &Reply,
        kind: Kind,
        channel: &[u8],
        pattern: Option<&[u8]>,
        payload: &[u8],
    ) -> Option<Message> {
        let buffer = frame.buffer()?;
        Some(Message {
            channel: Span::of(buffer, channel)?,
            pattern: match pattern {
                Some(pattern) => Some(Span::of(buffer, pattern)?),
                None => None,
            },
            payload: Span::of(buffer, payload)?,
            buffer: buffer.clone(),
            kind,
        })
    }

    /// The message in an allocation of its own. The buffer a frame was read into stays
    /// allocated while any message in it lives: a queue of messages each read alone (a trickle)
    /// would hold one whole read buffer (up to 64 KiB) per message. The link copies the messages
    /// of small reads, so a queue's memory follows its messages'.
    pub(crate) fn copied(
        kind: Kind,
        channel: &[u8],
        pattern: Option<&[u8]>,
        payload: &[u8],
    ) -> Message {
        let size = channel.len() + pattern.map_or(0, <[u8]>::len) + payload.len() + 3;
        let mut buffer = Vec::with_capacity(size);
        let mut put = |text: &[u8]| {
            let span = Span {
                start: buffer.len(),
                len: text.len(),
            };
            buffer.extend_from_slice(text);
            // A C string in place, as the decoder leaves them.
            buffer.push(0);
            span
        };
        let channel = put(channel);
        let pattern = pattern.map(&mut put);
        let payload = put(payload);
        Message {
            buffer: Bytes::from(buffer),
            kind,
            channel,
            pattern,
            payload,
        }
    }

    /// Which kind of subscription delivered it.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn text(&self, span: Span) -> &[u8] {
        &self.buffer[span.start..span.start + span.len]
    }

    pub fn channel(&self) -> &[u8] {
        self.text(self.channel)
    }

    /// The pattern that matched, for a pattern subscription's message.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.pattern.map(|span| self.text(span))
    }

    pub fn payload(&self) -> &[u8] {
        self.text(self.payload)
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

    fn decoded(bytes: &[u8], copy: bool) -> Message {
        let mut proto = Protocol::default();
        proto.input_buffer().extend_from_slice(bytes);
        let frame = proto.next_frame().unwrap().unwrap();
        let Frame::Message {
            kind,
            pattern,
            channel,
            payload,
        } = classify(&frame)
        else {
            panic!("not a message")
        };
        Message::from_frame(&frame, kind, channel, pattern, payload, copy)
    }

    /// Both ways of holding a message say the same, each string followed by a NUL.
    #[test]
    fn in_place_and_copied_messages_say_the_same() {
        for (bytes, pattern) in [
            (
                &b">4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$6\r\n\0\r\n$1\r\r\n"[..],
                Some(&b"p*"[..]),
            ),
            (b"*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$0\r\n\r\n", None),
        ] {
            for copy in [false, true] {
                let message = decoded(bytes, copy);
                assert_eq!(message.pattern(), pattern);
                let (channel, payload): (&[u8], &[u8]) = match pattern {
                    Some(_) => (b"pq", b"\0\r\n$1\r"),
                    None => (b"s", b""),
                };
                assert_eq!(message.channel(), channel);
                assert_eq!(message.payload(), payload);
                for text in [message.channel(), message.payload()] {
                    // SAFETY: a NUL follows every text within the buffer.
                    assert_eq!(unsafe { *text.as_ptr().add(text.len()) }, 0);
                }
            }
        }
    }
}
