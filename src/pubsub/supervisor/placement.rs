//! Where groups go: placing a group on a link to the node the route names for it (a new link
//! or one there is), taking it off after a loss, the backoff before it is placed again, and
//! forgetting empty groups and idle links.

use super::{LinkState, PAUSE_AFTER_RETRIES, Place, Supervisor};
use crate::core::attempt::Target;
use crate::core::pubsub::{Action, Group};
use crate::core::{Error, Status};
use crate::node::Node;
use crate::pubsub::link::{self, LinkSpec};
use crate::route::Key;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

impl Supervisor {
    /// Takes `group` off its connection: it is placed again after a backoff (`failed`) or at
    /// once, after a topology read (`refresh`) where the route has one.
    pub(super) fn unplace(&mut self, group: Group, error: &Error, refresh: bool, failed: bool) {
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
    pub(super) fn backoff(&self, failures: u32) -> Duration {
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
    pub(super) fn place_due(&mut self) {
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
        if state.lost_at.is_some()
            && let Some(link) = self.links.get_mut(&link)
        {
            link.restoring += 1;
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

    /// Forgets groups with nothing in them and closes links that carry no group.
    pub(super) fn sweep(&mut self) {
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
}
