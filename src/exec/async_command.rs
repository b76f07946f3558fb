//! The async command path: a command is encoded at once, handed to its node's multiplexed
//! connection (`net::mux`), and after each try the attempt engine decides, as for a blocking
//! command, what happens next; the caller's callback runs exactly once with the outcome, on a
//! brisk runtime thread or, in caller dispatch, on the application's thread that dispatches
//! (`async_dispatch`: the finished job is queued as it is).
//!
//! (At ~680 lines this is one of src/'s longer files, on purpose: submission, completion, the
//! retry timers and the blocking-thread fallback all own one job and its exactly-once callback;
//! the dispatch queue and the attempt engine it asks are elsewhere.)
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
//! returned (in caller dispatch, running those queued itself).

use super::Shared;
use super::async_dispatch::{Completions, Owed};
use super::blocking::{self, ASKING, needs_time};
use super::job_memory;
use super::owing::{BatchEndCall, Owing};
use super::record::Report;
use crate::cache::Plan;
use crate::config::{AsyncDispatch, BatchEnd};
use crate::core::attempt::{Attempt, Facts, Next, Round, Target};
use crate::core::commands::{blocking_timeout, check_args, is_script};
use crate::core::{Error, Result, Status};
use crate::net::mux::{LoopReads, Pending};
use crate::node::Node;
use crate::resp::{Args, Reply, ReplyKind, all_encoded, encode_command};
use crate::route::{Key, Placement, Topology};
use crate::telemetry::otel::Scope;
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Instant;
use tokio::sync::watch;

/// Receives the outcome of an async command, exactly once, on a brisk runtime thread (or, in
/// caller dispatch, on the thread that calls `Client::async_dispatch`).
pub type Callback = Box<dyn FnOnce(Result<Reply>) + Send>;

/// The async side of a client: whether it is closed, and the callbacks it owes.
pub(crate) struct AsyncState {
    closed: watch::Sender<bool>,
    /// `closed`'s value for every command's check: a load, where the watch's is a lock.
    closed_now: AtomicBool,
    /// Callbacks owed; `close` waits for none.
    owing: Arc<Owing>,
    /// In caller dispatch, the callbacks waiting for the application.
    completions: Option<Arc<Completions>>,
    /// In runtime dispatch, the application's batch-end hook, if it set one.
    batch_end: Option<Arc<BatchEndCall>>,
}

impl AsyncState {
    pub fn new(dispatch: AsyncDispatch, batch_end: Option<BatchEnd>) -> Result<AsyncState> {
        let owing = Arc::new(Owing::default());
        let (completions, batch_end) = match dispatch {
            AsyncDispatch::Runtime => {
                let call = batch_end.map(|hook| BatchEndCall::new(hook, owing.clone()));
                (None, call)
            }
            // The application's dispatch call ends each batch itself.
            AsyncDispatch::Caller => (Some(Arc::new(Completions::new()?)), None),
        };
        Ok(AsyncState {
            closed: watch::channel(false).0,
            closed_now: AtomicBool::new(false),
            owing,
            completions,
            batch_end,
        })
    }

    /// In caller dispatch, the client's connections read by the dispatching thread.
    pub fn loop_reads(&self) -> Option<Arc<LoopReads>> {
        self.completions.as_ref().map(|c| c.loop_reads().clone())
    }

    /// The descriptor readable while callbacks wait to be dispatched (caller dispatch only).
    pub fn fd(&self) -> Result<std::os::fd::RawFd> {
        match &self.completions {
            Some(completions) => Ok(completions.fd()),
            None => Err(not_caller_dispatch()),
        }
    }

    /// Runs up to `max` waiting callbacks (0: all waiting now) on this thread; 0 without
    /// caller dispatch.
    pub fn dispatch(&self, max: usize) -> usize {
        self.completions.as_ref().map_or(0, |c| c.dispatch(max))
    }

    pub fn is_closed(&self) -> bool {
        self.closed_now.load(SeqCst)
    }

    /// Set when the client closes (the muxes watch it).
    pub fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    fn begin(&self) {
        self.owing.begin();
    }

    fn end(&self) {
        self.owing.end();
    }

    /// Runs a callback on this thread in runtime dispatch, then the batch-end hook (now, or at
    /// the end of this thread's batch), and counts the callback paid.
    fn run_now(&self, callback: impl FnOnce(Result<Reply>), outcome: Result<Reply>) {
        run_callback(callback, outcome);
        if let Some(batch_end) = &self.batch_end {
            batch_end.after_callback();
        }
        self.end();
    }

    /// Fails everything outstanding with CLOSED and waits until every callback has returned
    /// (in caller dispatch, running them on this thread as they are queued) and every mux of
    /// `route` has let go of its connection (unless called from a brisk runtime thread, where
    /// waiting could wait for itself).
    pub fn close(&self, route: &dyn Topology) {
        if let Some(completions) = &self.completions {
            // Requests held for a dispatch that will not come: written now, so that they may
            // still be answered before the close fails what is in flight.
            completions.write_held();
        }
        self.closed_now.store(true, SeqCst);
        self.closed.send_replace(true);
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        match &self.completions {
            Some(completions) => {
                while !self.owing.is_drained() {
                    if completions.dispatch(0) == 0 {
                        // Woken by the next completion queued; the bound only keeps a missed
                        // wake-up from costing more than a moment.
                        wait_readable(completions.fd(), 100);
                    }
                }
            }
            None => self.owing.wait_drained(),
        }
        // A mux may still be letting go of its connection (and reporting it).
        for node in route.nodes() {
            node.wait_mux_idle();
        }
    }
}

fn not_caller_dispatch() -> Error {
    Error::invalid_argument(
        "the client does not dispatch async callbacks on the caller's thread \
         (see the async_dispatch config setting)",
    )
}

/// Waits at most `ms` for `fd` to be readable.
fn wait_readable(fd: std::os::fd::RawFd, ms: i32) {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; the descriptor is ours and open.
    unsafe { libc::poll(&mut poll, 1, ms) };
}

/// An async command between tries: everything it needs, the caller's callback included, in
/// one allocation that travels through the mux as its request ([`Pending`]) and, in caller
/// dispatch, waits in the client's queue with its outcome ([`Owed`]).
struct Job<F> {
    shared: Arc<Shared>,
    encoded: Encoded,
    /// When it started, if anything needs to know (`blocking::needs_time`: a deadline, an
    /// observer): a clock read per command otherwise saved.
    started: Option<Instant>,
    key: Key,
    attempt: Attempt,
    target: Target,
    /// The node of the latest try.
    node: Option<Arc<Node>>,
    /// The submitter's trace context (empty unless OpenTelemetry is on).
    trace: Scope,
    callback: F,
    /// What the client-side cache does with it (a read to keep, a write to evict), and the
    /// commands it sends ahead of a cached read with how many replies they add (see
    /// `Cache::before_async_send`).
    cache: Option<Box<Plan>>,
    ahead: Option<(Vec<u8>, u8)>,
    /// The outcome, while the job waits to be dispatched (caller dispatch).
    outcome: Option<Result<Reply>>,
}

impl<F> Job<F> {
    fn report(&self) -> Report<'_> {
        Report {
            name: self.encoded.name(),
            batch_size: 1,
            started: self.started,
        }
    }
}

impl<F: FnOnce(Result<Reply>) + Send + 'static> Pending for Job<F> {
    fn write_to(&self, out: &mut BytesMut) {
        if let Some((commands, _)) = &self.ahead {
            out.extend_from_slice(commands);
        }
        if self.target.ask.is_some() {
            out.extend_from_slice(ASKING);
        }
        out.extend_from_slice(self.encoded.bytes());
    }

    fn deadline(&self) -> Option<Instant> {
        self.attempt.deadline()
    }

    fn skip_replies(&self) -> u8 {
        self.ahead.as_ref().map_or(0, |(_, replies)| *replies) + u8::from(self.target.ask.is_some())
    }

    fn complete(self: Box<Self>, result: Result<Reply>) {
        settle(self, result)
    }
}

impl<F: FnOnce(Result<Reply>) + Send + 'static> Owed for Job<F> {
    fn run(self: Box<Self>) {
        let Job {
            shared,
            callback,
            outcome,
            ..
        } = job_memory::unboxed(self);
        let outcome = outcome.expect("a job is queued with its outcome");
        run_callback(callback, outcome);
        shared.async_state.end();
    }
}

/// A callback and its outcome, for the commands that finish without a job (a cache hit, a
/// blocking command): in caller dispatch they wait in the same queue.
struct Ready<F> {
    shared: Arc<Shared>,
    callback: F,
    outcome: Result<Reply>,
}

impl<F: FnOnce(Result<Reply>) + Send + 'static> Owed for Ready<F> {
    fn run(self: Box<Self>) {
        run_callback(self.callback, self.outcome);
        self.shared.async_state.end();
    }
}

/// Runs a callback owed by the client now, or queues it in caller dispatch.
fn deliver<F>(shared: &Arc<Shared>, callback: F, outcome: Result<Reply>)
where
    F: FnOnce(Result<Reply>) + Send + 'static,
{
    match &shared.async_state.completions {
        Some(completions) => completions.push(Box::new(Ready {
            shared: shared.clone(),
            callback,
            outcome,
        })),
        None => shared.async_state.run_now(callback, outcome),
    }
}

/// Starts one command without waiting for it: `callback` runs exactly once, on a brisk
/// runtime thread. On `Err` (bad arguments, a closed client) the callback is never called.
pub(crate) fn start<F>(shared: &Arc<Shared>, args: &Args<'_>, callback: F) -> Result<()>
where
    F: FnOnce(Result<Reply>) + Send + 'static,
{
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
            return start_blocking(shared, owned, Box::new(callback));
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
    let started = needs_time(shared).then(Instant::now);
    let job = Job {
        shared: shared.clone(),
        encoded: Encoded::new(args),
        started,
        key,
        attempt: Attempt::new(&shared.rules, started),
        target: Target::default(),
        node: None,
        trace: capture_trace(shared),
        callback,
        cache,
        ahead: None,
        outcome: None,
    };
    // In caller dispatch the job's memory is reused on the dispatching thread (it finishes jobs
    // in bursts and starts them in bursts); a runtime thread finishes jobs others start.
    let job = match shared.async_state.completions {
        Some(_) => job_memory::boxed(job),
        None => Box::new(job),
    };
    shared.async_state.begin();
    dispatch(shared, job);
    Ok(())
}

/// A command the client-side cache answered: the callback runs on a runtime thread all the
/// same (in caller dispatch, it is queued at once).
fn answer_from_cache<F>(shared: &Arc<Shared>, name: &[u8], reply: Reply, callback: F) -> Result<()>
where
    F: FnOnce(Result<Reply>) + Send + 'static,
{
    shared.async_state.begin();
    if shared.async_state.completions.is_some() {
        shared.record_hit(name);
        deliver(shared, callback, Ok(reply));
        return Ok(());
    }
    let worker = shared.clone();
    let name: Box<[u8]> = name.into();
    let spawned = crate::runtime::spawn(async move {
        worker.record_hit(&name);
        worker.async_state.run_now(callback, Ok(reply));
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
/// for one to be read. `shared` is the job's client, borrowed from the caller for as long as the
/// send takes (the job itself may be completed and gone by the time the send returns): so
/// neither the node nor the callback queue is cloned per command.
fn dispatch<F: FnOnce(Result<Reply>) + Send + 'static>(shared: &Shared, mut job: Box<Job<F>>) {
    let node = match shared.route.node(job.key, &job.target) {
        Ok(Some(node)) => node,
        Ok(None) => return later(job, None, true),
        // No node serves the slot now (a failover in progress): like a failed node.
        Err(e) => return failed(job, e),
    };
    job.node = Some(node.to_arc());
    // A cached read takes its token now, right before it is sent, and may need commands ahead
    // of it (see `Cache::before_async_send`).
    let Job {
        encoded,
        cache,
        ahead,
        ..
    } = &mut *job;
    if let (Some(cache), Some(Plan::Read(read))) = (&shared.cache, cache.as_deref_mut()) {
        *ahead = cache.before_async_send(read, encoded.bytes(), node.address());
    }
    match &shared.async_state.completions {
        // Sent by the thread that dispatches this client: written at its next dispatch.
        Some(completions) if completions.holds_here() => {
            if let Some(held) = node.mux().send_held(job) {
                completions.hold(held);
            }
        }
        _ => node.mux().send(job),
    }
}

/// `dispatch` from a path that owns the job only (a retry, a wait for the topology).
fn dispatch_again<F: FnOnce(Result<Reply>) + Send + 'static>(job: Box<Job<F>>) {
    let shared = job.shared.clone();
    dispatch(&shared, job);
}

/// A try is over: a reply finishes the command; an error reply or a failure goes to the
/// attempt engine.
fn settle<F: FnOnce(Result<Reply>) + Send + 'static>(mut job: Box<Job<F>>, result: Result<Reply>) {
    match result {
        Ok(reply) if reply.kind() != ReplyKind::Error => {
            let Job {
                shared,
                encoded,
                cache,
                ..
            } = &mut *job;
            if let (Some(cache), Some(Plan::Read(read))) = (&shared.cache, cache.as_deref_mut()) {
                cache.after_async_reply(read, encoded.bytes(), &reply);
            }
            finish(job, Ok(reply))
        }
        Ok(reply) => failed(job, Error::from_reply(reply.as_bytes().unwrap_or_default())),
        Err(e) => failed(job, e),
    }
}

/// After a failed try or a topology answer: what the attempt engine says.
fn failed<F: FnOnce(Result<Reply>) + Send + 'static>(mut job: Box<Job<F>>, error: Error) {
    let shared = job.shared.clone();
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
                script: is_script(job.encoded.name()),
            };
            let encoded = job.encoded.bytes();
            let judgement = job.attempt.judge(rules, &error, facts, || {
                all_encoded(encoded, |args| shared.is_read_only(args))
            });
            let node = job.node.clone();
            blocking::apply_judgement(&shared, &judgement, &mut job.target, node.as_deref());
            Attempt::note(&judgement, error, &mut round);
            None
        }
    };
    let next = job
        .attempt
        .after_round(rules, round, Instant::now(), fastrand::u64(..));
    match next {
        Next::Again {
            at,
            refresh,
            retried,
        } => {
            let entered = std::mem::take(&mut job.trace).enter();
            let address = address_of(&job);
            let tries = job.attempt.rounds();
            let retried = retried.as_ref();
            shared.record_retry(&job.report(), address, tries, retried, job.started);
            job.trace = entered.leave();
            later(job, at, refresh)
        }
        Next::Done | Next::Stand => {
            let error = standing.expect("only a followed answer can stand");
            finish(job, Err(error))
        }
        Next::Fail { error, refresh } => {
            if refresh {
                shared.route.queue_refresh();
            }
            finish(job, Err(error))
        }
    }
}

/// Sends `job` again at `at` (now, if `None`) and, with `refresh`, once the topology has been
/// read again. The client closing meanwhile completes it with CLOSED, the command deadline with
/// TIMEOUT.
fn later<F: FnOnce(Result<Reply>) + Send + 'static>(
    job: Box<Job<F>>,
    at: Option<Instant>,
    refresh: bool,
) {
    let ticket = match refresh {
        true => job.shared.route.refresh_ticket(),
        false => None,
    };
    if at.is_none() && ticket.is_none() {
        return dispatch_again(job);
    }
    if !crate::runtime::is_running() {
        let error = Error::new(
            Status::Internal,
            "the async runtime is not running (could not start its threads)",
        );
        return finish(job, Err(error));
    }
    let mut closed = job.shared.async_state.closed_signal();
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
                return finish(job, Err(error));
            }
            _ = expiry => {
                let error = Error::new(Status::Timeout, "command deadline reached before the command could be sent again");
                job.shared.count_failure(&error);
                return finish(job, Err(error));
            }
        };
        // With no topology at all the command cannot be routed: a failed read ends this try.
        // With an old one it is routed by that, and fails in turn if the map is wrong.
        if let (Err(e), Ok(None)) = (&refreshed, job.shared.route.node(job.key, &job.target)) {
            let error = e.clone();
            return failed(job, error);
        }
        dispatch_again(job);
    });
}

/// Counts the outcome, reports it, and runs the caller's callback.
fn finish<F: FnOnce(Result<Reply>) + Send + 'static>(mut job: Box<Job<F>>, result: Result<Reply>) {
    let _trace = std::mem::take(&mut job.trace).enter();
    if let (Some(cache), Some(Plan::Write(write))) = (&job.shared.cache, job.cache.as_deref()) {
        // Before the callback sees the reply: its keys' entries go (read-your-own-writes).
        cache.written_encoded(job.encoded.bytes(), write);
    }
    let tries = match &result {
        Ok(_) => job.attempt.rounds() + 1,
        Err(_) => job.attempt.rounds().max(1),
    };
    let shared = job.shared.clone();
    shared.record(
        &job.report(),
        address_of(&job),
        tries,
        result.as_ref().err(),
    );
    match &shared.async_state.completions {
        Some(completions) => {
            job.outcome = Some(result);
            completions.push(job);
        }
        None => {
            let Job { callback, .. } = *job;
            shared.async_state.run_now(callback, result);
        }
    }
}

/// The address of the node `job` went to last (before its first try, the route's home node).
fn address_of<F>(job: &Job<F>) -> &std::ffi::CStr {
    match &job.node {
        Some(node) => node.address_c(),
        None => job.shared.route.home().address_c(),
    }
}

/// A command's bytes, inline when short (most commands are), so that an async command carries
/// them in its own allocation: the mux writes them, a retry or a redirection writes them again.
enum Encoded {
    Inline {
        len: u8,
        name: (u8, u8),
        bytes: [u8; INLINE],
    },
    Heap {
        name: (usize, usize),
        bytes: Box<[u8]>,
    },
}

const INLINE: usize = 96;

thread_local! {
    /// Where commands are encoded before they are copied into their job (kept per thread, so
    /// encoding allocates nothing once warm).
    static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

impl Encoded {
    fn new(args: &Args<'_>) -> Encoded {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            encode_command(&mut scratch, args);
            // `*N\r\n$L\r\n` precede the name.
            let header = scratch
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(1)
                .map_or(0, |(i, _)| i + 1);
            let name = (header, header + args.name().len());
            match u8::try_from(scratch.len()) {
                Ok(len) if scratch.len() <= INLINE => {
                    let mut bytes = [0; INLINE];
                    bytes[..scratch.len()].copy_from_slice(&scratch);
                    Encoded::Inline {
                        len,
                        // Both lie within the (short) command.
                        name: (name.0 as u8, name.1 as u8),
                        bytes,
                    }
                }
                _ => Encoded::Heap {
                    name,
                    bytes: scratch[..].into(),
                },
            }
        })
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Encoded::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Encoded::Heap { bytes, .. } => bytes,
        }
    }

    /// The command name, for events.
    fn name(&self) -> &[u8] {
        match self {
            Encoded::Inline { name, .. } => &self.bytes()[usize::from(name.0)..usize::from(name.1)],
            Encoded::Heap { name, bytes } => &bytes[name.0..name.1],
        }
    }
}

/// The submitting thread's trace context, for a command that finishes on another thread (a
/// branch when OpenTelemetry is off).
fn capture_trace(shared: &Shared) -> Scope {
    match shared.observer.otel() {
        Some(otel) if otel.traces_on() => Scope::capture(),
        _ => Scope::default(),
    }
}

/// Runs a caller's callback. A panic in it is contained (the panic hook has reported it): it
/// runs inside the task that reads the connection, so unwinding would strand every other
/// request in flight there, and the callback would stay owed, so closing the client would hang.
fn run_callback(callback: impl FnOnce(Result<Reply>), result: Result<Reply>) {
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
    let trace = capture_trace(shared);
    let spawned = std::thread::Builder::new()
        .name("brisk-runtime".into())
        .spawn(move || {
            // A brisk thread like the runtime's: see `runtime::enter`.
            let _runtime = crate::runtime::enter();
            let _trace = trace.enter();
            let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let result = super::command(&worker, &Args::from_slices(&slices));
            deliver(&worker, callback, result);
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
