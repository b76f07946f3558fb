//! One request to one node, on the calling thread: borrow a pooled connection, write the
//! request and read its replies, give the connection back (or close it, if it broke). After a
//! failure or a topology answer, the attempt engine says what happens next, and this module
//! does it: wait, read the topology again, go to another node, or stop.
//!
//! A request is a single command (whose error reply may be a topology answer to follow: MOVED,
//! ASK, ... on a cluster), a pipeline or a transaction (whose error replies are answers like any
//! other). A session's commands run once, on the session's own connection ([`run_pinned`]).

use super::Shared;
use super::record::Report;
use crate::core::attempt::{Attempt, Facts, Judgement, Next, Redirect, Round, Target};
use crate::core::commands::{Blocking, is_script};
use crate::core::{Error, Result, Status};
use crate::net::Connection;
use crate::node::pool::Pool;
use crate::node::{Node, NodeRef};
use crate::resp::Args;
use crate::route::{Key, Topology};
use crate::telemetry::stats::Stat;
use std::time::Instant;

/// One request to one node.
pub(crate) struct Request<'a> {
    pub report: Report<'a>,
    /// Where its keys put it.
    pub key: Key,
    /// A blocking command's own wait on the server (BLPOP ... 5), added to the read timeout.
    pub blocking: Option<Blocking>,
    /// Whether running it twice is harmless; asked only when a request that may have been
    /// applied failed.
    pub read_only: &'a dyn Fn(&Shared) -> bool,
    /// A single command: a topology answer in its error reply is followed.
    pub follows_redirects: bool,
}

impl Request<'_> {
    /// Asked only after a failure (a script is recognised by its name).
    fn facts(&self) -> Facts {
        Facts {
            blocking: self.blocking.is_some(),
            script: is_script(self.report.name),
        }
    }
}

/// `ASKING`, sent ahead of a command that an ASK redirected.
pub(crate) const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// Runs `work` on a connection to the request's node until it succeeds or the attempt engine
/// says stop; counts and reports the outcome once.
///
/// The first try needs none of the engine's state, and most commands need no second: it runs
/// on its own, and only a failure brings in the engine ([`retry`]).
#[inline]
pub(crate) fn run<T>(
    shared: &Shared,
    request: &Request<'_>,
    mut work: impl FnMut(&mut Connection) -> Result<T>,
) -> Result<T> {
    let route = &*shared.route;
    let generation = route.generation();
    let try_started = shared.observer.enabled().then(Instant::now);
    let deadline = shared.rules.deadline(request.report.started);
    let (node, error) = match node_for(route, request.key, &FIRST_TRY) {
        Ok(node) => match try_on(shared, &node, request.blocking, deadline, false, &mut work) {
            Ok(value) => {
                shared.record(&request.report, node.address_c(), 1, None);
                return Ok(value);
            }
            Err(error) => (Some(node), error),
        },
        Err(error) => (None, error),
    };
    let first = Failure {
        node: node.as_deref(),
        generation,
        try_started,
    };
    retry(shared, request, work, error, first)
}

/// Where the first try of every command goes: where its key says.
static FIRST_TRY: Target = Target {
    ask: None,
    primary_only: false,
};

/// The tries after a failed first one, as the attempt engine says.
#[inline(never)]
fn retry<T>(
    shared: &Shared,
    request: &Request<'_>,
    mut work: impl FnMut(&mut Connection) -> Result<T>,
    error: Error,
    first: Failure<'_>,
) -> Result<T> {
    let route = &*shared.route;
    let mut attempt = Attempt::new(&shared.rules, request.report.started);
    let mut target = Target::default();
    if let Some(error) = after_failure(shared, request, &mut attempt, &mut target, error, first) {
        return Err(error);
    }
    loop {
        let generation = route.generation();
        let try_started = shared.observer.enabled().then(Instant::now);
        let (node, result) = match node_for(route, request.key, &target) {
            Ok(node) => {
                let deadline = attempt.deadline();
                let asking = target.ask.is_some();
                let result = try_on(shared, &node, request.blocking, deadline, asking, &mut work);
                (Some(node), result)
            }
            Err(e) => (None, Err(e)),
        };
        let node = node.as_deref();
        match result {
            Ok(value) => {
                let address = node.unwrap_or_else(|| route.home()).address_c();
                shared.record(&request.report, address, attempt.rounds() + 1, None);
                return Ok(value);
            }
            Err(error) => {
                let failure = Failure {
                    node,
                    generation,
                    try_started,
                };
                let outcome =
                    after_failure(shared, request, &mut attempt, &mut target, error, failure);
                if let Some(error) = outcome {
                    return Err(error);
                }
            }
        }
    }
}

/// Where and when a try failed.
struct Failure<'a> {
    node: Option<&'a Node>,
    /// The topology the try was routed by.
    generation: u64,
    try_started: Option<Instant>,
}

/// What follows a failed try (or a topology answer): waits and reads the topology as the engine
/// says and returns `None` to go again, or the final error (counted and reported).
#[inline(never)]
fn after_failure(
    shared: &Shared,
    request: &Request<'_>,
    attempt: &mut Attempt,
    target: &mut Target,
    error: Error,
    failure: Failure<'_>,
) -> Option<Error> {
    let route = &*shared.route;
    let address = failure.node.unwrap_or_else(|| route.home()).address_c();
    let mut round = Round::default();
    let mut standing = None;
    match follow(shared, attempt, target, &error, request, &mut round) {
        true => standing = Some(error),
        false => judge(
            shared,
            attempt,
            target,
            error,
            request,
            failure.node,
            &mut round,
        ),
    }
    let error = match attempt.after_round(&shared.rules, round, Instant::now(), fastrand::u64(..)) {
        Next::Again {
            at,
            refresh,
            retried,
        } => {
            let tries = attempt.rounds();
            let retried = retried.as_ref();
            shared.record_retry(
                &request.report,
                address,
                tries,
                retried,
                failure.try_started,
            );
            pause(at);
            if refresh {
                // A failed read leaves the current map; the next try finds out.
                let _ = route.refresh(failure.generation);
            }
            return None;
        }
        Next::Done | Next::Stand => standing.expect("only a followed answer can stand"),
        Next::Fail { error, refresh } => {
            if refresh {
                route.queue_refresh();
            }
            error
        }
    };
    shared.record(&request.report, address, attempt.rounds(), Some(&error));
    Some(error)
}

/// A topology answer in a single command's error reply: notes it in `round` and points the
/// command where it says (the route learns of a MOVED). False when `error` is no such answer,
/// or the redirect rounds are spent.
fn follow(
    shared: &Shared,
    attempt: &Attempt,
    target: &mut Target,
    error: &Error,
    request: &Request<'_>,
    round: &mut Round,
) -> bool {
    if !request.follows_redirects || !attempt.may_follow() {
        return false;
    }
    let Some(redirect) = error.server_kind().and_then(|k| shared.route.redirect(k)) else {
        return false;
    };
    follow_redirect(shared, &redirect, target, round);
    true
}

/// Follows one topology answer (a MOVED also updates the route).
pub(crate) fn follow_redirect(
    shared: &Shared,
    redirect: &Redirect,
    target: &mut Target,
    round: &mut Round,
) {
    shared.observer.stats.bump(Stat::Redirects);
    if let Redirect::Moved { slot, node } = redirect {
        shared.route.moved(*slot, node);
    }
    target.follow(redirect, &mut round.follow);
}

/// Judges a failed try and notes it in `round`; a failed node is reported to the route, and a
/// new topology attempt sends the command to primaries from now on.
pub(crate) fn judge(
    shared: &Shared,
    attempt: &Attempt,
    target: &mut Target,
    error: Error,
    request: &Request<'_>,
    node: Option<&Node>,
    round: &mut Round,
) {
    shared.count_failure(&error);
    let judgement = attempt.judge(&shared.rules, &error, request.facts(), || {
        (request.read_only)(shared)
    });
    apply_judgement(shared, &judgement, target, node);
    Attempt::note(&judgement, error, round);
}

/// What a judgement does to the route and to where the command goes next.
pub(crate) fn apply_judgement(
    shared: &Shared,
    judgement: &Judgement,
    target: &mut Target,
    node: Option<&Node>,
) {
    let node_failed = match judgement {
        Judgement::Retry => false,
        Judgement::NewTopologyAttempt { node_failed } => {
            *target = Target {
                ask: None,
                primary_only: true,
            };
            *node_failed
        }
        Judgement::Final { node_failed, .. } => *node_failed,
    };
    if let (true, Some(node)) = (node_failed, node) {
        shared.route.node_failed(node);
    }
}

/// Sleeps until `at`, if given.
pub(crate) fn pause(at: Option<Instant>) {
    if let Some(at) = at {
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
    }
}

/// The node for a command, reading the topology first when none is known yet.
pub(crate) fn node_for<'r>(
    route: &'r dyn Topology,
    key: Key,
    target: &Target,
) -> Result<NodeRef<'r>> {
    if let Some(node) = route.node(key, target)? {
        return Ok(node);
    }
    route.refresh(route.generation())?;
    route.node(key, target)?.ok_or_else(|| {
        Error::new(
            Status::Connection,
            "the topology is not known yet (no node answered with it)",
        )
    })
}

/// One try on `node`: borrow, run, give back. A connection the server had closed before the
/// request reached it (lent without the pool's peek) is replaced as the peek would have, and
/// the try goes on. With `asking`, `ASKING` goes first (the command was redirected by ASK).
pub(crate) fn try_on<T>(
    shared: &Shared,
    node: &Node,
    blocking: Option<Blocking>,
    deadline: Option<Instant>,
    asking: bool,
    work: &mut impl FnMut(&mut Connection) -> Result<T>,
) -> Result<T> {
    let pool = node.pool();
    loop {
        let mut conn = pool.get(deadline)?;
        let result = shared.ensure_command_table(&mut conn).and_then(|()| {
            if asking {
                conn.pipeline(ASKING, 1)?;
            }
            bounded(shared, pool, &mut conn, blocking, deadline, work)
        });
        let replace = result.is_err() && conn.stale_on_reuse();
        pool.put(conn);
        if !replace {
            return result;
        }
    }
}

/// Runs `work` on `conn` within the request's bounds: the read timeout (plus a blocking
/// command's own wait) and the command deadline. A blocking command is registered with the
/// pool while it runs, so that closing the client interrupts it (it may wait for ever).
fn bounded<T>(
    shared: &Shared,
    pool: &Pool,
    conn: &mut Connection,
    blocking: Option<Blocking>,
    deadline: Option<Instant>,
    work: &mut impl FnMut(&mut Connection) -> Result<T>,
) -> Result<T> {
    if blocking.is_none() && deadline.is_none() {
        // The configured read timeout, from when the pool lent the connection.
        return work(conn);
    }
    let budget = match blocking {
        None => shared.read_timeout,
        Some(Blocking::Forever) => None,
        Some(Blocking::Millis(ms)) => shared
            .read_timeout
            .map(|t| t + std::time::Duration::from_millis(ms)),
    };
    conn.bound_request(Instant::now(), budget, deadline)?;
    let ticket = match blocking {
        Some(_) => Some(pool.track_blocking(conn)?),
        None => None,
    };
    let result = work(conn);
    let Some(ticket) = ticket else {
        return result;
    };
    pool.untrack_blocking(ticket);
    match result {
        Err(e) if pool.is_closed() => Err(Error::new(
            Status::Closed,
            format!("interrupted: the client was closed ({})", e.message()),
        )),
        other => other,
    }
}

/// Runs `work` once on a connection the caller holds (a session's): bounds, stats and events
/// as for any command, but no retry, since the connection carries state.
pub(crate) fn run_pinned<T>(
    shared: &Shared,
    node: &Node,
    conn: &mut Connection,
    request: &Request<'_>,
    mut work: impl FnMut(&mut Connection) -> Result<T>,
) -> Result<T> {
    let started = Instant::now();
    let deadline = shared.rules.command_deadline.map(|d| started + d);
    // A session's connection is not lent per command: its read timeout runs from now.
    conn.lend(false, started);
    let result = bounded(
        shared,
        node.pool(),
        conn,
        request.blocking,
        deadline,
        &mut work,
    );
    if let Err(e) = &result {
        shared.count_failure(e);
    }
    let report = Report {
        started: Some(started),
        ..request.report
    };
    shared.record(&report, node.address_c(), 1, result.as_ref().err());
    result
}

/// Runs one command and returns its reply (an error reply is `Err`, with the server's text).
pub(crate) fn command(shared: &Shared, args: &Args<'_>, key: Key) -> Result<crate::resp::Reply> {
    command_with(shared, args, key, |conn| conn.command(args))
}

/// [`command`], with what each try does on its connection (the client-side cache's read).
#[inline]
pub(crate) fn command_with(
    shared: &Shared,
    args: &Args<'_>,
    key: Key,
    work: impl FnMut(&mut Connection) -> Result<crate::resp::Reply>,
) -> Result<crate::resp::Reply> {
    let read_only = |shared: &Shared| shared.is_read_only(args);
    let name = args.name();
    let request = Request {
        report: Report {
            name,
            batch_size: 1,
            started: needs_time(shared).then(Instant::now),
        },
        key,
        blocking: crate::core::commands::blocking_timeout(args),
        read_only: &read_only,
        follows_redirects: true,
    };
    run(shared, &request, work)
}

/// Whether a command needs the time it started: for its deadline, or for its event.
pub(crate) fn needs_time(shared: &Shared) -> bool {
    shared.observer.enabled() || shared.rules.command_deadline.is_some()
}
