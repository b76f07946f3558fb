//! How the rest of the client sees a Sentinel deployment: the [`Topology`] implementation, one
//! node (the master, or a replica for reads when `read_from` allows) for every command, the
//! topology attempts that resolve the master again, and the upkeep of the data nodes.

use super::Sentinel;
use crate::config::ReadFrom;
use crate::core::Result;
use crate::core::attempt::{Redirect, Target};
use crate::core::command_table::{self, CommandTable};
use crate::core::server_error::ServerErrorKind;
use crate::node::{Node, NodeRef};
use crate::resp::Args;
use crate::route::{Key, Placement, RefreshTicket, Topology};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

impl Topology for Sentinel {
    fn placement(&self, table: Option<&CommandTable>, args: &Args<'_>) -> Placement {
        // Only a client that reads from replicas needs to know whether the command reads.
        let replica_ok =
            self.read_from != ReadFrom::Primary && command_table::read_only(table, args);
        Placement::One(Key {
            slot: None,
            replica_ok,
        })
    }

    fn node(&self, key: Key, target: &Target) -> Result<Option<NodeRef<'_>>> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let Some((_, master)) = &view.master else {
            return Ok(None);
        };
        if key.replica_ok
            && !target.primary_only
            && let Some(replica) = self.pick_replica(&view)
        {
            return Ok(Some(NodeRef::Shared(replica.clone())));
        }
        Ok(Some(NodeRef::Shared(master.clone())))
    }

    fn pinned(&self, _slot: Option<u16>) -> Result<NodeRef<'_>> {
        let mut view = self.view();
        if view.master.is_none() {
            view = self.resolve(view.generation)?;
        }
        let (_, master) = view.master.as_ref().expect("a resolved view has a master");
        Ok(NodeRef::Shared(master.clone()))
    }

    fn can_change(&self) -> bool {
        true
    }

    fn generation(&self) -> u64 {
        self.view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    fn refresh(&self, seen: u64) -> Result<()> {
        self.resolve(seen).map(drop)
    }

    fn queue_refresh(&self) {
        self.queue_resolution();
    }

    fn refresh_ticket(&self) -> Option<Result<RefreshTicket>> {
        self.background.ticket(|| self.queue_resolution())
    }

    /// READONLY: the master was demoted (a write refused, so it is safe to send again).
    fn redirect(&self, kind: &ServerErrorKind) -> Option<Redirect> {
        match kind {
            ServerErrorKind::ReadOnly => Some(Redirect::Refresh),
            _ => None,
        }
    }

    /// A replica that failed is left out of the reads for a while; a master that failed is
    /// resolved again by the attempt engine's topology attempt.
    fn node_failed(&self, node: &Node) {
        let view = self.view();
        let replica = view
            .replicas
            .iter()
            .find(|(_, n)| std::ptr::eq(Arc::as_ptr(n), node));
        if let Some((address, _)) = replica {
            self.quarantine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(address.clone(), Instant::now());
        }
    }

    /// Each attempt resolves the master again: after a failover that is what finds the new
    /// one, and when the master is fine it costs one question to a sentinel and a ROLE.
    fn topology_attempts(&self) -> u32 {
        self.topology_attempts
    }

    fn topology_attempt_name(&self) -> &'static str {
        "master resolution"
    }

    /// No per-node retries by default: a retry on the address that just failed would spend
    /// itself (and the connect timeout) on a master that may be gone; the topology attempts
    /// retry after resolving where the master is.
    fn retries_per_node_by_default(&self) -> bool {
        false
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.data_nodes()
    }

    fn home(&self) -> &Node {
        &self.home
    }

    /// Each pool's upkeep, and the periodic resolution (once a master is known).
    fn maintain(&self) {
        for node in self.data_nodes() {
            node.pool().maintain();
        }
        let view = self.view();
        let due = view.master.is_some()
            && self.refresh_interval.is_some_and(|interval| {
                let resolving = self.resolving.lock().unwrap_or_else(|p| p.into_inner());
                resolving
                    .last_started
                    .is_none_or(|t| t.elapsed() >= interval)
            });
        if due {
            let _ = self.resolve(view.generation);
        }
    }

    fn maintenance_period(&self) -> Option<Duration> {
        [
            self.nodes_context.pool.maintenance_period(),
            self.refresh_interval,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn close(&self) {
        self.closed.store(true, Relaxed);
        for node in self.data_nodes() {
            node.close();
        }
        for sentinel in self.sentinel_list() {
            sentinel.node.close();
        }
    }

    fn is_closed(&self) -> bool {
        Sentinel::is_closed(self)
    }
}
