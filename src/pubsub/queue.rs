//! A subscriber's bounded message queue: its connections' readers put messages in, the callback
//! thread or the caller of `next` takes them out, and the overflow policy says what happens when
//! it is full.
//!
//! - DROP_OLDEST / DROP_NEWEST: the reader never waits; what does not fit is dropped and counted.
//! - BLOCK: the reader stops taking from its connection until there is room (it waits for
//!   [`Queue::wait_for_room`]), so messages pile up in the server, whose output-buffer limit for
//!   Pub/Sub clients then applies.
//!
//! The readiness descriptor ([`Signal`]) is raised and lowered under the queue's lock, so it is
//! readable exactly while messages wait (and, once the subscriber closed, so that a poll loop
//! wakes up to learn it).

use super::message::Message;
use crate::config::Overflow;
use crate::core::Result;
use crate::net::signal::Signal;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub(crate) struct Queue {
    state: Mutex<State>,
    /// Consumers waiting for a message.
    ready: Condvar,
    /// A reader waiting for room (BLOCK).
    room: Notify,
    capacity: usize,
    overflow: Overflow,
    signal: OnceLock<Signal>,
}

#[derive(Default)]
struct State {
    messages: VecDeque<Message>,
    /// Consumers asleep on `ready`.
    sleepers: usize,
    closed: bool,
}

/// What [`Queue::take`] found.
pub(crate) enum Taken {
    Message(Message),
    /// Nothing came within the time given.
    Empty,
    /// The queue is closed and empty: nothing will come any more.
    Closed,
}

impl Queue {
    pub fn new(capacity: usize, overflow: Overflow) -> Queue {
        Queue {
            state: Mutex::default(),
            ready: Condvar::new(),
            room: Notify::new(),
            capacity: capacity.max(1),
            overflow,
            signal: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts the messages of `batch` in, oldest first, by the overflow policy. Under BLOCK, what
    /// does not fit stays in `batch` (the reader waits for room and offers it again). Returns how
    /// many messages were dropped.
    pub fn offer(&self, batch: &mut VecDeque<Message>) -> u64 {
        let mut state = self.lock();
        if state.closed {
            // Nobody takes any more: the subscriber is being freed.
            batch.clear();
            return 0;
        }
        let was_empty = state.messages.is_empty();
        let mut dropped = 0;
        while let Some(message) = batch.pop_front() {
            if state.messages.len() < self.capacity {
                state.messages.push_back(message);
                continue;
            }
            match self.overflow {
                Overflow::DropOldest => {
                    state.messages.pop_front();
                    state.messages.push_back(message);
                    dropped += 1;
                }
                Overflow::DropNewest => dropped += 1,
                Overflow::Block => {
                    batch.push_front(message);
                    break;
                }
            }
        }
        if was_empty
            && !state.messages.is_empty()
            && let Some(signal) = self.signal.get()
        {
            signal.raise();
        }
        if state.sleepers > 0 && !state.messages.is_empty() {
            self.ready.notify_all();
        }
        dropped
    }

    /// Completes when the queue has room (or is closed). For a BLOCK reader whose last offer did
    /// not fit.
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before looking, so a `take` in between is not missed.
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.closed || state.messages.len() < self.capacity {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The next message, waiting up to `timeout` (`None`: for as long as it takes).
    pub fn take(&self, timeout: Option<Duration>) -> Taken {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.lock();
        loop {
            if let Some(message) = state.messages.pop_front() {
                let was_full = state.messages.len() + 1 >= self.capacity;
                if state.messages.is_empty()
                    && !state.closed
                    && let Some(signal) = self.signal.get()
                {
                    signal.lower();
                }
                drop(state);
                if was_full && self.overflow == Overflow::Block {
                    self.room.notify_one();
                }
                return Taken::Message(message);
            }
            if state.closed {
                return Taken::Closed;
            }
            let wait = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Taken::Empty,
                },
            };
            state.sleepers += 1;
            state = match wait {
                None => self.ready.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(left) => {
                    self.ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            state.sleepers -= 1;
        }
    }

    /// Messages waiting now.
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    #[cfg(test)]
    fn sleepers(&self) -> usize {
        self.lock().sleepers
    }

    /// Closes the queue: takes get what is left (nothing, with `discard`), then `Closed`; offers
    /// are dropped; a waiting reader and every waiting consumer wake up. The descriptor stays
    /// readable from now on, so that a poll loop learns of it.
    pub fn close(&self, discard: bool) {
        let discarded = {
            let mut state = self.lock();
            state.closed = true;
            if let Some(signal) = self.signal.get() {
                signal.raise();
            }
            self.ready.notify_all();
            match discard {
                true => std::mem::take(&mut state.messages),
                false => VecDeque::new(),
            }
        };
        // Freed outside the lock.
        drop(discarded);
        self.room.notify_one();
    }

    /// The readiness descriptor, made on first use (a subscriber whose owner never polls pays
    /// nothing for it).
    pub fn fd(&self) -> Result<RawFd> {
        if let Some(signal) = self.signal.get() {
            return Ok(signal.fd());
        }
        let state = self.lock();
        if let Some(signal) = self.signal.get() {
            return Ok(signal.fd());
        }
        let signal = Signal::new()?;
        if !state.messages.is_empty() || state.closed {
            signal.raise();
        }
        let fd = signal.fd();
        // Set under the lock: offers and takes see it from their next turn on.
        let _ = self.signal.set(signal);
        Ok(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::protocol::Protocol;
    use crate::core::pubsub::{Frame, classify};
    use crate::net::signal::readable;

    fn messages(range: std::ops::Range<u32>) -> VecDeque<Message> {
        let mut proto = Protocol::default();
        for i in range {
            let payload = i.to_string();
            let frame = format!(
                ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n${}\r\n{payload}\r\n",
                payload.len()
            );
            proto.input_buffer().extend_from_slice(frame.as_bytes());
        }
        let mut out = VecDeque::new();
        while let Some(frame) = proto.next_frame().unwrap() {
            let Frame::Message {
                kind,
                pattern,
                channel,
                payload,
            } = classify(&frame)
            else {
                panic!("not a message");
            };
            out.push_back(Message::from_frame(
                &frame, kind, channel, pattern, payload, false,
            ));
        }
        out
    }

    fn drain(queue: &Queue) -> Vec<u32> {
        let mut got = Vec::new();
        while let Taken::Message(m) = queue.take(Some(Duration::ZERO)) {
            got.push(std::str::from_utf8(m.payload()).unwrap().parse().unwrap());
        }
        got
    }

    #[test]
    fn each_policy_keeps_its_messages_and_counts_the_rest() {
        let queue = Queue::new(3, Overflow::DropOldest);
        assert_eq!(queue.offer(&mut messages(0..5)), 2);
        assert_eq!(drain(&queue), [2, 3, 4]);

        let queue = Queue::new(3, Overflow::DropNewest);
        assert_eq!(queue.offer(&mut messages(0..5)), 2);
        assert_eq!(drain(&queue), [0, 1, 2]);

        let queue = Queue::new(3, Overflow::Block);
        let mut batch = messages(0..5);
        assert_eq!(queue.offer(&mut batch), 0);
        assert_eq!(batch.len(), 2, "what did not fit waits with the reader");
        assert!(matches!(queue.take(None), Taken::Message(_)));
        assert_eq!(queue.offer(&mut batch), 0);
        assert_eq!(batch.len(), 1);
        assert_eq!(drain(&queue), [1, 2, 3]);
        assert_eq!(queue.offer(&mut batch), 0);
        assert_eq!(drain(&queue), [4]);
    }

    #[test]
    fn the_descriptor_is_readable_exactly_while_messages_wait() {
        let queue = Queue::new(10, Overflow::DropOldest);
        queue.offer(&mut messages(0..2));
        let fd = queue.fd().unwrap();
        assert!(readable(fd), "made while messages wait");
        assert!(matches!(queue.take(None), Taken::Message(_)));
        assert!(readable(fd));
        assert!(matches!(queue.take(None), Taken::Message(_)));
        assert!(!readable(fd));
        assert!(matches!(
            queue.take(Some(Duration::from_millis(1))),
            Taken::Empty
        ));
        queue.offer(&mut messages(0..1));
        assert!(readable(fd));
        assert_eq!(queue.fd().unwrap(), fd, "one descriptor");
        queue.close(false);
        assert!(readable(fd));
        assert!(
            matches!(queue.take(None), Taken::Message(_)),
            "drained after close"
        );
        assert!(readable(fd), "closed: stays readable");
        assert!(matches!(queue.take(None), Taken::Closed));
    }

    fn wait_for_a_sleeper(queue: &Queue) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while queue.sleepers() == 0 {
            assert!(Instant::now() < deadline, "the consumer never waited");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_blocked_reader_wakes_when_a_message_is_taken_and_consumers_when_one_comes() {
        let queue = std::sync::Arc::new(Queue::new(2, Overflow::Block));
        let mut batch = messages(0..3);
        queue.offer(&mut batch);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let taker = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                // Gives the reader a moment to wait first (the test holds either way).
                std::thread::sleep(Duration::from_millis(20));
                matches!(queue.take(None), Taken::Message(_))
            })
        };
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), queue.wait_for_room())
                .await
                .expect("woken by the take")
        });
        assert!(taker.join().unwrap());
        assert_eq!(queue.offer(&mut batch), 0);
        assert!(batch.is_empty());

        let empty = std::sync::Arc::new(Queue::new(2, Overflow::DropOldest));
        let consumer = {
            let queue = empty.clone();
            std::thread::spawn(move || match queue.take(Some(Duration::from_secs(30))) {
                Taken::Message(m) => m.payload().to_vec(),
                _ => Vec::new(),
            })
        };
        wait_for_a_sleeper(&empty);
        empty.offer(&mut messages(7..8));
        assert_eq!(consumer.join().unwrap(), b"7");
        let closer = {
            let queue = empty.clone();
            std::thread::spawn(move || matches!(queue.take(None), Taken::Closed))
        };
        wait_for_a_sleeper(&empty);
        empty.close(true);
        assert!(closer.join().unwrap());
    }
}
