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
//!
//! This file holds the state (sentinels, the view, the resolution in progress) and how it is
//! made; the rest is split by job: [`resolution`] (asking the sentinels and checking the
//! master), [`view`] (installing what a resolution found, reads on replicas), [`topology`] (the
//! [`Topology`] implementation) and [`hints`] (following the sentinels' announcements).
//!
//! [`Topology`]: super::Topology
//! [`Topology::redirect`]: super::Topology::redirect

mod hints;
mod resolution;
mod topology;
mod view;

use super::background::BackgroundRefresh;
use crate::config::{Config, Endpoint, ReadFrom, limit};
use crate::core::cluster::NodeAddress;
use crate::core::{Error, Result};
use crate::net::ConnectSettings;
use crate::node::pool::PoolSettings;
use crate::node::{Node, NodeContext};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

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

    /// Settings for a connection to the sentinel at `address` (the hints' subscription).
    fn sentinel_settings(&self, address: &NodeAddress) -> Result<ConnectSettings> {
        self.home
            .pool()
            .connect_settings()
            .for_endpoint(&self.sentinel_config, endpoint(address))
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
