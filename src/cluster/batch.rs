//! Running commands on a cluster: one command or a pipeline, grouped by node (nodes in
//! parallel), with redirections followed for the commands they concern and whole-cluster
//! attempts after node failures.
//!
//! Each group runs through the [`Executor`] on its node's pool, so per-node retries, timeouts,
//! stats and events are those of the standalone path. What the executor sees as success may
//! still carry a cluster answer in a reply, which this module acts on:
//! - `MOVED slot node`: the slot map is updated (a refresh queued) and the command goes there;
//! - `ASK slot node`: the command alone goes there, preceded by `ASKING`;
//! - `TRYAGAIN` (a migrating multi-key command): a short pause, then again (and from the third
//!   round on, every redirection pauses: see [`redirect_pause`]);
//! - `CLUSTERDOWN`, `READONLY` (a write that reached a demoted primary): the topology is read
//!   again, then again.
//!   At most [`MAX_REDIRECTS`] such rounds per command.
//!   A node that fails (CONNECTION, TIMEOUT, CLUSTERDOWN from the executor) ends the cycle: it is
//!   dropped from the startup nodes, the topology re-read, and a new cycle starts, up to
//!   `cluster_error_retry_attempts` cycles, unless the failed request was a write that may have
//!   been applied (retry_writes SAFE), which is reported instead.

use super::Cluster;
use super::keys::{self, Placement};
use crate::core::cluster::{NodeAddress, key_slot};
use crate::core::commands::{Blocking, blocking_timeout};
use crate::core::retry::RetryWrites;
use crate::core::server_error::{self, ServerErrorKind};
use crate::core::{Error, Result, Status};
use crate::execute::{Executor, Job};
use crate::resp::{Args, Reply, ReplyKind, encode_command};
use crate::stats::Stat;
use bytes::BytesMut;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Redirection rounds one command may go through before its last answer is final.
pub(crate) const MAX_REDIRECTS: u32 = 16;

/// One command of a batch: its bytes in the batch's buffer and where it goes.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub range: Range<usize>,
    pub slot: Option<u16>,
    pub read_only: bool,
}

impl Entry {
    /// Appends `args` to `encoded` and describes it.
    pub fn encode(
        encoded: &mut BytesMut,
        args: &Args<'_>,
        slot: Option<u16>,
        read_only: bool,
    ) -> Entry {
        let start = encoded.len();
        encode_command(encoded, args);
        Entry {
            range: start..encoded.len(),
            slot,
            read_only,
        }
    }
}

/// What the caller runs.
pub(crate) struct Work<'a> {
    pub name: &'a [u8],
    pub encoded: &'a [u8],
    pub entries: &'a [Entry],
    /// Set for a single blocking command.
    pub blocking: Option<Blocking>,
}

pub(crate) const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// Where one command goes next.
#[derive(Clone)]
struct Pending {
    index: usize,
    /// Set after ASK: the node, and `ASKING` goes first.
    ask: Option<NodeAddress>,
    /// A replica did not answer: reads go to the primary from now on.
    primary_only: bool,
}

/// What happened to a group sent to one node.
enum GroupOutcome {
    Replies(Vec<Reply>),
    Failed(Error),
}

/// One command on a cluster: to the node owning its keys, split by slot when its keys span
/// slots and it can be (MGET, MSET, DEL, ...), refused (CROSSSLOT) when it cannot. An error
/// reply is `Err` with the mapped status, as on the standalone path.
pub(crate) fn command(
    cluster: &Arc<Cluster>,
    executor: &Executor,
    args: &Args<'_>,
) -> Result<Reply> {
    let mut encoded = BytesMut::new();
    let slot = match keys::placement(executor.command_table(), args) {
        Placement::Anywhere => None,
        Placement::Slot(slot) => Some(slot),
        Placement::Spread => {
            let split = keys::split(args).ok_or_else(|| keys::cross_slot(args.name()))?;
            let entries: Vec<Entry> = split
                .parts
                .iter()
                .map(|part| {
                    let words: Vec<&[u8]> = part.iter().map(Vec::as_slice).collect();
                    let part_args = Args::from_slices(&words);
                    let slot = key_slot(part_args.get(1));
                    let read_only = executor.is_read_only(&part_args);
                    Entry::encode(&mut encoded, &part_args, Some(slot), read_only)
                })
                .collect();
            let work = Work {
                name: args.name(),
                encoded: &encoded,
                entries: &entries,
                blocking: None,
            };
            return run_counted(cluster, executor, &work, 1, |parts| split.merge(parts));
        }
    };
    let entries = [Entry::encode(
        &mut encoded,
        args,
        slot,
        executor.is_read_only(args),
    )];
    let work = Work {
        name: args.name(),
        encoded: &encoded,
        entries: &entries,
        blocking: blocking_timeout(args),
    };
    run_counted(cluster, executor, &work, 1, |mut replies| {
        let reply = replies.pop().expect("one reply per command");
        match reply.kind() {
            ReplyKind::Error => Err(Error::from_reply(reply.as_bytes().unwrap_or_default())),
            _ => Ok(reply),
        }
    })
}

/// Runs a pipeline's `work` to the end and returns one reply per entry, in order (error
/// replies as ERROR elements), or the failure that stopped it; counted and reported once.
pub(crate) fn run(
    cluster: &Arc<Cluster>,
    executor: &Executor,
    work: &Work<'_>,
) -> Result<Vec<Reply>> {
    let size = u32::try_from(work.entries.len()).unwrap_or(u32::MAX);
    run_counted(cluster, executor, work, size, Ok)
}

/// Runs `work` and makes the caller's result of its replies with `finish`; the outcome is
/// counted and reported once (as `size` commands), whatever rounds it took.
fn run_counted<T>(
    cluster: &Arc<Cluster>,
    executor: &Executor,
    work: &Work<'_>,
    size: u32,
    finish: impl FnOnce(Vec<Reply>) -> Result<T>,
) -> Result<T> {
    let started = Instant::now();
    let mut trace = Trace::default();
    let result = run_rounds(cluster, executor, work, started, &mut trace).and_then(finish);
    trace.record(
        cluster,
        executor,
        work,
        size,
        started,
        result.as_ref().err(),
    );
    result
}

/// Where a cluster command went, for the one COMMAND event and count it makes.
#[derive(Default)]
struct Trace {
    /// The node the first command went to last.
    node: Option<NodeAddress>,
    /// Rounds: attempts on the cluster, redirections followed.
    rounds: u32,
}

impl Trace {
    /// Counts the command (or pipeline of `size`) once, whatever it took, and reports it with
    /// the address of the node that answered it (its first command, for a pipeline).
    fn record(
        &self,
        cluster: &Arc<Cluster>,
        executor: &Executor,
        work: &Work<'_>,
        size: u32,
        started: Instant,
        error: Option<&Error>,
    ) {
        let pool = self.node.as_ref().and_then(|node| cluster.pool(node).ok());
        let address = match &pool {
            Some(pool) => pool.address_c(),
            None => cluster.first_seed_pool().address_c(),
        };
        executor.record(
            address,
            work.name,
            size,
            Some(started),
            self.rounds.max(1),
            error,
        );
    }
}

/// [`run`] without the counting: the rounds of node groups, redirections and cluster attempts.
fn run_rounds(
    cluster: &Arc<Cluster>,
    executor: &Executor,
    work: &Work<'_>,
    started: Instant,
    trace: &mut Trace,
) -> Result<Vec<Reply>> {
    let deadline = executor.command_deadline().map(|d| started + d);
    let mut replies: Vec<Option<Reply>> = (0..work.entries.len()).map(|_| None).collect();
    let mut pending: Vec<Pending> = (0..work.entries.len())
        .map(|index| Pending {
            index,
            ask: None,
            primary_only: false,
        })
        .collect();
    let mut cycle = 0u32;
    let mut redirects = 0u32;
    loop {
        let generation = cluster.topology().generation;
        let mut groups: HashMap<NodeAddress, Vec<Pending>> = HashMap::new();
        // Commands whose slot has no primary right now (a failover in progress): they wait
        // for the next cycle, like commands whose node failed.
        let mut unroutable: Vec<Pending> = Vec::new();
        let mut cycle_failure: Option<Error> = None;
        for p in pending.drain(..) {
            let entry = &work.entries[p.index];
            let node = match &p.ask {
                Some(node) => node.clone(),
                None => match cluster.node_for(entry.slot, entry.read_only, p.primary_only) {
                    Ok((node, _)) => node,
                    Err(e) if e.status() == Status::ClusterDown => {
                        unroutable.push(p);
                        cycle_failure = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            groups.entry(node).or_default().push(p);
        }
        pending.extend(unroutable);
        trace.rounds += 1;
        if let Some((node, _)) = groups.iter().find(|(_, g)| g.iter().any(|p| p.index == 0)) {
            trace.node = Some(node.clone());
        }
        let outcomes = run_groups(cluster, executor, work, &groups);

        let mut refresh = false;
        let mut pause = false;
        let mut failure: Option<Error> = None;
        for ((node, group), outcome) in groups.into_iter().zip(outcomes) {
            match outcome {
                GroupOutcome::Replies(group_replies) => {
                    for (p, reply) in group.into_iter().zip(group_replies) {
                        match redirection(&reply) {
                            None => replies[p.index] = Some(reply),
                            Some(kind) => {
                                if redirects >= MAX_REDIRECTS {
                                    replies[p.index] = Some(reply);
                                    continue;
                                }
                                executor.observer.stats.bump(Stat::Redirects);
                                replies[p.index] = Some(reply);
                                let next = follow(cluster, kind);
                                refresh |= next.refresh;
                                pause |= next.pause;
                                pending.push(Pending { ask: next.ask, ..p });
                            }
                        }
                    }
                }
                GroupOutcome::Failed(error) => {
                    let cluster_error = is_node_failure(&error);
                    if cluster_error {
                        refresh = true;
                        if error.status() != Status::ClusterDown {
                            cluster.node_failed(&node);
                        }
                    }
                    let replayable = work.blocking.is_none()
                        && (group.iter().all(|p| work.entries[p.index].read_only)
                            || executor.rules().writes == RetryWrites::Always);
                    if cluster_error && (!error.is_sent() || replayable) {
                        pending.extend(group.into_iter().map(|p| Pending {
                            ask: None,
                            primary_only: true,
                            ..p
                        }));
                        cycle_failure = Some(error);
                    } else if failure.is_none() {
                        failure = Some(error);
                    }
                }
            }
        }
        if let Some(error) = failure {
            if refresh {
                cluster.queue_refresh();
            }
            return Err(error);
        }
        if pending.is_empty() {
            return Ok(finish(replies));
        }
        let out_of_time = |pause: Duration| deadline.is_some_and(|d| Instant::now() + pause >= d);
        if let Some(error) = cycle_failure {
            cycle += 1;
            let pause = cycle_pause(cycle);
            let late = out_of_time(pause);
            if cycle >= cluster.error_retry_attempts || late {
                cluster.queue_refresh();
                return Err(cycles_exhausted(error, cycle, late));
            }
            executor.observer.stats.bump(Stat::Retries);
            std::thread::sleep(pause);
            // If no node answers, the next cycle routes by the old map and fails in turn.
            let _ = cluster.refresh(generation);
            continue;
        }
        redirects += 1;
        let pause = redirect_pause(redirects, pause);
        if !pause.is_zero() {
            if out_of_time(pause) {
                return Ok(finish(replies));
            }
            std::thread::sleep(pause);
        }
        if refresh {
            // A failed refresh leaves the current map; the command's own answer (CLUSTERDOWN,
            // READONLY) is what the caller gets if the redirect rounds run out.
            let _ = cluster.refresh(generation);
        }
        if redirects > MAX_REDIRECTS {
            return Ok(finish(replies));
        }
    }
}

/// What following a cluster answer takes.
pub(crate) struct Follow {
    /// After ASK: the node the command alone goes to next, preceded by `ASKING`.
    pub ask: Option<NodeAddress>,
    /// CLUSTERDOWN, READONLY: the topology is read again first.
    pub refresh: bool,
    /// TRYAGAIN: a short pause first, whatever the round ([`redirect_pause`]).
    pub pause: bool,
}

/// Acts on a cluster answer (a MOVED updates the slot map) and says how the command goes on.
pub(crate) fn follow(cluster: &Arc<Cluster>, kind: ServerErrorKind) -> Follow {
    let mut next = Follow {
        ask: None,
        refresh: false,
        pause: false,
    };
    match kind {
        ServerErrorKind::Moved { slot, address } => {
            if let Some(to) = NodeAddress::parse(&address) {
                cluster.moved(slot, &to);
            }
        }
        ServerErrorKind::Ask { address, .. } => next.ask = NodeAddress::parse(&address),
        ServerErrorKind::TryAgain => next.pause = true,
        _ => next.refresh = true,
    }
    next
}

/// The pause before redirect round `redirects` (1-based). The first rounds go at once (a MOVED
/// or ASK is answered by sending the command where it says); later ones, and any after a
/// TRYAGAIN, wait 10 ms per round (at most 200 ms): a slot half migrated, or nodes that disagree
/// about its owner for a moment (MOVED back and forth while `SETSLOT NODE` reaches each of
/// them), needs time to settle, and rounds spent at once would all meet the same answer.
pub(crate) fn redirect_pause(redirects: u32, tryagain: bool) -> Duration {
    if !tryagain && redirects < IMMEDIATE_REDIRECTS {
        return Duration::ZERO;
    }
    Duration::from_millis(10 * u64::from(redirects)).min(Duration::from_millis(200))
}

/// Redirect rounds that go without a pause unless the answer was TRYAGAIN.
const IMMEDIATE_REDIRECTS: u32 = 3;

/// The pause before whole-cluster attempt `cycle` + 1, which gives a failover time to finish.
pub(crate) fn cycle_pause(cycle: u32) -> Duration {
    Duration::from_millis(250 * u64::from(cycle)).min(Duration::from_secs(1))
}

/// The error of the last whole-cluster attempt, saying how many were made.
pub(crate) fn cycles_exhausted(error: Error, cycle: u32, late: bool) -> Error {
    error.detail(format!(
        "after {cycle} cluster attempt{}{}",
        if cycle == 1 { "" } else { "s" },
        if late {
            "; command deadline reached"
        } else {
            ""
        }
    ))
}

/// Whether a node failure ends the attempt (the command goes to the cluster again after a
/// refresh) rather than the command.
pub(crate) fn is_node_failure(error: &Error) -> bool {
    matches!(
        error.status(),
        Status::Connection | Status::Timeout | Status::ClusterDown
    )
}

fn finish(replies: Vec<Option<Reply>>) -> Vec<Reply> {
    replies
        .into_iter()
        .map(|r| r.unwrap_or_else(Reply::nil))
        .collect()
}

/// The cluster answer a reply carries, if it is one this module acts on.
pub(crate) fn redirection(reply: &Reply) -> Option<ServerErrorKind> {
    if reply.kind() != ReplyKind::Error {
        return None;
    }
    match server_error::classify(reply.as_bytes().unwrap_or_default()) {
        kind @ (ServerErrorKind::Moved { .. }
        | ServerErrorKind::Ask { .. }
        | ServerErrorKind::TryAgain
        | ServerErrorKind::ClusterDown
        | ServerErrorKind::ReadOnly) => Some(kind),
        _ => None,
    }
}

/// Sends each group to its node, in parallel when there are several.
fn run_groups(
    cluster: &Arc<Cluster>,
    executor: &Executor,
    work: &Work<'_>,
    groups: &HashMap<NodeAddress, Vec<Pending>>,
) -> Vec<GroupOutcome> {
    let run = |(node, group): (&NodeAddress, &Vec<Pending>)| match cluster.pool(node) {
        Ok(pool) => run_group(&pool, executor, work, group),
        Err(e) => GroupOutcome::Failed(e),
    };
    if groups.len() <= 1 {
        // None at all when every command waits for a slot without a primary.
        return groups.iter().map(run).collect();
    }
    std::thread::scope(|scope| {
        let mut groups = groups.iter();
        let first = groups.next().expect("several groups");
        let others: Vec<_> = groups.map(|g| scope.spawn(move || run(g))).collect();
        let mut outcomes = vec![run(first)];
        outcomes.extend(others.into_iter().map(|h| {
            h.join().unwrap_or_else(|_| {
                GroupOutcome::Failed(Error::new(
                    Status::Internal,
                    "a cluster node worker panicked",
                ))
            })
        }));
        outcomes
    })
}

/// One node's share of the batch, as one pipeline on one of its connections.
fn run_group(
    pool: &crate::pool::Pool,
    executor: &Executor,
    work: &Work<'_>,
    group: &[Pending],
) -> GroupOutcome {
    // The whole batch, in order and without ASKING (a single command, or a pipeline whose
    // commands all go to one node), is sent from the caller's buffer as it is.
    let whole = group.len() == work.entries.len()
        && group
            .iter()
            .enumerate()
            .all(|(i, p)| p.index == i && p.ask.is_none());
    let encoded: Cow<'_, [u8]> = if whole {
        Cow::Borrowed(work.encoded)
    } else {
        let mut encoded = Vec::new();
        for p in group {
            if p.ask.is_some() {
                encoded.extend_from_slice(ASKING);
            }
            encoded.extend_from_slice(&work.encoded[work.entries[p.index].range.clone()]);
        }
        Cow::Owned(encoded)
    };
    let sent = group.len() + group.iter().filter(|p| p.ask.is_some()).count();
    let read_only = group.iter().all(|p| work.entries[p.index].read_only);
    let is_read_only = move |_: &Executor| read_only;
    let job = Job {
        name: work.name,
        batch_size: u32::try_from(group.len()).unwrap_or(u32::MAX),
        blocking: work.blocking,
        read_only: &is_read_only,
        // Counted once for the whole cluster command, by `run`.
        recorded: false,
    };
    match executor.run(pool, &job, |conn| conn.pipeline(&encoded, sent)) {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            let mut own = Vec::with_capacity(group.len());
            for p in group {
                if p.ask.is_some() {
                    replies.next(); // ASKING's +OK
                }
                own.extend(replies.next());
            }
            GroupOutcome::Replies(own)
        }
        Err(e) => GroupOutcome::Failed(e),
    }
}
