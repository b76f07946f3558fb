//! A batch whose commands live on several nodes: a cluster pipeline, or a multi-key command
//! split by slot (MGET, MSET, DEL, EXISTS, UNLINK, TOUCH).
//!
//! It runs in rounds. Each round sends every command still pending to its node, one pipeline
//! per node, the nodes in parallel (scoped threads); the replies land in the caller's order.
//! A reply that is a topology answer (MOVED, ASK, ...) sends that command alone to another
//! round; a node that fails sends its commands to another round as the attempt engine says
//! (retried, or after a topology read, or not at all). The batch is counted and reported once,
//! with its final outcome.

use super::Shared;
use super::blocking::{self, ASKING, Request};
use super::record::Report;
use crate::core::attempt::{Attempt, Next, Round, Target};
use crate::core::cluster::keys;
use crate::core::server_error;
use crate::core::{Error, Result};
use crate::node::Node;
use crate::resp::{Args, Reply, ReplyKind, encode_command};
use crate::route::{Key, Placement};
use bytes::BytesMut;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

/// One command of a batch: its bytes in the batch's buffer, and where it goes.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub range: Range<usize>,
    pub key: Key,
    pub read_only: bool,
}

impl Entry {
    /// Appends `args` to `encoded` and describes it.
    pub fn encode(encoded: &mut BytesMut, args: &Args<'_>, key: Key, read_only: bool) -> Entry {
        let start = encoded.len();
        encode_command(encoded, args);
        Entry {
            range: start..encoded.len(),
            key,
            read_only,
        }
    }
}

/// What the caller runs.
pub(crate) struct Work<'a> {
    pub name: &'a [u8],
    pub encoded: &'a [u8],
    pub entries: &'a [Entry],
}

/// One command still to be answered, and where it goes next.
struct Pending {
    index: usize,
    target: Target,
}

/// The commands going to one node this round.
struct Group {
    node: Arc<Node>,
    pending: Vec<Pending>,
}

/// Runs a pipeline's `work` to the end and returns one reply per entry, in order (error
/// replies as ERROR elements), or the failure that stopped it; counted and reported once.
pub(crate) fn run(shared: &Shared, work: &Work<'_>) -> Result<Vec<Reply>> {
    let size = u32::try_from(work.entries.len()).unwrap_or(u32::MAX);
    run_counted(shared, work, size, Ok)
}

/// One command whose keys span nodes: split by slot when it can be (MGET, MSET, DEL, ...) and
/// put back together; CROSSSLOT (INVALID_ARGUMENT) when it cannot, before anything is sent.
pub(crate) fn spread_command(shared: &Shared, args: &Args<'_>) -> Result<Reply> {
    let split = keys::split(args).ok_or_else(|| keys::cross_slot(args.name()))?;
    let mut encoded = BytesMut::new();
    let entries: Vec<Entry> = split
        .parts
        .iter()
        .map(|part| {
            let words: Vec<&[u8]> = part.iter().map(Vec::as_slice).collect();
            let part_args = Args::from_slices(&words);
            let key = match shared.route.placement(shared.command_table(), &part_args) {
                Placement::One(key) => key,
                Placement::Spread => Key::default(),
            };
            let read_only = shared.is_read_only(&part_args);
            Entry::encode(&mut encoded, &part_args, key, read_only)
        })
        .collect();
    let work = Work {
        name: args.name(),
        encoded: &encoded,
        entries: &entries,
    };
    run_counted(shared, &work, 1, |parts| split.merge(parts))
}

/// Runs `work` and makes the caller's result of its replies with `finish`; the outcome is
/// counted and reported once (as `size` commands), whatever rounds it took.
fn run_counted<T>(
    shared: &Shared,
    work: &Work<'_>,
    size: u32,
    finish: impl FnOnce(Vec<Reply>) -> Result<T>,
) -> Result<T> {
    let report = Report {
        name: work.name,
        batch_size: size,
        started: Some(Instant::now()),
    };
    let mut first_node = None;
    let mut attempt = Attempt::new(&shared.rules, report.started);
    let result = rounds(shared, work, &report, &mut attempt, &mut first_node).and_then(finish);
    let home = shared.route.home();
    let address = first_node.as_deref().unwrap_or(home).address_c();
    let attempts = attempt.rounds().max(1);
    shared.record(&report, address, attempts, result.as_ref().err());
    result
}

/// The rounds of node groups, redirections and topology attempts. `first_node` is where the
/// first command went last (for the event).
fn rounds(
    shared: &Shared,
    work: &Work<'_>,
    report: &Report<'_>,
    attempt: &mut Attempt,
    first_node: &mut Option<Arc<Node>>,
) -> Result<Vec<Reply>> {
    let route = &*shared.route;
    let mut replies: Vec<Option<Reply>> = (0..work.entries.len()).map(|_| None).collect();
    let mut pending: Vec<Pending> = (0..work.entries.len())
        .map(|index| Pending {
            index,
            target: Target::default(),
        })
        .collect();
    loop {
        let generation = route.generation();
        let try_started = shared.observer.enabled().then(Instant::now);
        let mut round = Round::default();
        let mut groups: Vec<Group> = Vec::new();
        let mut next: Vec<Pending> = Vec::new();
        for mut p in pending.drain(..) {
            let entry = &work.entries[p.index];
            match blocking::node_for(route, entry.key, &p.target) {
                Ok(node) => {
                    let node = node.to_arc();
                    if p.index == 0 {
                        *first_node = Some(node.clone());
                    }
                    match groups.iter_mut().find(|g| Arc::ptr_eq(&g.node, &node)) {
                        Some(group) => group.pending.push(p),
                        None => groups.push(Group {
                            node,
                            pending: vec![p],
                        }),
                    }
                }
                // No node serves the slot now (a failover in progress): like a failed node.
                Err(error) => {
                    let request = group_request(report, entry.read_only);
                    blocking::judge(
                        shared,
                        attempt,
                        &mut p.target,
                        error,
                        &request,
                        None,
                        &mut round,
                    );
                    next.push(p);
                }
            }
        }
        let outcomes = run_groups(shared, work, attempt.deadline(), &groups);
        for (group, outcome) in groups.into_iter().zip(outcomes) {
            match outcome {
                Ok(group_replies) => {
                    for (mut p, reply) in group.pending.into_iter().zip(group_replies) {
                        let redirect = (reply.kind() == ReplyKind::Error && attempt.may_follow())
                            .then(|| {
                                let text = reply.as_bytes().unwrap_or_default();
                                route.redirect(&server_error::classify(text))
                            })
                            .flatten();
                        replies[p.index] = Some(reply);
                        if let Some(redirect) = redirect {
                            blocking::follow_redirect(shared, &redirect, &mut p.target, &mut round);
                            next.push(p);
                        }
                    }
                }
                Err(error) => {
                    let read_only = group
                        .pending
                        .iter()
                        .all(|p| work.entries[p.index].read_only);
                    let request = group_request(report, read_only);
                    let mut target = Target::default();
                    blocking::judge(
                        shared,
                        attempt,
                        &mut target,
                        error,
                        &request,
                        Some(group.node.as_ref()),
                        &mut round,
                    );
                    // A new topology attempt sends these commands to primaries.
                    next.extend(group.pending.into_iter().map(|p| Pending {
                        index: p.index,
                        target: if target.primary_only {
                            target.clone()
                        } else {
                            p.target
                        },
                    }));
                }
            }
        }
        pending = next;
        match attempt.after_round(&shared.rules, round, Instant::now(), fastrand::u64(..)) {
            Next::Done | Next::Stand => return Ok(finish(replies)),
            Next::Again {
                at,
                refresh,
                retried,
            } => {
                let address = first_node.as_deref().unwrap_or(route.home()).address_c();
                let tries = attempt.rounds();
                shared.record_retry(report, address, tries, retried.as_ref(), try_started);
                blocking::pause(at);
                if refresh {
                    let _ = route.refresh(generation);
                }
            }
            Next::Fail { error, refresh } => {
                if refresh {
                    route.queue_refresh();
                }
                return Err(error);
            }
        }
    }
}

/// How the attempt engine sees one node's share of a batch.
fn group_request<'a>(report: &Report<'a>, read_only: bool) -> Request<'a> {
    Request {
        report: *report,
        key: Key::default(),
        blocking: None,
        read_only: if read_only { &|_| true } else { &|_| false },
        follows_redirects: false,
    }
}

fn finish(replies: Vec<Option<Reply>>) -> Vec<Reply> {
    replies
        .into_iter()
        .map(|r| r.unwrap_or_else(Reply::nil))
        .collect()
}

/// Sends each group to its node, in parallel when there are several.
fn run_groups(
    shared: &Shared,
    work: &Work<'_>,
    deadline: Option<Instant>,
    groups: &[Group],
) -> Vec<Result<Vec<Reply>>> {
    let run = |group: &Group| run_group(shared, work, deadline, group);
    if groups.len() <= 1 {
        // None at all when every command waits for a slot without a primary.
        return groups.iter().map(run).collect();
    }
    std::thread::scope(|scope| {
        let (first, others) = groups.split_first().expect("several groups");
        let others: Vec<_> = others.iter().map(|g| scope.spawn(move || run(g))).collect();
        let mut outcomes = vec![run(first)];
        outcomes.extend(others.into_iter().map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(Error::new(
                    crate::core::Status::Internal,
                    "a cluster node worker panicked",
                ))
            })
        }));
        outcomes
    })
}

/// One node's share of the batch, as one pipeline on one of its connections; the replies of
/// the group's own commands (ASKING's are dropped).
fn run_group(
    shared: &Shared,
    work: &Work<'_>,
    deadline: Option<Instant>,
    group: &Group,
) -> Result<Vec<Reply>> {
    let pending = &group.pending;
    // The whole batch, in order and without ASKING (a single command, or a pipeline whose
    // commands all go to one node), is sent from the caller's buffer as it is.
    let whole = pending.len() == work.entries.len()
        && pending
            .iter()
            .enumerate()
            .all(|(i, p)| p.index == i && p.target.ask.is_none());
    let encoded: Cow<'_, [u8]> = if whole {
        Cow::Borrowed(work.encoded)
    } else {
        let mut encoded = Vec::new();
        for p in pending {
            if p.target.ask.is_some() {
                encoded.extend_from_slice(ASKING);
            }
            encoded.extend_from_slice(&work.encoded[work.entries[p.index].range.clone()]);
        }
        Cow::Owned(encoded)
    };
    let asking = pending.iter().filter(|p| p.target.ask.is_some()).count();
    let sent = pending.len() + asking;
    let replies = blocking::try_on(shared, &group.node, None, deadline, false, &mut |conn| {
        conn.pipeline(&encoded, sent)
    })?;
    let mut replies = replies.into_iter();
    let mut own = Vec::with_capacity(pending.len());
    for p in pending {
        if p.target.ask.is_some() {
            replies.next(); // ASKING's +OK
        }
        own.extend(replies.next());
    }
    Ok(own)
}
