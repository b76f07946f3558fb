//! brisk's decoder driven the ways the client drives it, each coming to an outcome that can be
//! compared: reply by reply with [`Decoder::decode`], and a pipeline's replies batched through
//! [`Protocol::next_in_batch`] (which runs `Decoder::decode_batched`).

use crate::tree::{assert_within, dump};
use brisk::core::protocol::Protocol;
use brisk::resp::{Decoder, Limits, Reply};
use bytes::BytesMut;
use std::sync::{Arc, Mutex};

/// What decoding a stream reply by reply came to.
#[derive(Debug)]
pub struct Outcome {
    /// Every reply decoded, written out exactly.
    pub replies: Vec<String>,
    /// The error that ended the stream, if one did.
    pub error: Option<String>,
    /// Bytes of an unfinished reply were consumed when the input ran out.
    pub in_progress: bool,
}

/// Decodes `pieces`, arriving one after the other, with [`Decoder::decode`], as a connection
/// does: after each piece, every reply that is complete.
pub fn decode(limits: Limits, pieces: &[&[u8]]) -> Outcome {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut outcome = Outcome {
        replies: Vec::new(),
        error: None,
        in_progress: false,
    };
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(reply)) => {
                    assert_within(&reply, &limits);
                    outcome.replies.push(dump(&reply));
                }
                Ok(None) => break,
                Err(e) => {
                    outcome.error = Some(e.0);
                    return outcome;
                }
            }
        }
    }
    outcome.in_progress = decoder.in_progress();
    outcome
}

/// Panics unless decoding the same bytes in two ways (`a` and `b`, named for the message) came
/// to the same replies and both ended in an error or neither did. Error messages may differ.
pub fn assert_same(a: &Outcome, b: &Outcome, names: (&str, &str), input: &[u8]) {
    let same = a.replies == b.replies
        && a.error.is_some() == b.error.is_some()
        && (a.error.is_some() || a.in_progress == b.in_progress);
    assert!(
        same,
        "{} and {} disagree on {:?}\n{}: {:?}\n{}: {:?}",
        names.0,
        names.1,
        input.escape_ascii().to_string(),
        names.0,
        a,
        names.1,
        b
    );
}

/// What reading a stream through [`Protocol`] came to.
#[derive(Debug)]
pub struct Read {
    /// The replies handed out, written out exactly (a batch's once it was taken).
    pub replies: Vec<String>,
    /// Replies decoded, also those of a batch not taken because the input ran out first.
    pub decoded: usize,
    /// Push frames, handed to the push handler as they arrived.
    pub pushes: Vec<String>,
    pub error: bool,
}

fn protocol(limits: Limits) -> (Protocol, Arc<Mutex<Vec<String>>>) {
    let pushes = Arc::new(Mutex::new(Vec::new()));
    let sink = pushes.clone();
    let mut p = Protocol::new(limits);
    p.set_push_handler(Some(Box::new(move |push: Reply| {
        sink.lock().unwrap().push(dump(&push));
    })));
    (p, pushes)
}

fn pushes_of(pushes: Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *pushes.lock().unwrap())
}

/// Reads `pieces` reply by reply with [`Protocol::next_reply`].
pub fn read_one_by_one(limits: Limits, pieces: &[&[u8]]) -> Read {
    let (mut p, pushes) = protocol(limits);
    let mut replies = Vec::new();
    let mut error = false;
    'read: for piece in pieces {
        p.input_buffer().extend_from_slice(piece);
        loop {
            match p.next_reply() {
                Ok(Some(reply)) => {
                    assert_within(&reply, &limits);
                    replies.push(dump(&reply));
                }
                Ok(None) => break,
                Err(_) => {
                    error = true;
                    break 'read;
                }
            }
        }
    }
    Read {
        decoded: replies.len(),
        replies,
        pushes: pushes_of(pushes),
        error,
    }
}

/// Reads `pieces` as pipelines of `batch` commands each, the way a pipeline does: expect the
/// batch, decode into it until all its replies are there, take it. `one_by_one` takes each
/// batch as one reply per command ([`Protocol::take_batch_replies`]) instead of one array.
pub fn read_batched(limits: Limits, pieces: &[&[u8]], batch: usize, one_by_one: bool) -> Read {
    let (mut p, pushes) = protocol(limits);
    let mut replies = Vec::new();
    let mut decoded = 0;
    let mut in_batch = 0;
    let mut error = false;
    p.expect_batch(batch);
    'read: for piece in pieces {
        p.input_buffer().extend_from_slice(piece);
        loop {
            match p.next_in_batch() {
                Ok(true) => {
                    decoded += 1;
                    in_batch += 1;
                }
                Ok(false) => break,
                Err(_) => {
                    error = true;
                    break 'read;
                }
            }
            if in_batch == batch {
                if one_by_one {
                    for reply in p.take_batch_replies() {
                        assert_within(&reply, &limits);
                        replies.push(dump(&reply));
                    }
                } else {
                    let array = p.take_batch();
                    assert_eq!(array.children().len(), batch);
                    for reply in array.children() {
                        assert_within(reply, &limits);
                        replies.push(dump(reply));
                    }
                }
                in_batch = 0;
                p.expect_batch(batch);
            }
        }
    }
    Read {
        replies,
        decoded,
        pushes: pushes_of(pushes),
        error,
    }
}

/// Panics unless the batched read handed out the replies (and pushes) the one-by-one read did,
/// decoded as many, and ended in an error exactly when it did.
pub fn assert_batch_agrees(one_by_one: &Read, batched: &Read, input: &[u8]) {
    let taken = batched.replies.len();
    let same = batched.decoded == one_by_one.decoded
        && taken <= one_by_one.replies.len()
        && batched.replies[..] == one_by_one.replies[..taken]
        && batched.pushes == one_by_one.pushes
        && batched.error == one_by_one.error;
    assert!(
        same,
        "batched and one-by-one reads disagree on {:?}\none by one: {:?}\nbatched: {:?}",
        input.escape_ascii().to_string(),
        one_by_one,
        batched
    );
}
