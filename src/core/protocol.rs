//! The protocol state of one connection, without the connection: bytes waiting to be written,
//! bytes read but not yet decoded, and the routing of RESP3 push frames.
//!
//! Drivers move bytes between this and a socket: they write [`Protocol::output`], then read
//! into [`Protocol::input_buffer`] until [`Protocol::next_reply`] has what they wait for. Push
//! frames (client-side-cache invalidations, Pub/Sub messages, server notices) can arrive before,
//! between or after replies; they never come out of `next_reply` but go to the push handler.

use super::error::Error;
use crate::resp::{Args, Decoder, Limits, Node, Reply, ReplyKind, encode_command, encode_owned};
use bytes::{Buf, Bytes, BytesMut};

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
    /// The replies of the pipeline being read with [`Protocol::next_in_batch`].
    batch: Batch,
}

/// A pipeline's replies, decoded in place and split off the input buffer a read's worth at a
/// time instead of one reply at a time.
#[derive(Default)]
struct Batch {
    roots: Vec<Node>,
    /// The pieces split off the input buffer: piece `k` holds the strings of the roots up to
    /// `ends[k]` (from `ends[k - 1]`).
    buffers: Vec<Bytes>,
    ends: Vec<usize>,
    /// Roots from here on still hold offsets into the input buffer.
    unsealed: usize,
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
            batch: Batch::default(),
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
        // Moves the start past the bytes written: the buffer stays the only owner of its
        // memory (splitting them off would share it, at an atomic count per write and a
        // header allocated for good), and its next reserve reuses the room in front.
        self.output.advance(n);
    }

    /// The buffer to read into, with room for at least one more read.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        // Batched replies leave with the bytes read so far, so the buffer does not grow by a
        // whole pipeline's replies.
        self.seal_batch();
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

    /// Gives back the memory of a connection with nothing under way (its handshake just
    /// finished): a pool may keep thousands of idle connections, and most of what one holds
    /// is its buffers. The next request allocates them again, once.
    pub fn release_buffers(&mut self) {
        if self.output.is_empty() {
            self.output = BytesMut::new();
        }
        if self.input.is_empty() && !self.decoder.in_progress() {
            self.input = BytesMut::new();
            // The next read starts small again instead of doubling from the handshake's room.
            self.read_chunk = 0;
            self.decoder.release_memory();
        }
    }

    /// The per-reply memory bound in force (see `resp::Limits::max_reply_bytes`).
    pub fn reply_bound(&self) -> usize {
        self.decoder.max_reply_bytes()
    }

    /// Changes the per-reply memory bound for the replies not yet begun.
    pub fn set_reply_bound(&mut self, bytes: usize) {
        self.decoder.set_max_reply_bytes(bytes);
    }

    /// True when bytes of an unfinished reply have been read: the stream is mid-reply and, if
    /// the caller gives up now, the connection cannot be reused.
    pub fn mid_reply(&self) -> bool {
        self.decoder.in_progress() || !self.input.is_empty()
    }

    /// The next reply from the bytes read so far, if one is complete. Push frames are handed to
    /// the push handler on the way.
    #[inline(always)]
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

    /// After the last reply a request waited for: hands the push frames read with it to the
    /// push handler, and says whether anything else was read: a reply nobody asked for, bytes
    /// that are not RESP, or the start of a frame not complete yet. Then the connection's
    /// replies no longer match its requests (or may not), and it must not carry another.
    #[inline]
    pub fn read_past_replies(&mut self) -> bool {
        if !self.mid_reply() {
            return false;
        }
        self.stray_after_replies()
    }

    #[cold]
    fn stray_after_replies(&mut self) -> bool {
        !matches!(self.next_reply(), Ok(None)) || self.mid_reply()
    }

    /// The next frame from the bytes read so far, push or not, in arrival order: on a Pub/Sub
    /// subscriber's connection pushes are not out of band but the traffic itself (`pubsub/`).
    pub fn next_frame(&mut self) -> Result<Option<Reply>, Error> {
        Ok(self.decoder.decode(&mut self.input)?)
    }
}

impl Protocol {
    /// Makes room for the `count` replies a pipeline is about to read with
    /// [`Protocol::next_in_batch`].
    pub fn expect_batch(&mut self, count: usize) {
        // A connection whose pipeline failed midway is broken and never read again, so a new
        // batch always starts empty.
        debug_assert!(self.batch.roots.is_empty() && self.batch.buffers.is_empty());
        debug_assert!(self.batch.ends.is_empty() && self.batch.unsealed == 0);
        self.batch.roots.reserve_exact(count);
    }

    /// Decodes the next reply of a pipeline into the batch that [`Protocol::take_batch`]
    /// returns; false when more bytes are needed. Push frames go to the push handler, as with
    /// [`Protocol::next_reply`].
    pub fn next_in_batch(&mut self) -> Result<bool, Error> {
        loop {
            let roots = &mut self.batch.roots;
            if !self.decoder.decode_batched(&mut self.input, roots)? {
                return Ok(false);
            }
            if roots
                .last()
                .is_some_and(|root| root.kind() != ReplyKind::Push)
            {
                return Ok(true);
            }
            // A push leaves at once with the replies before it: the handler gets it as a reply
            // of its own.
            let mut push = roots.pop().expect("the push just decoded");
            self.seal_batch();
            match (self.on_push.as_mut(), self.batch.buffers.last().cloned()) {
                (Some(handler), Some(buffer)) => {
                    // SAFETY: the push's offsets lie within the batch just split off, `buffer`.
                    unsafe {
                        push.rebase(buffer.as_ptr());
                        handler(Reply::from_buffer(push, buffer));
                    }
                }
                _ => self.pushes_dropped += 1,
            }
        }
    }

    /// The pipeline's replies decoded by [`Protocol::next_in_batch`], as one array. Called
    /// right after the last of them was decoded (nothing of a next reply consumed yet).
    pub fn take_batch(&mut self) -> Reply {
        let (roots, buffers) = self.finish_batch();
        // SAFETY: every root was rebased onto the buffer split off with it.
        unsafe { Reply::from_batch(ReplyKind::Array, roots, buffers) }
    }

    /// [`Protocol::take_batch`] as one reply per command, each keeping only the piece of the
    /// read buffer its own strings are in (a cluster batch hands its replies out one by one).
    pub fn take_batch_replies(&mut self) -> Vec<Reply> {
        self.seal_batch();
        let ends = std::mem::take(&mut self.batch.ends);
        let (roots, buffers) = self.finish_batch();
        let mut replies = Vec::with_capacity(roots.len());
        let mut roots = roots.into_iter();
        let mut start = 0;
        for (buffer, &end) in buffers.iter().zip(&ends) {
            for root in roots.by_ref().take(end - start) {
                // SAFETY: the roots up to `end` were rebased onto `buffer` when it was split off.
                replies.push(unsafe { Reply::from_buffer(root, buffer.clone()) });
            }
            start = end;
        }
        self.batch.ends = ends;
        self.batch.ends.clear();
        replies
    }

    /// Seals what is left and hands the roots and buffers over; the batch is empty afterwards
    /// (its bookkeeping keeps its allocation for the next one).
    fn finish_batch(&mut self) -> (Vec<Node>, Vec<Bytes>) {
        self.seal_batch();
        let batch = &mut self.batch;
        let mut roots = std::mem::take(&mut batch.roots);
        // Only a reply consumed after the last batched one could keep them unsealed, and none
        // is decoded before this is called; should one be, its offsets must not escape.
        debug_assert_eq!(batch.unsealed, roots.len());
        roots.truncate(batch.unsealed);
        batch.unsealed = 0;
        batch.ends.clear();
        (roots, std::mem::take(&mut batch.buffers))
    }

    /// Splits the batched replies off the input buffer and points their strings into it. The
    /// test is inline: every read of a single reply passes here with no batch to seal, and in
    /// the C library (where this function was not inlined) the call cost ~11 instructions per
    /// sync command.
    #[inline(always)]
    fn seal_batch(&mut self) {
        if self.decoder.batch_ready() {
            self.seal_ready_batch();
        }
    }

    #[inline(never)]
    fn seal_ready_batch(&mut self) {
        let Some(bytes) = self.decoder.split_batch(&mut self.input) else {
            return;
        };
        for root in &mut self.batch.roots[self.batch.unsealed..] {
            // SAFETY: the roots decoded since the last seal hold offsets into exactly these
            // bytes (the decoder checked each string and its NUL lie within them).
            unsafe { root.rebase(bytes.as_ptr()) };
        }
        self.batch.unsealed = self.batch.roots.len();
        self.batch.buffers.push(bytes);
        self.batch.ends.push(self.batch.unsealed);
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

    /// What was read past a request's reply: nothing or pushes only leave the connection fit
    /// for the next request (the pushes routed); a reply nobody asked for, bytes that are not
    /// RESP, or a frame begun do not.
    #[test]
    fn bytes_read_past_the_replies_are_told_apart() {
        let cases: [(&[u8], bool, usize); 6] = [
            (b"", false, 0),
            (b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n", false, 1),
            (
                b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n$5\r\nstray\r\n",
                true,
                1,
            ),
            (b"+stray\r\n", true, 0),
            (b"$5\r\nst", true, 0),
            (b"\x00\xffnot resp\r\n", true, 0),
        ];
        for (past, stray, pushes) in cases {
            let seen = Arc::new(Mutex::new(0));
            let sink = seen.clone();
            let mut p = Protocol::default();
            p.set_push_handler(Some(Box::new(move |_| *sink.lock().unwrap() += 1)));
            p.input_buffer().extend_from_slice(b"$5\r\nfirst\r\n");
            p.input_buffer().extend_from_slice(past);
            assert_eq!(
                p.next_reply().unwrap().unwrap().as_bytes(),
                Some(&b"first"[..])
            );
            assert_eq!(p.read_past_replies(), stray, "{past:?}");
            assert_eq!(*seen.lock().unwrap(), pushes, "{past:?}");
        }
    }

    /// A pipeline's replies read in every chunk size come out of the batch exactly as the
    /// per-reply path decodes them, C strings included, with pushes routed out of band.
    #[test]
    fn batched_replies_match_replies_decoded_one_by_one() {
        let stream: &[u8] = b"+OK\r\n$5\r\nhello\r\n:42\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n\
            *3\r\n$1\r\na\r\n%1\r\n+k\r\n$0\r\n\r\n_\r\n-ERR bad\r\n$-1\r\n$?\r\n;3\r\nabc\r\n;2\r\nde\r\n;0\r\n\
            ,1.5\r\n";
        let mut one_by_one = Protocol::default();
        one_by_one.input_buffer().extend_from_slice(stream);
        let mut expected = Vec::new();
        while let Some(reply) = one_by_one.next_reply().unwrap() {
            expected.push(format!("{reply:?}"));
        }
        assert_eq!(expected.len(), 8);
        for chunk in [1, 2, 3, 7, 16, stream.len()] {
            let pushes = Arc::new(Mutex::new(Vec::new()));
            let sink = pushes.clone();
            let mut p = Protocol::default();
            p.set_push_handler(Some(Box::new(move |r: Reply| {
                sink.lock().unwrap().push(format!("{r:?}"));
            })));
            let mut decoded = 0;
            for piece in stream.chunks(chunk) {
                p.input_buffer().extend_from_slice(piece);
                while decoded < expected.len() && p.next_in_batch().unwrap() {
                    decoded += 1;
                }
            }
            assert_eq!(decoded, expected.len(), "chunk {chunk}");
            let batch = p.take_batch();
            let got: Vec<String> = batch.children().iter().map(|n| format!("{n:?}")).collect();
            assert_eq!(got, expected, "chunk {chunk}");
            assert_eq!(pushes.lock().unwrap().len(), 1, "chunk {chunk}");
            // Strings are C strings in place.
            let hello = &batch.children()[1];
            // SAFETY: as_c_ptr promises a NUL after the payload.
            assert_eq!(unsafe { *hello.as_c_ptr().add(5) }, 0);
            assert!(!p.mid_reply());
            // The connection goes on with single replies after a batch.
            p.input_buffer().extend_from_slice(b":7\r\n");
            assert_eq!(p.next_reply().unwrap().unwrap().as_integer(), Some(7));
            // And elements live on after the array is split up.
            let parts = batch.into_elements();
            assert_eq!(parts[1].as_str(), Some("hello"));
            // One reply per command, each with its own piece of the buffer: the same replies.
            let mut q = Protocol::default();
            let mut decoded = 0;
            for piece in stream.chunks(chunk) {
                q.input_buffer().extend_from_slice(piece);
                while decoded < expected.len() && q.next_in_batch().unwrap() {
                    decoded += 1;
                }
            }
            let replies: Vec<String> = q
                .take_batch_replies()
                .iter()
                .map(|r| format!("{r:?}"))
                .collect();
            assert_eq!(replies, expected, "chunk {chunk}, one by one");
        }
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
