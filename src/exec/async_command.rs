//! The async command path: a command is encoded at once, handed to its node's multiplexed
//! connection (`net::mux`), and after each try the attempt engine decides, as for a blocking
//! command, what happens next; the caller's callback runs exactly once, on a brisk runtime
//! thread, with the outcome.
//!
//! Waits are timers and topology reads are background reads shared by every command waiting
//! for one (`route::RefreshTicket`), so neither the caller's thread nor a runtime worker ever
//! blocks on them.
//!
//! Blocking commands (BLPOP, XREAD BLOCK, ...) would stall every request pipelined behind them
//! on a shared connection, and a command whose keys span nodes is split and merged: these run
//! the blocking path on a thread of their own instead.
//!
//! The client counts the callbacks it owes. Closing it wakes everything waiting (retry backoffs,
//! requests queued or in flight), completes it with CLOSED, and waits until every callback has
//! returned.

use super::Shared;
use super::blocking::{self, ASKING};
use super::record::Report;
use crate::cache::Plan;
use crate::core::attempt::{Attempt, Facts, Next, Round, Target};
use crate::core::commands::{blocking_timeout, check_args, is_script};
use crate::core::{Error, Result, Status};
use crate::net::mux::Request;
use crate::node::Node;
use crate::resp::{Args, Reply, ReplyKind, all_encoded, encode_command};
use crate::route::{Key, Placement, Topology};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Receives the outcome of an async command, exactly once, on a brisk runtime thread.
pub type Callback = Box<dyn FnOnce(Result<Reply>) + Send>;

/// The async side of a client: whether it is closed, and the callbacks it owes.
pub(crate) struct AsyncState {
    closed: watch::Sender<bool>,
    /// Callbacks owed; `close` waits for zero.
    pending: Mutex<usize>,
    drained: Condvar,
}

impl Default for AsyncState {
    fn default() -> Self {
        AsyncState {
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

    /// Set when the client closes (the muxes watch it).
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
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
    /// and every mux of `route` has let go of its connection (unless called from a brisk
    /// runtime thread, where waiting could wait for itself).
    pub fn close(&self, route: &dyn Topology) {
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
        for node in route.nodes() {
            node.wait_mux_idle();
        }
    }
}

/// An async command between tries.
struct Job {
    encoded: Bytes,
    /// The command name, for events.
    name: Box<[u8]>,
    started: Instant,
    key: Key,
    script: bool,
    attempt: Attempt,
    target: Target,
    /// The node of the latest try.
    node: Option<Arc<Node>>,
    callback: Callback,
    /// What the client-side cache does with it (a read to keep, a write to evict).
    cache: Option<Box<Plan>>,
}

impl Job {
    fn report(&self) -> Report<'_> {
        Report {
            name: &self.name,
            batch_size: 1,
            started: Some(self.started),
        }
    }
}

/// Starts one command without waiting for it: `callback` runs exactly once, on a brisk
/// runtime thread. On `Err` (bad arguments, a closed client) the callback is never called.
pub(crate) fn start(shared: &Arc<Shared>, args: &Args<'_>, callback: Callback) -> Result<()> {
    check_args(args, false)?;
    if shared.async_state.is_closed() {
        return Err(Shared::closed_error());
    }
    let key = match shared.route.placement(shared.command_table(), args) {
        Placement::One(key) if blocking_timeout(args).is_none() => key,
        // A blocking command would hold up every command pipelined behind it, and a command
        // whose keys span nodes is split and merged: both run on the blocking path, on a
        // thread of their own.
        _ => {
            let owned = args.iter().map(<[u8]>::to_vec).collect();
            return start_blocking(shared, owned, callback);
        }
    };
    let cache = match &shared.cache {
        None => None,
        Some(cache) => match cache.lookup(args) {
            Ok(reply) => return answer_from_cache(shared, args.name(), reply, callback),
            Err(missed) => match cache.plan(shared.command_table(), args, missed) {
                Plan::Uncached => None,
                plan => Some(Box::new(plan)),
            },
        },
    };
    let mut encoded = BytesMut::new();
    encode_command(&mut encoded, args);
    let started = Instant::now();
    let job = Job {
        encoded: encoded.freeze(),
        name: args.name().into(),
        started,
        key,
        script: is_script(args.name()),
        attempt: Attempt::new(&shared.rules, Some(started)),
        target: Target::default(),
        node: None,
        callback,
        cache,
    };
    shared.async_state.begin();
    dispatch(shared.clone(), job);
    Ok(())
}

/// A command the client-side cache answered: the callback runs on a runtime thread all the
/// same.
fn answer_from_cache(
    shared: &Arc<Shared>,
    name: &[u8],
    reply: Reply,
    callback: Callback,
) -> Result<()> {
    shared.async_state.begin();
    let worker = shared.clone();
    let name: Box<[u8]> = name.into();
    let spawned = crate::runtime::spawn(async move {
        worker.record_hit(&name);
        run_callback(callback, Ok(reply));
        worker.async_state.end();
    });
    if !spawned {
        shared.async_state.end();
        return Err(Error::new(
            Status::Internal,
            "the async runtime is not running (could not start its threads)",
        ));
    }
    Ok(())
}

/// Sends `job` on the mux of its node (started on first use); without a known topology, waits
/// for one to be read.
fn dispatch(shared: Arc<Shared>, mut job: Job) {
    let node = match shared.route.node(job.key, &job.target) {
        Ok(Some(node)) => node.to_arc(),
        Ok(None) => return later(shared, job, None, true),
        // No node serves the slot now (a failover in progress): like a failed node.
        Err(e) => return failed(shared, job, e),
    };
    // A cached read takes its token now, right before it is sent, and may need commands
    // ahead of it (see `Cache::before_async_send`).
    let ahead = match (&shared.cache, job.cache.as_deref_mut()) {
        (Some(cache), Some(Plan::Read(read))) => {
            cache.before_async_send(read, &job.encoded, node.address())
        }
        _ => None,
    };
    let (encoded, skip_replies) = match (ahead, job.target.ask.is_some()) {
        (None, false) => (job.encoded.clone(), 0),
        (ahead, asking) => {
            let mut bytes = BytesMut::with_capacity(ASKING.len() + job.encoded.len() + 64);
            let mut skip = 0;
            if let Some((commands, replies)) = ahead {
                bytes.extend_from_slice(&commands);
                skip += replies;
            }
            if asking {
                bytes.extend_from_slice(ASKING);
                skip += 1;
            }
            bytes.extend_from_slice(&job.encoded);
            (bytes.freeze(), skip)
        }
    };
    job.node = Some(node.clone());
    let deadline = job.attempt.deadline();
    node.mux().send(Request {
        encoded,
        deadline,
        skip_replies,
        done: Box::new(move |result| settle(shared, job, result)),
    });
}

/// A try is over: a reply finishes the command; an error reply or a failure goes to the
/// attempt engine.
fn settle(shared: Arc<Shared>, mut job: Job, result: Result<Reply>) {
    match result {
        Ok(reply) if reply.kind() != ReplyKind::Error => {
            if let (Some(cache), Some(Plan::Read(read))) = (&shared.cache, job.cache.as_deref_mut())
            {
                cache.after_async_reply(read, &job.encoded, &reply);
            }
            finish(&shared, job, Ok(reply))
        }
        Ok(reply) => failed(
            shared,
            job,
            Error::from_reply(reply.as_bytes().unwrap_or_default()),
        ),
        Err(e) => failed(shared, job, e),
    }
}

/// After a failed try or a topology answer: what the attempt engine says.
fn failed(shared: Arc<Shared>, mut job: Job, error: Error) {
    let rules = &shared.rules;
    let mut round = Round::default();
    let redirect = match job.attempt.may_follow() {
        true => error.server_kind().and_then(|k| shared.route.redirect(k)),
        false => None,
    };
    let standing = match redirect {
        Some(redirect) => {
            blocking::follow_redirect(&shared, &redirect, &mut job.target, &mut round);
            Some(error)
        }
        None => {
            shared.count_failure(&error);
            let facts = Facts {
                blocking: false,
                script: job.script,
            };
            let encoded = job.encoded.clone();
            let judgement = job.attempt.judge(rules, &error, facts, || {
                all_encoded(&encoded, |args| shared.is_read_only(args))
            });
            blocking::apply_judgement(&shared, &judgement, &mut job.target, job.node.as_deref());
            Attempt::note(&judgement, error, &mut round);
            None
        }
    };
    match job
        .attempt
        .after_round(rules, round, Instant::now(), fastrand::u64(..))
    {
        Next::Again {
            at,
            refresh,
            retried,
        } => {
            let address = address_of(&shared, &job);
            let tries = job.attempt.rounds();
            let retried = retried.as_ref();
            shared.record_retry(&job.report(), address, tries, retried, Some(job.started));
            later(shared, job, at, refresh)
        }
        Next::Done | Next::Stand => {
            let error = standing.expect("only a followed answer can stand");
            finish(&shared, job, Err(error))
        }
        Next::Fail { error, refresh } => {
            if refresh {
                shared.route.queue_refresh();
            }
            finish(&shared, job, Err(error))
        }
    }
}

/// Sends `job` again at `at` (now, if `None`) and, with `refresh`, once the topology has been
/// read again. The client closing meanwhile completes it with CLOSED, the command deadline with
/// TIMEOUT.
fn later(shared: Arc<Shared>, job: Job, at: Option<Instant>, refresh: bool) {
    let ticket = match refresh {
        true => shared.route.refresh_ticket(),
        false => None,
    };
    if at.is_none() && ticket.is_none() {
        return dispatch(shared, job);
    }
    if !crate::runtime::is_running() {
        let error = Error::new(
            Status::Internal,
            "the async runtime is not running (could not start its threads)",
        );
        return finish(&shared, job, Err(error));
    }
    let mut closed = shared.async_state.closed_signal();
    let deadline = job.attempt.deadline();
    crate::runtime::spawn(async move {
        let wait = async {
            if let Some(at) = at {
                tokio::time::sleep_until(at.into()).await;
            }
            match ticket {
                Some(Ok(ticket)) => ticket.wait().await,
                Some(Err(e)) => Err(e),
                None => Ok(()),
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
                let error = Error::new(Status::Timeout, "command deadline reached before the command could be sent again");
                shared.count_failure(&error);
                return finish(&shared, job, Err(error));
            }
        };
        // With no topology at all the command cannot be routed: a failed read ends this try.
        // With an old one it is routed by that, and fails in turn if the map is wrong.
        if let (Err(e), Ok(None)) = (&refreshed, shared.route.node(job.key, &job.target)) {
            let error = e.clone();
            return failed(shared, job, error);
        }
        dispatch(shared, job);
    });
}

/// Counts the outcome, reports it, and runs the caller's callback.
fn finish(shared: &Shared, job: Job, result: Result<Reply>) {
    if let (Some(cache), Some(Plan::Write(write))) = (&shared.cache, job.cache.as_deref()) {
        // Before the callback sees the reply: its keys' entries go (read-your-own-writes).
        cache.written_encoded(&job.encoded, write);
    }
    let tries = match &result {
        Ok(_) => job.attempt.rounds() + 1,
        Err(_) => job.attempt.rounds().max(1),
    };
    shared.record(
        &job.report(),
        address_of(shared, &job),
        tries,
        result.as_ref().err(),
    );
    run_callback(job.callback, result);
    shared.async_state.end();
}

/// The address of the node `job` went to last (before its first try, the route's home node).
fn address_of<'a>(shared: &'a Shared, job: &'a Job) -> &'a std::ffi::CStr {
    job.node
        .as_deref()
        .unwrap_or(shared.route.home())
        .address_c()
}

/// Runs a caller's callback. A panic in it is contained (the panic hook has reported it): it
/// runs inside the task that reads the connection, so unwinding would strand every other
/// request in flight there, and the callback would stay owed, so closing the client would hang.
fn run_callback(callback: Callback, result: Result<Reply>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || callback(result)));
}

/// Blocking commands started async and still running, process-wide. Each has a thread of its
/// own: a `BLPOP key 0` may hold one for ever, so they must not share the runtime's bounded
/// blocking pool, which pool upkeep and topology reads need.
static BLOCKING_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A program that starts more blocking commands than this at once is refused rather than given
/// a thread each.
const MAX_BLOCKING_RUNNING: usize = 1024;

/// Starts a command on the blocking path (with its pool wait, retries and timeouts) on a thread
/// of its own, named like the runtime's.
fn start_blocking(shared: &Arc<Shared>, args: Vec<Vec<u8>>, callback: Callback) -> Result<()> {
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
            let result = super::command(&worker, &Args::from_slices(&slices));
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
