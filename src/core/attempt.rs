//! The attempt engine: what happens after each try of a command, decided without a clock.
//!
//! A command (a pipeline, a transaction, or a cluster batch spread over several nodes) is tried
//! in rounds until it has its answers or the rules say stop. The drivers (`exec::blocking`,
//! `exec::batch`, `exec::async_command`) do the I/O, read the clock and draw random numbers;
//! after each round they tell an [`Attempt`] what happened, with the time as data, and do what
//! it answers: send again now or at a time, read the topology first, or stop.
//!
//! The rules, in the order they apply:
//! - A try that failed without an answer (or, for a single command, with an error reply) is
//!   judged by the retry rules (`core::retry`): the status must be retryable, a write whose
//!   request may have been applied is never replayed in SAFE mode (an error reply that proves
//!   the command was refused, such as LOADING, is not such a request), a blocking command is
//!   never replayed once sent, and a closed client is never retried. A retry waits the
//!   backoff, which must end before the command deadline.
//! - On a topology with several attempts (a cluster's `cluster_error_retry_attempts`), a node
//!   failure (CONNECTION, TIMEOUT, or no node for the slot) that the retry rules do not retry
//!   ends the whole attempt: the topology is read again and the command goes again (reads to
//!   primaries), unless the lost request was a write that may have been applied.
//! - Topology answers in replies (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY on a cluster: the
//!   route says which replies are) are followed for [`MAX_REDIRECTS`] rounds; after that the
//!   answer stands. The first rounds go at once; later ones, and any after TRYAGAIN, pause.
//! - Nothing waits past the command deadline: a pause that would end after it ends the command.

use super::cluster::NodeAddress;
use super::error::Error;
use super::retry::{CommandNature, RetryRules, RetryWrites, Verdict};
use super::status::Status;
use std::time::{Duration, Instant};

/// Redirection rounds one command may go through before its last answer is final.
///
/// cbindgen:ignore
pub const MAX_REDIRECTS: u32 = 16;

/// Redirect rounds that go without a pause unless the answer was TRYAGAIN.
const IMMEDIATE_REDIRECTS: u32 = 3;

/// The rules of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub retry: RetryRules,
    /// Bounds a whole command: every try, every wait.
    pub command_deadline: Option<Duration>,
    /// Whole-topology attempts (a cluster's `cluster_error_retry_attempts`); 1: a node failure
    /// is final once the retry rules give up.
    pub topology_attempts: u32,
    /// What one is called in messages ("cluster attempt", "master resolution").
    pub topology_attempt_name: &'static str,
}

/// Where the next try of one command goes, as far as the engine decides it (the route decides
/// the rest from the command's keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// After ASK: this node, with `ASKING` sent first.
    pub ask: Option<NodeAddress>,
    /// After a node failed: the primary, even for a read that may go to a replica.
    pub primary_only: bool,
}

/// What the engine needs to know of a command besides how a try failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// It blocks on the server (BLPOP, ...): never replayed once it may have run.
    pub blocking: bool,
    /// EVAL, EVALSHA, FCALL: fewer error replies prove a script did not run.
    pub script: bool,
}

/// A topology answer found in an error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `MOVED slot node`: the slot lives there now.
    Moved { slot: u16, node: NodeAddress },
    /// `ASK slot node`: this one command goes there, behind `ASKING`.
    Ask(NodeAddress),
    /// `TRYAGAIN`: a multi-key command met a slot mid-migration; wait and send again.
    TryAgain,
    /// `CLUSTERDOWN`, `READONLY` (a write met a demoted primary): read the topology, send again.
    Refresh,
}

/// What following the topology answers of one round takes, merged over its commands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Follow {
    /// Some command of the round was redirected.
    pub any: bool,
    /// Read the topology before the next round.
    pub refresh: bool,
    /// Pause before the next round, whatever the round number (TRYAGAIN).
    pub pause: bool,
}

impl Target {
    /// Points this command where `redirect` says and notes in `follow` what the next round
    /// needs. A MOVED also tells the route (the driver does: [`Redirect::Moved`] is returned
    /// for it to apply).
    pub fn follow(&mut self, redirect: &Redirect, follow: &mut Follow) {
        follow.any = true;
        self.ask = None;
        match redirect {
            Redirect::Moved { .. } => {}
            Redirect::Ask(node) => self.ask = Some(node.clone()),
            Redirect::TryAgain => follow.pause = true,
            Redirect::Refresh => follow.refresh = true,
        }
    }
}

/// How the retry rules judge one failed try.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Try again on the same route after the backoff.
    Retry,
    /// A node failed: end this topology attempt, read the topology, try again. `node_failed`:
    /// the node did not answer (it leaves the nodes asked for the topology).
    NewTopologyAttempt { node_failed: bool },
    /// Stop with this failure.
    Final {
        verdict: Verdict,
        /// A node failed (its write may have been applied): the topology should be read again
        /// in the background, and the node is suspect.
        node_failed: bool,
    },
}

/// What one round came to, as the driver saw it.
#[derive(Debug, Default)]
pub struct Round {
    /// A failure the retry rules retry (the first of the round).
    pub retry: Option<Error>,
    /// A failure that ends the topology attempt.
    pub new_topology_attempt: Option<Error>,
    /// A final failure, with how it was judged.
    pub fail: Option<(Error, Verdict)>,
    /// The topology answers followed.
    pub follow: Follow,
    /// A node failed: the topology should be read again, even if the command stops.
    pub node_failed: bool,
}

/// What the driver does after a round.
#[derive(Debug)]
pub enum Next {
    /// Everything answered: done.
    Done,
    /// Send what is pending again: at once (`at` is `None`) or at `at`, and after reading the
    /// topology when `refresh` is set.
    Again {
        at: Option<Instant>,
        refresh: bool,
        /// The round's retried failure, for the RETRY event and the retries counter (also set
        /// for a new topology attempt).
        retried: Option<Error>,
    },
    /// Stop: the answers received stand as they are (the redirect rounds are spent, or there is
    /// no time left to follow them).
    Stand,
    /// Stop with this error (its message says how many attempts were made, and why a write
    /// was not replayed).
    Fail {
        error: Error,
        /// A node failed: the topology should be read again in the background.
        refresh: bool,
    },
}

impl Rules {
    /// When a command that started at `started` must be over, if ever.
    #[inline]
    pub fn deadline(&self, started: Option<Instant>) -> Option<Instant> {
        self.command_deadline.zip(started).map(|(d, s)| s + d)
    }
}

/// The progress of one command (or batch) through its tries.
#[derive(Clone, Debug)]
pub struct Attempt {
    deadline: Option<Instant>,
    /// Failed tries the retry rules retried in this topology attempt.
    tries: u32,
    /// The backoff before the last retry (decorrelated jitter grows from it).
    previous_delay_ms: u32,
    redirects: u32,
    /// Topology attempts ended by a node failure.
    topology_attempts: u32,
    /// Rounds finished, for events ("attempts").
    rounds: u32,
}

impl Attempt {
    /// A command that started at `started`; the driver passes `None` when it does not need the
    /// time (no command deadline, nobody timing it).
    pub fn new(rules: &Rules, started: Option<Instant>) -> Attempt {
        Attempt {
            deadline: rules.deadline(started),
            tries: 0,
            previous_delay_ms: rules.retry.policy.base_ms,
            redirects: 0,
            topology_attempts: 0,
            rounds: 0,
        }
    }

    /// When the command must be over, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Rounds reported so far ([`Attempt::after_round`]): after a success on the next try,
    /// the tries made are one more.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Whether topology answers are still followed (the redirect rounds are not spent).
    pub fn may_follow(&self) -> bool {
        self.redirects < MAX_REDIRECTS
    }

    /// Judges one failed try of a command with these `facts`. `read_only` is asked only when
    /// the command may have been applied (looking a command up costs, and a failure before
    /// sending needs no answer).
    pub fn judge(
        &self,
        rules: &Rules,
        error: &Error,
        facts: Facts,
        read_only: impl FnOnce() -> bool,
    ) -> Judgement {
        let applied = error.may_have_been_applied(facts.script);
        let nature = CommandNature {
            read_only: applied && read_only(),
            blocking: facts.blocking,
            script: facts.script,
        };
        let verdict = match error.status() {
            // The client is closing: nothing may start again.
            Status::Closed => Verdict::NotRetryable,
            _ => rules.retry.verdict(error, self.tries, nature),
        };
        if verdict == Verdict::Retry {
            return Judgement::Retry;
        }
        if rules.topology_attempts > 1 && is_node_failure(error) {
            let node_failed = error.status() != Status::ClusterDown;
            let replayable =
                !facts.blocking && (nature.read_only || rules.retry.writes == RetryWrites::Always);
            if !applied || replayable {
                return Judgement::NewTopologyAttempt { node_failed };
            }
            return Judgement::Final {
                verdict,
                node_failed,
            };
        }
        Judgement::Final {
            verdict,
            node_failed: false,
        }
    }

    /// Adds a judged failure to `round` (keeping the first of each kind).
    pub fn note(judgement: &Judgement, error: Error, round: &mut Round) {
        if let Judgement::NewTopologyAttempt { node_failed }
        | Judgement::Final { node_failed, .. } = judgement
        {
            round.node_failed |= *node_failed;
        }
        let slot = match judgement {
            Judgement::Retry => &mut round.retry,
            Judgement::NewTopologyAttempt { .. } => &mut round.new_topology_attempt,
            Judgement::Final { verdict, .. } => {
                if round.fail.is_none() {
                    round.fail = Some((error, *verdict));
                }
                return;
            }
        };
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// The round is over: what next. `now` is the time, `random` 64 random bits for the
    /// backoff's jitter.
    pub fn after_round(&mut self, rules: &Rules, round: Round, now: Instant, random: u64) -> Next {
        self.rounds += 1;
        if let Some((error, verdict)) = round.fail {
            let refresh =
                round.node_failed || round.new_topology_attempt.is_some() || round.follow.refresh;
            return Next::Fail {
                error: self.explain(rules, error, verdict, false),
                refresh,
            };
        }
        let mut wait = Duration::ZERO;
        let mut refresh = round.follow.refresh;
        if round.follow.any {
            self.redirects += 1;
            wait = wait.max(redirect_pause(self.redirects, round.follow.pause));
        }
        if round.new_topology_attempt.is_some() {
            self.topology_attempts += 1;
            wait = wait.max(topology_attempt_pause(self.topology_attempts));
            refresh = true;
            // A new topology attempt starts the retry rules over (as a fresh command would).
            self.tries = 0;
            self.previous_delay_ms = rules.retry.policy.base_ms;
        }
        if round.retry.is_some() {
            let delay = rules
                .retry
                .policy
                .delay_ms(self.tries, self.previous_delay_ms, random);
            self.previous_delay_ms = delay;
            self.tries += 1;
            wait = wait.max(Duration::from_millis(u64::from(delay)));
        }
        let late = self.deadline.is_some_and(|d| now + wait >= d);
        if let Some(error) = round.new_topology_attempt {
            if self.topology_attempts >= rules.topology_attempts || late {
                return Next::Fail {
                    error: self.topology_attempts_spent(rules, error, late),
                    refresh: true,
                };
            }
            return Next::Again {
                at: Some(now + wait),
                refresh,
                retried: Some(error),
            };
        }
        if let Some(error) = round.retry {
            if late {
                // The retry that would have been made is not: report the tries made.
                self.tries -= 1;
                return Next::Fail {
                    error: self.explain(rules, error, Verdict::Retry, true),
                    refresh,
                };
            }
            return Next::Again {
                at: (!wait.is_zero()).then(|| now + wait),
                refresh,
                retried: Some(error),
            };
        }
        if round.follow.any {
            if late && !wait.is_zero() {
                return Next::Stand;
            }
            return Next::Again {
                at: (!wait.is_zero()).then(|| now + wait),
                refresh,
                retried: None,
            };
        }
        Next::Done
    }

    /// Adds to a final error what the caller needs to judge it: the tries made and, for a write
    /// that was not replayed, that it may have been applied.
    fn explain(&self, rules: &Rules, error: Error, verdict: Verdict, out_of_time: bool) -> Error {
        let mut notes = Vec::new();
        let tries = self.tries + 1;
        if tries > 1 {
            notes.push(format!("after {tries} attempts"));
        }
        match verdict {
            Verdict::MayHaveBeenApplied => notes.push(
                "the request was sent, so this write may have been applied; not retried \
                 (retry_writes SAFE)"
                    .into(),
            ),
            Verdict::BlockingSent => {
                notes.push("a blocking command is not replayed once sent".into())
            }
            Verdict::Retry if out_of_time => notes.push("command deadline reached".into()),
            _ => {}
        }
        if self.topology_attempts > 0 {
            notes.push(self.topology_note(rules));
        }
        if notes.is_empty() {
            error
        } else {
            error.detail(notes.join("; "))
        }
    }

    /// The error of the last topology attempt, saying how many were made.
    fn topology_attempts_spent(&self, rules: &Rules, error: Error, late: bool) -> Error {
        let mut note = self.topology_note(rules);
        if late {
            note.push_str("; command deadline reached");
        }
        error.detail(note)
    }

    fn topology_note(&self, rules: &Rules) -> String {
        let n = self.topology_attempts;
        let name = rules.topology_attempt_name;
        format!("after {n} {name}{}", if n == 1 { "" } else { "s" })
    }
}

/// Whether a failure is the node's (it may end a topology attempt) rather than the command's.
pub fn is_node_failure(error: &Error) -> bool {
    matches!(
        error.status(),
        Status::Connection | Status::Timeout | Status::ClusterDown
    )
}

/// The pause before redirect round `redirects` (1-based). The first rounds go at once (a MOVED
/// or ASK is answered by sending the command where it says); later ones, and any after a
/// TRYAGAIN, wait 10 ms per round (at most 200 ms): a slot half migrated, or nodes that disagree
/// about its owner for a moment (MOVED back and forth while `SETSLOT NODE` reaches each of
/// them), needs time to settle, and rounds spent at once would all meet the same answer.
pub fn redirect_pause(redirects: u32, tryagain: bool) -> Duration {
    if !tryagain && redirects < IMMEDIATE_REDIRECTS {
        return Duration::ZERO;
    }
    Duration::from_millis(10 * u64::from(redirects)).min(Duration::from_millis(200))
}

/// The pause before topology attempt `n` + 1, which gives a failover time to finish.
pub fn topology_attempt_pause(n: u32) -> Duration {
    Duration::from_millis(250 * u64::from(n)).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests;
