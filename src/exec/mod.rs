//! Running commands: the drivers of the attempt engine (`core::attempt`) over the route
//! (`route/`) and its nodes (`node/`).
//!
//! - [`blocking`]: one request to one node (a command, a pipeline, a transaction), on the
//!   calling thread with a pooled connection; also a session's commands on its own connection.
//! - [`batch`]: a batch whose commands live on several nodes (a cluster pipeline, a split MGET),
//!   grouped by node, the groups in parallel.
//! - [`async_command`]: `brisk_command_async`, on the node's multiplexed connection.
//! - [`async_dispatch`]: the queue of async callbacks the application runs itself (caller
//!   dispatch).
//! - [`job_memory`]: async jobs' allocations, reused by the thread that finished them.
//! - [`record`]: counting and reporting what finished.
//!
//! [`Shared`] is what a client, its pipelines and sessions and its background work share.

pub(crate) mod async_command;
pub(crate) mod async_dispatch;
pub(crate) mod batch;
pub(crate) mod blocking;
mod job_memory;
mod owing;
pub(crate) mod record;

use crate::cache::{Cache, Plan};
use crate::config::pubsub::SubscriberSettings;
use crate::config::{Config, limit};
use crate::core::attempt::Rules;
use crate::core::command_table::{self, CommandTable};
use crate::core::commands::check_args;
use crate::core::retry::RetryPolicy;
use crate::core::{Error, Result};
use crate::net::Connection;
use crate::net::push::PushRouter;
use crate::node::NodeContext;
use crate::node::pool::PoolSettings;
use crate::resp::{Args, Reply};
use crate::route::{self, Placement, Topology};
use crate::telemetry::events::Observer;
use crate::telemetry::otel::{Otel, PoolState, Source};
use crate::telemetry::stats::Stat;
use async_command::AsyncState;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// State shared by a client, the pipelines and sessions made from it, and its background work.
pub(crate) struct Shared {
    pub route: Arc<dyn Topology>,
    pub rules: Rules,
    /// The configured read timeout (a blocking command's own wait is added to it).
    pub read_timeout: Option<Duration>,
    pub observer: Arc<Observer>,
    pub pushes: Arc<PushRouter>,
    pub async_state: AsyncState,
    /// What subscribers made from the client need of its config.
    pub pubsub: SubscriberSettings,
    /// The client-side cache, when the config turns it on.
    pub cache: Option<Arc<Cache>>,
    commands: CommandTableCell,
}

impl Shared {
    pub fn new(config: &Config) -> Result<Arc<Shared>> {
        config.validate()?;
        let async_state = AsyncState::new(config.async_dispatch, config.async_batch_end.0.clone())?;
        let otel = Otel::start(&config.otel, config.db)?;
        let observer = Arc::new(Observer::with_otel(
            config.events.0.clone(),
            otel,
            config.db,
        ));
        let pushes = Arc::new(PushRouter::default());
        let cache = match config.cache.enabled() {
            true => Some(Cache::new(config, observer.clone(), &pushes)?),
            false => None,
        };
        let nodes = NodeContext {
            pool: PoolSettings::from_config(config),
            observer: observer.clone(),
            closed: async_state.closed_signal(),
            pushes: pushes.clone(),
            cache: cache.clone(),
            loop_reads: async_state.loop_reads(),
        };
        let route = match route::new(config, nodes) {
            Ok(route) => route,
            Err(e) => {
                if let Some(cache) = &cache {
                    cache.close();
                }
                return Err(e);
            }
        };
        let mut retry = config.retry.resolve();
        if !route.retries_per_node_by_default() && !config.retry.is_explicit() {
            retry.policy = RetryPolicy::NEVER;
        }
        let rules = Rules {
            retry,
            command_deadline: limit(config.command_deadline_ms),
            topology_attempts: route.topology_attempts(),
            topology_attempt_name: route.topology_attempt_name(),
        };
        let shared = Arc::new(Shared {
            route,
            rules,
            read_timeout: limit(config.read_timeout_ms),
            observer,
            pushes,
            async_state,
            pubsub: SubscriberSettings::from_config(config),
            cache,
            commands: CommandTableCell::default(),
        });
        if let Err(e) = check_cache(&shared, config) {
            shared.close();
            return Err(e);
        }
        start_maintenance(&shared);
        if let Some(otel) = shared.observer.otel() {
            otel.attach(Box::new(ClientSource(Arc::downgrade(&shared))));
        }
        Ok(shared)
    }

    /// Whether `args` only reads: from the server's table when fetched, else the built-in one.
    pub fn is_read_only(&self, args: &Args<'_>) -> bool {
        command_table::read_only(self.command_table(), args)
    }

    /// The server's command table, once fetched (and if the server gave it).
    pub fn command_table(&self) -> Option<&CommandTable> {
        self.commands.table.get().and_then(Option::as_ref)
    }

    /// Fetches the server's command table on `conn` if nobody has yet: one round trip, once
    /// per client. A connection failure leaves it for a later connection and is returned (as
    /// not sent: the caller's request has not been written): the connection may hold part of
    /// the COMMAND reply, so it must not carry the caller's request.
    #[inline]
    pub fn ensure_command_table(&self, conn: &mut Connection) -> Result<()> {
        if self.commands.table.get().is_some() {
            return Ok(());
        }
        self.fetch_command_table(conn)
    }

    #[cold]
    fn fetch_command_table(&self, conn: &mut Connection) -> Result<()> {
        let cell = &self.commands;
        if cell.fetching.swap(true, Relaxed) {
            return Ok(());
        }
        let command: [&[u8]; 1] = [b"COMMAND"];
        match conn.metadata_command(&Args::from_slices(&command)) {
            Ok(reply) => {
                let _ = cell
                    .table
                    .set(Some(CommandTable::from_command_reply(&reply)));
            }
            Err(_) if !conn.is_broken() => {
                let _ = cell.table.set(None);
            }
            Err(e) => {
                cell.fetching.store(false, Relaxed);
                return Err(e.sent(false).context("fetching the command table"));
            }
        }
        Ok(())
    }

    /// A counter, or a gauge summed over the nodes.
    pub fn stat(&self, stat: Stat) -> u64 {
        let nodes = || self.route.nodes().into_iter();
        match stat {
            Stat::PoolOpen => nodes().map(|n| n.pool().open_connections() as u64).sum(),
            Stat::PoolIdle => nodes().map(|n| n.pool().idle_connections() as u64).sum(),
            Stat::CacheEntries => self.cache.as_ref().map_or(0, |c| c.entries()),
            Stat::CacheBytes => self.cache.as_ref().map_or(0, |c| c.bytes()),
            Stat::CacheEvictions => self.cache.as_ref().map_or(0, |c| c.evictions()),
            other => self.observer.stats.get(other),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.route.is_closed()
    }

    /// Closes every pool and the async side (see [`AsyncState::close`]).
    pub fn close(&self) {
        if let Some(cache) = &self.cache {
            // First: a closed client answers nothing, not even from memory.
            cache.close();
        }
        self.route.close();
        self.async_state.close(&*self.route);
        if let Some(otel) = self.observer.otel() {
            otel.close();
        }
    }

    /// CLOSED, for work started on a closed client.
    pub fn closed_error() -> Error {
        crate::node::pool::closed()
    }
}

/// Runs one command and returns its reply, retrying by the client's rules (an error reply is
/// `Err` with the server's text and the mapped status). A command whose keys span nodes is
/// split and put back together, or refused.
pub(crate) fn command(shared: &Shared, args: &Args<'_>) -> Result<Reply> {
    match &shared.cache {
        None => {
            check_args(args, false)?;
            uncached(shared, args)
        }
        Some(cache) => cached(shared, cache, args),
    }
}

/// [`command`] without the client-side cache.
#[inline]
fn uncached(shared: &Shared, args: &Args<'_>) -> Result<Reply> {
    match shared.route.placement(shared.command_table(), args) {
        Placement::One(key) => blocking::command(shared, args, key),
        Placement::Spread => batch::spread_command(shared, args),
    }
}

/// [`command`] with the client-side cache: a hit is answered from memory; a read that missed
/// runs through the cache (its reply may be kept); a write drops its keys' entries before its
/// reply is handed back.
#[inline(never)]
fn cached(shared: &Shared, cache: &Cache, args: &Args<'_>) -> Result<Reply> {
    let table = shared.command_table();
    // A command found in the cache was checked when it was kept; anything else is checked
    // before it goes anywhere.
    let missed = match cache.lookup(args) {
        Ok(reply) => {
            shared.record_hit(args.name());
            return Ok(reply);
        }
        Err(missed) => missed,
    };
    check_args(args, false)?;
    let read = match cache.plan(table, args, missed) {
        Plan::Uncached => return uncached(shared, args),
        Plan::Write(write) => {
            let result = uncached(shared, args);
            cache.written(args, &write);
            return result;
        }
        Plan::Read(read) => read,
    };
    match shared.route.placement(table, args) {
        Placement::One(key) => {
            blocking::command_with(shared, args, key, |conn| cache.fetch(conn, args, &read))
        }
        // Keys on several nodes: split, answered, not kept.
        Placement::Spread => batch::spread_command(shared, args),
    }
}

/// With the client-side cache on, a new client checks what it relies on before it is handed
/// out: a primary's invalidation connection is up (the server knows CLIENT TRACKING, the user
/// may use it) and a data connection accepts being tracked to it; the command table is fetched
/// on the way (which commands are cached comes from it). The primary, not the route's home:
/// in Sentinel mode the home is a sentinel, so this resolves the master.
fn check_cache(shared: &Shared, config: &Config) -> Result<()> {
    let Some(cache) = &shared.cache else {
        return Ok(());
    };
    let home = shared.route.pinned(None)?;
    let wait = [config.connect_timeout_ms, config.read_timeout_ms]
        .iter()
        .map(|&ms| limit(ms).unwrap_or(Duration::from_secs(10)))
        .sum();
    cache.wait_ready(home.address(), wait)?;
    let pool = home.pool();
    let mut conn = pool.get(None)?;
    let checked = shared
        .ensure_command_table(&mut conn)
        .and_then(|()| cache.set_up(&mut conn));
    pool.put(conn);
    checked
}

/// The server's command table, fetched on the first connection used.
#[derive(Default)]
struct CommandTableCell {
    /// `None` inside when the server would not give it (an ACL user without COMMAND, say).
    table: OnceLock<Option<CommandTable>>,
    fetching: AtomicBool,
}

/// Starts the background task that maintains the client's pools (and a cluster's topology)
/// while the client lives.
fn start_maintenance(shared: &Arc<Shared>) {
    let Some(period) = shared.route.maintenance_period() else {
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
            let _ = tokio::task::spawn_blocking(move || shared.route.maintain()).await;
        }
    });
}

/// What the OpenTelemetry exporter reads of a client when it collects (nothing once the client
/// is gone).
struct ClientSource(Weak<Shared>);

impl Source for ClientSource {
    fn stat(&self, stat: Stat) -> u64 {
        self.0.upgrade().map_or(0, |shared| shared.stat(stat))
    }

    fn pools(&self, each: &mut dyn FnMut(PoolState<'_>)) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        for node in shared.route.nodes() {
            let pool = node.pool();
            each(PoolState {
                address: node.address(),
                open: pool.open_connections() as u64,
                idle: pool.idle_connections() as u64,
                waiting: pool.waiting_callers() as u64,
            });
        }
    }
}
