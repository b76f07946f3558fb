//! The attempt engine driven with a simulated clock: every retry, backoff, deadline, SAFE-write,
//! redirection and topology-attempt rule, decided on data.

use super::*;
use crate::core::retry::{Backoff, RetryPolicy, RetrySettings};
use crate::core::server_error;

/// A clock that only moves when the test says.
struct Clock {
    now: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            now: Instant::now(),
        }
    }

    fn ms(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.now).as_millis()
    }

    fn advance_to(&mut self, at: Option<Instant>) {
        if let Some(at) = at {
            self.now = self.now.max(at);
        }
    }
}

fn rules(policy: RetryPolicy, topology_attempts: u32, deadline_ms: Option<u64>) -> Rules {
    Rules {
        retry: RetrySettings {
            policy: Some(policy),
            ..Default::default()
        }
        .resolve(),
        command_deadline: deadline_ms.map(Duration::from_millis),
        topology_attempts,
        topology_attempt_name: "cluster attempt",
    }
}

fn constant(base_ms: u32, retries: u32) -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff::Constant,
        base_ms,
        cap_ms: 1000,
        retries,
    }
}

fn refused() -> Error {
    Error::new(
        Status::Connection,
        "connect to 127.0.0.1:1: connection refused",
    )
}

fn lost_after_sending() -> Error {
    Error::new(Status::Timeout, "read from 127.0.0.1:1: timed out").sent(true)
}

const WRITE: Facts = Facts {
    blocking: false,
    script: false,
};

/// One failed try of a single command, through judge + after_round as a driver does it.
fn fail(
    attempt: &mut Attempt,
    rules: &Rules,
    clock: &Clock,
    error: Error,
    facts: Facts,
    read_only: bool,
) -> (Judgement, Next) {
    let judgement = attempt.judge(rules, &error, facts, || read_only);
    let mut round = Round::default();
    let shown = match &judgement {
        Judgement::Retry => Judgement::Retry,
        Judgement::NewTopologyAttempt { node_failed } => Judgement::NewTopologyAttempt {
            node_failed: *node_failed,
        },
        Judgement::Final {
            verdict,
            node_failed,
        } => Judgement::Final {
            verdict: *verdict,
            node_failed: *node_failed,
        },
    };
    Attempt::note(&judgement, error, &mut round);
    (
        shown,
        attempt.after_round(rules, round, clock.now, u64::MAX),
    )
}

fn again_at(next: &Next) -> Option<Instant> {
    match next {
        Next::Again { at, .. } => *at,
        other => panic!("expected Again, got {other:?}"),
    }
}

fn failed_with(next: Next) -> Error {
    match next {
        Next::Fail { error, .. } => error,
        other => panic!("expected Fail, got {other:?}"),
    }
}

#[test]
fn retries_wait_their_backoff_then_give_up_saying_how_many_tries() {
    let rules = rules(constant(100, 2), 1, None);
    let mut clock = Clock::new();
    let mut attempt = Attempt::new(&rules, Some(clock.now));
    for _ in 0..2 {
        let (judgement, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
        assert_eq!(judgement, Judgement::Retry);
        let at = again_at(&next);
        assert_eq!(clock.ms(at.unwrap()), 100);
        assert!(matches!(
            next,
            Next::Again {
                refresh: false,
                retried: Some(_),
                ..
            }
        ));
        clock.advance_to(at);
    }
    let (_, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
    let error = failed_with(next);
    assert_eq!(error.status(), Status::Connection);
    assert!(
        error.message().ends_with("(after 3 attempts)"),
        "{}",
        error.message()
    );
    assert_eq!(attempt.rounds(), 3);
}

#[test]
fn the_default_policy_jitters_within_its_cap() {
    let rules = Rules {
        retry: RetrySettings::default().resolve(),
        command_deadline: None,
        topology_attempts: 1,
        topology_attempt_name: "cluster attempt",
    };
    let clock = Clock::new();
    let mut attempt = Attempt::new(&rules, None);
    let mut delays = Vec::new();
    for _ in 0..3 {
        let (_, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
        delays.push(again_at(&next).map_or(0, |at| clock.ms(at)));
    }
    // Full jitter with the largest random draw: min(1000, 10 * 2^n).
    assert_eq!(delays, [10, 20, 40]);
    let (_, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
    assert!(failed_with(next).message().contains("after 4 attempts"));
}

#[test]
fn a_sent_write_is_never_replayed_in_safe_mode_but_a_read_is() {
    let rules = rules(constant(10, 3), 1, None);
    let clock = Clock::new();
    let mut attempt = Attempt::new(&rules, None);
    let (judgement, next) = fail(
        &mut attempt,
        &rules,
        &clock,
        lost_after_sending(),
        WRITE,
        false,
    );
    assert!(matches!(
        judgement,
        Judgement::Final {
            verdict: Verdict::MayHaveBeenApplied,
            ..
        }
    ));
    let error = failed_with(next);
    assert_eq!(error.status(), Status::Timeout);
    assert!(
        error
            .message()
            .contains("this write may have been applied; not retried")
    );

    let mut attempt = Attempt::new(&rules, None);
    let (judgement, _) = fail(
        &mut attempt,
        &rules,
        &clock,
        lost_after_sending(),
        WRITE,
        true,
    );
    assert_eq!(judgement, Judgement::Retry, "a read is replayed");

    let always = Rules {
        retry: RetrySettings {
            policy: Some(constant(10, 3)),
            writes: RetryWrites::Always,
            ..Default::default()
        }
        .resolve(),
        ..rules.clone()
    };
    let mut attempt = Attempt::new(&always, None);
    let (judgement, _) = fail(
        &mut attempt,
        &always,
        &clock,
        lost_after_sending(),
        WRITE,
        false,
    );
    assert_eq!(judgement, Judgement::Retry, "ALWAYS replays writes");

    // read_only is asked only when the request may have been applied.
    let attempt = Attempt::new(&rules, None);
    let judgement = attempt.judge(&rules, &refused(), WRITE, || panic!("not asked"));
    assert_eq!(judgement, Judgement::Retry);
}

#[test]
fn a_refusal_is_retried_even_for_a_write_and_explained_when_retries_run_out() {
    let rules = rules(constant(10, 2), 1, None);
    let mut clock = Clock::new();
    let mut attempt = Attempt::new(&rules, None);
    let loading = || Error::from_reply(b"LOADING Redis is loading the dataset in memory");
    for _ in 0..2 {
        let (judgement, next) = fail(&mut attempt, &rules, &clock, loading(), WRITE, false);
        assert_eq!(judgement, Judgement::Retry);
        clock.advance_to(again_at(&next));
    }
    let error = failed_with(fail(&mut attempt, &rules, &clock, loading(), WRITE, false).1);
    assert_eq!(error.status(), Status::BusyLoading);
    assert_eq!(
        error.message(),
        "LOADING Redis is loading the dataset in memory (after 3 attempts)"
    );

    // READONLY proves nothing for a script, which may have written first.
    let script = Facts {
        script: true,
        ..WRITE
    };
    let readonly = Error::from_reply(b"READONLY You can't write against a read only replica.");
    let attempt = Attempt::new(&rules, None);
    assert_eq!(
        attempt.judge(&rules, &readonly, WRITE, || false),
        Judgement::Retry
    );
    assert!(matches!(
        attempt.judge(&rules, &readonly, script, || false),
        Judgement::Final {
            verdict: Verdict::MayHaveBeenApplied,
            ..
        }
    ));
}

#[test]
fn blocking_commands_and_a_closed_client_are_not_retried() {
    let rules = rules(constant(10, 3), 1, None);
    let clock = Clock::new();
    let blocking = Facts {
        blocking: true,
        script: false,
    };
    let mut attempt = Attempt::new(&rules, None);
    let error = failed_with(
        fail(
            &mut attempt,
            &rules,
            &clock,
            lost_after_sending(),
            blocking,
            true,
        )
        .1,
    );
    assert!(
        error
            .message()
            .contains("a blocking command is not replayed once sent")
    );
    let mut attempt = Attempt::new(&rules, None);
    assert_eq!(
        fail(&mut attempt, &rules, &clock, refused(), blocking, false).0,
        Judgement::Retry,
        "not sent: replayed"
    );
    let closed = Error::new(Status::Closed, "the client is closed");
    let mut attempt = Attempt::new(&rules, None);
    assert!(matches!(
        fail(&mut attempt, &rules, &clock, closed, WRITE, true).0,
        Judgement::Final {
            verdict: Verdict::NotRetryable,
            ..
        }
    ));
}

#[test]
fn no_wait_ends_after_the_command_deadline() {
    let rules = rules(constant(300, 5), 1, Some(1000));
    let mut clock = Clock::new();
    let start = clock.now;
    let mut attempt = Attempt::new(&rules, Some(start));
    assert_eq!(clock.ms(attempt.deadline().unwrap()), 1000);
    // Tries at 0, 300, 600 and 900 fit; a fifth would start at 1200.
    let mut tries = vec![0];
    for _ in 0..3 {
        let (_, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
        clock.advance_to(again_at(&next));
        tries.push(clock.now.duration_since(start).as_millis());
    }
    assert_eq!(tries, [0, 300, 600, 900]);
    let error = failed_with(fail(&mut attempt, &rules, &clock, refused(), WRITE, false).1);
    assert_eq!(error.status(), Status::Connection);
    assert!(
        error
            .message()
            .ends_with("(after 4 attempts; command deadline reached)"),
        "{}",
        error.message()
    );
}

/// API.md's cluster rule, step by step: per-node retries (here two) within each of
/// `cluster_error_retry_attempts` (three) whole-cluster attempts; a CONNECTION failure drops
/// the node, re-reads the topology and starts a new cycle of per-node retries, reads to
/// primaries; the third cycle's failure is final.
#[test]
fn cluster_attempts_walked_step_by_step() {
    let rules = rules(constant(10, 2), 3, None);
    let mut clock = Clock::new();
    let mut attempt = Attempt::new(&rules, Some(clock.now));
    let mut target = Target::default();
    let mut pauses = Vec::new();
    for cycle in 1..=3u32 {
        // Two per-node retries, 10 ms apart.
        for _ in 0..2 {
            let (judgement, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
            assert_eq!(judgement, Judgement::Retry, "cycle {cycle}");
            let at = again_at(&next).unwrap();
            assert_eq!(clock.ms(at), 10);
            clock.advance_to(Some(at));
        }
        // The third failure of the cycle ends it.
        let (judgement, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
        if cycle < 3 {
            assert_eq!(
                judgement,
                Judgement::NewTopologyAttempt { node_failed: true }
            );
            target.primary_only = true;
            match &next {
                Next::Again {
                    at: Some(at),
                    refresh: true,
                    retried: Some(_),
                } => pauses.push(clock.ms(*at)),
                other => panic!("cycle {cycle}: {other:?}"),
            }
            clock.advance_to(again_at(&next));
        } else {
            let error = failed_with(next);
            assert_eq!(
                error.message(),
                "connect to 127.0.0.1:1: connection refused (after 3 cluster attempts)"
            );
        }
    }
    assert_eq!(pauses, [250, 500], "each cycle waits longer for a failover");
    assert!(target.primary_only);
    assert_eq!(attempt.rounds(), 9);
}

#[test]
fn a_cluster_write_lost_after_sending_is_final_and_the_node_suspect() {
    let rules = rules(RetryPolicy::NEVER, 3, None);
    let clock = Clock::new();
    let mut attempt = Attempt::new(&rules, None);
    let (judgement, next) = fail(
        &mut attempt,
        &rules,
        &clock,
        lost_after_sending(),
        WRITE,
        false,
    );
    assert_eq!(
        judgement,
        Judgement::Final {
            verdict: Verdict::MayHaveBeenApplied,
            node_failed: true
        }
    );
    match next {
        Next::Fail { error, refresh } => {
            assert!(refresh, "the topology is read again in the background");
            assert!(error.message().contains("may have been applied"));
        }
        other => panic!("{other:?}"),
    }
    // A read lost the same way starts a new cluster attempt.
    let mut attempt = Attempt::new(&rules, None);
    let (judgement, _) = fail(
        &mut attempt,
        &rules,
        &clock,
        lost_after_sending(),
        WRITE,
        true,
    );
    assert_eq!(
        judgement,
        Judgement::NewTopologyAttempt { node_failed: true }
    );
    // No node for the slot: a new cluster attempt, the node not blamed.
    let unroutable = Error::new(Status::ClusterDown, "slot 7 is not served by any node");
    let (judgement, _) = fail(&mut attempt, &rules, &clock, unroutable, WRITE, false);
    assert_eq!(
        judgement,
        Judgement::NewTopologyAttempt { node_failed: false }
    );
}

#[test]
fn cluster_attempts_end_at_the_deadline() {
    let rules = rules(RetryPolicy::NEVER, 5, Some(600));
    let mut clock = Clock::new();
    let mut attempt = Attempt::new(&rules, Some(clock.now));
    let (_, next) = fail(&mut attempt, &rules, &clock, refused(), WRITE, false);
    clock.advance_to(again_at(&next)); // 250 ms
    let error = failed_with(fail(&mut attempt, &rules, &clock, refused(), WRITE, false).1);
    assert_eq!(
        error.message(),
        "connect to 127.0.0.1:1: connection refused (after 2 cluster attempts; command deadline reached)"
    );
}

fn redirect_of(text: &[u8]) -> Redirect {
    match server_error::classify(text) {
        server_error::ServerErrorKind::Moved { slot, address } => Redirect::Moved {
            slot,
            node: NodeAddress::parse(&address).unwrap(),
        },
        server_error::ServerErrorKind::Ask { address, .. } => {
            Redirect::Ask(NodeAddress::parse(&address).unwrap())
        }
        server_error::ServerErrorKind::TryAgain => Redirect::TryAgain,
        _ => Redirect::Refresh,
    }
}

/// Follows one topology answer for one command, as a driver does.
fn redirected(
    attempt: &mut Attempt,
    rules: &Rules,
    clock: &Clock,
    target: &mut Target,
    text: &[u8],
) -> Next {
    assert!(attempt.may_follow());
    let mut round = Round::default();
    target.follow(&redirect_of(text), &mut round.follow);
    attempt.after_round(rules, round, clock.now, 0)
}

#[test]
fn redirections_are_followed_at_once_then_with_growing_pauses_up_to_the_limit() {
    let rules = rules(RetryPolicy::NEVER, 3, None);
    let mut clock = Clock::new();
    let mut attempt = Attempt::new(&rules, None);
    let mut target = Target::default();
    let next = redirected(
        &mut attempt,
        &rules,
        &clock,
        &mut target,
        b"ASK 1 127.0.0.1:7001",
    );
    assert!(matches!(
        next,
        Next::Again {
            at: None,
            refresh: false,
            retried: None
        }
    ));
    assert_eq!(target.ask, NodeAddress::parse("127.0.0.1:7001"));
    let next = redirected(
        &mut attempt,
        &rules,
        &clock,
        &mut target,
        b"MOVED 1 127.0.0.1:7002",
    );
    assert!(matches!(next, Next::Again { at: None, .. }));
    assert_eq!(target.ask, None, "MOVED goes by the slot map");
    let mut pauses = Vec::new();
    while attempt.may_follow() {
        let next = redirected(
            &mut attempt,
            &rules,
            &clock,
            &mut target,
            b"MOVED 1 127.0.0.1:7002",
        );
        let at = again_at(&next);
        pauses.push(at.map_or(0, |at| clock.ms(at)));
        clock.advance_to(at);
    }
    assert_eq!(pauses.len(), 14, "16 rounds in all");
    assert_eq!(pauses[..3], [30, 40, 50]);
    assert_eq!(*pauses.last().unwrap(), 160);
    assert!(!attempt.may_follow(), "the 17th answer stands");
}

#[test]
fn tryagain_pauses_at_once_and_clusterdown_reads_the_topology() {
    let rules = rules(RetryPolicy::NEVER, 3, Some(1000));
    let mut clock = Clock::new();
    let mut attempt = Attempt::new(&rules, Some(clock.now));
    let mut target = Target::default();
    let next = redirected(
        &mut attempt,
        &rules,
        &clock,
        &mut target,
        b"TRYAGAIN Multiple keys request during rehashing of slot",
    );
    assert_eq!(again_at(&next).map(|at| clock.ms(at)), Some(10));
    let next = redirected(
        &mut attempt,
        &rules,
        &clock,
        &mut target,
        b"CLUSTERDOWN The cluster is down",
    );
    assert!(matches!(
        next,
        Next::Again {
            at: None,
            refresh: true,
            ..
        }
    ));
    // A pause that would end after the deadline: the answer stands.
    clock.now += Duration::from_millis(995);
    let next = redirected(&mut attempt, &rules, &clock, &mut target, b"TRYAGAIN again");
    assert!(matches!(next, Next::Stand), "{next:?}");
}

/// A cluster pipeline's round can mix answers: redirected commands ride along with a retried
/// group, and the longer wait wins; a final failure anywhere ends the batch.
#[test]
fn a_round_of_several_nodes_waits_for_the_longest_and_fails_on_any_final_failure() {
    let rules = rules(constant(50, 2), 3, None);
    let clock = Clock::new();
    let mut attempt = Attempt::new(&rules, None);
    let mut round = Round::default();
    let mut target = Target::default();
    target.follow(&redirect_of(b"MOVED 1 127.0.0.1:7002"), &mut round.follow);
    let judgement = attempt.judge(&rules, &refused(), WRITE, || false);
    Attempt::note(&judgement, refused(), &mut round);
    let next = attempt.after_round(&rules, round, clock.now, 0);
    assert_eq!(again_at(&next).map(|at| clock.ms(at)), Some(50));

    let mut round = Round::default();
    let judgement = attempt.judge(&rules, &lost_after_sending(), WRITE, || false);
    Attempt::note(&judgement, lost_after_sending(), &mut round);
    let judgement = attempt.judge(&rules, &refused(), WRITE, || false);
    Attempt::note(&judgement, refused(), &mut round);
    let error = failed_with(attempt.after_round(&rules, round, clock.now, 0));
    assert_eq!(error.status(), Status::Timeout);

    let mut attempt = Attempt::new(&rules, None);
    assert!(matches!(
        attempt.after_round(&rules, Round::default(), clock.now, 0),
        Next::Done
    ));
}
