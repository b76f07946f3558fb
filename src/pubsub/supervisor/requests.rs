//! What callers ask: a subscribe or unsubscribe becomes commands on the links of the groups its
//! names belong to ([`send`](Supervisor::send), whose tokens tie each answer back to its command),
//! and the caller waits (a [`Waiter`]) until its names are confirmed, its commands answered, its
//! retries spent or its deadline passed. Kept apart from placement: a caller's outcome follows
//! from what the links report, never the other way round.

use super::{GroupState, Place, Supervisor, Token, Waiter};
use crate::core::pubsub::{Action, Group, Kind, commands};
use crate::core::{Error, Result, Status};
use crate::pubsub::link::Change;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::mpsc::SyncSender;
use std::time::Instant;

impl Supervisor {
    pub(super) fn change(
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
    pub(super) fn send(
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
            if placement && let Some(state) = self.groups.get_mut(&group) {
                state.placing.insert(token);
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

    pub(super) fn answered_unsubscribe_by_loss(&mut self, token: u64) {
        for waiter in &mut self.waiters {
            waiter.tokens.remove(&token);
        }
        self.finish_waiters();
    }

    /// Answers every caller whose request is complete.
    pub(super) fn finish_waiters(&mut self) {
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
    pub(super) fn fail_waiters(&mut self, which: impl Fn(&Waiter) -> bool, error: &Error) {
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
            if let Some(state) = self.groups.get_mut(&group)
                && state.members.remove(kind, name)
            {
                by_group.entry(group).or_default().push(name.clone());
            }
        }
        for (group, names) in by_group {
            if let Some(Place::On { link }) = self.groups.get(&group).map(|g| g.place) {
                self.send(link, group, Action::Unsubscribe, kind, &names, false);
            }
        }
    }

    pub(super) fn expire_waiters(&mut self) {
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
}
