//! The brain of a subscriber: one task on brisk's runtime that owns what the subscriber wants,
//! where each subscription lives, and what to do when a connection is lost.
//!
//! Subscriptions are kept in groups (`core::pubsub::Group`): each slot's shard channels on a
//! Redis Cluster, and everything else in the home group. A group lives on one connection (a
//! [`link`](super::link)) to the node the route names for it (`Topology::node`): the slot's
//! owner, or any node for the home group. Several groups on one node share its link.
//!
//! When a link is lost (CLIENT KILL, a restart, a network cut, a failed health PING) or the
//! server drops a group on its own (an unsolicited `sunsubscribe`: the slot moved), the group
//! waits for a topology read (where the route has one to make) and a backoff by the client's
//! retry policy, then goes to whatever node the route names now, and all its subscriptions are
//! sent again. Once every group that had been confirmed is confirmed again on a link, that is a
//! resubscription: a RESUBSCRIBE event and `BRISK_STAT_PUBSUB_RESUBSCRIBES`. This goes on for as
//! long as the subscriber lives: after the policy's retries are spent, it keeps trying at the
//! policy's longest backoff (at least [`PAUSE_AFTER_RETRIES`]).
//!
//! A caller of subscribe waits for the server's confirmation of every name it gave. It fails
//! (and what it added is taken back) when the server refuses, when the policy's retries are
//! spent on failed connections, or at the command deadline.
//!
//! This file holds the supervisor's state (groups, links, commands in flight, waiting callers)
//! and its loop; the rest is split by job: [`requests`] (what callers ask and how they are
//! answered), [`placement`] (putting groups on links and taking them off), [`news`] (what links
//! report), [`topology`] (following topology changes under live connections) and [`shutdown`].

mod news;
mod placement;
mod requests;
mod shutdown;
mod topology;

use super::Core;
use super::link::{self, Change, LinkContext, News};
use crate::config::pubsub::HealthCheck;
use crate::core::pubsub::{Action, Group, Kind, Members};
use crate::core::retry::RetryPolicy;
use crate::core::{Error, Result};
use crate::exec::Shared;
use crate::node::Node;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

pub(crate) use shutdown::Finished;
use shutdown::{Ending, FinishGuard};

/// Once the retry policy's retries are spent, reconnecting goes on no faster than this.
pub(crate) const PAUSE_AFTER_RETRIES: Duration = Duration::from_millis(100);

/// Redirections (MOVED) one subscribe call follows before it fails.
const MAX_REDIRECTS: u32 = 16;

/// How often a subscriber with shard channels on a cluster reads the slot map (one read per
/// client at a time, shared with its commands'), to follow a failover that leaves its
/// connections up: a demoted primary keeps its shard subscribers, so nothing else tells.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(3);

/// How often a subscriber on a topology that can change compares the route's generation with
/// the one its placements were checked against (no I/O: the route moves it when its own
/// commands, hints or refreshes find a change, such as Sentinel's `+switch-master`).
const GENERATION_WATCH: Duration = Duration::from_millis(200);

/// What the subscriber's methods ask of the supervisor.
pub(crate) enum Request {
    Change {
        action: Action,
        kind: Kind,
        names: Vec<Vec<u8>>,
        reply: SyncSender<Result<()>>,
    },
    Close,
}

/// Where a group's subscriptions are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// On no connection: to be placed at `at`, after a topology read when `refresh`.
    Waiting {
        at: Instant,
        refresh: bool,
    },
    On {
        link: u64,
    },
    /// Moving away from `link`, whose node no longer owns the slot but still delivers (a
    /// demoted primary): placed again once its unsubscribe there was answered, so that no
    /// message arrives through both nodes.
    Leaving {
        link: u64,
    },
}

struct GroupState {
    members: Members,
    place: Place,
    /// Placements that failed in a row, for the backoff.
    failures: u32,
    /// MOVED answers in a row (a slot mid-migration is answered back and forth for a moment:
    /// after the first, each is followed after a backoff).
    redirects: u32,
    /// Its last placement found no node because the route knew no topology yet: one topology
    /// read is awaited without counting a failure (a fresh cluster client has read none); if
    /// the next placement finds none either, that is a failure (backoff, retries).
    awaits_topology: bool,
    /// Subscribe commands of the current placement not yet answered.
    placing: HashSet<u64>,
    /// Every command of the current placement was answered.
    confirmed: bool,
    /// Since when its confirmed subscriptions are gone (lost with a connection, or dropped by
    /// the server): its next complete placement is a resubscription.
    lost_at: Option<Instant>,
}

impl GroupState {
    fn new() -> GroupState {
        GroupState {
            members: Members::default(),
            place: Place::Waiting {
                at: Instant::now(),
                refresh: false,
            },
            failures: 0,
            redirects: 0,
            awaits_topology: false,
            placing: HashSet::new(),
            confirmed: false,
            lost_at: None,
        }
    }
}

struct LinkState {
    node: Arc<Node>,
    tx: mpsc::UnboundedSender<Change>,
    /// Lost groups placed on it and not confirmed yet; when the last is, it has resubscribed.
    restoring: usize,
    /// Subscriptions those groups brought back, and since when they had been gone.
    restored: usize,
    lost_since: Option<Instant>,
}

/// A command written (or about to be) on a link.
struct Token {
    link: u64,
    group: Group,
    action: Action,
    kind: Kind,
    names: Vec<Vec<u8>>,
}

/// A caller waiting in subscribe or unsubscribe.
struct Waiter {
    action: Action,
    kind: Kind,
    /// Subscribe: the names whose confirmation has not arrived.
    names: BTreeSet<Vec<u8>>,
    /// Unsubscribe: the commands not answered yet.
    tokens: HashSet<u64>,
    /// Subscribe: the names this call added (taken back if it fails).
    added: Vec<Vec<u8>>,
    reply: SyncSender<Result<()>>,
    failures: u32,
    redirects: u32,
    deadline: Option<Instant>,
    /// Unsubscribe: a refusal among its commands.
    refusal: Option<Error>,
}

impl Waiter {
    fn is_done(&self) -> bool {
        match self.action {
            Action::Subscribe => self.names.is_empty(),
            Action::Unsubscribe => self.tokens.is_empty(),
        }
    }
}

pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    reconnect: RetryPolicy,
    health: HealthCheck,
    ctx: LinkContext,
    stop: watch::Sender<bool>,
    requests: mpsc::UnboundedReceiver<Request>,
    news: mpsc::UnboundedReceiver<News>,
    /// Shard channels are placed by slot (the route routes by key).
    by_slot: bool,
    groups: BTreeMap<Group, GroupState>,
    links: HashMap<u64, LinkState>,
    tokens: HashMap<u64, Token>,
    waiters: Vec<Waiter>,
    next_id: u64,
    /// A topology read is under way.
    refreshing: bool,
    /// The route's topology generation the placements were last checked against, and when the
    /// topology is read next (with shard channels on a cluster).
    seen_generation: u64,
    next_topology_check: Instant,
    /// Whether the route's generation can move (see [`GENERATION_WATCH`]), and when to look.
    watch_generation: bool,
    next_generation_check: Instant,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    finished: Arc<Finished>,
}

impl Supervisor {
    pub fn new(
        shared: Arc<Shared>,
        core: Arc<Core>,
        requests: mpsc::UnboundedReceiver<Request>,
        finished: Arc<Finished>,
    ) -> Supervisor {
        let (news_tx, news) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let settings = &shared.pubsub;
        let ctx = LinkContext {
            core,
            observer: shared.observer.clone(),
            news: news_tx,
            stop: stop_rx,
            client_closed: shared.async_state.closed_signal(),
        };
        Supervisor {
            reconnect: settings.reconnect,
            health: settings.health,
            by_slot: shared.route.routes_by_key(),
            watch_generation: shared.route.can_change(),
            shared,
            ctx,
            stop,
            requests,
            news,
            groups: BTreeMap::new(),
            links: HashMap::new(),
            tokens: HashMap::new(),
            waiters: Vec::new(),
            next_id: 0,
            refreshing: false,
            seen_generation: 0,
            next_topology_check: Instant::now() + TOPOLOGY_CHECK,
            next_generation_check: Instant::now() + GENERATION_WATCH,
            tasks: Vec::new(),
            finished,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn run(mut self) {
        let _finish = FinishGuard(self.finished.clone());
        let mut client_closed = self.shared.async_state.closed_signal();
        let ending = loop {
            let wake = self.next_wake();
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(Request::Change { action, kind, names, reply }) => {
                        self.change(action, kind, names, reply)
                    }
                    Some(Request::Close) | None => break Ending::Freed,
                },
                Some(news) = self.news.recv() => self.heard(news),
                _ = link::stopped(&mut client_closed) => break Ending::ClientClosed,
                _ = until(wake) => {}
            }
            self.expire_waiters();
            self.check_topology();
            self.place_due();
            self.sweep();
        };
        self.shutdown(ending).await;
    }

    /// The next point in time something is due: a group's placement, a caller's deadline.
    fn next_wake(&self) -> Option<Instant> {
        let placements = self.groups.values().filter_map(|g| match g.place {
            Place::Waiting { at, refresh: false } if !g.members.is_empty() => Some(at),
            _ => None,
        });
        let deadlines = self.waiters.iter().filter_map(|w| w.deadline);
        let topology = self.has_shard_groups().then_some(self.next_topology_check);
        let generation = (self.watch_generation && self.has_placed_groups())
            .then_some(self.next_generation_check);
        placements
            .chain(deadlines)
            .chain(topology)
            .chain(generation)
            .min()
    }
}

/// Waits until `at`, or for ever.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
