//! Following a topology that changes under connections that stay up: reading the slot map now
//! and then while there are shard groups on a cluster, watching the route's generation, and
//! moving a group off a node that no longer serves it (unsubscribing there first, so that no
//! message arrives through both nodes).

use super::{GENERATION_WATCH, Place, Supervisor, TOPOLOGY_CHECK};
use crate::core::attempt::Target;
use crate::core::pubsub::{Action, Group};
use crate::core::{Error, Status};
use crate::pubsub::link::News;
use crate::route::Key;
use std::time::Instant;

impl Supervisor {
    pub(super) fn has_placed_groups(&self) -> bool {
        self.groups
            .values()
            .any(|g| matches!(g.place, Place::On { .. }) && !g.members.is_empty())
    }

    pub(super) fn has_shard_groups(&self) -> bool {
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
    pub(super) fn check_topology(&mut self) {
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

    pub(super) fn start_refresh(&mut self) {
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
}
