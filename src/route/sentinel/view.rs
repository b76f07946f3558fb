//! The view: the master and replicas one resolution found, installed for commands to route
//! with (a new generation only when something changed), the nodes that left it drained, and
//! the replica a read goes to (leaving out those that failed lately).

use super::{Sentinel, SentinelNode, View, endpoint, hints};
use crate::config::ReadFrom;
use crate::core::cluster::NodeAddress;
use crate::core::{Result, Status};
use crate::node::Node;
use crate::telemetry::events::{Event, EventKind};
use crate::telemetry::stats::Stat;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How long a replica that failed is left out of the reads (they go to the master meanwhile).
const REPLICA_QUARANTINE: Duration = Duration::from_secs(5);

impl Sentinel {
    pub(super) fn new_data_node(&self, address: &NodeAddress) -> Result<Arc<Node>> {
        // Nothing here blocks: the TLS configuration is the first sentinel's, not read again.
        let settings = self
            .home
            .pool()
            .connect_settings()
            .for_endpoint(&self.config, endpoint(address))?;
        Ok(Arc::new(Node::new(settings, &self.nodes_context)))
    }

    /// Makes `master` (checked, on `node`) the master, with the replicas and sentinels
    /// `sentinel` knows; drains the nodes that left.
    pub(super) fn install(
        &self,
        sentinel: &SentinelNode,
        master: NodeAddress,
        node: Arc<Node>,
    ) -> Arc<View> {
        self.learn_sentinels(sentinel);
        let old = self.view();
        let master_changed = old.master.as_ref().is_none_or(|(a, _)| *a != master);
        let replica_addresses = match self.read_from {
            ReadFrom::Primary => Vec::new(),
            _ => self.read_replicas(sentinel, &master).unwrap_or_else(|| {
                // Keep the replicas known, as far as they still are replicas.
                old.replicas
                    .iter()
                    .map(|(a, _)| a.clone())
                    .filter(|a| *a != master)
                    .collect()
            }),
        };
        let old_master = old.master.as_ref().map(|(a, _)| a);
        let mut replicas = Vec::new();
        for address in replica_addresses {
            // A demoted master's connections are never reused: it gets a new node.
            let reusable = old
                .replicas
                .iter()
                .find(|(a, _)| *a == address && Some(a) != old_master.filter(|_| master_changed));
            let node = match reusable {
                Some((_, node)) => node.clone(),
                None => match self.new_data_node(&address) {
                    Ok(node) => node,
                    Err(_) => continue,
                },
            };
            replicas.push((address, node));
        }
        let unchanged = !master_changed
            && replicas.len() == old.replicas.len()
            && replicas
                .iter()
                .zip(&old.replicas)
                .all(|((_, a), (_, b))| Arc::ptr_eq(a, b));
        let stats = &self.nodes_context.observer.stats;
        stats.bump(Stat::TopologyRefreshes);
        if unchanged {
            return old;
        }
        let view = Arc::new(View {
            generation: self.generations.fetch_add(1, Relaxed) + 1,
            master: Some((master.clone(), node.clone())),
            replicas,
        });
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view.clone();
        self.retire_left_nodes(&old, &view);
        if master_changed {
            if let (Some(cache), Some(_)) = (&self.nodes_context.cache, &old.master) {
                // What was read from the old master relied on its tracking there.
                cache.topology_changed();
            }
            self.nodes_context.observer.emit(&Event {
                kind: EventKind::Topology,
                status: Status::Ok,
                command: b"SENTINEL",
                duration: Duration::ZERO,
                attempt: 1,
                address: node.address_c(),
                error_type: None,
                batch_size: 1,
                db: self.nodes_context.observer.db(),
            });
            self.start_hints();
        }
        view
    }

    /// Drains the nodes of `old` that `new` does not have: their idle connections close now,
    /// borrowed ones when they come back, and none is lent again.
    fn retire_left_nodes(&self, old: &View, new: &View) {
        let kept = |node: &Arc<Node>| {
            new.master
                .iter()
                .chain(new.replicas.iter())
                .any(|(_, n)| Arc::ptr_eq(n, node))
        };
        let new_master = new.master.as_ref().map(|(a, _)| a.to_string());
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        // Those nobody holds any more, with no connection and no mux, can go.
        retired.retain(|n| {
            Arc::strong_count(n) > 1 || n.pool().open_connections() > 0 || n.mux_started()
        });
        for (was_master, (address, node)) in old
            .master
            .iter()
            .map(|m| (true, m))
            .chain(old.replicas.iter().map(|r| (false, r)))
        {
            if kept(node) {
                continue;
            }
            let why = match (was_master, &new_master) {
                (true, Some(now)) => format!(
                    "no longer the master of '{}' (the sentinels name {now}); its connections \
                     are not reused",
                    self.master_name
                ),
                _ => format!(
                    "{address} is no longer a replica of '{}' the sentinels list for reads",
                    self.master_name
                ),
            };
            node.pool().drain(&why);
            retired.push(node.clone());
        }
    }

    /// Starts following `+switch-master` announcements, once.
    fn start_hints(&self) {
        if self.hints_started.swap(true, Relaxed) {
            return;
        }
        hints::start(self.this.clone(), self.nodes_context.closed.clone());
    }

    /// The replica to read from for a read that may go to one, by `read_from` (`None`: the
    /// master). Replicas that failed lately are left out.
    pub(super) fn pick_replica<'v>(&self, view: &'v View) -> Option<&'v Arc<Node>> {
        if view.replicas.is_empty() {
            return None;
        }
        let quarantine = self.quarantine.lock().unwrap_or_else(|p| p.into_inner());
        let usable = |(address, _): &&(NodeAddress, Arc<Node>)| {
            quarantine
                .get(address)
                .is_none_or(|failed| failed.elapsed() >= REPLICA_QUARANTINE)
        };
        let count = view.replicas.iter().filter(usable).count();
        let pick = match self.read_from {
            ReadFrom::ReplicaPreferred if count > 0 => fastrand::usize(..count),
            // The master is one of the choices (number `count`).
            ReadFrom::Any => fastrand::usize(..=count),
            _ => return None,
        };
        view.replicas
            .iter()
            .filter(usable)
            .nth(pick)
            .map(|(_, node)| node)
    }

    /// The data nodes: master, replicas, and retired nodes not yet let go of.
    pub(super) fn data_nodes(&self) -> Vec<Arc<Node>> {
        let view = self.view();
        let mut nodes: Vec<Arc<Node>> = view
            .master
            .iter()
            .chain(view.replicas.iter())
            .map(|(_, n)| n.clone())
            .collect();
        nodes.extend(
            self.retired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        nodes
    }
}
