//! The client: a thread-safe handle that routes each command to a pooled connection.
//!
//! A command flows: [`Client::command`] checks that it can run on a borrowed connection,
//! [`Shared::route`] picks the pool of the node that owns it (standalone: the one server), and
//! the [`Executor`] runs it: borrow a connection, write the request and read the reply on the
//! calling thread, give the connection back (or close it if it broke), and retry by the rules
//! when that failed in a way a new attempt may fix.

use crate::async_client::{self, AsyncState, Callback, ClusterRoute};
use crate::cluster::keys::{self, Placement};
use crate::cluster::{Cluster, batch};
use crate::config::{Config, Mode, limit};
use crate::core::commands::{ConnectionUse, blocking_timeout, connection_use};
use crate::core::retry::RetryPolicy;
use crate::core::{Error, Result};
use crate::events::Observer;
use crate::execute::{Executor, Job};
use crate::net::ConnectSettings;
use crate::pipeline::Pipeline;
use crate::pool::{Pool, PoolSettings};
use crate::resp::{Args, Reply, encode_command};
use crate::session::Session;
use crate::stats::Stat;
use bytes::BytesMut;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// State shared by a client, the pipelines and sessions made from it, and its background task.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) executor: Executor,
    pub(crate) async_state: AsyncState,
}

/// Where commands go: the one server's pool, or the cluster's pool per node.
pub(crate) enum Backend {
    Standalone(Arc<Pool>),
    Cluster(Arc<Cluster>),
}

impl Shared {
    /// Runs one command and returns its reply, retrying by the client's rules.
    pub(crate) fn command(&self, args: &Args<'_>) -> Result<Reply> {
        check_args(args, false)?;
        let pool = match &self.backend {
            Backend::Standalone(pool) => pool,
            Backend::Cluster(cluster) => return batch::command(cluster, &self.executor, args),
        };
        let read_only = read_only_args(args);
        let job = Job {
            name: args.name(),
            batch_size: 1,
            blocking: blocking_timeout(args),
            read_only: &read_only,
            recorded: true,
        };
        self.executor.run(pool, &job, |conn| conn.command(args))
    }

    /// The pool of a node for commands that must stay on one connection (a transaction, a
    /// session): the server's, or in a cluster the primary of `slot` (any primary for `None`).
    pub(crate) fn pinned_pool(&self, slot: Option<u16>) -> Result<Arc<Pool>> {
        match &self.backend {
            Backend::Standalone(pool) => Ok(pool.clone()),
            Backend::Cluster(cluster) => cluster.pool(&cluster.node_for(slot, false, true)?.0),
        }
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        match &self.backend {
            Backend::Standalone(_) => None,
            Backend::Cluster(cluster) => Some(cluster),
        }
    }

    fn pools(&self) -> Vec<Arc<Pool>> {
        match &self.backend {
            Backend::Standalone(pool) => vec![pool.clone()],
            Backend::Cluster(cluster) => cluster.pools(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match &self.backend {
            Backend::Standalone(pool) => pool.is_closed(),
            Backend::Cluster(cluster) => cluster.is_closed(),
        }
    }

    /// Periodic upkeep in the background.
    fn maintain(&self) {
        match &self.backend {
            Backend::Standalone(pool) => pool.maintain(),
            Backend::Cluster(cluster) => cluster.maintain(),
        }
    }

    fn maintenance_period(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Standalone(pool) => pool.settings().maintenance_period(),
            Backend::Cluster(cluster) => cluster.maintenance_period(),
        }
    }
}

/// Starts the background task that maintains the client's pools (and a cluster's topology)
/// while the client lives.
fn start_maintenance(shared: &Arc<Shared>) {
    let Some(period) = shared.maintenance_period() else {
        return;
    };
    let weak: Weak<Shared> = Arc::downgrade(shared);
    crate::runtime::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(shared) = weak.upgrade() else { return };
            if shared.is_closed() {
                return;
            }
            // Opening connections blocks; keep it off the runtime's worker.
            let _ = tokio::task::spawn_blocking(move || shared.maintain()).await;
        }
    });
}

pub struct Client {
    shared: Arc<Shared>,
}

/// Rejects empty commands and commands that cannot run on a borrowed connection.
pub(crate) fn check_args(args: &Args<'_>, allow_connection_state: bool) -> Result<()> {
    if args.is_empty() {
        return Err(Error::invalid_argument(
            "argc: a command needs at least its name",
        ));
    }
    let name = args.name();
    let subcommand = (args.len() > 1).then(|| args.get(1));
    let shown = || String::from_utf8_lossy(name).to_ascii_uppercase();
    match connection_use(name, subcommand) {
        ConnectionUse::Plain => Ok(()),
        ConnectionUse::ConnectionState if allow_connection_state => Ok(()),
        ConnectionUse::ConnectionState => Err(Error::invalid_argument(format!(
            "{} changes the state of the connection it runs on, which a pooled command must not do: \
             use a session (brisk_session_new), a transaction (brisk_transaction_new) or the config",
            shown()
        ))),
        ConnectionUse::Streaming => Err(Error::invalid_argument(format!(
            "{} turns the connection into a message stream; it cannot be sent as a command",
            shown()
        ))),
    }
}

fn read_only_args<'a>(args: &'a Args<'a>) -> impl Fn(&Executor) -> bool + 'a {
    move |executor: &Executor| executor.is_read_only(args)
}

impl Client {
    /// Builds a client from `config` (copied). Connections are opened when first needed (or in
    /// the background, with `pool_min_idle`).
    pub fn new(config: &Config) -> Result<Client> {
        config.validate()?;
        let observer = Arc::new(Observer::new(config.events.0.clone(), config.db));
        let mut rules = config.retry.resolve();
        let backend = match config.mode {
            Mode::Cluster => {
                // Per-node retries default to none in a cluster: its whole-cluster attempts
                // (cluster_error_retry_attempts) take their place.
                if !config.retry.is_explicit() {
                    rules.policy = RetryPolicy::NEVER;
                }
                Backend::Cluster(Arc::new(Cluster::new(config, observer.clone())?))
            }
            Mode::Standalone | Mode::Sentinel => {
                let settings = ConnectSettings::new(config, config.endpoint.clone())?;
                Backend::Standalone(Arc::new(Pool::new(
                    settings,
                    PoolSettings::from_config(config),
                    observer.clone(),
                )))
            }
        };
        let executor = Executor::new(
            rules,
            limit(config.command_deadline_ms),
            limit(config.read_timeout_ms),
            observer,
        );
        let shared = Arc::new(Shared {
            backend,
            executor,
            async_state: AsyncState::default(),
        });
        start_maintenance(&shared);
        Ok(Client { shared })
    }

    /// Runs one command and returns its reply, retrying by the client's rules. An error reply
    /// is `Err` with the server's text and the mapped status.
    pub fn command(&self, args: &Args<'_>) -> Result<Reply> {
        self.shared.command(args)
    }

    /// Starts one command without waiting for it. `callback` runs exactly once, on a brisk
    /// runtime thread, with the reply or the failure (same retry rules, timeouts and statuses as
    /// [`Client::command`]). Concurrent async commands are pipelined onto a shared connection.
    /// On `Err` (bad arguments, a closed client) the callback is never called.
    pub fn command_async(&self, args: &Args<'_>, callback: Callback) -> Result<()> {
        check_args(args, false)?;
        let executor = &self.shared.executor;
        // A blocking command would hold up every command pipelined behind it, and a command
        // whose keys span slots is split and merged: both run on the blocking path, on a thread
        // of their own.
        let placement = self
            .shared
            .cluster()
            .is_some()
            .then(|| keys::placement(executor.command_table(), args));
        if blocking_timeout(args).is_some() || matches!(placement, Some(Placement::Spread)) {
            let owned = args.iter().map(<[u8]>::to_vec).collect();
            return async_client::start_blocking(&self.shared, owned, callback);
        }
        let route = placement.map(|placement| match placement {
            Placement::Slot(slot) => ClusterRoute::new(Some(slot)),
            _ => ClusterRoute::new(None),
        });
        let mut encoded = BytesMut::new();
        encode_command(&mut encoded, args);
        let started = Instant::now();
        let job = async_client::Job {
            encoded: encoded.freeze(),
            name: args.name().into(),
            read_only: executor.is_read_only(args),
            started,
            deadline: executor.command_deadline().map(|d| started + d),
            attempt: 0,
            previous_delay: executor.rules().policy.base_ms,
            route,
            callback,
        };
        async_client::start(&self.shared, job)
    }

    pub fn ping(&self) -> Result<()> {
        let args: [&[u8]; 1] = [b"PING"];
        self.command(&Args::from_slices(&args)).map(drop)
    }

    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(self.shared.clone(), false)
    }

    pub fn transaction(&self) -> Pipeline {
        Pipeline::new(self.shared.clone(), true)
    }

    pub fn session(&self) -> Result<Session> {
        Session::new(self.shared.clone())
    }

    /// A counter or gauge (see [`Stat`]).
    pub fn stat(&self, stat: Stat) -> u64 {
        let pools = || self.shared.pools().into_iter();
        match stat {
            Stat::PoolOpen => pools().map(|p| p.open_connections() as u64).sum(),
            Stat::PoolIdle => pools().map(|p| p.idle_connections() as u64).sum(),
            other => self.shared.executor.observer.stats.get(other),
        }
    }

    /// Closes every idle connection; borrowed ones close when returned. Later commands, and
    /// those of pipelines and sessions made from this client, fail with CLOSED.
    pub fn close(&self) {
        match &self.shared.backend {
            Backend::Standalone(pool) => pool.close(),
            Backend::Cluster(cluster) => cluster.close(),
        }
        self.shared.async_state.close();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}
