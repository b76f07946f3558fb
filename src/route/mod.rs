//! The routing seam: for a command, which node it goes to, and what the topology does after a
//! failure or a redirection.
//!
//! Every topology implements [`Topology`]: a standalone server ([`standalone`]), a Redis Cluster
//! ([`cluster`]), a master and its replicas found through Redis Sentinel ([`sentinel`]);
//! multi-endpoint failover will be a further implementation. The public types (`Client`,
//! `Pipeline`, `Session`) and the drivers (`exec/`) ask the route and never look at which
//! topology it is; the attempt engine (`core::attempt`) decides what happens next and the
//! drivers apply its answers to the route (read the topology again, a MOVED slot, a failed
//! node).
//!
//! A topology that does not route by key (standalone, Sentinel) sends every command to one node
//! (Sentinel: the master, or a replica for a read when `read_from` says so); a standalone
//! server keeps the defaults: no redirections, one topology attempt.

mod background;
pub(crate) mod cluster;
pub(crate) mod sentinel;
pub(crate) mod standalone;

use crate::config::{Config, Mode};
use crate::core::attempt::{Redirect, Target};
use crate::core::cluster::NodeAddress;
use crate::core::command_table::CommandTable;
use crate::core::server_error::ServerErrorKind;
use crate::core::{Error, Result, Status};
use crate::net::ConnectSettings;
use crate::node::{Node, NodeContext, NodeRef};
use crate::resp::Args;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Where a command's keys put it, for the route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Key {
    /// The slot of its keys (`None`: keyless, or a topology without slots).
    pub slot: Option<u16>,
    /// A read that may go to a replica (as the client's `read_from` allows).
    pub replica_ok: bool,
}

/// A command's placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// One node serves all its keys.
    One(Key),
    /// Its keys live on several nodes (a cluster's slots): split it, or refuse it.
    Spread,
}

/// The topology `config` describes: the one place that looks at the mode.
pub(crate) fn new(config: &Config, nodes: NodeContext) -> Result<Arc<dyn Topology>> {
    Ok(match config.mode {
        Mode::Cluster => cluster::Cluster::new(config, nodes)?,
        Mode::Sentinel => sentinel::Sentinel::new(config, nodes)?,
        Mode::Standalone => {
            let settings = ConnectSettings::new(config, config.endpoint.clone())?;
            Arc::new(standalone::Standalone::new(Node::new(settings, &nodes)))
        }
    })
}

/// A topology: which node serves a command, and how the topology follows changes.
pub(crate) trait Topology: Send + Sync {
    /// Where `args` goes by its keys (`table`: the server's command table, when fetched).
    fn placement(&self, _table: Option<&CommandTable>, _args: &Args<'_>) -> Placement {
        Placement::One(Key::default())
    }

    /// Whether commands are routed by their keys, so that a batch may span nodes (pipelines
    /// then note each command's key as it is appended).
    fn routes_by_key(&self) -> bool {
        false
    }

    /// The node for a command with `key`, going where the attempt engine's `target` says, by
    /// the topology known now. `Ok(None)`: nothing is known yet; read the topology
    /// ([`Topology::refresh`], or wait for a [`Topology::refresh_ticket`]) and ask again. An
    /// error with status CLUSTERDOWN means no node serves the key right now (a failover in
    /// progress), a node failure for the attempt engine.
    fn node(&self, key: Key, target: &Target) -> Result<Option<NodeRef<'_>>>;

    /// The node for work that stays on one connection (a transaction, a session): the primary
    /// serving `slot`. Reads the topology first (blocking) when none is known.
    fn pinned(&self, slot: Option<u16>) -> Result<NodeRef<'_>>;

    /// The version of the topology now; [`Topology::refresh`] takes it back.
    fn generation(&self) -> u64 {
        0
    }

    /// Whether the generation can move while the client lives (what one serves may move to
    /// another node), so that long-lived users of a node (subscribers) should watch it.
    fn can_change(&self) -> bool {
        false
    }

    /// Reads the topology again (blocking) unless it changed since generation `seen`.
    fn refresh(&self, _seen: u64) -> Result<()> {
        Ok(())
    }

    /// Reads the topology again in the background (one read at a time).
    fn queue_refresh(&self) {}

    /// A ticket to wait without blocking for a background read of the topology that starts
    /// after this call. `None`: this topology never changes.
    fn refresh_ticket(&self) -> Option<Result<RefreshTicket>> {
        None
    }

    /// The topology answer an error reply of `kind` is, for this topology (MOVED, ASK, ... on
    /// a cluster); `None`: an answer like any other.
    fn redirect(&self, _kind: &ServerErrorKind) -> Option<Redirect> {
        None
    }

    /// After `MOVED slot node`: the slot lives at `node` now.
    fn moved(&self, _slot: u16, _node: &NodeAddress) {}

    /// `node` failed (it did not answer): it is suspect until the topology names it again.
    fn node_failed(&self, _node: &Node) {}

    /// Whole-topology attempts a command gets (see `core::attempt`).
    fn topology_attempts(&self) -> u32 {
        1
    }

    /// What one topology attempt is called in error messages.
    fn topology_attempt_name(&self) -> &'static str {
        "topology attempt"
    }

    /// Whether the client's retry policy applies per node unless the user chose one (a cluster
    /// says no: its topology attempts take the place of per-node retries, as in redis-py).
    fn retries_per_node_by_default(&self) -> bool {
        true
    }

    /// Every node known so far.
    fn nodes(&self) -> Vec<Arc<Node>>;

    /// The node that names the deployment in events before a command is routed.
    fn home(&self) -> &Node;

    /// Background upkeep: pools, and the topology's own refresh.
    fn maintain(&self);

    /// How often [`Topology::maintain`] should run, if ever.
    fn maintenance_period(&self) -> Option<Duration>;

    /// Closes every node's pool; later commands fail with CLOSED.
    fn close(&self);

    fn is_closed(&self) -> bool;
}

/// Waits, without holding a thread, for a background topology read.
pub(crate) struct RefreshTicket {
    finished: watch::Receiver<u64>,
    seen: u64,
    failure: Arc<Mutex<Option<Error>>>,
}

impl RefreshTicket {
    pub fn new(
        finished: watch::Receiver<u64>,
        seen: u64,
        failure: Arc<Mutex<Option<Error>>>,
    ) -> Self {
        RefreshTicket {
            finished,
            seen,
            failure,
        }
    }

    /// Completes when a read that started after the ticket was taken has finished; its failure,
    /// if it failed.
    pub async fn wait(mut self) -> Result<()> {
        let seen = self.seen;
        if self.finished.wait_for(|n| *n > seen).await.is_err() {
            return Err(Error::new(Status::Closed, "the client was closed"));
        }
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}
