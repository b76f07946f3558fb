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

use super::Core;
use super::link::{self, Change, Health, LinkContext, LinkSpec, News};
use crate::core::attempt::{Redirect, Target};
use crate::core::pubsub::{Action, Group, Kind, Members, commands};
use crate::core::retry::RetryPolicy;
use crate::core::{Error, Result, Status};
use crate::exec::Shared;
use crate::node::Node;
use crate::route::Key;
use crate::telemetry::events::{Event, EventKind};
use crate::telemetry::stats::Stat;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

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

/// Set when the supervisor has let go of every connection.
#[derive(Default)]
pub(crate) struct Finished {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Finished {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Waits up to `limit`; whether it finished.
    pub fn wait(&self, limit: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = self
            .changed
            .wait_timeout_while(done, limit, |done| !*done)
            .unwrap_or_else(|p| p.into_inner());
        *done
    }
}

/// Sets [`Finished`] however the supervisor ends (a panic included).
struct FinishGuard(Arc<Finished>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.set();
    }
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
    health: Health,
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

/// Why the supervisor stopped.
enum Ending {
    /// The subscriber is being freed: what is queued is dropped.
    Freed,
    /// The client was closed: what is queued can still be taken.
    ClientClosed,
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

    fn change(
        &mut self,
        action: Action,
        kind: Kind,
        names: Vec<Vec<u8>>,
        reply: SyncSender<Result<()>>,
    ) {
        let mut waiter = Waiter {
            action,
            kind,
            names: BTreeSet::new(),
            tokens: HashSet::new(),
            added: Vec::new(),
            reply,
            failures: 0,
            redirects: 0,
            deadline: self
                .shared
                .rules
                .command_deadline
                .map(|d| Instant::now() + d),
            refusal: None,
        };
        let mut by_group: BTreeMap<Group, Vec<Vec<u8>>> = BTreeMap::new();
        for name in names {
            let group = Group::of(kind, &name, self.by_slot);
            by_group.entry(group).or_default().push(name);
        }
        for (group, names) in by_group {
            match action {
                Action::Subscribe => {
                    let state = self.groups.entry(group).or_insert_with(GroupState::new);
                    for name in &names {
                        if state.members.insert(kind, name) {
                            waiter.added.push(name.clone());
                        }
                    }
                    waiter.names.extend(names.iter().cloned());
                    match state.place {
                        Place::On { link } => {
                            self.send(link, group, action, kind, &names, false);
                        }
                        Place::Waiting { refresh, .. } => {
                            // Someone waits: try now rather than at the end of a backoff.
                            state.place = Place::Waiting {
                                at: Instant::now(),
                                refresh,
                            };
                        }
                        // Placed with every member once it has left.
                        Place::Leaving { .. } => {}
                    }
                }
                Action::Unsubscribe => {
                    // A subscribe of these names still waiting (on another thread) is over:
                    // they will not be subscribed.
                    for other in &mut self.waiters {
                        if other.action == Action::Subscribe && other.kind == kind {
                            for name in &names {
                                other.names.remove(name);
                            }
                        }
                    }
                    let Some(state) = self.groups.get_mut(&group) else {
                        continue;
                    };
                    for name in &names {
                        state.members.remove(kind, name);
                    }
                    // A group on no connection has nothing on the server to undo.
                    if let Place::On { link } = state.place {
                        let tokens = self.send(link, group, action, kind, &names, false);
                        waiter.tokens.extend(tokens);
                    }
                }
            }
        }
        if waiter.is_done() {
            let _ = waiter.reply.send(Ok(()));
        } else {
            self.waiters.push(waiter);
        }
        self.finish_waiters();
    }

    /// Writes `action` for `names` on `link` (as many commands as it takes); their tokens.
    /// `placement`: part of placing `group` (its confirmation completes the placement).
    fn send(
        &mut self,
        link: u64,
        group: Group,
        action: Action,
        kind: Kind,
        names: &[Vec<u8>],
        placement: bool,
    ) -> Vec<u64> {
        let mut tokens = Vec::new();
        for command in commands(action, kind, names.iter().map(Vec::as_slice)) {
            let token = self.id();
            self.tokens.insert(
                token,
                Token {
                    link,
                    group,
                    action,
                    kind,
                    names: command[1..].to_vec(),
                },
            );
            if placement {
                if let Some(state) = self.groups.get_mut(&group) {
                    state.placing.insert(token);
                }
            }
            if let Some(state) = self.links.get(&link) {
                // A link that ended has its Down on the way, which deals with the group.
                let _ = state.tx.send(Change {
                    token,
                    action,
                    kind,
                    command,
                });
            }
            tokens.push(token);
        }
        tokens
    }

    fn heard(&mut self, news: News) {
        match news {
            News::Answered { token, result } => self.answered(token, result),
            News::Unsolicited {
                link,
                action: Action::Unsubscribe,
                kind,
                channel,
            } => self.dropped_by_server(link, kind, &channel),
            News::Unsolicited { .. } => {}
            News::Down {
                link,
                error,
                abandoned,
                was_up,
            } => self.link_down(link, error, abandoned, was_up),
            News::Refreshed => {
                self.refreshing = false;
                for state in self.groups.values_mut() {
                    if let Place::Waiting { at, refresh: true } = state.place {
                        state.place = Place::Waiting { at, refresh: false };
                    }
                }
            }
        }
    }

    fn answered(&mut self, token: u64, result: Result<()>) {
        let Some(t) = self.tokens.remove(&token) else {
            return;
        };
        match (t.action, result) {
            (Action::Subscribe, Ok(())) => {
                for waiter in &mut self.waiters {
                    if waiter.action == Action::Subscribe && waiter.kind == t.kind {
                        for name in &t.names {
                            waiter.names.remove(name);
                        }
                    }
                }
                self.finish_waiters();
                self.placement_answered(token, &t);
            }
            (Action::Subscribe, Err(error)) => self.refused(token, t, error),
            (Action::Unsubscribe, result) => {
                for waiter in &mut self.waiters {
                    if waiter.tokens.remove(&token) {
                        if let Err(e) = &result {
                            waiter.refusal = Some(e.clone());
                        }
                    }
                }
                self.finish_waiters();
                self.left_if_done(t.group, t.link);
            }
        }
    }

    /// A subscribe command of a group's placement was answered: once all are, the group is in
    /// place (and, if it had been lost, its link may have finished a resubscription).
    fn placement_answered(&mut self, token: u64, t: &Token) {
        let Some(state) = self.groups.get_mut(&t.group) else {
            return;
        };
        if state.place != (Place::On { link: t.link })
            || !state.placing.remove(&token)
            || !state.placing.is_empty()
        {
            return;
        }
        state.confirmed = true;
        state.failures = 0;
        state.redirects = 0;
        let Some(lost_at) = state.lost_at.take() else {
            return;
        };
        let count = state.members.len();
        let Some(link) = self.links.get_mut(&t.link) else {
            return;
        };
        link.restoring = link.restoring.saturating_sub(1);
        link.restored += count;
        let since = link.lost_since.map_or(lost_at, |s| s.min(lost_at));
        link.lost_since = Some(since);
        if link.restoring == 0 {
            let restored = std::mem::take(&mut link.restored);
            link.lost_since = None;
            self.resubscribed(t.link, restored, since);
        }
    }

    fn resubscribed(&self, link: u64, restored: usize, since: Instant) {
        let Some(state) = self.links.get(&link) else {
            return;
        };
        let core = &self.ctx.core;
        core.counters.resubscribed(&self.ctx.observer);
        let observer = &self.ctx.observer;
        if observer.enabled() && !self.shared.is_closed() {
            observer.emit(&Event {
                kind: EventKind::Resubscribe,
                status: Status::Ok,
                command: b"SUBSCRIBE",
                duration: since.elapsed(),
                attempt: 1,
                address: state.node.address_c(),
                error_type: None,
                batch_size: restored.min(u32::MAX as usize) as u32,
                db: observer.db(),
            });
        }
    }

    /// The server refused a subscribe command: a topology answer moves its group; any other
    /// refusal fails the callers waiting for its names.
    fn refused(&mut self, token: u64, t: Token, error: Error) {
        let redirect = error
            .server_kind()
            .and_then(|kind| self.shared.route.redirect(kind));
        let involved = |w: &Waiter| {
            w.action == Action::Subscribe
                && w.kind == t.kind
                && t.names.iter().any(|n| w.names.contains(n))
        };
        // The group is still where the command was sent (else it has moved on already, with
        // every name of it).
        let on_its_link = self
            .groups
            .get(&t.group)
            .is_some_and(|g| g.place == Place::On { link: t.link });
        match redirect {
            Some(Redirect::Moved { slot, node }) => {
                self.shared.route.moved(slot, &node);
                self.ctx.observer.stats.bump(Stat::Redirects);
                for waiter in self.waiters.iter_mut().filter(|w| involved(w)) {
                    waiter.redirects += 1;
                }
                self.fail_waiters(
                    |w| w.redirects > MAX_REDIRECTS,
                    &error.clone().context("too many redirections"),
                );
                if on_its_link {
                    self.redirected(t.group, &error);
                }
            }
            Some(_) => {
                // ASK, TRYAGAIN (a migration under way), CLUSTERDOWN: read the topology, back off.
                if on_its_link {
                    self.unplace(t.group, &error, true, true);
                }
            }
            None => {
                let error =
                    error.context(String::from_utf8_lossy(t.kind.command(Action::Subscribe)));
                self.fail_waiters(involved, &error);
                // The rest of the placement stands; the refused names are not subscribed.
                self.placement_answered(token, &t);
            }
        }
    }

    /// MOVED: the group goes where the route says now; at once the first time, after a
    /// backoff when the answers keep bouncing (the two nodes of a slot mid-migration disagree
    /// for a moment).
    fn redirected(&mut self, group: Group, error: &Error) {
        self.unplace(group, error, false, false);
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        state.redirects += 1;
        let redirects = state.redirects;
        if redirects > 1 {
            let at = Instant::now() + self.backoff(redirects - 1);
            if let Some(state) = self.groups.get_mut(&group) {
                state.place = Place::Waiting { at, refresh: false };
            }
        }
    }

    /// The server unsubscribed a shard channel by itself: its slot is served elsewhere now
    /// (or the node is no longer a primary). The group moves, after a topology read.
    fn dropped_by_server(&mut self, link: u64, kind: Kind, channel: &[u8]) {
        let group = Group::of(kind, channel, self.by_slot);
        let ours = self.groups.get(&group).is_some_and(|state| {
            state.place == Place::On { link } && state.members.contains(kind, channel)
        });
        if ours {
            let error = Error::new(
                Status::Connection,
                format!(
                    "the server unsubscribed {} on its own (its slot moved)",
                    String::from_utf8_lossy(channel)
                ),
            );
            self.unplace(group, &error, true, false);
        }
    }

    fn link_down(&mut self, link: u64, error: Option<Error>, abandoned: Vec<u64>, was_up: bool) {
        let Some(state) = self.links.remove(&link) else {
            // Closed on purpose (or already dealt with).
            return;
        };
        let error = error.unwrap_or_else(|| Error::new(Status::Connection, "connection closed"));
        if !was_up || matches!(error.status(), Status::Connection | Status::Timeout) {
            self.shared.route.node_failed(&state.node);
        }
        drop(state);
        let mut lost: Vec<u64> = abandoned;
        lost.extend(
            self.tokens
                .iter()
                .filter(|(_, t)| t.link == link)
                .map(|(token, _)| *token),
        );
        for token in lost {
            if let Some(t) = self.tokens.remove(&token) {
                if t.action == Action::Unsubscribe {
                    // The connection is gone, and what it was subscribed to with it.
                    self.answered_unsubscribe_by_loss(token);
                }
            }
        }
        let on_link: Vec<Group> = self
            .groups
            .iter()
            .filter(|(_, s)| s.place == Place::On { link })
            .map(|(g, _)| *g)
            .collect();
        for group in on_link {
            self.unplace(group, &error, true, true);
        }
        // Those that were leaving it have left.
        for state in self.groups.values_mut() {
            if state.place == (Place::Leaving { link }) {
                state.place = Place::Waiting {
                    at: Instant::now(),
                    refresh: false,
                };
            }
        }
    }

    /// A group leaving `link` whose unsubscribes there were all answered goes to its new node.
    fn left_if_done(&mut self, group: Group, link: u64) {
        let pending = self
            .tokens
            .values()
            .any(|t| t.group == group && t.link == link && t.action == Action::Unsubscribe);
        if let Some(state) = self.groups.get_mut(&group) {
            if state.place == (Place::Leaving { link }) && !pending {
                state.place = Place::Waiting {
                    at: Instant::now(),
                    refresh: false,
                };
            }
        }
    }

    fn has_placed_groups(&self) -> bool {
        self.groups
            .values()
            .any(|g| matches!(g.place, Place::On { .. }) && !g.members.is_empty())
    }

    fn has_shard_groups(&self) -> bool {
        self.by_slot
            && self
                .groups
                .iter()
                .any(|(g, s)| matches!(g, Group::Slot(_)) && !s.members.is_empty())
    }

    /// Reads the slot map now and then (see [`TOPOLOGY_CHECK`]) while there are shard groups on
    /// a cluster; whenever the route's topology has changed, moves every group whose node is
    /// another now: a shard group whose slot's owner changed, or (a topology without slots,
    /// such as Sentinel's, where one node serves everything) any group once the node changed.
    fn check_topology(&mut self) {
        if self.has_shard_groups() {
            let now = Instant::now();
            if now >= self.next_topology_check {
                self.next_topology_check = now + TOPOLOGY_CHECK;
                if !self.refreshing {
                    self.start_refresh();
                }
            }
        }
        let now = Instant::now();
        if now >= self.next_generation_check {
            self.next_generation_check = now + GENERATION_WATCH;
        }
        let generation = self.shared.route.generation();
        if generation == self.seen_generation {
            return;
        }
        self.seen_generation = generation;
        let route = &self.shared.route;
        let by_slot = self.by_slot;
        let moved: Vec<(Group, u64)> = self
            .groups
            .iter()
            .filter_map(|(group, state)| {
                let Place::On { link } = state.place else {
                    return None;
                };
                // On a cluster the home group is on any node: nothing to follow.
                if by_slot && *group == Group::Home {
                    return None;
                }
                let key = Key {
                    slot: group.slot(),
                    replica_ok: false,
                };
                let owner = route.node(key, &Target::default()).ok().flatten()?;
                let here = self.links.get(&link)?;
                (owner.address() != here.node.address()).then_some((*group, link))
            })
            .collect();
        for (group, link) in moved {
            self.leave(group, link);
        }
    }

    /// Moves `group` off `link`, whose node may still deliver its messages (a demoted primary
    /// keeps its subscribers): unsubscribes there first, and is placed where the route says
    /// once that was answered, so no message arrives through both nodes.
    fn leave(&mut self, group: Group, link: u64) {
        let error = Error::new(Status::Connection, "the node serving it changed");
        self.unplace(group, &error, false, false);
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        let commands = state.members.subscribe_commands();
        if commands.is_empty() {
            return;
        }
        state.place = Place::Leaving { link };
        for (kind, command) in commands {
            self.send(link, group, Action::Unsubscribe, kind, &command[1..], false);
        }
    }

    fn answered_unsubscribe_by_loss(&mut self, token: u64) {
        for waiter in &mut self.waiters {
            waiter.tokens.remove(&token);
        }
        self.finish_waiters();
    }

    /// Takes `group` off its connection: it is placed again after a backoff (`failed`) or at
    /// once, after a topology read (`refresh`) where the route has one.
    fn unplace(&mut self, group: Group, error: &Error, refresh: bool, failed: bool) {
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        if let Place::On { link } = state.place {
            if state.confirmed {
                // It was in place: now it is lost.
                state.lost_at.get_or_insert_with(Instant::now);
            } else if state.lost_at.is_some() {
                // A resubscription under way there will not complete.
                if let Some(link) = self.links.get_mut(&link) {
                    link.restoring = link.restoring.saturating_sub(1);
                }
            }
        }
        state.placing.clear();
        state.confirmed = false;
        self.reschedule(group, error, refresh, failed);
    }

    /// Sets when `group` (on no connection) is placed next. A failure (`failed`) counts against
    /// the group's backoff and against the callers waiting for it: those whose retries are
    /// spent fail with `error`.
    fn reschedule(&mut self, group: Group, error: &Error, refresh: bool, failed: bool) {
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        let now = Instant::now();
        if !failed {
            state.place = Place::Waiting { at: now, refresh };
            return;
        }
        state.failures += 1;
        let failures = state.failures;
        let at = now + self.backoff(failures);
        if let Some(state) = self.groups.get_mut(&group) {
            state.place = Place::Waiting { at, refresh };
        }
        let by_slot = self.by_slot;
        for waiter in &mut self.waiters {
            let waits_for_group = waiter.action == Action::Subscribe
                && waiter
                    .names
                    .iter()
                    .any(|n| Group::of(waiter.kind, n, by_slot) == group);
            if waits_for_group {
                waiter.failures += 1;
            }
        }
        let retries = self.reconnect.retries;
        self.fail_waiters(|w| w.failures > retries, error);
    }

    /// The delay before placement attempt `failures` (1 for the first after a loss): the retry
    /// policy's backoff; once its retries are spent, its longest (at least
    /// [`PAUSE_AFTER_RETRIES`]).
    fn backoff(&self, failures: u32) -> Duration {
        let policy = &self.reconnect;
        let attempt = failures.saturating_sub(1);
        let ms = policy.delay_without_history_ms(attempt.min(32), fastrand::u64(..));
        let delay = Duration::from_millis(u64::from(ms));
        if attempt < policy.retries {
            return delay;
        }
        delay
            .max(Duration::from_millis(u64::from(policy.cap_ms)))
            .max(PAUSE_AFTER_RETRIES)
    }

    /// Places every group whose time has come; starts a topology read for those that wait for
    /// one.
    fn place_due(&mut self) {
        let now = Instant::now();
        let due: Vec<Group> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                !g.members.is_empty()
                    && matches!(g.place, Place::Waiting { at, refresh: false } if at <= now)
            })
            .map(|(group, _)| *group)
            .collect();
        for group in due {
            self.place(group);
        }
        // After placing: a placement that found no node waits for a read started here (nothing
        // else would wake the supervisor for it).
        let wants_refresh = self.groups.values().any(|g| {
            !g.members.is_empty() && matches!(g.place, Place::Waiting { refresh: true, .. })
        });
        if wants_refresh && !self.refreshing {
            self.start_refresh();
        }
    }

    fn start_refresh(&mut self) {
        match self.shared.route.refresh_ticket() {
            Some(Ok(ticket)) => {
                self.refreshing = true;
                let news = self.ctx.news.clone();
                tokio::spawn(async move {
                    // A failed read still ends the wait: placing then uses what is known, and a
                    // connection that fails brings another read.
                    let _ = ticket.wait().await;
                    let _ = news.send(News::Refreshed);
                });
            }
            // Nothing to read (one server), or no way to read it now: place with what is known.
            None | Some(Err(_)) => self.heard(News::Refreshed),
        }
    }

    /// Puts `group` on a link to the node the route names for it and subscribes all of it.
    fn place(&mut self, group: Group) {
        let node = match self.home_link(group) {
            Some(link) => Ok(Some(link)),
            None => {
                let key = Key {
                    slot: group.slot(),
                    replica_ok: false,
                };
                match self.shared.route.node(key, &Target::default()) {
                    Ok(Some(node)) => Ok(Some(self.link_to(node.to_arc(), group))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        };
        let link = match node {
            Ok(Some(link)) => link,
            Ok(None) => {
                // The topology is not known: read it first; a second time in a row (the read
                // failed: no node answers), back off as after a failed connection.
                let Some(state) = self.groups.get_mut(&group) else {
                    return;
                };
                if !state.awaits_topology {
                    state.awaits_topology = true;
                    state.place = Place::Waiting {
                        at: Instant::now(),
                        refresh: true,
                    };
                    return;
                }
                let error = Error::new(
                    Status::Connection,
                    "no node of the cluster could be read for its slot map",
                );
                self.reschedule(group, &error, true, true);
                return;
            }
            Err(error) => {
                // CLUSTERDOWN: nobody serves the slot right now.
                self.reschedule(group, &error, true, true);
                return;
            }
        };
        let Some(state) = self.groups.get_mut(&group) else {
            return;
        };
        state.place = Place::On { link };
        state.awaits_topology = false;
        state.confirmed = false;
        if state.lost_at.is_some() {
            if let Some(link) = self.links.get_mut(&link) {
                link.restoring += 1;
            }
        }
        for (kind, command) in state.members.subscribe_commands() {
            self.send(link, group, Action::Subscribe, kind, &command[1..], true);
        }
    }

    /// On a cluster, the home group rides on a link the subscriber has already (any node serves
    /// channels and patterns, since PUBLISH reaches every node). Elsewhere it goes where the
    /// route says: in Sentinel mode, the master, not a link left on a demoted one.
    fn home_link(&self, group: Group) -> Option<u64> {
        if group != Group::Home || !self.by_slot {
            return None;
        }
        self.links.keys().min().copied()
    }

    /// The link to `node`: the one there is, or a new one.
    fn link_to(&mut self, node: Arc<Node>, group: Group) -> u64 {
        if let Some((id, _)) = self
            .links
            .iter()
            .find(|(_, l)| l.node.address() == node.address())
        {
            return *id;
        }
        let id = self.id();
        let mut settings = (**node.pool().connect_settings()).clone();
        // Its own connection: pushes are its traffic, not the client's router's; a cluster
        // replica's READONLY has no use here.
        settings.pushes = None;
        settings.handshake.readonly = false;
        let replaces_lost = self.groups.get(&group).is_some_and(|g| g.lost_at.is_some());
        let spec = LinkSpec {
            id,
            settings,
            replaces_lost,
            health: self.health,
            read_timeout: self.shared.read_timeout,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.tasks.retain(|task| !task.is_finished());
        self.tasks
            .push(tokio::spawn(link::run(spec, rx, self.ctx.clone())));
        self.links.insert(
            id,
            LinkState {
                node,
                tx,
                restoring: 0,
                restored: 0,
                lost_since: None,
            },
        );
        id
    }

    /// Answers every caller whose request is complete.
    fn finish_waiters(&mut self) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].is_done() {
                let waiter = self.waiters.swap_remove(i);
                let result = match waiter.refusal {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
                let _ = waiter.reply.send(result);
            } else {
                i += 1;
            }
        }
    }

    /// Fails the callers `which` selects with `error`, taking back what their subscribes added.
    fn fail_waiters(&mut self, which: impl Fn(&Waiter) -> bool, error: &Error) {
        let mut i = 0;
        while i < self.waiters.len() {
            if !which(&self.waiters[i]) {
                i += 1;
                continue;
            }
            let waiter = self.waiters.swap_remove(i);
            let _ = waiter.reply.send(Err(error.clone()));
            if waiter.action == Action::Subscribe {
                self.take_back(waiter.kind, &waiter.added);
            }
        }
    }

    /// A subscribe failed: its names leave the groups (and the server, where they may have
    /// been subscribed meanwhile).
    fn take_back(&mut self, kind: Kind, names: &[Vec<u8>]) {
        let mut by_group: BTreeMap<Group, Vec<Vec<u8>>> = BTreeMap::new();
        for name in names {
            let group = Group::of(kind, name, self.by_slot);
            if let Some(state) = self.groups.get_mut(&group) {
                if state.members.remove(kind, name) {
                    by_group.entry(group).or_default().push(name.clone());
                }
            }
        }
        for (group, names) in by_group {
            if let Some(Place::On { link }) = self.groups.get(&group).map(|g| g.place) {
                self.send(link, group, Action::Unsubscribe, kind, &names, false);
            }
        }
    }

    fn expire_waiters(&mut self) {
        let now = Instant::now();
        if self
            .waiters
            .iter()
            .any(|w| w.deadline.is_some_and(|d| d <= now))
        {
            let error = Error::new(
                Status::Timeout,
                "no confirmation from the server within the command deadline",
            );
            self.fail_waiters(|w| w.deadline.is_some_and(|d| d <= now), &error);
        }
    }

    /// Forgets groups with nothing in them and closes links that carry no group.
    fn sweep(&mut self) {
        let tokens = &self.tokens;
        self.groups.retain(|group, state| {
            !state.members.is_empty()
                || match state.place {
                    // Its unsubscribe (or a placement) may still be answered on the link.
                    Place::On { link } | Place::Leaving { link } => {
                        tokens.values().any(|t| t.group == *group && t.link == link)
                    }
                    Place::Waiting { .. } => false,
                }
        });
        let used: HashSet<u64> = self
            .groups
            .values()
            .filter_map(|g| match g.place {
                Place::On { link } | Place::Leaving { link } => Some(link),
                Place::Waiting { .. } => None,
            })
            .collect();
        let idle: Vec<u64> = self
            .links
            .keys()
            .filter(|id| !used.contains(id))
            .copied()
            .collect();
        for link in idle {
            // Dropping its sender ends the link; what it had on the server ends with it.
            self.links.remove(&link);
            let orphans: Vec<u64> = self
                .tokens
                .iter()
                .filter(|(_, t)| t.link == link)
                .map(|(token, _)| *token)
                .collect();
            for token in orphans {
                self.tokens.remove(&token);
                self.answered_unsubscribe_by_loss(token);
            }
        }
    }

    async fn shutdown(mut self, ending: Ending) {
        let _ = self.stop.send(true);
        let (status, why) = match ending {
            Ending::Freed => (Status::Closed, "the subscriber was freed"),
            Ending::ClientClosed => (Status::Closed, "the client was closed"),
        };
        let error = Error::new(status, why);
        for waiter in self.waiters.drain(..) {
            let _ = waiter.reply.send(Err(error.clone()));
        }
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            if let Request::Change { reply, .. } = request {
                let _ = reply.send(Err(error.clone()));
            }
        }
        self.links.clear();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.ctx.core.queue.close(matches!(ending, Ending::Freed));
    }
}

/// Waits until `at`, or for ever.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
