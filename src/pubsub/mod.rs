//! Pub/Sub subscribers: their own connections, resubscription, the bounded queue, the descriptor.
//!
//! A [`Subscriber`] is made from a client and shares its route, retry policy, timeouts, events
//! and counters, but never its pooled connections: its connections are its own ([`link`]), one
//! per node it needs (one on a single server; on a cluster, the owners of its shard channels'
//! slots plus one for channels and patterns), run on brisk's runtime. A [`supervisor`] task
//! decides where each subscription lives and brings everything back after a loss. Messages go
//! from a connection into one bounded [`queue`]; a subscriber made with a handler has its own
//! thread that takes them out and calls it, in arrival order; one made without is read with
//! [`Subscriber::next`], and [`Subscriber::fd`] is readable while messages wait.
//!
//! Delivery is at most once: a message published while a connection is down (or dropped by the
//! overflow policy) is not seen; nothing is delivered twice.
//!
//! The pure parts (what each frame is, which request a confirmation answers, the commands that
//! restore a set of subscriptions) are `core::pubsub`.

mod link;
mod message;
mod queue;
mod supervisor;

pub use crate::config::Overflow;
pub use crate::core::pubsub::Kind;
pub use message::Message;

use crate::core::pubsub::Action;
use crate::core::{Error, Result, Status};
use crate::exec::Shared;
use crate::telemetry::events::Observer;
use crate::telemetry::stats::Stat;
use queue::{Queue, Taken};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, mpsc as sync_mpsc};
use std::time::Duration;
use supervisor::{Finished, Request, Supervisor};
use tokio::sync::mpsc;

/// Called with each message, in arrival order, on the subscriber's own thread.
pub type MessageHandler = Box<dyn FnMut(&Message) + Send>;

/// What a subscriber's parts share: the queue and its counts.
pub(crate) struct Core {
    queue: Queue,
    counters: Counters,
}

/// One subscriber's counts; the client's counters are bumped alongside.
#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    dropped: AtomicU64,
    resubscribes: AtomicU64,
}

impl Counters {
    fn received(&self, observer: &Observer, n: u64) {
        if n > 0 {
            self.messages.fetch_add(n, Relaxed);
            observer.stats.add(Stat::PubsubMessages, n);
        }
    }

    fn dropped(&self, observer: &Observer, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Relaxed);
            observer.stats.add(Stat::PubsubDropped, n);
        }
    }

    fn resubscribed(&self, observer: &Observer) {
        self.resubscribes.fetch_add(1, Relaxed);
        observer.stats.bump(Stat::PubsubResubscribes);
    }
}

/// A subscriber: see the module documentation.
///
/// Thread-safe: subscribe, unsubscribe, `next` and `fd` may be called from any thread, the
/// handler's included. Dropping it (or [`Subscriber::close`]) closes its connections and waits
/// for a running handler call to return; no call starts after.
pub struct Subscriber {
    core: Arc<Core>,
    requests: mpsc::UnboundedSender<Request>,
    finished: Arc<Finished>,
    dispatcher: Option<std::thread::JoinHandle<()>>,
    /// With a handler, messages are the dispatcher's: `next` and `fd` are refused.
    pushed: bool,
}

/// How long closing waits for the supervisor to let go of its connections (it takes
/// microseconds; the bound only guards against a runtime that stopped running).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

impl Subscriber {
    pub(crate) fn new(shared: Arc<Shared>, handler: Option<MessageHandler>) -> Result<Subscriber> {
        if shared.is_closed() {
            return Err(Shared::closed_error());
        }
        let settings = &shared.pubsub;
        let core = Arc::new(Core {
            queue: Queue::new(settings.queue_capacity, settings.overflow),
            counters: Counters::default(),
        });
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let finished = Arc::new(Finished::default());
        let supervisor = Supervisor::new(shared, core.clone(), requests_rx, finished.clone());
        if !crate::runtime::spawn(supervisor.run()) {
            return Err(Error::new(
                Status::Internal,
                "the async runtime is not running (could not start its threads)",
            ));
        }
        let pushed = handler.is_some();
        let dispatcher = match handler {
            None => None,
            Some(handler) => {
                let core = core.clone();
                let started = std::thread::Builder::new()
                    .name("brisk-subscriber".into())
                    .spawn(move || dispatch(&core, handler));
                match started {
                    Ok(thread) => Some(thread),
                    Err(e) => {
                        let _ = requests.send(Request::Close);
                        return Err(Error::new(
                            Status::Internal,
                            format!("cannot start the subscriber's thread: {e}"),
                        ));
                    }
                }
            }
        };
        Ok(Subscriber {
            core,
            requests,
            finished,
            dispatcher,
            pushed,
        })
    }

    /// Subscribes to `names` of `kind`; returns once the server confirmed every one.
    pub fn subscribe(&self, kind: Kind, names: &[&[u8]]) -> Result<()> {
        self.change(Action::Subscribe, kind, names)
    }

    /// Unsubscribes from `names` of `kind`; returns once the server confirmed (or the
    /// connection that held them is gone). Names not subscribed are no error. A subscribe of
    /// the same names waiting on another thread returns `Ok` at once (they stay unsubscribed).
    pub fn unsubscribe(&self, kind: Kind, names: &[&[u8]]) -> Result<()> {
        self.change(Action::Unsubscribe, kind, names)
    }

    fn change(&self, action: Action, kind: Kind, names: &[&[u8]]) -> Result<()> {
        if names.is_empty() {
            return Err(Error::invalid_argument("no channel or pattern given"));
        }
        let (reply, answer) = sync_mpsc::sync_channel(1);
        let request = Request::Change {
            action,
            kind,
            names: names.iter().map(|n| n.to_vec()).collect(),
            reply,
        };
        if self.requests.send(request).is_err() {
            return Err(self.closed());
        }
        answer.recv().unwrap_or_else(|_| Err(self.closed()))
    }

    fn closed(&self) -> Error {
        Error::new(
            Status::Closed,
            "the subscriber is closed (its client was closed)",
        )
    }

    /// The next message, waiting up to `timeout` (`None`: as long as it takes). `Ok(None)`: none
    /// came in time. CLOSED once the client was closed and every queued message was taken.
    /// Refused (INVALID_ARGUMENT) for a subscriber with a handler.
    pub fn next(&self, timeout: Option<Duration>) -> Result<Option<Message>> {
        self.refuse_when_pushed("next")?;
        match self.core.queue.take(timeout) {
            Taken::Message(message) => Ok(Some(message)),
            Taken::Empty => Ok(None),
            Taken::Closed => Err(self.closed()),
        }
    }

    /// A descriptor that is readable while messages wait (and once the subscriber is closed),
    /// for poll/epoll loops. Owned by the subscriber: do not close it. Refused for a subscriber
    /// with a handler.
    pub fn fd(&self) -> Result<RawFd> {
        self.refuse_when_pushed("fd")?;
        self.core.queue.fd()
    }

    fn refuse_when_pushed(&self, what: &str) -> Result<()> {
        match self.pushed {
            true => Err(Error::invalid_argument(format!(
                "{what}: this subscriber delivers its messages to its callback"
            ))),
            false => Ok(()),
        }
    }

    /// Messages waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.core.queue.len()
    }

    /// This subscriber's share of a Pub/Sub counter ([`Stat::PubsubMessages`],
    /// [`Stat::PubsubDropped`], [`Stat::PubsubResubscribes`]); 0 for any other.
    pub fn stat(&self, stat: Stat) -> u64 {
        let counters = &self.core.counters;
        match stat {
            Stat::PubsubMessages => counters.messages.load(Relaxed),
            Stat::PubsubDropped => counters.dropped.load(Relaxed),
            Stat::PubsubResubscribes => counters.resubscribes.load(Relaxed),
            _ => 0,
        }
    }

    /// Closes the connections and stops the handler: waits for a handler call under way to
    /// return (unless called from the handler itself); none starts afterwards. Messages still
    /// queued are dropped (not counted as dropped: nobody wanted them any more).
    pub fn close(&mut self) {
        let _ = self.requests.send(Request::Close);
        self.core.queue.close(true);
        if let Some(thread) = self.dispatcher.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
        // Called from the handler: its thread ends when the handler returns.
        // On a runtime thread (a callback of brisk's), waiting could hold up the very task it
        // waits for: the connections close in the background instead.
        if tokio::runtime::Handle::try_current().is_err() {
            self.finished.wait(CLOSE_WAIT);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.close();
    }
}

/// The handler's thread: takes each message in turn and hands it over, until the queue closes.
fn dispatch(core: &Core, mut handler: MessageHandler) {
    loop {
        match core.queue.take(None) {
            Taken::Message(message) => {
                // A panicking handler must not take the subscriber's thread down with it.
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&message)));
            }
            Taken::Empty => {}
            Taken::Closed => return,
        }
    }
}
