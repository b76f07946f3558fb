//! The protocol state of one connection, without the connection: bytes waiting to be written,
//! bytes read but not yet decoded, and the routing of RESP3 push frames.
//!
//! Drivers move bytes between this and a socket: they write [`Protocol::output`], then read
//! into [`Protocol::input_buffer`] until [`Protocol::next_reply`] has what they wait for. Push
//! frames (client-side-cache invalidations, Pub/Sub messages, server notices) can arrive before,
//! between or after replies; they never come out of `next_reply` but go to the push handler.

use super::error::Error;
use crate::resp::{Args, Decoder, Limits, Reply, ReplyKind, encode_command, encode_owned};
use bytes::BytesMut;

/// Receives out-of-band push frames. Runs on the thread that reads the connection.
pub type PushHandler = Box<dyn FnMut(Reply) + Send + Sync>;

/// Room offered to the first read on a connection. Small, so that an idle connection holds
/// little memory (a pool may keep thousands); it doubles each time a read fills it, up to
/// [`MAX_READ_CHUNK`], and a large bulk known to be coming reserves its size at once.
const MIN_READ_CHUNK: usize = 512;
const MAX_READ_CHUNK: usize = 64 * 1024;

pub struct Protocol {
    decoder: Decoder,
    input: BytesMut,
    output: BytesMut,
    on_push: Option<PushHandler>,
    pushes_dropped: u64,
    /// Room to offer the next read (see [`MIN_READ_CHUNK`]); 0 before the first read.
    read_chunk: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol::new(Limits::default())
    }
}

impl Protocol {
    pub fn new(limits: Limits) -> Protocol {
        Protocol {
            decoder: Decoder::new(limits),
            input: BytesMut::new(),
            output: BytesMut::new(),
            on_push: None,
            pushes_dropped: 0,
            read_chunk: 0,
        }
    }

    pub fn set_push_handler(&mut self, handler: Option<PushHandler>) {
        self.on_push = handler;
    }

    /// Push frames that arrived with no handler installed.
    pub fn pushes_dropped(&self) -> u64 {
        self.pushes_dropped
    }

    /// Queues a command for writing.
    pub fn queue(&mut self, args: &Args<'_>) {
        encode_command(&mut self.output, args);
    }

    /// Queues a command given as owned arguments (handshakes, internal commands).
    pub fn queue_owned(&mut self, args: &[Vec<u8>]) {
        encode_owned(&mut self.output, args);
    }

    /// Queues bytes that are already RESP (a pipeline encodes as it is built).
    pub fn queue_encoded(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// The driver wrote the first `n` bytes of [`Protocol::output`].
    pub fn consume_output(&mut self, n: usize) {
        let _ = self.output.split_to(n);
        if self.output.is_empty() {
            // Keep the allocation for the next command.
            self.output.clear();
        }
    }

    /// The buffer to read into, with room for at least one more read.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        if self.read_chunk == 0 {
            self.read_chunk = MIN_READ_CHUNK;
        } else if self.input.len() == self.input.capacity() && self.read_chunk < MAX_READ_CHUNK {
            // The last read filled all the room it had (decoding only removes whole replies, so
            // a full buffer stays full): offer more next time, fewer reads per large reply.
            self.read_chunk *= 2;
        }
        let wanted = self.decoder.needed().saturating_sub(self.input.len());
        self.input.reserve(wanted.max(self.read_chunk));
        &mut self.input
    }

    /// True when bytes of an unfinished reply have been read: the stream is mid-reply and, if
    /// the caller gives up now, the connection cannot be reused.
    pub fn mid_reply(&self) -> bool {
        self.decoder.in_progress() || !self.input.is_empty()
    }

    /// The next reply from the bytes read so far, if one is complete. Push frames are handed to
    /// the push handler on the way.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, Error> {
        loop {
            let Some(reply) = self.decoder.decode(&mut self.input)? else {
                return Ok(None);
            };
            if reply.kind() != ReplyKind::Push {
                return Ok(Some(reply));
            }
            match self.on_push.as_mut() {
                Some(handler) => handler(reply),
                None => self.pushes_dropped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn pushes_are_routed_out_of_band() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut p = Protocol::default();
        p.set_push_handler(Some(Box::new(move |r: Reply| {
            sink.lock().unwrap().push(format!("{r:?}"));
        })));
        p.input_buffer().extend_from_slice(
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n+OK\r\n>1\r\n$1\r\nx\r\n:5\r\n",
        );
        assert_eq!(p.next_reply().unwrap().unwrap().as_str(), Some("OK"));
        assert_eq!(p.next_reply().unwrap().unwrap().as_integer(), Some(5));
        assert!(p.next_reply().unwrap().is_none());
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn output_is_consumed_in_pieces() {
        let mut p = Protocol::default();
        let args: [&[u8]; 1] = [b"PING"];
        p.queue(&Args::from_slices(&args));
        assert_eq!(p.output(), b"*1\r\n$4\r\nPING\r\n");
        p.consume_output(4);
        assert_eq!(p.output(), b"$4\r\nPING\r\n");
        p.consume_output(10);
        assert!(p.output().is_empty());
    }

    #[test]
    fn mid_reply_is_tracked() {
        let mut p = Protocol::default();
        p.input_buffer().extend_from_slice(b"*2\r\n:1\r\n");
        assert!(p.next_reply().unwrap().is_none());
        assert!(p.mid_reply());
        p.input_buffer().extend_from_slice(b":2\r\n");
        assert!(p.next_reply().unwrap().is_some());
        assert!(!p.mid_reply());
    }
}
