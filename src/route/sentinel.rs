//! Redis Sentinel: a master and its replicas, found through the sentinels that watch them, and
//! followed through failovers.
//!
//! The nodes of the config are the sentinels. The master is resolved lazily (on the first
//! command) and again whenever something says it may have moved:
//! - the sentinels are asked in order, each with a short timeout (`sentinel.timeout_ms`), for
//!   `SENTINEL get-master-addr-by-name`;
//! - the node named must say `master` to `ROLE` itself (over the pooled connection that will
//!   carry commands). A sentinel that has not heard of a failover yet names the old master, and a
//!   demoted master says `master` for seconds after the sentinels switched: when the two
//!   disagree the resolution waits briefly and starts again, the contradicted sentinel asked
//!   last, a bounded number of times. The sentinel whose answer holds moves to the front;
//! - the other sentinels are learnt from it (`SENTINEL sentinels`), so that the seed list is
//!   not the only hope, and the replicas too (`SENTINEL replicas`) when reads may go to them.
//!
//! What triggers a resolution: a command finding no master known yet, a `READONLY` reply (the
//! master was demoted: [`Topology::redirect`]), a failed master (the attempt engine's new
//! topology attempt), a `+switch-master` announcement from a sentinel ([`hints`]; only a hint:
//! the resolution decides; with replica reads, the sentinels' replica events too), and the
//! periodic refresh (`cluster_refresh_interval_ms`, default 60 s). When the master's address
//! changes its old node is drained (idle connections closed, borrowed ones closed when given
//! back, none lent again) and a TOPOLOGY event is emitted.
//!
//! Commands that fail during a switch follow the client's retry rules: each topology attempt
//! (`cluster_error_retry_attempts`, default 3) resolves the master again, and a write that may
//! have been applied is never replayed in SAFE mode. A dead replica is set aside for a while and
//! its reads go to the master.

mod hints;

use super::background::BackgroundRefresh;
use super::{Key, Placement, RefreshTicket, Topology};
use crate::config::{Config, Endpoint, ReadFrom, limit};
use crate::core::attempt::{Redirect, Target};
use crate::core::cluster::NodeAddress;
use crate::core::command_table::{self, CommandTable};
use crate::core::sentinel::{Role, parse_instances, parse_master_address, parse_role};
use crate::core::server_error::ServerErrorKind;
use crate::core::{Error, Result, Status};
use crate::net::ConnectSettings;
use crate::node::pool::PoolSettings;
use crate::node::{Node, NodeContext, NodeRef};
use crate::resp::{Args, Reply};
use crate::telemetry::events::{Event, EventKind};
use crate::telemetry::stats::Stat;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// Rounds (a sentinel's answer, then ROLE) one resolution makes before giving up while the
/// sentinel and the node disagree (or the node does not answer).
const RESOLUTION_ROUNDS: u32 = 3;

/// A resolution attempted less than this long after the previous one waits (a storm of failing
/// commands resolves once, not once each).
const MIN_RESOLUTION_GAP: Duration = Duration::from_millis(100);

/// How long a replica that failed is left out of the reads (they go to the master meanwhile).
const REPLICA_QUARANTINE: Duration = Duration::from_secs(5);

/// Sentinels learnt beyond the seeds are capped (a misconfigured deployment could list many).
const MAX_SENTINELS: usize = 32;

/// One sentinel: its address and the node whose pool carries our questions.
struct SentinelNode {
    address: NodeAddress,
    node: Arc<Node>,
}

/// The master and replicas as of one resolution.
#[derive(Default)]
struct View {
    generation: u64,
    master: Option<(NodeAddress, Arc<Node>)>,
    /// Replicas that may serve reads (only looked up when `read_from` sends reads to them).
    replicas: Vec<(NodeAddress, Arc<Node>)>,
}

/// Serialises resolutions and remembers how the last one went, for the callers that waited
/// for it.
#[derive(Default)]
struct Resolving {
    last_started: Option<Instant>,
    last_failure: Option<Error>,
}

pub(crate) struct Sentinel {
    this: Weak<Sentinel>,
    master_name: String,
    /// The user's config: how data nodes are connected to.
    config: Config,
    /// How sentinels are connected to: their own credentials, database 0, the short timeout.
    sentinel_config: Config,
    nodes_context: NodeContext,
    sentinel_context: NodeContext,
    timeout: Option<Duration>,
    read_from: ReadFrom,
    topology_attempts: u32,
    /// How often the master (and the replicas) are resolved again in the background.
    refresh_interval: Option<Duration>,
    /// Asked in this order; the one whose answer last held first. Seeds and learnt ones.
    sentinels: Mutex<Vec<Arc<SentinelNode>>>,
    /// The first seed sentinel, which names the deployment in events before a master is known.
    home: Arc<Node>,
    view: RwLock<Arc<View>>,
    /// Nodes that left the view (drained), kept until nobody uses them, so that closing the
    /// client closes them too.
    retired: Mutex<Vec<Arc<Node>>>,
    /// Replicas that failed, and when.
    quarantine: Mutex<HashMap<NodeAddress, Instant>>,
    resolving: Mutex<Resolving>,
    resolutions_started: AtomicU64,
    generations: AtomicU64,
    background: BackgroundRefresh,
    hints_started: AtomicBool,
    closed: AtomicBool,
}

impl Sentinel {
    /// The deployment `config` describes: its nodes are the sentinels.
    pub fn new(config: &Config, nodes_context: NodeContext) -> Result<Arc<Sentinel>> {
        let Some(master_name) = config.sentinel.master_name.clone() else {
            return Err(Error::invalid_argument(
                "sentinel mode needs the master's name (brisk_config_set_sentinel_master)",
            ));
        };
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
                "sentinel mode needs at least one sentinel (brisk_config_add_node)",
            ));
        };
        let sentinel_config = sentinel_config(config);
        let timeout = limit(config.sentinel.timeout_ms);
        let sentinel_context = NodeContext {
            pool: PoolSettings {
                // Questions are asked one at a time (resolutions are serialised).
                size: 1,
                min_idle: 0,
                max_wait: timeout,
                health_check_interval: None,
                ..nodes_context.pool.clone()
            },
            // Sentinels hold no data: nothing read from them is cached (and they cannot track).
            cache: None,
            ..nodes_context.clone()
        };
        // Made here so that a bad TLS setting fails brisk_client_new; every other node, sentinel
        // or data node, shares its TLS configuration.
        let first_settings = ConnectSettings::new(&sentinel_config, endpoint(first))?;
        let home = Arc::new(Node::new(first_settings, &sentinel_context));
        let mut sentinels = vec![Arc::new(SentinelNode {
            address: first.clone(),
            node: home.clone(),
        })];
        for seed in &seeds[1..] {
            let settings = home
                .pool()
                .connect_settings()
                .for_endpoint(&sentinel_config, endpoint(seed))?;
            sentinels.push(Arc::new(SentinelNode {
                address: seed.clone(),
                node: Arc::new(Node::new(settings, &sentinel_context)),
            }));
        }
        Ok(Arc::new_cyclic(|this| Sentinel {
            this: this.clone(),
            master_name,
            config: config.clone(),
            sentinel_config,
            nodes_context,
            sentinel_context,
            timeout,
            read_from: config.cluster.read_from,
            topology_attempts: config.cluster.error_retry_attempts.max(1),
            refresh_interval: limit(config.cluster.refresh_interval_ms),
            sentinels: Mutex::new(sentinels),
            home,
            view: RwLock::new(Arc::default()),
            retired: Mutex::default(),
            quarantine: Mutex::default(),
            resolving: Mutex::default(),
            resolutions_started: AtomicU64::new(0),
            generations: AtomicU64::new(0),
            background: BackgroundRefresh::default(),
            hints_started: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }))
    }

    fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn sentinel_list(&self) -> Vec<Arc<SentinelNode>> {
        self.sentinels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    fn closed_error() -> Error {
        crate::node::pool::closed()
    }

    /// Resolves the master unless the view changed since generation `seen` (then the caller
    /// routes with the newer one). Callers that wait while another resolution runs take its
    /// outcome instead of starting one more.
    fn resolve(&self, seen: u64) -> Result<Arc<View>> {
        let asked = self.resolutions_started.load(Relaxed);
        let mut resolving = self.resolving.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_closed() {
            return Err(Self::closed_error());
        }
        let view = self.view();
        if view.master.is_some() && view.generation != seen {
            return Ok(view);
        }
        if self.resolutions_started.load(Relaxed) != asked {
            // One started after this caller asked, and has finished: it is the answer.
            return match &resolving.last_failure {
                Some(failure) => Err(failure.clone()),
                None => Ok(self.view()),
            };
        }
        if let Some(previous) = resolving.last_started {
            let since = previous.elapsed();
            if since < MIN_RESOLUTION_GAP {
                std::thread::sleep(MIN_RESOLUTION_GAP - since);
            }
        }
        resolving.last_started = Some(Instant::now());
        self.resolutions_started.fetch_add(1, Relaxed);
        let result = self.resolve_now();
        resolving.last_failure = result.as_ref().err().cloned();
        result
    }

    /// Asks the sentinels for the master and checks it with ROLE, again (after a pause) while
    /// they disagree, at most [`RESOLUTION_ROUNDS`] times. A sentinel whose answer the node
    /// contradicted is asked after the others in the next rounds (it may not have heard of a
    /// failover yet); the one whose answer holds moves to the front of the list.
    fn resolve_now(&self) -> Result<Arc<View>> {
        let started = Instant::now();
        let mut disagreement = None;
        let mut doubted: Vec<Arc<SentinelNode>> = Vec::new();
        for round in 0..RESOLUTION_ROUNDS {
            if round > 0 {
                std::thread::sleep(Duration::from_millis(100 * u64::from(round)));
            }
            if self.is_closed() {
                return Err(Self::closed_error());
            }
            let (sentinel, master) = self.ask_sentinels(&doubted)?;
            let node = self.node_for_master(&master)?;
            let error = match self.role_of(&node) {
                Ok(Role::Master) => {
                    self.to_front(&sentinel);
                    return Ok(self.install(&sentinel, master, node));
                }
                Ok(role) => Error::new(
                    Status::Connection,
                    format!(
                        "sentinel {} names {master} as the master of '{}', but {master} says \
                         it is a {}",
                        sentinel.address,
                        self.master_name,
                        role.name()
                    ),
                ),
                // The node is down or not reachable yet: the failover may be under way.
                Err(e) if matches!(e.status(), Status::Connection | Status::Timeout) => {
                    e.context(format!(
                        "sentinel {} names {master} as the master of '{}', but its ROLE \
                         check failed",
                        sentinel.address, self.master_name
                    ))
                }
                // Refused credentials and the like: asking again will not help.
                Err(e) => return Err(e.context(format!("checking the ROLE of master {master}"))),
            };
            disagreement = Some(error);
            doubted.push(sentinel);
        }
        let error = disagreement.expect("at least one round");
        Err(error.detail(format!(
            "asked and checked {RESOLUTION_ROUNDS} times over {} ms",
            started.elapsed().as_millis()
        )))
    }

    /// Asks the sentinels in order (those in `doubted` last) where the master is, and returns
    /// the first answer. CONNECTION when none answered, SENTINEL when those that answered do not
    /// know the name.
    fn ask_sentinels(
        &self,
        doubted: &[Arc<SentinelNode>],
    ) -> Result<(Arc<SentinelNode>, NodeAddress)> {
        let name = self.master_name.as_bytes();
        let question: [&[u8]; 3] = [b"SENTINEL", b"get-master-addr-by-name", name];
        let mut unknown = Vec::new();
        let mut failures = Vec::new();
        // The status of a failure other than an unreachable sentinel (refused credentials...).
        let mut other = None;
        let is_doubted = |s: &Arc<SentinelNode>| doubted.iter().any(|d| Arc::ptr_eq(d, s));
        let (trusted, suspect): (Vec<_>, Vec<_>) = self
            .sentinel_list()
            .into_iter()
            .partition(|s| !is_doubted(s));
        for sentinel in trusted.into_iter().chain(suspect) {
            if self.is_closed() {
                return Err(Self::closed_error());
            }
            let answer = self
                .ask(&sentinel.node, &question)
                .and_then(|reply| parse_master_address(reply.node()));
            match answer {
                Ok(Some(master)) => return Ok((sentinel, master)),
                Ok(None) => unknown.push(sentinel.address.to_string()),
                Err(e) => {
                    if !matches!(e.status(), Status::Connection | Status::Timeout) {
                        other.get_or_insert(e.status());
                    }
                    failures.push(describe(&sentinel.address, &e));
                }
            }
        }
        let name = &self.master_name;
        let failures = failures.join("; ");
        if !unknown.is_empty() {
            let mut message = format!(
                "no sentinel knows a master named '{name}' ({} answered that they monitor no \
                 such master",
                unknown.join(", ")
            );
            if !failures.is_empty() {
                message.push_str(&format!("; the others failed: {failures}"));
            }
            message.push(')');
            return Err(Error::new(Status::Sentinel, message));
        }
        let tried = self.sentinel_list().len();
        match other {
            Some(status) => Err(Error::new(
                status,
                format!("no sentinel answered where master '{name}' is ({failures})"),
            )),
            None => Err(Error::new(
                Status::Connection,
                format!("no sentinel answered (tried {tried}: {failures})"),
            )),
        }
    }

    /// One question to one sentinel, within the sentinel timeout (connecting included).
    fn ask(&self, node: &Node, args: &[&[u8]]) -> Result<Reply> {
        let pool = node.pool();
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            let mut conn = pool.get(deadline)?;
            let result = match deadline {
                Some(deadline) => conn.bound_request(Instant::now(), self.timeout, Some(deadline)),
                None => Ok(()),
            }
            .and_then(|()| conn.command(&Args::from_slices(args)));
            // A pooled connection the sentinel had closed meanwhile: take another.
            let replace = result.is_err() && conn.stale_on_reuse();
            pool.put(conn);
            if !replace {
                return result;
            }
        }
    }

    /// What the node says it is, asked over a connection of its pool (which then carries
    /// commands), within the sentinel timeout to connect.
    fn role_of(&self, node: &Node) -> Result<Role> {
        let question: [&[u8]; 1] = [b"ROLE"];
        let pool = node.pool();
        let connect_by = self.timeout.map(|t| Instant::now() + t);
        loop {
            let mut conn = pool.get(connect_by)?;
            let result = conn
                .command(&Args::from_slices(&question))
                .and_then(|reply| parse_role(reply.node()));
            let replace = result.is_err() && conn.stale_on_reuse();
            pool.put(conn);
            if !replace {
                return result;
            }
        }
    }

    fn to_front(&self, sentinel: &Arc<SentinelNode>) {
        let mut sentinels = self.sentinels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = sentinels.iter().position(|s| Arc::ptr_eq(s, sentinel)) {
            let answered = sentinels.remove(at);
            sentinels.insert(0, answered);
        }
    }

    /// Adds the sentinels `sentinel` knows of (best effort: the list stays as it is if it
    /// cannot say).
    fn learn_sentinels(&self, sentinel: &SentinelNode) {
        let name = self.master_name.as_bytes();
        let question: [&[u8]; 3] = [b"SENTINEL", b"sentinels", name];
        let Ok(others) = self
            .ask(&sentinel.node, &question)
            .and_then(|reply| parse_instances(reply.node()))
        else {
            return;
        };
        let mut sentinels = self.sentinels.lock().unwrap_or_else(|p| p.into_inner());
        // A sentinel not linked to this one yet is still worth asking; one it believes down is
        // not.
        for other in others.into_iter().filter(|s| !s.is_down()) {
            if sentinels.len() >= MAX_SENTINELS {
                break;
            }
            if sentinels.iter().any(|s| s.address == other.address) {
                continue;
            }
            let Ok(settings) = self
                .home
                .pool()
                .connect_settings()
                .for_endpoint(&self.sentinel_config, endpoint(&other.address))
            else {
                continue;
            };
            let node = Arc::new(Node::new(settings, &self.sentinel_context));
            sentinels.push(Arc::new(SentinelNode {
                address: other.address,
                node,
            }));
        }
    }

    /// The replicas `sentinel` lists that may serve reads; `None` if it cannot say.
    fn read_replicas(
        &self,
        sentinel: &SentinelNode,
        master: &NodeAddress,
    ) -> Option<Vec<NodeAddress>> {
        let name = self.master_name.as_bytes();
        let question: [&[u8]; 3] = [b"SENTINEL", b"replicas", name];
        let instances = self
            .ask(&sentinel.node, &question)
            .and_then(|reply| parse_instances(reply.node()))
            .ok()?;
        Some(
            instances
                .into_iter()
                .filter(|r| r.is_usable_replica() && &r.address != master)
                .map(|r| r.address)
                .collect(),
        )
    }

    /// The node to check as the master at `address`: the current master's, a replica's (a
    /// promoted replica keeps its pool), or a new one.
    fn node_for_master(&self, address: &NodeAddress) -> Result<Arc<Node>> {
        let view = self.view();
        let known = view
            .master
            .iter()
            .chain(view.replicas.iter())
            .find(|(a, _)| a == address);
        match known {
            Some((_, node)) => Ok(node.clone()),
            None => self.new_data_node(address),
        }
    }

    fn new_data_node(&self, address: &NodeAddress) -> Result<Arc<Node>> {
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
    fn install(&self, sentinel: &SentinelNode, master: NodeAddress, node: Arc<Node>) -> Arc<View> {
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

    /// The sentinel at `from` announced that the master moved to `to`: resolve again (unless
    /// it is there already), in the background, asking that sentinel first (the others may not
    /// have heard yet).
    fn hint(&self, from: &NodeAddress, to: &NodeAddress) {
        let view = self.view();
        if view.master.as_ref().is_some_and(|(a, _)| a == to) {
            return;
        }
        let announcer = self
            .sentinel_list()
            .into_iter()
            .find(|s| s.address == *from);
        if let Some(announcer) = announcer {
            self.to_front(&announcer);
        }
        self.queue_resolution();
    }

    /// Resolves the master in the background, unless a resolution is queued already.
    fn queue_resolution(&self) -> bool {
        let Some(this) = self.this.upgrade() else {
            return false;
        };
        let generation = self.view().generation;
        self.background
            .queue(move || this.resolve(generation).map(drop))
    }

    /// Settings for a connection to the sentinel at `address` (the hints' subscription).
    fn sentinel_settings(&self, address: &NodeAddress) -> Result<ConnectSettings> {
        self.home
            .pool()
            .connect_settings()
            .for_endpoint(&self.sentinel_config, endpoint(address))
    }

    /// The replica to read from for a read that may go to one, by `read_from` (`None`: the
    /// master). Replicas that failed lately are left out.
    fn pick_replica<'v>(&self, view: &'v View) -> Option<&'v Arc<Node>> {
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
    fn data_nodes(&self) -> Vec<Arc<Node>> {
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
        if key.replica_ok && !target.primary_only {
            if let Some(replica) = self.pick_replica(&view) {
                return Ok(Some(NodeRef::Shared(replica.clone())));
            }
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

/// How sentinels are connected to: the user's settings, but the sentinels' own credentials
/// (none unless given: the data nodes' are never sent to them), database 0, and the sentinel
/// timeout bounding connecting and every reply.
fn sentinel_config(config: &Config) -> Config {
    let mut sentinel = config.clone();
    sentinel.username = config.sentinel.username.clone();
    sentinel.password = config.sentinel.password.clone();
    sentinel.db = 0;
    let timeout = config.sentinel.timeout_ms;
    if timeout != 0 {
        let shorter = |ms: u32| if ms == 0 { timeout } else { ms.min(timeout) };
        sentinel.connect_timeout_ms = shorter(config.connect_timeout_ms);
        sentinel.read_timeout_ms = shorter(config.read_timeout_ms);
        sentinel.write_timeout_ms = shorter(config.write_timeout_ms);
    }
    sentinel
}

fn endpoint(node: &NodeAddress) -> Endpoint {
    Endpoint::Tcp {
        host: node.host.clone(),
        port: node.port,
    }
}

/// A failure, naming the sentinel unless the message does already.
fn describe(address: &NodeAddress, error: &Error) -> String {
    let address = address.to_string();
    if error.message().contains(&address) {
        error.message().to_owned()
    } else {
        format!("{address}: {}", error.message())
    }
}
