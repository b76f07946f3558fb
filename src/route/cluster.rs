//! Redis Cluster: the topology (slot map and one node per cluster node) and how it is kept
//! current.
//!
//! The pure parts (slot hashing, parsing `CLUSTER SHARDS`/`CLUSTER SLOTS`, the slot map, which
//! slot a command's keys are in and how spread multi-key commands split) live in
//! `core::cluster`; this module owns the live state around them and answers the routing seam's
//! questions ([`Topology`]). The drivers (`exec/`) run commands by those answers: a batch over
//! several nodes is grouped by node (`exec::batch`), MOVED/ASK/TRYAGAIN/CLUSTERDOWN/READONLY and
//! node failures are followed by the attempt engine's rules (`core::attempt`).
//!
//! The topology is read lazily (on the first command), again on demand after MOVED, READONLY,
//! CLUSTERDOWN and node failures (throttled: callers that saw the same map share one refresh),
//! and periodically in the background. Seed nodes are never forgotten: when every node learnt
//! from the cluster failed, refreshes go back to them, names resolved again.

use super::background::BackgroundRefresh;
use super::{Key, Placement, RefreshTicket, Topology};
use crate::config::{Config, Endpoint, ReadFrom};
use crate::core::attempt::{Redirect, Target};
use crate::core::cluster::keys;
use crate::core::cluster::{NodeAddress, SlotMap, parse_shards, parse_slots};
use crate::core::command_table::{self, CommandTable};
use crate::core::server_error::ServerErrorKind;
use crate::core::{Error, Result, Status};
use crate::net::ConnectSettings;
use crate::node::{Node, NodeContext, NodeRef};
use crate::resp::{Args, Reply};
use crate::telemetry::events::{Event, EventKind};
use crate::telemetry::stats::Stat;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// The slot map as of one refresh (or MOVED), with a generation number: callers remember the
/// generation they routed with, so that only the first of many who saw a stale map refreshes it.
pub(crate) struct SlotTopology {
    pub slots: SlotMap,
    pub generation: u64,
}

pub(crate) struct Cluster {
    /// This cluster, for the background work it starts.
    this: Weak<Cluster>,
    /// How every node connection is made (the address differs per node).
    config: Config,
    nodes_context: NodeContext,
    read_from: ReadFrom,
    error_retry_attempts: u32,
    refresh_interval: Option<Duration>,
    seeds: Vec<NodeAddress>,
    /// Nodes a refresh asks, most trusted first: seeds and every node learnt from the cluster,
    /// minus nodes that failed since. Never empty for long: it falls back to the seeds.
    startup: Mutex<Vec<NodeAddress>>,
    topology: RwLock<Arc<SlotTopology>>,
    nodes: RwLock<HashMap<NodeAddress, Arc<Node>>>,
    /// The first seed, which names the cluster where one address is wanted.
    first_seed: Arc<Node>,
    /// Held while a refresh runs; the time of the last one.
    refreshing: Mutex<Option<Instant>>,
    generations: AtomicU64,
    /// Background topology reads, one at a time, that async commands wait for.
    background: BackgroundRefresh,
    closed: AtomicBool,
}

/// A refresh attempted less than this long after the previous one waits for the topology to
/// settle instead of hammering the nodes (redirect storms during a migration or failover).
const MIN_REFRESH_GAP: Duration = Duration::from_millis(100);

impl Cluster {
    /// The cluster of `config`'s seed nodes.
    pub fn new(config: &Config, nodes_context: NodeContext) -> Result<Arc<Cluster>> {
        let seeds: Vec<NodeAddress> = config
            .nodes
            .iter()
            .map(|(host, port)| NodeAddress {
                host: host.clone(),
                port: *port,
            })
            .collect();
        let Some(first) = seeds.first() else {
            return Err(Error::invalid_argument(
                "cluster mode needs at least one node (brisk_config_add_node)",
            ));
        };
        let read_from = config.cluster.read_from;
        // Made here (not at the first connect) so that a bad TLS setting fails brisk_client_new;
        // every other node shares its TLS configuration.
        let settings = ConnectSettings::new(config, endpoint(first))?;
        let first_node = Arc::new(node(settings, read_from, &nodes_context));
        let nodes = HashMap::from([(first.clone(), first_node.clone())]);
        Ok(Arc::new_cyclic(|this| Cluster {
            this: this.clone(),
            first_seed: first_node,
            config: config.clone(),
            nodes_context,
            read_from,
            error_retry_attempts: config.cluster.error_retry_attempts.max(1),
            refresh_interval: crate::config::limit(config.cluster.refresh_interval_ms),
            startup: Mutex::new(seeds.clone()),
            seeds,
            topology: RwLock::new(Arc::new(SlotTopology {
                slots: SlotMap::empty(),
                generation: 0,
            })),
            nodes: RwLock::new(nodes),
            refreshing: Mutex::new(None),
            generations: AtomicU64::new(0),
            background: BackgroundRefresh::default(),
            closed: AtomicBool::new(false),
        }))
    }

    pub fn topology(&self) -> Arc<SlotTopology> {
        self.topology
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn install(&self, slots: SlotMap) -> Arc<SlotTopology> {
        let next = Arc::new(SlotTopology {
            slots,
            generation: self.generations.fetch_add(1, Relaxed) + 1,
        });
        let previous = std::mem::replace(
            &mut *self.topology.write().unwrap_or_else(|p| p.into_inner()),
            next.clone(),
        );
        self.owners_changed(&previous.slots, &next.slots);
        next
    }

    /// A failover or a slot move: the client-side cache drops what it read (the tracking
    /// state it relied on was on the old owners).
    fn owners_changed(&self, before: &SlotMap, after: &SlotMap) {
        if let Some(cache) = &self.nodes_context.cache
            && !before.shards().is_empty()
            && !before.same_owners(after)
        {
            cache.topology_changed();
        }
    }

    /// The node at `address`, created on first use with the client's settings.
    pub fn node_at(&self, address: &NodeAddress) -> Result<Arc<Node>> {
        if self.is_closed() {
            return Err(crate::node::pool::closed());
        }
        if let Some(node) = self.read_nodes().get(address) {
            return Ok(node.clone());
        }
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(node) = nodes.get(address) {
            return Ok(node.clone());
        }
        // Runs on a runtime worker for async commands: nothing here may block (the TLS
        // configuration is the first seed's, not read from disk again).
        let settings = self
            .first_seed
            .pool()
            .connect_settings()
            .for_endpoint(&self.config, endpoint(address))?;
        let node = Arc::new(node(settings, self.read_from, &self.nodes_context));
        nodes.insert(address.clone(), node.clone());
        Ok(node)
    }

    fn read_nodes(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NodeAddress, Arc<Node>>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The address of a node of this cluster.
    fn address_of(&self, node: &Node) -> Option<NodeAddress> {
        self.read_nodes()
            .iter()
            .find(|(_, n)| std::ptr::eq(Arc::as_ptr(n), node))
            .map(|(address, _)| address.clone())
    }

    /// The node a command for `slot` goes to: the slot's primary, or (for a read, as
    /// `read_from` says, unless `primary_only`) one of its replicas. A keyless command (`None`)
    /// goes to any primary. Reads the topology first if none is known yet.
    fn node_for(
        &self,
        slot: Option<u16>,
        replica_ok: bool,
        primary_only: bool,
    ) -> Result<NodeAddress> {
        let mut topology = self.topology();
        if topology.slots.shards().is_empty() {
            topology = self.refresh_from(topology.generation)?;
        }
        self.pick(&topology, slot, replica_ok, primary_only)
    }

    fn pick(
        &self,
        topology: &SlotTopology,
        slot: Option<u16>,
        replica_ok: bool,
        primary_only: bool,
    ) -> Result<NodeAddress> {
        let shards = topology.slots.shards();
        let shard = match slot {
            Some(slot) => match topology.slots.shard(slot) {
                Some(shard) => shard,
                None => {
                    return Err(Error::new(
                        Status::ClusterDown,
                        format!("slot {slot} is not served by any node of the cluster"),
                    ));
                }
            },
            None => &shards[fastrand::usize(..shards.len())],
        };
        let node = match (replica_ok && !primary_only, self.read_from) {
            (true, ReadFrom::ReplicaPreferred) if !shard.replicas.is_empty() => {
                &shard.replicas[fastrand::usize(..shard.replicas.len())]
            }
            (true, ReadFrom::Any) => {
                let pick = fastrand::usize(..=shard.replicas.len());
                shard.replicas.get(pick).unwrap_or(&shard.primary)
            }
            _ => &shard.primary,
        };
        Ok(node.clone())
    }

    /// After `MOVED slot node`: the slot belongs to `node` from now on, and the rest of the map
    /// is probably stale too, so a refresh is queued in the background.
    fn slot_moved(&self, slot: u16, node: &NodeAddress) {
        {
            let mut current = self.topology.write().unwrap_or_else(|p| p.into_inner());
            if current
                .slots
                .shard(slot)
                .is_some_and(|s| &s.primary == node)
            {
                return;
            }
            let next = Arc::new(SlotTopology {
                slots: current.slots.moved(slot, node),
                generation: self.generations.fetch_add(1, Relaxed) + 1,
            });
            self.owners_changed(&current.slots, &next.slots);
            *current = next;
        }
        self.queue_background_refresh();
    }

    /// Refreshes the topology on a runtime thread, unless one is queued already. False when no
    /// thread could be started for it.
    fn queue_background_refresh(&self) -> bool {
        let Some(cluster) = self.this.upgrade() else {
            return false;
        };
        let generation = self.topology().generation;
        self.background
            .queue(move || cluster.refresh_from(generation).map(drop))
    }

    /// A node failed (CONNECTION, TIMEOUT, CLUSTERDOWN): it is no longer asked for the topology
    /// until a refresh names it again. The seeds come back when nothing else is left.
    fn forget_startup_node(&self, node: &NodeAddress) {
        let mut startup = self.startup.lock().unwrap_or_else(|p| p.into_inner());
        startup.retain(|n| n != node);
        if startup.is_empty() {
            startup.extend(self.seeds.iter().cloned());
        }
    }

    /// Re-reads the topology unless it changed since generation `seen` (then the caller routes
    /// with the newer one). Asks the startup nodes, then the seeds, one at a time, and takes the
    /// first answer that assigns slots.
    fn refresh_from(&self, seen: u64) -> Result<Arc<SlotTopology>> {
        let mut last = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_closed() {
            return Err(crate::node::pool::closed());
        }
        let current = self.topology();
        if current.generation != seen && !current.slots.shards().is_empty() {
            return Ok(current);
        }
        if let Some(previous) = *last {
            let since = previous.elapsed();
            if since < MIN_REFRESH_GAP {
                std::thread::sleep(MIN_REFRESH_GAP - since);
            }
        }
        *last = Some(Instant::now());
        let mut candidates = self
            .startup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for seed in &self.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let mut failures = Vec::new();
        for node in &candidates {
            if self.is_closed() {
                return Err(crate::node::pool::closed());
            }
            match self.read_topology(node) {
                Ok(slots) => {
                    let learnt = slots.addresses();
                    {
                        let mut startup = self.startup.lock().unwrap_or_else(|p| p.into_inner());
                        for address in &learnt {
                            if !startup.contains(address) {
                                startup.push(address.clone());
                            }
                        }
                    }
                    let observer = &self.nodes_context.observer;
                    observer.stats.bump(Stat::TopologyRefreshes);
                    let address = self.node_at(node)?;
                    observer.emit(&Event {
                        kind: EventKind::Topology,
                        status: Status::Ok,
                        command: b"CLUSTER",
                        duration: Duration::ZERO,
                        attempt: 1,
                        address: address.address_c(),
                        error_type: None,
                        batch_size: 1,
                        db: 0,
                    });
                    return Ok(self.install(slots));
                }
                Err(e) => {
                    // Only a node that did not answer leaves the startup list; one that answered
                    // with a map we cannot use yet (mid-failover) may be right a moment later.
                    if matches!(e.status(), Status::Connection | Status::Timeout) {
                        self.forget_startup_node(node);
                    }
                    failures.push(format!("{node}: {}", e.message()));
                }
            }
        }
        Err(Error::new(
            Status::Connection,
            format!(
                "no cluster node answered with the topology ({})",
                failures.join("; ")
            ),
        ))
    }

    /// `CLUSTER SHARDS` from `node` (Redis 7+), else `CLUSTER SLOTS`.
    fn read_topology(&self, node: &NodeAddress) -> Result<SlotMap> {
        let node_handle = self.node_at(node)?;
        let pool = node_handle.pool();
        let deadline = self
            .nodes_context
            .pool
            .max_wait
            .map(|wait| Instant::now() + wait);
        let mut conn = pool.get(deadline)?;
        let shards_args: [&[u8]; 2] = [b"CLUSTER", b"SHARDS"];
        let result = match conn.metadata_command(&Args::from_slices(&shards_args)) {
            Ok(reply) => parse_shards(reply.node(), &node.host),
            Err(e) if is_unknown_command(&e) => {
                let slots_args: [&[u8]; 2] = [b"CLUSTER", b"SLOTS"];
                conn.metadata_command(&Args::from_slices(&slots_args))
                    .and_then(|reply: Reply| parse_slots(reply.node(), &node.host))
            }
            Err(e) => Err(e),
        };
        pool.put(conn);
        let shards = result?;
        let slots = SlotMap::new(shards);
        if slots.shards().is_empty() {
            return Err(Error::new(
                Status::ClusterDown,
                "the node knows no slots (not part of a cluster yet?)",
            ));
        }
        Ok(slots)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

impl Topology for Cluster {
    fn placement(&self, table: Option<&CommandTable>, args: &Args<'_>) -> Placement {
        let slot = match keys::placement(table, args) {
            keys::Placement::Anywhere => None,
            keys::Placement::Slot(slot) => Some(slot),
            keys::Placement::Spread => return Placement::Spread,
        };
        // Only a client that reads from replicas needs to know whether the command reads.
        let replica_ok =
            self.read_from != ReadFrom::Primary && command_table::read_only(table, args);
        Placement::One(Key { slot, replica_ok })
    }

    fn routes_by_key(&self) -> bool {
        true
    }

    fn node(&self, key: Key, target: &Target) -> Result<Option<NodeRef<'_>>> {
        let address = match &target.ask {
            Some(address) => address.clone(),
            None => {
                let topology = self.topology();
                if topology.slots.shards().is_empty() {
                    return Ok(None);
                }
                self.pick(&topology, key.slot, key.replica_ok, target.primary_only)?
            }
        };
        self.node_at(&address)
            .map(|node| Some(NodeRef::Shared(node)))
    }

    fn pinned(&self, slot: Option<u16>) -> Result<NodeRef<'_>> {
        let address = self.node_for(slot, false, true)?;
        self.node_at(&address).map(NodeRef::Shared)
    }

    fn can_change(&self) -> bool {
        true
    }

    fn generation(&self) -> u64 {
        self.topology().generation
    }

    fn refresh(&self, seen: u64) -> Result<()> {
        self.refresh_from(seen).map(drop)
    }

    fn queue_refresh(&self) {
        self.queue_background_refresh();
    }

    fn refresh_ticket(&self) -> Option<Result<RefreshTicket>> {
        self.background.ticket(|| self.queue_background_refresh())
    }

    fn redirect(&self, kind: &ServerErrorKind) -> Option<Redirect> {
        Some(match kind {
            ServerErrorKind::Moved { slot, address } => Redirect::Moved {
                slot: *slot,
                node: NodeAddress::parse(address)?,
            },
            ServerErrorKind::Ask { address, .. } => Redirect::Ask(NodeAddress::parse(address)?),
            ServerErrorKind::TryAgain => Redirect::TryAgain,
            ServerErrorKind::ClusterDown | ServerErrorKind::ReadOnly => Redirect::Refresh,
            _ => return None,
        })
    }

    fn moved(&self, slot: u16, node: &NodeAddress) {
        self.slot_moved(slot, node);
    }

    fn node_failed(&self, node: &Node) {
        if let Some(address) = self.address_of(node) {
            self.forget_startup_node(&address);
        }
    }

    fn topology_attempts(&self) -> u32 {
        self.error_retry_attempts
    }

    fn topology_attempt_name(&self) -> &'static str {
        "cluster attempt"
    }

    fn retries_per_node_by_default(&self) -> bool {
        false
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.read_nodes().values().cloned().collect()
    }

    fn home(&self) -> &Node {
        &self.first_seed
    }

    /// Each pool's upkeep, and the periodic topology refresh.
    fn maintain(&self) {
        for node in self.nodes() {
            node.pool().maintain();
        }
        let due = self.refresh_interval.is_some_and(|interval| {
            let last = *self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            last.is_none_or(|t| t.elapsed() >= interval)
        });
        if due {
            let _ = self.refresh_from(self.topology().generation);
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
        for node in self.nodes() {
            node.close();
        }
    }

    fn is_closed(&self) -> bool {
        Cluster::is_closed(self)
    }
}

/// A cluster node. With `read_from` other than PRIMARY its connections send READONLY (harmless
/// on a primary), so a replica serves reads and a primary demoted by a failover answers writes
/// with MOVED.
fn node(mut settings: ConnectSettings, read_from: ReadFrom, ctx: &NodeContext) -> Node {
    settings.handshake.readonly = read_from != ReadFrom::Primary;
    Node::new(settings, ctx)
}

fn endpoint(node: &NodeAddress) -> Endpoint {
    Endpoint::Tcp {
        host: node.host.clone(),
        port: node.port,
    }
}

/// `ERR unknown subcommand 'SHARDS'` (Redis < 7).
fn is_unknown_command(e: &Error) -> bool {
    matches!(e.server_kind(), Some(ServerErrorKind::Other))
        && e.message().to_ascii_lowercase().contains("unknown")
}
