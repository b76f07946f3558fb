//! What links report ([`News`]): answers to subscribe and unsubscribe commands (confirmations
//! complete placements and callers; refusals fail callers or, for a topology answer such as
//! MOVED, move the group), the server's own unsubscriptions, a link's end, and the end of a
//! topology read. Also where a completed placement of lost groups counts as a resubscription
//! (the RESUBSCRIBE event).

use super::{MAX_REDIRECTS, Place, Supervisor, Token, Waiter};
use crate::core::attempt::Redirect;
use crate::core::pubsub::{Action, Group, Kind};
use crate::core::{Error, Result, Status};
use crate::pubsub::link::News;
use crate::telemetry::events::{Event, EventKind};
use crate::telemetry::stats::Stat;
use std::time::Instant;

impl Supervisor {
    pub(super) fn heard(&mut self, news: News) {
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
                    if waiter.tokens.remove(&token)
                        && let Err(e) = &result
                    {
                        waiter.refusal = Some(e.clone());
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
            if let Some(t) = self.tokens.remove(&token)
                && t.action == Action::Unsubscribe
            {
                // The connection is gone, and what it was subscribed to with it.
                self.answered_unsubscribe_by_loss(token);
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
        if let Some(state) = self.groups.get_mut(&group)
            && state.place == (Place::Leaving { link })
            && !pending
        {
            state.place = Place::Waiting {
                at: Instant::now(),
                refresh: false,
            };
        }
    }
}
