//! The async command path: a command is encoded at once, handed to the node's multiplexed
//! connection (`mux.rs`), and its outcome goes through the same retry rules, deadline, stats and
//! events as a blocking command before the caller's callback runs, exactly once, on a brisk
//! runtime thread.
//!
//! On a cluster client each node has its own mux. A command goes to the node of its slot by the
//! slot map known at the time, and the cluster's answers and node failures are followed by the
//! blocking path's rules (`cluster::batch`): MOVED, ASK (the command sent again behind `ASKING`),
//! TRYAGAIN, CLUSTERDOWN and READONLY within the redirection rounds, a failed node ending a
//! whole-cluster attempt. Pauses are timers, and a topology read is one background read shared
//! by every command waiting for it (`Cluster::fresh_topology`), so neither the caller's thread
//! nor a runtime worker ever blocks on them.
//!
//! Blocking commands (BLPOP, XREAD BLOCK, ...) would stall every request pipelined behind them
//! on a shared connection, and a command whose keys span slots is split and merged: these run
//! the blocking path on a thread of their own instead.
//!
//! The client counts the callbacks it owes. Closing it wakes everything waiting (retry backoffs,
//! requests queued or in flight), completes it with CLOSED, and waits until every callback has
//! returned.

use crate::client::{Backend, Shared};
use crate::cluster::{Cluster, batch};
use crate::core::cluster::NodeAddress;
use crate::core::retry::{CommandNature, RetryWrites, Verdict};
use crate::core::{Error, Result, Status};
use crate::events::{Event, EventKind};
use crate::execute::explain;
use crate::mux::{Mux, MuxSettings, Request};
use crate::pool::Pool;
use crate::resp::{Reply, ReplyKind};
use crate::stats::Stat;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Receives the outcome of an async command, exactly once, on a brisk runtime thread.
pub type Callback = Box<dyn FnOnce(Result<Reply>) + Send>;

/// The async side of a client.
pub(crate) struct AsyncState {
    /// The standalone server's mux.
    mux: OnceLock<Mux>,
    /// A cluster's, one per node.
    node_muxes: RwLock<HashMap<NodeAddress, Arc<Mux>>>,
    closed: watch::Sender<bool>,
    /// Callbacks owed; `close` waits for zero.
    pending: Mutex<usize>,
    drained: Condvar,
}

impl Default for AsyncState {
    fn default() -> Self {
        AsyncState {
            mux: OnceLock::new(),
            node_muxes: RwLock::default(),
            closed: watch::channel(false).0,
            pending: Mutex::new(0),
            drained: Condvar::new(),
        }
    }
}

impl AsyncState {
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn begin(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn end(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending -= 1;
        if *pending == 0 {
            self.drained.notify_all();
        }
    }

    /// Fails everything outstanding with CLOSED and waits until every callback has returned
    /// (unless called from a brisk runtime thread, where waiting could wait for itself).
    pub fn close(&self) {
        self.closed.send_replace(true);
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        while *pending > 0 {
            pending = self
                .drained
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(pending);
        // A mux may still be letting go of its connection (and reporting it).
        if let Some(mux) = self.mux.get() {
            mux.wait_idle();
        }
        let node_muxes: Vec<Arc<Mux>> = {
            let muxes = self.node_muxes.read().unwrap_or_else(|p| p.into_inner());
            muxes.values().cloned().collect()
        };
        for mux in node_muxes {
            mux.wait_idle();
        }
    }
}

/// An async command between attempts.
pub(crate) struct Job {
    pub encoded: Bytes,
    /// The command name, for events.
    pub name: Box<[u8]>,
    pub read_only: bool,
    pub started: Instant,
    pub deadline: Option<Instant>,
    pub attempt: u32,
    pub previous_delay: u32,
    /// Set on a cluster client.
    pub route: Option<ClusterRoute>,
    pub callback: Callback,
}

/// Where a command goes in a cluster, and how far its redirections and whole-cluster attempts
/// have gone (the rules are the blocking path's, in `cluster::batch`).
pub(crate) struct ClusterRoute {
    pub slot: Option<u16>,
    /// After ASK: the node the next attempt goes to, preceded by `ASKING`.
    ask: Option<NodeAddress>,
    /// After a node failed: reads go to primaries from now on.
    primary_only: bool,
    redirects: u32,
    cycles: u32,
    /// The node of the latest attempt.
    node: Option<(NodeAddress, Arc<Pool>)>,
}

impl ClusterRoute {
    pub fn new(slot: Option<u16>) -> ClusterRoute {
        ClusterRoute {
            slot,
            ask: None,
            primary_only: false,
            redirects: 0,
            cycles: 0,
            node: None,
        }
    }
}

/// Sends `job` on the multiplexed connection of its node (started on first use).
pub(crate) fn dispatch(shared: &Arc<Shared>, job: Job) {
    match &shared.backend {
        Backend::Standalone(pool) => {
            let mux = shared
                .async_state
                .mux
                .get_or_init(|| spawn_mux(shared, pool));
            let encoded = job.encoded.clone();
            send(shared, mux, job, encoded, 0);
        }
        Backend::Cluster(cluster) => dispatch_to_node(shared, cluster, job),
    }
}

fn spawn_mux(shared: &Shared, pool: &Pool) -> Mux {
    Mux::spawn(
        pool.connect_settings().clone(),
        MuxSettings {
            read_timeout: shared.executor.read_timeout(),
            health_check_interval: pool.settings().health_check_interval,
        },
        shared.executor.observer.clone(),
        shared.async_state.closed.subscribe(),
    )
}

fn send(shared: &Arc<Shared>, mux: &Mux, job: Job, encoded: Bytes, skip_replies: u8) {
    let deadline = job.deadline;
    let shared = shared.clone();
    mux.send(Request {
        encoded,
        deadline,
        skip_replies,
        done: Box::new(move |result| settle(shared, job, result)),
    });
}

/// Routes a cluster command by the slot map known now. Without a map yet, or without a node
/// for the slot, it waits for a topology read on a blocking thread (the caller's thread and the
/// runtime's workers never block).
fn dispatch_to_node(shared: &Arc<Shared>, cluster: &Arc<Cluster>, mut job: Job) {
    let route = job.route.as_mut().expect("a cluster command has a route");
    let target = match &route.ask {
        Some(node) => Ok(Some(node.clone())),
        None => cluster.known_node_for(route.slot, job.read_only, route.primary_only),
    };
    let node = match target {
        Ok(Some(node)) => node,
        Ok(None) => return later(shared.clone(), job, Duration::ZERO, true),
        // A slot without a primary (a failover in progress) waits like a failed node.
        Err(e) if e.status() == Status::ClusterDown => {
            return cluster_attempt_failed(shared, job, e);
        }
        Err(e) => return finish(shared, job, Err(e)),
    };
    let pool = match cluster.pool(&node) {
        Ok(pool) => pool,
        Err(e) => return finish(shared, job, Err(e)),
    };
    let mux = node_mux(shared, &node, &pool);
    let (encoded, skip_replies) = match route.ask {
        Some(_) => {
            let mut asking = BytesMut::with_capacity(batch::ASKING.len() + job.encoded.len());
            asking.extend_from_slice(batch::ASKING);
            asking.extend_from_slice(&job.encoded);
            (asking.freeze(), 1)
        }
        None => (job.encoded.clone(), 0),
    };
    route.node = Some((node, pool));
    send(shared, &mux, job, encoded, skip_replies);
}

/// The mux of a cluster node, started on first use.
fn node_mux(shared: &Shared, node: &NodeAddress, pool: &Pool) -> Arc<Mux> {
    let muxes = &shared.async_state.node_muxes;
    if let Some(mux) = muxes.read().unwrap_or_else(|p| p.into_inner()).get(node) {
        return mux.clone();
    }
    muxes
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(node.clone())
        .or_insert_with(|| Arc::new(spawn_mux(shared, pool)))
        .clone()
}

/// Decides what happens after an attempt: done, or another attempt after a backoff.
fn settle(shared: Arc<Shared>, mut job: Job, result: Result<Reply>) {
    // A reply is an answer from the server; only an `Err` here means the connection failed.
    let (error, connection_failed) = match result {
        Ok(reply) if reply.kind() != ReplyKind::Error => return finish(&shared, job, Ok(reply)),
        Ok(reply) => {
            if let Some((pause, refresh)) = follow_redirection(&shared, &mut job, &reply) {
                return later(shared, job, pause, refresh);
            }
            (
                Error::from_reply(reply.as_bytes().unwrap_or_default()),
                false,
            )
        }
        Err(e) => (e, true),
    };
    let executor = &shared.executor;
    let observer = &executor.observer;
    if error.status() == Status::Timeout {
        observer.stats.bump(Stat::Timeouts);
    }
    let nature = CommandNature {
        read_only: job.read_only,
        blocking: false,
    };
    let verdict = match error.status() {
        Status::Closed => Verdict::NotRetryable,
        _ => executor.rules().verdict(&error, job.attempt, nature),
    };
    let delay = match verdict {
        Verdict::Retry => {
            executor
                .rules()
                .policy
                .delay_ms(job.attempt, job.previous_delay, fastrand::u64(..))
        }
        _ => 0,
    };
    let delay = Duration::from_millis(u64::from(delay));
    let out_of_time = job.deadline.is_some_and(|d| Instant::now() + delay >= d);
    if verdict != Verdict::Retry || out_of_time || shared.async_state.is_closed() {
        if connection_failed && job.route.is_some() && batch::is_node_failure(&error) {
            return node_failed(&shared, job, error, verdict);
        }
        let error = explain(error, verdict, job.attempt + 1, out_of_time);
        return finish(&shared, job, Err(error));
    }
    observer.stats.bump(Stat::Retries);
    if observer.enabled() {
        observer.emit(&Event {
            kind: EventKind::Retry,
            status: error.status(),
            command: &job.name,
            duration: job.started.elapsed(),
            attempt: job.attempt + 1,
            address: address_of(&shared, &job),
            error_type: Some(error.error_type()),
            batch_size: 1,
            db: observer.db(),
        });
    }
    job.attempt += 1;
    job.previous_delay = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
    later(shared, job, delay, false);
}

/// A cluster answer (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY) in `reply`: acts on it as the
/// blocking path does and returns when to send the command again (after a pause, and whether
/// after reading the topology), unless the redirection rounds have run out (the answer is then
/// the caller's).
fn follow_redirection(
    shared: &Arc<Shared>,
    job: &mut Job,
    reply: &Reply,
) -> Option<(Duration, bool)> {
    let (Some(cluster), Some(route)) = (shared.cluster(), job.route.as_mut()) else {
        return None;
    };
    let kind = batch::redirection(reply)?;
    if route.redirects >= batch::MAX_REDIRECTS {
        return None;
    }
    route.redirects += 1;
    shared.executor.observer.stats.bump(Stat::Redirects);
    let next = batch::follow(cluster, kind);
    route.ask = next.ask;
    let pause = batch::redirect_pause(route.redirects, next.pause);
    if job.deadline.is_some_and(|d| Instant::now() + pause >= d) {
        return None;
    }
    Some((pause, next.refresh))
}

/// A cluster node failed this attempt (CONNECTION, TIMEOUT): it leaves the startup nodes, and
/// the command goes to the cluster again after a topology read if it may be replayed (not sent,
/// a read, retry_writes ALWAYS), as on the blocking path.
fn node_failed(shared: &Arc<Shared>, job: Job, error: Error, verdict: Verdict) {
    let route = job.route.as_ref().expect("a cluster command has a route");
    if let (Some(cluster), Some((node, _))) = (shared.cluster(), &route.node) {
        cluster.node_failed(node);
    }
    let replayable = job.read_only || shared.executor.rules().writes == RetryWrites::Always;
    if !error.is_sent() || replayable {
        return cluster_attempt_failed(shared, job, error);
    }
    if let Some(cluster) = shared.cluster() {
        cluster.queue_refresh();
    }
    let error = explain(error, verdict, job.attempt + 1, false);
    finish(shared, job, Err(error))
}

/// Ends a whole-cluster attempt: another one after a pause and a topology read, or the error
/// once `cluster_error_retry_attempts` are used up (or the deadline would pass).
fn cluster_attempt_failed(shared: &Arc<Shared>, mut job: Job, error: Error) {
    let Some(cluster) = shared.cluster() else {
        return finish(shared, job, Err(error));
    };
    let route = job.route.as_mut().expect("a cluster command has a route");
    route.cycles += 1;
    let pause = batch::cycle_pause(route.cycles);
    let late = job.deadline.is_some_and(|d| Instant::now() + pause >= d);
    if route.cycles >= cluster.error_retry_attempts || late || shared.async_state.is_closed() {
        cluster.queue_refresh();
        let error = batch::cycles_exhausted(error, route.cycles, late);
        return finish(shared, job, Err(error));
    }
    shared.executor.observer.stats.bump(Stat::Retries);
    route.ask = None;
    route.primary_only = true;
    later(shared.clone(), job, pause, true);
}

/// Sends `job` again after `delay` and, with `refresh`, once the cluster's topology has been read
/// again (one read on a blocking thread, shared by every command waiting for it). The client
/// closing meanwhile completes it with CLOSED, the command deadline with TIMEOUT.
fn later(shared: Arc<Shared>, job: Job, delay: Duration, refresh: bool) {
    if delay.is_zero() && !refresh {
        return dispatch(&shared, job);
    }
    if !crate::runtime::is_running() {
        let error = Error::new(
            Status::Internal,
            "the async runtime is not running (could not start its threads)",
        );
        return finish(&shared, job, Err(error));
    }
    let mut closed = shared.async_state.closed.subscribe();
    let deadline = job.deadline;
    crate::runtime::spawn(async move {
        let wait = async {
            tokio::time::sleep(delay).await;
            match (refresh, shared.cluster()) {
                (true, Some(cluster)) => cluster.fresh_topology().await,
                _ => Ok(()),
            }
        };
        let expiry = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        let refreshed = tokio::select! {
            refreshed = wait => refreshed,
            _ = closed.wait_for(|closed| *closed) => {
                let error = Error::new(Status::Closed, "the client was closed before the command was sent again");
                return finish(&shared, job, Err(error));
            }
            _ = expiry => {
                shared.executor.observer.stats.bump(Stat::Timeouts);
                let error = Error::new(Status::Timeout, "command deadline reached before the command could be sent again");
                return finish(&shared, job, Err(error));
            }
        };
        // With no map at all the command cannot be routed: a failed read ends this attempt.
        // With an old one it is routed by that, and fails in turn if the map is wrong.
        let unknown = shared
            .cluster()
            .is_some_and(|c| c.topology().slots.shards().is_empty());
        if unknown {
            let error = refreshed.err().unwrap_or_else(|| {
                Error::new(Status::Connection, "the cluster topology could not be read")
            });
            return cluster_attempt_failed(&shared, job, error);
        }
        dispatch(&shared, job);
    });
}

/// Counts the outcome, reports it, and runs the caller's callback.
pub(crate) fn finish(shared: &Shared, job: Job, result: Result<Reply>) {
    shared.executor.record(
        address_of(shared, &job),
        &job.name,
        1,
        Some(job.started),
        job.attempt + 1,
        result.as_ref().err(),
    );
    run_callback(job.callback, result);
    shared.async_state.end();
}

/// The address of the node `job` went to last (before its first attempt, the server's or the
/// first seed's).
fn address_of<'a>(shared: &'a Shared, job: &'a Job) -> &'a CStr {
    match (&shared.backend, &job.route) {
        (
            _,
            Some(ClusterRoute {
                node: Some((_, pool)),
                ..
            }),
        ) => pool.address_c(),
        (Backend::Standalone(pool), _) => pool.address_c(),
        (Backend::Cluster(cluster), _) => cluster.first_seed_pool().address_c(),
    }
}

/// Runs a caller's callback. A panic in it is contained (the panic hook has reported it): it
/// runs inside the task that reads the connection, so unwinding would strand every other
/// request in flight there, and the callback would stay owed, so closing the client would hang.
fn run_callback(callback: Callback, result: Result<Reply>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || callback(result)));
}

/// Starts an async command: registers the callback as owed and sends the job. A closed client
/// refuses it (and the callback is never called).
pub(crate) fn start(shared: &Arc<Shared>, job: Job) -> Result<()> {
    if shared.async_state.is_closed() {
        return Err(crate::pool::closed());
    }
    shared.async_state.begin();
    dispatch(shared, job);
    Ok(())
}

/// Blocking commands started async and still running, process-wide. Each has a thread of its
/// own: a `BLPOP key 0` may hold one for ever, so they must not share the runtime's bounded
/// blocking pool, which pool upkeep and topology reads need.
static BLOCKING_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A program that starts more blocking commands than this at once is refused rather than given
/// a thread each.
const MAX_BLOCKING_RUNNING: usize = 1024;

/// Starts a blocking command off the caller's thread, on a pooled connection (the blocking path,
/// with its pool wait, retries and timeouts), on a thread of its own named like the runtime's.
pub(crate) fn start_blocking(
    shared: &Arc<Shared>,
    args: Vec<Vec<u8>>,
    callback: Callback,
) -> Result<()> {
    if shared.async_state.is_closed() {
        return Err(crate::pool::closed());
    }
    if BLOCKING_RUNNING.fetch_add(1, Relaxed) >= MAX_BLOCKING_RUNNING {
        BLOCKING_RUNNING.fetch_sub(1, Relaxed);
        return Err(Error::new(
            Status::PoolExhausted,
            format!(
                "{MAX_BLOCKING_RUNNING} blocking commands are running async already \
                 (each holds a thread until its reply)"
            ),
        ));
    }
    shared.async_state.begin();
    let worker = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("brisk-runtime".into())
        .spawn(move || {
            // A brisk thread like the runtime's: see `runtime::enter`.
            let _runtime = crate::runtime::enter();
            let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let result = worker.command(&crate::resp::Args::from_slices(&slices));
            run_callback(callback, result);
            worker.async_state.end();
            BLOCKING_RUNNING.fetch_sub(1, Relaxed);
        });
    if let Err(e) = spawned {
        BLOCKING_RUNNING.fetch_sub(1, Relaxed);
        shared.async_state.end();
        return Err(Error::new(
            Status::Internal,
            format!("could not start a thread for a blocking command: {e}"),
        ));
    }
    Ok(())
}
