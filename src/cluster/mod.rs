//! Redis Cluster: the topology (slot map and one pool per node) and how it is kept current.
//!
//! The pure parts (slot hashing, parsing `CLUSTER SHARDS`/`CLUSTER SLOTS`, the slot map) live
//! in `core::cluster`; this module owns the live state around them. Commands are run by
//! [`batch`], which groups them by node, follows redirections and starts new whole-cluster
//! attempts after node failures; [`keys`] says which slot a command belongs to and splits the
//! multi-key commands whose keys span slots.
//!
//! The topology is read lazily (on the first command), again on demand after MOVED, READONLY,
//! CLUSTERDOWN and node failures (throttled: callers that saw the same map share one refresh),
//! and periodically in the background. Seed nodes are never forgotten: when every node learnt
//! from the cluster failed, refreshes go back to them, names resolved again.

pub(crate) mod batch;
pub(crate) mod keys;

use crate::config::{Config, Endpoint, ReadFrom};
use crate::core::cluster::{NodeAddress, SlotMap, parse_shards, parse_slots};
use crate::core::server_error::ServerErrorKind;
use crate::core::{Error, Result, Status};
use crate::events::{Event, EventKind, Observer};
use crate::net::ConnectSettings;
use crate::pool::{Pool, PoolSettings};
use crate::resp::{Args, Reply};
use crate::stats::Stat;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The slot map as of one refresh (or MOVED), with a generation number: callers remember the
/// generation they routed with, so that only the first of many who saw a stale map refreshes it.
pub(crate) struct Topology {
    pub slots: SlotMap,
    pub generation: u64,
}

pub(crate) struct Cluster {
    /// How every node connection is made (the address differs per node).
    config: Config,
    pool_settings: PoolSettings,
    observer: Arc<Observer>,
    pub read_from: ReadFrom,
    pub error_retry_attempts: u32,
    refresh_interval: Option<Duration>,
    seeds: Vec<NodeAddress>,
    /// Nodes a refresh asks, most trusted first: seeds and every node learnt from the cluster,
    /// minus nodes that failed since. Never empty for long: it falls back to the seeds.
    startup: Mutex<Vec<NodeAddress>>,
    topology: RwLock<Arc<Topology>>,
    pools: RwLock<HashMap<NodeAddress, Arc<Pool>>>,
    /// The first seed's pool, which names the cluster where one address is wanted.
    first_seed_pool: Arc<Pool>,
    /// Held while a refresh runs; the time of the last one.
    refreshing: Mutex<Option<Instant>>,
    generations: AtomicU64,
    background_refresh_queued: AtomicBool,
    /// Background topology reads finished (successful or not), for async commands waiting for
    /// one; and how the last one failed, if it did.
    background_refreshes: watch::Sender<u64>,
    last_background_failure: Mutex<Option<Error>>,
    closed: AtomicBool,
}

/// A refresh attempted less than this long after the previous one waits for the topology to
/// settle instead of hammering the nodes (redirect storms during a migration or failover).
const MIN_REFRESH_GAP: Duration = Duration::from_millis(100);

impl Cluster {
    pub fn new(config: &Config, observer: Arc<Observer>) -> Result<Cluster> {
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
        let pool_settings = PoolSettings::from_config(config);
        // Made here (not at the first connect) so that a bad TLS setting fails brisk_client_new.
        let first_pool = Arc::new(node_pool(
            ConnectSettings::new(config, endpoint(first))?,
            read_from,
            &pool_settings,
            &observer,
        ));
        let pools = HashMap::from([(first.clone(), first_pool.clone())]);
        Ok(Cluster {
            first_seed_pool: first_pool,
            config: config.clone(),
            pool_settings,
            observer,
            read_from,
            error_retry_attempts: config.cluster.error_retry_attempts.max(1),
            refresh_interval: crate::config::limit(config.cluster.refresh_interval_ms),
            startup: Mutex::new(seeds.clone()),
            seeds,
            topology: RwLock::new(Arc::new(Topology {
                slots: SlotMap::empty(),
                generation: 0,
            })),
            pools: RwLock::new(pools),
            refreshing: Mutex::new(None),
            generations: AtomicU64::new(0),
            background_refresh_queued: AtomicBool::new(false),
            background_refreshes: watch::channel(0).0,
            last_background_failure: Mutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn install(&self, slots: SlotMap) -> Arc<Topology> {
        let next = Arc::new(Topology {
            slots,
            generation: self.generations.fetch_add(1, Relaxed) + 1,
        });
        *self.topology.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        next
    }

    /// The pool of `node`, created on first use with the client's settings.
    pub fn pool(&self, node: &NodeAddress) -> Result<Arc<Pool>> {
        if self.is_closed() {
            return Err(crate::pool::closed());
        }
        if let Some(pool) = self
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
        {
            return Ok(pool.clone());
        }
        let mut pools = self.pools.write().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(node) {
            return Ok(pool.clone());
        }
        // Runs on a runtime worker for async commands: nothing here may block (the TLS
        // configuration is the first seed's, not read from disk again).
        let settings = self
            .first_seed_pool
            .connect_settings()
            .for_endpoint(&self.config, endpoint(node))?;
        let pool = Arc::new(node_pool(
            settings,
            self.read_from,
            &self.pool_settings,
            &self.observer,
        ));
        pools.insert(node.clone(), pool.clone());
        Ok(pool)
    }

    pub fn first_seed_pool(&self) -> &Pool {
        &self.first_seed_pool
    }

    /// Every pool made so far.
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let pools = self.pools.read().unwrap_or_else(|p| p.into_inner());
        pools.values().cloned().collect()
    }

    /// The node a command for `slot` goes to: the slot's primary, or (for a read, as
    /// `read_from` says, unless `primary_only`) one of its replicas. A keyless command (`None`)
    /// goes to any primary. Reads the topology first if none is known yet.
    pub fn node_for(
        &self,
        slot: Option<u16>,
        read_only: bool,
        primary_only: bool,
    ) -> Result<(NodeAddress, u64)> {
        let mut topology = self.topology();
        if topology.slots.shards().is_empty() {
            topology = self.refresh(topology.generation)?;
        }
        let node = self.pick(&topology, slot, read_only, primary_only)?;
        Ok((node, topology.generation))
    }

    /// [`Cluster::node_for`] by the map known now, without reading the topology (which blocks):
    /// `None` when no map is known yet.
    pub fn known_node_for(
        &self,
        slot: Option<u16>,
        read_only: bool,
        primary_only: bool,
    ) -> Result<Option<NodeAddress>> {
        let topology = self.topology();
        if topology.slots.shards().is_empty() {
            return Ok(None);
        }
        self.pick(&topology, slot, read_only, primary_only)
            .map(Some)
    }

    fn pick(
        &self,
        topology: &Topology,
        slot: Option<u16>,
        read_only: bool,
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
        let node = match (read_only && !primary_only, self.read_from) {
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
    pub fn moved(self: &Arc<Self>, slot: u16, node: &NodeAddress) {
        {
            let mut current = self.topology.write().unwrap_or_else(|p| p.into_inner());
            if current
                .slots
                .shard(slot)
                .is_some_and(|s| &s.primary == node)
            {
                return;
            }
            *current = Arc::new(Topology {
                slots: current.slots.moved(slot, node),
                generation: self.generations.fetch_add(1, Relaxed) + 1,
            });
        }
        self.queue_refresh();
    }

    /// Refreshes the topology on a runtime thread, unless one is queued already. False when no
    /// thread could be started for it.
    pub fn queue_refresh(self: &Arc<Self>) -> bool {
        if self.background_refresh_queued.swap(true, Relaxed) {
            return true;
        }
        let cluster = self.clone();
        let generation = self.topology().generation;
        let queued = crate::runtime::spawn_blocking(move || {
            let failure = cluster.refresh(generation).err();
            *cluster
                .last_background_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = failure;
            // Cleared before the count moves: whoever sees the new count and asks again gets a
            // new read, not a "queued already" for this finished one.
            cluster.background_refresh_queued.store(false, Relaxed);
            cluster.background_refreshes.send_modify(|n| *n += 1);
        });
        if !queued {
            self.background_refresh_queued.store(false, Relaxed);
        }
        queued
    }

    /// Waits (without blocking a thread) until a background topology read that starts after
    /// this call has finished; its failure, if it failed. Many callers share one read.
    pub async fn fresh_topology(self: &Arc<Self>) -> Result<()> {
        let mut finished = self.background_refreshes.subscribe();
        let seen = *finished.borrow_and_update();
        if !self.queue_refresh() {
            return Err(Error::new(
                Status::Internal,
                "the async runtime is not running (could not start its threads)",
            ));
        }
        // The sender lives as long as the cluster, which the caller holds.
        let _ = finished.wait_for(|n| *n > seen).await;
        match self
            .last_background_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// A node failed (CONNECTION, TIMEOUT, CLUSTERDOWN): it is no longer asked for the topology
    /// until a refresh names it again. The seeds come back when nothing else is left.
    pub fn node_failed(&self, node: &NodeAddress) {
        let mut startup = self.startup.lock().unwrap_or_else(|p| p.into_inner());
        startup.retain(|n| n != node);
        if startup.is_empty() {
            startup.extend(self.seeds.iter().cloned());
        }
    }

    /// Re-reads the topology unless it changed since generation `seen` (then the caller routes
    /// with the newer one). Asks the startup nodes, then the seeds, one at a time, and takes the
    /// first answer that assigns slots.
    pub fn refresh(&self, seen: u64) -> Result<Arc<Topology>> {
        let mut last = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_closed() {
            return Err(crate::pool::closed());
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
                return Err(crate::pool::closed());
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
                    self.observer.stats.bump(Stat::TopologyRefreshes);
                    let address = self.pool(node)?;
                    self.observer.emit(&Event {
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
                        self.node_failed(node);
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
        let pool = self.pool(node)?;
        let deadline = self
            .pool_settings
            .max_wait
            .map(|wait| Instant::now() + wait);
        let mut conn = pool.get(deadline)?;
        let shards_args: [&[u8]; 2] = [b"CLUSTER", b"SHARDS"];
        let result = match conn.command(&Args::from_slices(&shards_args)) {
            Ok(reply) => parse_shards(reply.node(), &node.host),
            Err(e) if is_unknown_command(&e) => {
                let slots_args: [&[u8]; 2] = [b"CLUSTER", b"SLOTS"];
                conn.command(&Args::from_slices(&slots_args))
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

    /// Background upkeep: each pool's, and the periodic topology refresh.
    pub fn maintain(&self) {
        for pool in self.pools() {
            pool.maintain();
        }
        let due = self.refresh_interval.is_some_and(|interval| {
            let last = *self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            last.is_none_or(|t| t.elapsed() >= interval)
        });
        if due {
            let _ = self.refresh(self.topology().generation);
        }
    }

    /// How often [`Cluster::maintain`] should run, if ever.
    pub fn maintenance_period(&self) -> Option<Duration> {
        [
            self.pool_settings.maintenance_period(),
            self.refresh_interval,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn close(&self) {
        self.closed.store(true, Relaxed);
        for pool in self.pools() {
            pool.close();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

/// A node's pool. With `read_from` other than PRIMARY its connections send READONLY (harmless
/// on a primary), so a replica serves reads and a primary demoted by a failover answers writes
/// with MOVED.
fn node_pool(
    mut settings: ConnectSettings,
    read_from: ReadFrom,
    pool_settings: &PoolSettings,
    observer: &Arc<Observer>,
) -> Pool {
    settings.handshake.readonly = read_from != ReadFrom::Primary;
    Pool::new(settings, pool_settings.clone(), observer.clone())
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
