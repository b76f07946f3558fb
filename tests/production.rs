//! Issue 3, proven against real servers and real faults: one pooled client shared by many
//! threads, connections killed under it, the server restarted on the same port, stalled with
//! SIGSTOP, and a fault proxy that delays, cuts and resets streams; retries (and SAFE mode's
//! refusal to replay writes), command deadlines, blocking commands, health checks, pool
//! exhaustion and maintenance, stats and events.
//!
//! Timing bounds are deliberately generous (the machine is small and shared): a lower bound says
//! "it really waited", an upper bound says "it did not wait for something else". Waiting for a
//! condition is always polling with a deadline; the few places where time itself is what is
//! tested (a connection idle for longer than an interval) say so.

mod support;

use brisk::core::retry::{RetrySettings, RetryWrites};
use brisk::events::{Event, EventKind, HandlerSlot};
use brisk::stats::Stat;
use brisk::{Client, Config, Error, Reply, Result, Status};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    FaultProxy, RedisServer, StopOnDrop, append, assert_at_most, assert_between, client,
    closed_port, cmd, config_for, constant_retry, expect_err, ok, session_cmd, text, timed,
    wait_until,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn stat(c: &Client, which: Stat) -> u64 {
    c.stat(which)
}

/// Lets `d` pass. Only for tests where the passing of time is itself the condition under test
/// (a connection idle for longer than an interval, older than its lifetime), never to wait for
/// something to happen.
fn let_time_pass(d: Duration) {
    std::thread::sleep(d);
}

#[track_caller]
fn assert_contains(error: &Error, needle: &str) {
    assert!(
        error.message().contains(needle),
        "{needle:?} not in the message: {}",
        error.message()
    );
}

#[track_caller]
fn integer(reply: &Reply) -> i64 {
    reply
        .as_integer()
        .unwrap_or_else(|| panic!("expected an integer, got {reply:?}"))
}

/// The value of `key` as an integer (0 when missing).
#[track_caller]
fn counter(c: &Client, key: &str) -> i64 {
    let reply = ok(c, &["GET", key]);
    if reply.is_nil() {
        return 0;
    }
    text(&reply).parse().expect("an integer value")
}

/// `calls` and `failed_calls` of one command in `INFO commandstats` (0, 0 when never called).
#[track_caller]
fn cmdstat(server: &RedisServer, command: &str) -> (u64, u64) {
    let info = server.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = info.lines().find_map(|l| l.trim().strip_prefix(&prefix)) else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .parse()
            .expect("a number")
    };
    (field("calls"), field("failed_calls"))
}

/// Opens `n` connections at once (sessions held together) and gives them back to the pool.
fn fill_pool(c: &Client, n: usize) {
    let mut sessions: Vec<_> = (0..n).map(|_| c.session().expect("session")).collect();
    for s in &mut sessions {
        assert_eq!(text(&session_cmd(s, &["PING"]).expect("PING")), "PONG");
    }
    drop(sessions);
    assert_eq!(stat(c, Stat::PoolOpen), n as u64);
    assert_eq!(stat(c, Stat::PoolIdle), n as u64);
}

/// Sets the flag when dropped. Loops that run until told to stop get one inside their thread
/// scope, so that a failing assertion stops them too (the scope would wait for them forever).
/// An event as recorded by [`Recorder`]: owned copies of every field.
#[derive(Clone, Debug)]
struct Seen {
    kind: EventKind,
    status: Status,
    command: String,
    duration: Duration,
    attempt: u32,
    address: String,
    error_type: Option<String>,
    batch_size: u32,
    db: u32,
}

impl Seen {
    fn from_event(e: &Event<'_>) -> Seen {
        Seen {
            kind: e.kind,
            status: e.status,
            command: String::from_utf8_lossy(e.command).into_owned(),
            duration: e.duration,
            attempt: e.attempt,
            address: e.address.to_string_lossy().into_owned(),
            error_type: e.error_type.map(str::to_owned),
            batch_size: e.batch_size,
            db: e.db,
        }
    }
}

/// Records every event of a client; optionally runs a hook on each one first.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn install(&self, config: &mut Config) {
        self.install_with(config, |_| {});
    }

    fn install_with(&self, config: &mut Config, hook: impl Fn(&Event<'_>) + Send + Sync + 'static) {
        let events = self.events.clone();
        config.events = HandlerSlot(Some(Arc::new(move |e: &Event<'_>| {
            hook(e);
            events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Seen::from_event(e));
        })));
    }

    fn all(&self) -> Vec<Seen> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn of(&self, kind: EventKind) -> Vec<Seen> {
        self.all().into_iter().filter(|e| e.kind == kind).collect()
    }

    fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// How the INCRs of a loop ended, as the caller sees them.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u64,
    /// Failed after the request was sent, reported as "may have been applied" (SAFE mode).
    maybe_applied: u64,
    /// Failed before anything was sent: certainly not applied.
    not_sent: u64,
    /// Failed after sending without the SAFE note (ALWAYS mode, retries spent).
    other_sent: u64,
}

// ---------------------------------------------------------------------------------------------
// Load: one client, many threads

const THREADS: usize = 32;
const COMMANDS_PER_THREAD: u64 = 5_000;
const POOL_SIZE: u64 = 8;

#[derive(Default)]
struct Work {
    commands: u64,
    incrs: u64,
}

/// One thread's share of the load: SET/GET/INCR/HSET/LPUSH/HGET and 4-command pipelines,
/// each reply checked, exactly `COMMANDS_PER_THREAD` commands (a pipeline counts its commands).
fn mixed_load(c: &Client, t: usize) -> Work {
    let key = format!("load:{t}:s");
    let hash = format!("load:{t}:h");
    let list = format!("load:{t}:l");
    let mut work = Work::default();
    let mut value = String::new();
    let mut pushes = 0i64;
    let mut fields = std::collections::HashMap::new();
    let mut i = 0u64;
    while work.commands < COMMANDS_PER_THREAD {
        i += 1;
        let left = COMMANDS_PER_THREAD - work.commands;
        match i % 8 {
            0 => {
                value = format!("{t}:{i}");
                assert_eq!(text(&ok(c, &["SET", &key, &value])), "OK");
            }
            1 | 6 => {
                let got = ok(c, &["GET", &key]);
                if value.is_empty() {
                    assert!(got.is_nil(), "{got:?}");
                } else {
                    assert_eq!(text(&got), value);
                }
            }
            2 => {
                assert!(integer(&ok(c, &["INCR", "load:counter"])) > 0);
                work.incrs += 1;
            }
            3 => {
                let field = format!("f{}", i % 16);
                let new = !fields.contains_key(&field);
                let reply = ok(c, &["HSET", &hash, &field, &i.to_string()]);
                assert_eq!(integer(&reply), i64::from(new));
                fields.insert(field, i);
            }
            4 => {
                pushes += 1;
                assert_eq!(integer(&ok(c, &["LPUSH", &list, &i.to_string()])), pushes);
            }
            5 if left >= 4 => {
                value = format!("{t}:{i}:p");
                let mut p = c.pipeline();
                append(&mut p, &["SET", &key, &value]).unwrap();
                append(&mut p, &["GET", &key]).unwrap();
                append(&mut p, &["INCR", "load:counter"]).unwrap();
                append(&mut p, &["LLEN", &list]).unwrap();
                let replies = p
                    .exec()
                    .unwrap_or_else(|e| panic!("pipeline: {:?}: {}", e.status(), e.message()));
                let replies = replies.children();
                assert_eq!(replies.len(), 4);
                assert_eq!(replies[0].as_str(), Some("OK"));
                assert_eq!(replies[1].as_str(), Some(value.as_str()));
                assert!(replies[2].as_integer().is_some_and(|n| n > 0));
                assert_eq!(replies[3].as_integer(), Some(pushes));
                work.incrs += 1;
                work.commands += 3; // and one more below
            }
            _ => {
                let field = format!("f{}", i % 16);
                let got = ok(c, &["HGET", &hash, &field]);
                match fields.get(&field) {
                    Some(v) => assert_eq!(text(&got), v.to_string()),
                    None => assert!(got.is_nil()),
                }
            }
        }
        work.commands += 1;
    }
    work
}

#[test]
fn thirty_two_threads_share_one_client_of_eight_connections() {
    let server = RedisServer::start();
    let mut config = server.config();
    config.set_pool_size(POOL_SIZE as u32).unwrap();
    let c = client(&config);

    let done = AtomicBool::new(false);
    let (work, took, (max_open, samples, max_server_clients)) = std::thread::scope(|s| {
        // Samples the pool gauge as often as it can, and the server's own count of clients
        // a few times a second, until the load is done.
        let monitor = s.spawn(|| {
            let (mut max_open, mut samples, mut max_server) = (0, 0u64, 0);
            let mut last_server_look = Instant::now();
            while !done.load(SeqCst) {
                max_open = max_open.max(stat(&c, Stat::PoolOpen));
                samples += 1;
                if last_server_look.elapsed() >= Duration::from_millis(200) {
                    max_server = max_server.max(server.normal_clients());
                    last_server_look = Instant::now();
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            (max_open, samples, max_server)
        });
        let started = Instant::now();
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = &c;
                s.spawn(move || mixed_load(c, t))
            })
            .collect();
        let mut total = Work::default();
        let mut panicked = None;
        for w in workers {
            match w.join() {
                Ok(w) => {
                    total.commands += w.commands;
                    total.incrs += w.incrs;
                }
                Err(p) => panicked = Some(p),
            }
        }
        let took = started.elapsed();
        done.store(true, SeqCst);
        let monitor = monitor.join().expect("monitor");
        if let Some(p) = panicked {
            std::panic::resume_unwind(p);
        }
        (total, took, monitor)
    });

    eprintln!(
        "load: {} commands from {THREADS} threads in {took:?} ({:.0}/s); pool open max {max_open} \
         over {samples} samples, server clients max {max_server_clients}; pool waits {}, \
         connects {}",
        work.commands,
        work.commands as f64 / took.as_secs_f64(),
        stat(&c, Stat::PoolWaits),
        stat(&c, Stat::Connects)
    );
    assert_eq!(work.commands, THREADS as u64 * COMMANDS_PER_THREAD);
    assert!(samples >= 10, "the monitor sampled only {samples} times");
    assert!(
        (1..=POOL_SIZE).contains(&max_open),
        "pool open max {max_open}"
    );
    assert!(
        max_server_clients <= POOL_SIZE,
        "the server saw {max_server_clients} clients"
    );
    assert!(stat(&c, Stat::PoolOpen) <= POOL_SIZE);
    // The counters add up.
    assert_eq!(stat(&c, Stat::Commands), work.commands);
    assert_eq!(stat(&c, Stat::Errors), 0);
    assert_eq!(stat(&c, Stat::Retries), 0);
    assert_eq!(stat(&c, Stat::Timeouts), 0);
    assert_eq!(stat(&c, Stat::PoolExhausted), 0);
    assert_eq!(stat(&c, Stat::Reconnects), 0);
    assert!(stat(&c, Stat::Connects) <= POOL_SIZE);
    // 32 threads on 8 connections must have queued for them.
    assert!(stat(&c, Stat::PoolWaits) > 0);
    // And the server agrees about the work done.
    assert_eq!(counter(&c, "load:counter"), work.incrs as i64);
    let (incr_calls, _) = cmdstat(&server, "incr");
    assert_eq!(incr_calls, work.incrs);
}

// ---------------------------------------------------------------------------------------------
// Connections killed, server restarted

#[test]
fn connections_killed_between_commands_are_replaced() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.set_pool_size(4).unwrap();
    rec.install(&mut config);
    let c = client(&config);

    let mut reconnects = 0;
    for round in 0..3 {
        fill_pool(&c, 4);
        let killed = server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        assert_eq!(killed, "4", "round {round}: all four pooled connections");
        std::thread::scope(|s| {
            for t in 0..4 {
                let c = &c;
                s.spawn(move || {
                    for i in 0..50 {
                        let key = format!("kill:{t}");
                        let value = format!("{round}:{i}");
                        ok(c, &["SET", &key, &value]);
                        assert_eq!(text(&ok(c, &["GET", &key])), value);
                        ok(c, &["INCR", &format!("kill:round:{round}")]);
                    }
                });
            }
        });
        assert_eq!(counter(&c, &format!("kill:round:{round}")), 200);
        let now = stat(&c, Stat::Reconnects);
        assert!(now > reconnects, "round {round}: reconnects {now}");
        reconnects = now;
    }
    assert_eq!(stat(&c, Stat::Errors), 0);
    let lost = rec
        .of(EventKind::Disconnect)
        .iter()
        .filter(|e| e.status == Status::Connection)
        .count();
    assert!(lost >= 12, "{lost} DISCONNECT events for lost connections");
    assert!(stat(&c, Stat::PoolOpen) <= 4);
}

#[test]
fn connections_killed_under_read_load_never_fail_a_read() {
    let server = RedisServer::start();
    let mut config = server.config();
    config.set_pool_size(4).unwrap();
    let c = client(&config);
    ok(&c, &["SET", "k", "v"]);

    let stop = AtomicBool::new(false);
    // Per reader: between two kills every reader completes reads of its own, so no read is in
    // flight through more than one kill (however slowly a loaded machine runs one reader), and
    // the default retries always suffice.
    let reads: [AtomicU64; 4] = Default::default();
    let total = || reads.iter().map(|r| r.load(SeqCst)).sum::<u64>();
    let every_reader_read = |n: u64| {
        let before: Vec<u64> = reads.iter().map(|r| r.load(SeqCst)).collect();
        wait_until(Duration::from_secs(10), || {
            reads
                .iter()
                .zip(&before)
                .all(|(r, b)| r.load(SeqCst) >= b + n)
        })
    };
    let kills = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let readers: Vec<_> = reads
            .iter()
            .map(|count| {
                s.spawn(|| {
                    let mut failures = Vec::new();
                    while !stop.load(SeqCst) {
                        match cmd(&c, &["GET", "k"]) {
                            Ok(r) => assert_eq!(text(&r), "v"),
                            Err(e) => failures.push(format!("{:?}: {}", e.status(), e.message())),
                        }
                        count.fetch_add(1, SeqCst);
                    }
                    failures
                })
            })
            .collect();
        let mut kills = 0u64;
        for _ in 0..10 {
            assert!(every_reader_read(12), "reads stopped between the kills");
            kills += server
                .cli(&["CLIENT", "KILL", "TYPE", "normal"])
                .parse::<u64>()
                .expect("a count");
        }
        let progressed = every_reader_read(12);
        stop.store(true, SeqCst);
        for r in readers {
            let failures = r.join().expect("reader");
            assert!(failures.is_empty(), "reads failed: {failures:?}");
        }
        assert!(progressed, "reads stopped after the last kill");
        kills
    });
    eprintln!(
        "read load: {} GETs, {kills} connections killed, {} reconnects, {} retries",
        total(),
        stat(&c, Stat::Reconnects),
        stat(&c, Stat::Retries)
    );
    assert!(kills >= 10, "every kill found at least one connection");
    assert!(stat(&c, Stat::Reconnects) >= 10);
    assert_eq!(stat(&c, Stat::Errors), 0);
}

#[test]
fn server_restarted_on_the_same_port() {
    let mut server = RedisServer::start();
    let port = server.port();
    let rec = Recorder::default();
    let mut config = server.config();
    config.retry = constant_retry(50, 100); // a 5 s budget
    config.connect_timeout_ms = 1000;
    config.read_timeout_ms = 1000;
    rec.install(&mut config);
    let c = client(&config);
    ok(&c, &["SET", "before", "1"]);

    // Down, and back once the client has been seen retrying: the command issued during the
    // outage succeeds.
    server.kill();
    let (result, took) = std::thread::scope(|s| {
        let server = &mut server;
        let c = &c;
        let restarter = s.spawn(move || {
            let retried = wait_until(Duration::from_secs(10), || stat(c, Stat::Retries) >= 3);
            server.start_again();
            retried
        });
        let outcome = timed(|| cmd(c, &["SET", "during", "1"]));
        assert!(restarter.join().expect("restarter"), "no retries seen");
        outcome
    });
    result.unwrap_or_else(|e| panic!("SET during the outage: {:?}: {}", e.status(), e.message()));
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert_eq!(server.port(), port);
    // A real restart: the old data set is gone, the new write is there.
    assert!(ok(&c, &["GET", "before"]).is_nil());
    assert_eq!(text(&ok(&c, &["GET", "during"])), "1");
    assert!(stat(&c, Stat::Reconnects) >= 1);
    let retries = rec.of(EventKind::Retry);
    assert!(retries.len() >= 3);
    assert!(
        retries
            .iter()
            .all(|e| e.status == Status::Connection && e.command == "SET"),
        "{retries:?}"
    );
    assert_eq!(stat(&c, Stat::Errors), 0);

    // Killed and restarted under load: reads all succeed; a write in flight at the kill may be
    // reported as "may have been applied", nothing else fails.
    let stop = AtomicBool::new(false);
    let ops = AtomicU64::new(0);
    let retries_before = stat(&c, Stat::Retries);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let loaders: Vec<_> = (0..2)
            .map(|t| {
                let (c, stop, ops) = (&c, &stop, &ops);
                s.spawn(move || {
                    let mut write_failures = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(SeqCst) {
                        i += 1;
                        let key = format!("restart:{t}:{}", i % 10);
                        if i.is_multiple_of(2) {
                            if let Err(e) = cmd(c, &["SET", &key, "x"]) {
                                write_failures.push(e);
                            }
                        } else {
                            cmd(c, &["GET", &key]).unwrap_or_else(|e| {
                                panic!("GET failed: {:?}: {}", e.status(), e.message())
                            });
                        }
                        ops.fetch_add(1, SeqCst);
                    }
                    write_failures
                })
            })
            .collect();
        let progress = |n: u64| {
            let before = ops.load(SeqCst);
            assert!(
                wait_until(Duration::from_secs(10), || ops.load(SeqCst) >= before + n),
                "no progress"
            );
        };
        progress(100);
        server.kill();
        let retried = wait_until(Duration::from_secs(10), || {
            stat(&c, Stat::Retries) >= retries_before + 2
        });
        server.start_again();
        assert!(retried, "nobody retried during the outage");
        progress(100);
        stop.store(true, SeqCst);
        for l in loaders {
            let failures = l.join().expect("loader");
            assert!(failures.len() <= 1, "{} writes failed", failures.len());
            for e in failures {
                assert_eq!(e.status(), Status::Connection, "{}", e.message());
                assert_contains(&e, "may have been applied");
            }
        }
    });

    // Down for longer than the retry budget: CONNECTION, naming the attempts.
    let mut short = server.config();
    short.retry = constant_retry(50, 4);
    let c2 = client(&short);
    ok(&c2, &["PING"]);
    server.kill();
    let (result, took) = timed(|| cmd(&c2, &["GET", "k"]));
    let e = expect_err(result, Status::Connection);
    assert_contains(&e, "after 5 attempts");
    assert_contains(&e, "refused");
    assert_between(took, 150, 3000, "four 50 ms backoffs");
    server.start_again();
    assert_eq!(text(&ok(&c2, &["PING"])), "PONG");
    assert_eq!(stat(&c2, Stat::Retries), 4);
    assert_eq!(stat(&c2, Stat::Errors), 1);
}

// ---------------------------------------------------------------------------------------------
// A stalled server (SIGSTOP): timeouts, retries, SAFE and ALWAYS

#[test]
fn reads_on_a_stalled_server_time_out_and_are_retried() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.read_timeout_ms = 300;
    config.retry = constant_retry(20, 5);
    rec.install(&mut config);
    let c = client(&config);
    ok(&c, &["SET", "k", "v"]);
    rec.clear();

    server.sigstop();
    let (result, took) = std::thread::scope(|s| {
        s.spawn(|| {
            let timed_out = wait_until(Duration::from_secs(10), || stat(&c, Stat::Timeouts) >= 1);
            server.sigcont();
            assert!(timed_out, "the read never timed out");
        });
        timed(|| cmd(&c, &["GET", "k"]))
    });
    let reply = result.unwrap_or_else(|e| panic!("GET: {:?}: {}", e.status(), e.message()));
    assert_eq!(text(&reply), "v");
    assert_between(took, 250, 3000, "one read timeout, then a retry");
    assert!(stat(&c, Stat::Timeouts) >= 1);
    assert!(stat(&c, Stat::Retries) >= 1);
    assert_eq!(stat(&c, Stat::Errors), 0);

    // The first attempt timed out within its bound and was retried.
    let retries = rec.of(EventKind::Retry);
    let first = retries.first().expect("a RETRY event");
    assert_eq!(
        (first.command.as_str(), first.status, first.attempt),
        ("GET", Status::Timeout, 1)
    );
    assert_between(first.duration, 250, 2000, "the timed-out attempt");
    assert_eq!(first.error_type.as_deref(), Some("BRISK_ERR_TIMEOUT"));
    let commands = rec.of(EventKind::Command);
    let get = commands.last().expect("a COMMAND event");
    assert_eq!((get.command.as_str(), get.status), ("GET", Status::Ok));
    assert_eq!(u64::from(get.attempt), stat(&c, Stat::Retries) + 1);
}

/// INCRs in a loop on one thread while the server is stalled `cycles` times (each stall lasts
/// until a read has timed out). Returns what the caller saw and the final counter.
fn incr_loop_under_stalls(
    server: &RedisServer,
    c: &Client,
    key: &str,
    cycles: usize,
) -> (Tally, i64) {
    let stop = AtomicBool::new(false);
    let succeeded = AtomicU64::new(0);
    let tally = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let looper = s.spawn(|| {
            let mut tally = Tally::default();
            while !stop.load(SeqCst) {
                match cmd(c, &["INCR", key]) {
                    Ok(reply) => {
                        assert!(integer(&reply) > 0);
                        tally.succeeded += 1;
                        succeeded.fetch_add(1, SeqCst);
                    }
                    Err(e) if e.message().contains("may have been applied") => {
                        assert!(e.is_sent(), "{}", e.message());
                        tally.maybe_applied += 1;
                    }
                    Err(e) if matches!(e.status(), Status::Timeout | Status::Connection) => {
                        if e.is_sent() {
                            tally.other_sent += 1;
                        } else {
                            tally.not_sent += 1;
                        }
                    }
                    Err(e) => panic!("INCR: {:?}: {}", e.status(), e.message()),
                }
            }
            tally
        });
        let progress = || {
            let before = succeeded.load(SeqCst);
            wait_until(Duration::from_secs(10), || {
                succeeded.load(SeqCst) >= before + 20
            })
        };
        let mut stalls_ok = true;
        for _ in 0..cycles {
            stalls_ok &= progress();
            let timeouts = stat(c, Stat::Timeouts);
            server.sigstop();
            stalls_ok &= wait_until(Duration::from_secs(10), || {
                stat(c, Stat::Timeouts) > timeouts
            });
            server.sigcont();
        }
        // Progress after the last stall also means the server has worked through whatever the
        // stalled connections had sent.
        stalls_ok &= progress();
        stop.store(true, SeqCst);
        let tally = looper.join().expect("INCR loop");
        assert!(
            stalls_ok,
            "a stall or the progress after it did not happen: {tally:?}"
        );
        tally
    });
    (tally, counter(c, key))
}

#[test]
fn safe_mode_never_replays_an_incr_that_timed_out_after_sending() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.read_timeout_ms = 300;
    config.retry = constant_retry(50, 3);
    rec.install(&mut config);
    let c = client(&config);
    ok(&c, &["PING"]);

    let (tally, value) = incr_loop_under_stalls(&server, &c, "safe:n", 3);
    eprintln!(
        "SAFE: {tally:?}; counter {value}: {} of the {} \"may have been applied\" were applied",
        value - tally.succeeded as i64,
        tally.maybe_applied
    );
    // The counter never goes past what the caller believes succeeded plus what it was told may
    // have been applied, and never below what succeeded.
    assert!(value >= tally.succeeded as i64, "{value} < {tally:?}");
    assert!(
        value <= (tally.succeeded + tally.maybe_applied) as i64,
        "{value} > {tally:?}: a write was replayed"
    );
    // Every stall caught an INCR after it was sent, and none of them was retried.
    assert!(tally.maybe_applied >= 3, "{tally:?}");
    assert_eq!(tally.other_sent, 0, "{tally:?}");
    assert!(stat(&c, Stat::Timeouts) >= 3);
}

#[test]
fn always_mode_replays_an_incr_that_timed_out_after_sending() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.read_timeout_ms = 300;
    config.retry = RetrySettings {
        writes: RetryWrites::Always,
        ..constant_retry(50, 3)
    };
    rec.install(&mut config);
    let c = client(&config);
    ok(&c, &["PING"]);

    let (tally, value) = incr_loop_under_stalls(&server, &c, "always:n", 3);
    let retries = stat(&c, Stat::Retries);
    eprintln!(
        "ALWAYS: {tally:?}; counter {value}, {} more than succeeded; {retries} retries",
        value - tally.succeeded as i64
    );
    assert_eq!(
        tally.maybe_applied, 0,
        "ALWAYS never gives up on a sent write"
    );
    let incr_retries = rec
        .of(EventKind::Retry)
        .iter()
        .filter(|e| e.command == "INCR" && e.status == Status::Timeout)
        .count();
    assert!(
        incr_retries >= 3,
        "{incr_retries} INCR retries after a timeout"
    );
    // At least once: never fewer than succeeded, at most one extra per failed attempt.
    assert!(value >= tally.succeeded as i64, "{value} < {tally:?}");
    let failed_attempts = retries + tally.not_sent + tally.other_sent;
    assert!(
        value <= (tally.succeeded + failed_attempts) as i64,
        "{value}, {tally:?}"
    );
}

/// One INCR, the server stalled until the client has seen it time out.
fn incr_across_one_stall(server: &RedisServer, c: &Client, key: &str) -> Result<Reply> {
    server.sigstop();
    std::thread::scope(|s| {
        s.spawn(|| {
            let timed_out = wait_until(Duration::from_secs(10), || stat(c, Stat::Timeouts) >= 1);
            server.sigcont();
            assert!(timed_out);
        });
        cmd(c, &["INCR", key])
    })
}

#[test]
fn one_incr_across_a_stall_safe_versus_always() {
    let server = RedisServer::start();

    // SAFE: reported, not replayed, and the server did apply it exactly once.
    let mut config = server.config();
    config.read_timeout_ms = 300;
    config.retry = constant_retry(20, 3);
    let safe = client(&config);
    ok(&safe, &["PING"]);
    let e = expect_err(
        incr_across_one_stall(&server, &safe, "one:safe"),
        Status::Timeout,
    );
    assert!(e.is_sent());
    assert_contains(&e, "may have been applied");
    assert_contains(&e, "not retried");
    assert_eq!(stat(&safe, Stat::Retries), 0);
    assert!(
        wait_until(Duration::from_secs(5), || counter(&safe, "one:safe") == 1),
        "the stalled INCR was applied once the server resumed: {}",
        counter(&safe, "one:safe")
    );

    // ALWAYS: the caller sees one success, the server applied it twice.
    let rec = Recorder::default();
    config.retry.writes = RetryWrites::Always;
    rec.install(&mut config);
    let always = client(&config);
    ok(&always, &["PING"]);
    let reply = incr_across_one_stall(&server, &always, "one:always")
        .unwrap_or_else(|e| panic!("INCR: {:?}: {}", e.status(), e.message()));
    assert!((1..=2).contains(&integer(&reply)), "{reply:?}");
    assert!(stat(&always, Stat::Retries) >= 1);
    let retry = rec.of(EventKind::Retry);
    assert_eq!(
        (retry[0].command.as_str(), retry[0].status, retry[0].attempt),
        ("INCR", Status::Timeout, 1)
    );
    assert!(
        wait_until(Duration::from_secs(5), || counter(&always, "one:always")
            == 2),
        "at least once: the stalled INCR and its replay were both applied: {}",
        counter(&always, "one:always")
    );
    assert_eq!(counter(&safe, "one:safe"), 1);
}

// ---------------------------------------------------------------------------------------------
// Pool exhaustion

#[test]
fn pool_exhausted_after_the_max_wait_with_stats_and_events() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}?pool_size=1&pool_max_wait=200", server.url()));
    rec.install(&mut config);
    let c = client(&config);
    let mut session = c.session().unwrap();
    session_cmd(&mut session, &["PING"]).unwrap();
    rec.clear();

    let (result, took) = timed(|| c.ping());
    let e = expect_err(result, Status::PoolExhausted);
    assert_between(took, 180, 3000, "the max wait");
    for needle in [
        "max wait of 200 ms",
        "1 open (pool size 1)",
        "1 busy",
        "0 other callers waiting",
        "this one waited",
    ] {
        assert_contains(&e, needle);
    }
    let waited: u64 = e
        .message()
        .split("this one waited ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait time in {}", e.message()));
    assert!((180..3000).contains(&waited), "waited {waited} ms");
    assert_eq!(stat(&c, Stat::PoolWaits), 1);
    assert_eq!(stat(&c, Stat::PoolExhausted), 1);
    assert_eq!(stat(&c, Stat::Errors), 1);
    assert_eq!(stat(&c, Stat::Retries), 0, "POOL_EXHAUSTED is not retried");

    let waits = rec.of(EventKind::PoolWait);
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].status, Status::PoolExhausted);
    assert_between(waits[0].duration, 180, 3000, "POOL_WAIT duration");
    assert_eq!(waits[0].address, format!("127.0.0.1:{}", server.port()));
    let commands = rec.of(EventKind::Command);
    assert_eq!(commands.len(), 1);
    assert_eq!(
        (commands[0].command.as_str(), commands[0].status),
        ("PING", Status::PoolExhausted)
    );
    assert_eq!(
        commands[0].error_type.as_deref(),
        Some("BRISK_ERR_POOL_EXHAUSTED")
    );

    // Three callers waiting at once: each gives up, each is counted.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let e = expect_err(c.ping(), Status::PoolExhausted);
                assert_contains(&e, "other callers waiting");
            });
        }
    });
    assert_eq!(stat(&c, Stat::PoolWaits), 4);
    assert_eq!(stat(&c, Stat::PoolExhausted), 4);

    drop(session);
    assert_eq!(text(&ok(&c, &["PING"])), "PONG");
    assert_eq!(
        stat(&c, Stat::PoolWaits),
        4,
        "a free connection needs no wait"
    );
}

#[test]
fn a_caller_waits_for_a_connection_given_back() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}?pool_size=1&pool_max_wait=10000", server.url()));
    rec.install(&mut config);
    let c = client(&config);
    let session = c.session().unwrap();

    let (result, took) = std::thread::scope(|s| {
        s.spawn(|| {
            let waiting = wait_until(Duration::from_secs(10), || stat(&c, Stat::PoolWaits) >= 1);
            drop(session);
            assert!(waiting);
        });
        timed(|| c.ping())
    });
    result.expect("the connection given back serves the waiter");
    // Not the 10 s max wait.
    assert_at_most(took, 4000, "waiting for the connection given back");
    assert_eq!(stat(&c, Stat::PoolWaits), 1);
    assert_eq!(stat(&c, Stat::PoolExhausted), 0);
    let waits = rec.of(EventKind::PoolWait);
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].status, Status::Ok);
    assert!(waits[0].error_type.is_none());
    assert_eq!(
        stat(&c, Stat::Connects),
        1,
        "the same connection, handed over"
    );
}

// ---------------------------------------------------------------------------------------------
// Health checks

#[test]
fn an_idle_connection_is_pinged_before_the_next_command() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    // Long enough that commands one right after the other stay within it on a loaded machine.
    config.health_check_interval_ms = 500;
    rec.install(&mut config);
    let c = client(&config);

    ok(&c, &["SET", "k", "v"]);
    ok(&c, &["GET", "k"]);
    assert_eq!(stat(&c, Stat::HealthChecks), 0, "used within the interval");
    let (pings_before, _) = cmdstat(&server, "ping");
    rec.clear();

    let_time_pass(Duration::from_millis(650)); // idle beyond the interval
    assert_eq!(text(&ok(&c, &["GET", "k"])), "v");
    // Right after (before anything slow, such as running redis-cli), no second check.
    ok(&c, &["GET", "k"]);
    assert_eq!(stat(&c, Stat::HealthChecks), 1);
    assert_eq!(stat(&c, Stat::HealthCheckFailures), 0);
    assert_eq!(
        cmdstat(&server, "ping").0,
        pings_before + 1,
        "the server saw the PING"
    );
    let events = rec.all();
    let check = events
        .iter()
        .position(|e| e.kind == EventKind::HealthCheck)
        .expect("a HEALTH_CHECK event");
    let command = events
        .iter()
        .position(|e| e.kind == EventKind::Command)
        .expect("a COMMAND event");
    assert!(check < command, "the PING precedes the command: {events:?}");
    assert_eq!(events[check].status, Status::Ok);
    assert_eq!(
        events[check].address,
        format!("127.0.0.1:{}", server.port())
    );
}

#[test]
fn an_idle_connection_killed_is_replaced_before_any_ping() {
    let server = RedisServer::start();
    let mut config = server.config();
    config.health_check_interval_ms = 200;
    let c = client(&config);
    ok(&c, &["SET", "k", "v"]);
    assert_eq!(server.cli(&["CLIENT", "KILL", "TYPE", "normal"]), "1");
    let_time_pass(Duration::from_millis(350));
    assert_eq!(text(&ok(&c, &["GET", "k"])), "v");
    // The non-blocking peek saw the close first: no PING was wasted on it.
    assert_eq!(stat(&c, Stat::HealthChecks), 0);
    assert_eq!(stat(&c, Stat::Reconnects), 1);
    assert_eq!(stat(&c, Stat::Errors), 0);
}

/// The health-check PING fails for real (the peek sees nothing wrong); `heal` runs from the
/// event handler when the failed check is reported, so that the replacement connection works.
fn health_check_failure_case(
    mut config: Config,
    rec: &Recorder,
    break_it: impl FnOnce(),
    heal: impl Fn() + Send + Sync + 'static,
) -> (Client, Duration) {
    config.health_check_interval_ms = 200;
    config.read_timeout_ms = 300;
    config.retry.max_retries = Some(0); // the pool's replacement alone must save the command
    rec.install_with(&mut config, move |e| {
        if e.kind == EventKind::HealthCheck && e.status != Status::Ok {
            heal();
        }
    });
    let c = client(&config);
    ok(&c, &["SET", "k", "v"]);
    rec.clear();
    let_time_pass(Duration::from_millis(350));
    break_it();
    let (result, took) = timed(|| cmd(&c, &["GET", "k"]));
    let reply = result.unwrap_or_else(|e| panic!("GET: {:?}: {}", e.status(), e.message()));
    assert_eq!(text(&reply), "v");
    assert_eq!(stat(&c, Stat::HealthChecks), 1);
    assert_eq!(stat(&c, Stat::HealthCheckFailures), 1);
    assert_eq!(stat(&c, Stat::Errors), 0);
    assert_eq!(stat(&c, Stat::Retries), 0);
    assert_eq!(stat(&c, Stat::Reconnects), 1);
    let kinds: Vec<EventKind> = rec.all().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::HealthCheck,
            EventKind::Disconnect,
            EventKind::Connect,
            EventKind::Command
        ]
    );
    let command = &rec.of(EventKind::Command)[0];
    assert_eq!((command.status, command.attempt), (Status::Ok, 1));
    (c, took)
}

#[test]
fn a_health_check_that_times_out_replaces_the_connection() {
    let server = RedisServer::start();
    let pid = server.pid();
    let rec = Recorder::default();
    let (_c, took) = health_check_failure_case(
        server.config(),
        &rec,
        || server.sigstop(),
        // SAFETY: a signal to our own child process, which is alive (the test holds it).
        move || assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0),
    );
    assert_between(took, 250, 3000, "the PING timed out first");
    let check = &rec.of(EventKind::HealthCheck)[0];
    assert_eq!(check.status, Status::Timeout);
    assert_between(check.duration, 250, 2000, "the PING's read timeout");
}

#[test]
fn a_health_check_cut_by_the_proxy_replaces_the_connection() {
    let server = RedisServer::start();
    let proxy = Arc::new(FaultProxy::in_front_of(&server));
    let rec = Recorder::default();
    let healer = proxy.clone();
    let (c, _) = health_check_failure_case(
        config_for(&proxy.url()),
        &rec,
        || proxy.cut_after(0),
        move || healer.heal(),
    );
    assert_eq!(rec.of(EventKind::HealthCheck)[0].status, Status::Connection);
    assert_eq!(proxy.accepted(), 2);
    drop(c);
}

// ---------------------------------------------------------------------------------------------
// Blocking commands

#[test]
fn blpop_waits_for_its_own_timeout_not_the_read_timeout() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}?read_timeout=500", server.url()));
    rec.install(&mut config);
    let c = client(&config);
    ok(&c, &["PING"]);

    let (result, took) = timed(|| cmd(&c, &["BLPOP", "empty", "2"]));
    let reply = result.unwrap_or_else(|e| panic!("BLPOP: {:?}: {}", e.status(), e.message()));
    assert!(reply.is_nil(), "{reply:?}");
    assert_between(took, 1900, 4500, "BLPOP's own 2 s");
    assert_eq!(stat(&c, Stat::Timeouts), 0);
    assert_eq!(stat(&c, Stat::Retries), 0);
    assert_eq!(stat(&c, Stat::Errors), 0);
    let blpop = rec.of(EventKind::Command).pop().unwrap();
    assert_eq!(
        (blpop.command.as_str(), blpop.status, blpop.attempt),
        ("BLPOP", Status::Ok, 1)
    );
    // The normal read timeout is back afterwards.
    assert_eq!(text(&ok(&c, &["PING"])), "PONG");
    assert_eq!(stat(&c, Stat::PoolOpen), 1);
}

#[test]
fn blpop_is_woken_by_a_push_from_another_client() {
    let server = RedisServer::start();
    let c = client(&config_for(&format!("{}?read_timeout=500", server.url())));
    ok(&c, &["PING"]);
    let (result, took) = std::thread::scope(|s| {
        let waiter = s.spawn(|| timed(|| cmd(&c, &["BLPOP", "queue", "5"])));
        let blocked = wait_until(Duration::from_secs(5), || {
            server.info_field("clients", "blocked_clients") == 1
        });
        assert!(blocked, "BLPOP never blocked on the server");
        assert_eq!(server.cli(&["LPUSH", "queue", "hello"]), "1");
        waiter.join().expect("BLPOP thread")
    });
    let reply = result.unwrap_or_else(|e| panic!("BLPOP: {:?}: {}", e.status(), e.message()));
    let values: Vec<&str> = reply.children().iter().filter_map(|n| n.as_str()).collect();
    assert_eq!(values, ["queue", "hello"]);
    // Woken, not ended by BLPOP's own 5 s (that would have been nil, checked above).
    assert_at_most(took, 4500, "BLPOP woken by LPUSH");
    assert_eq!(stat(&c, Stat::Retries), 0);
}

#[test]
fn a_blocking_command_is_never_replayed_once_sent() {
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}?read_timeout=300", proxy.url()));
    // Everything that could make it retry: ALWAYS, timeouts retried, plenty of retries.
    config.retry = RetrySettings {
        writes: RetryWrites::Always,
        on_timeout: true,
        ..constant_retry(20, 10)
    };
    rec.install(&mut config);
    let c = client(&config);
    ok(&c, &["SET", "x", "1"]);
    let accepted = proxy.accepted();

    proxy.stall();
    let (result, took) = timed(|| cmd(&c, &["BLPOP", "queue", "1"]));
    let e = expect_err(result, Status::Timeout);
    assert!(e.is_sent());
    assert_contains(&e, "not replayed");
    // Read timeout plus BLPOP's own second, once.
    assert_between(took, 1200, 4000, "one BLPOP attempt");
    assert_eq!(stat(&c, Stat::Retries), 0);
    assert_eq!(proxy.accepted(), accepted, "no new connection for a replay");
    let blpop = rec.of(EventKind::Command).pop().unwrap();
    assert_eq!(
        (blpop.command.as_str(), blpop.status, blpop.attempt),
        ("BLPOP", Status::Timeout, 1)
    );

    // The same config does retry an ordinary read through the same stall.
    let (result, _) = std::thread::scope(|s| {
        s.spawn(|| {
            let retried = wait_until(Duration::from_secs(10), || stat(&c, Stat::Retries) >= 1);
            proxy.resume();
            assert!(retried);
        });
        timed(|| cmd(&c, &["GET", "x"]))
    });
    assert_eq!(text(&result.expect("GET through the stall")), "1");
    assert!(stat(&c, Stat::Retries) >= 1);
}

// ---------------------------------------------------------------------------------------------
// Command deadline

#[test]
fn command_deadline_bounds_the_whole_command() {
    let server = RedisServer::start();
    let mut config = server.config();
    config.command_deadline_ms = 500;
    // Beyond the deadline's bound (1.5 s, widened at most twice): only the deadline can end
    // these commands in time.
    config.read_timeout_ms = 5000;
    config.connect_timeout_ms = 5000;
    config.retry = constant_retry(20, 100); // without the deadline: minutes of retrying
    let c = client(&config);
    ok(&c, &["SET", "k", "v"]);

    // A stalled server: the read is cut at the deadline, not at the read timeout.
    server.sigstop();
    let (result, took) = timed(|| cmd(&c, &["GET", "k"]));
    let e = expect_err(result, Status::Timeout);
    assert_contains(&e, "deadline");
    assert_between(took, 450, 1500, "the 500 ms deadline");

    // Still stalled, no pooled connection: opening one (the handshake waits for the server) is
    // bounded by the deadline too.
    let fresh = client(&config);
    let (result, took) = timed(|| cmd(&fresh, &["GET", "k"]));
    server.sigcont();
    let e = expect_err(result, Status::Timeout);
    assert_contains(&e, "handshake");
    assert_between(took, 450, 1500, "the deadline while connecting");

    // A health-check PING on a stalled server is bounded by it as well.
    let mut checked = config.clone();
    checked.health_check_interval_ms = 200;
    let checked = client(&checked);
    ok(&checked, &["GET", "k"]);
    let_time_pass(Duration::from_millis(350)); // idle beyond the interval
    server.sigstop();
    let (result, took) = timed(|| cmd(&checked, &["GET", "k"]));
    server.sigcont();
    expect_err(result, Status::Timeout);
    assert_eq!(stat(&checked, Stat::HealthCheckFailures), 1);
    assert_between(took, 450, 1500, "the deadline during a health check");

    // Waiting for a pooled connection counts against the deadline as well.
    let mut one = config.clone();
    one.pool.size = 1;
    one.pool.max_wait_ms = Some(10_000);
    let c1 = client(&one);
    let session = c1.session().unwrap();
    let (result, took) = timed(|| cmd(&c1, &["GET", "k"]));
    let e = expect_err(result, Status::Timeout);
    assert_contains(&e, "command deadline reached after waiting");
    assert_between(took, 450, 1500, "the deadline in the pool queue");
    drop(session);
    assert_eq!(text(&ok(&c, &["GET", "k"])), "v");
}

// ---------------------------------------------------------------------------------------------
// Retry policy

#[test]
fn retry_on_timeout_retries_timeouts_only() {
    let server = RedisServer::start();
    let mut config = config_for(&format!("{}?read_timeout=300", server.url()));
    config.retry.on_timeout = true; // and no policy: one immediate retry
    let c = client(&config);
    ok(&c, &["SET", "k", "v"]);

    server.sigstop();
    let (result, took) = timed(|| cmd(&c, &["GET", "k"]));
    server.sigcont();
    let e = expect_err(result, Status::Timeout);
    assert_contains(&e, "after 2 attempts");
    assert_eq!(stat(&c, Stat::Retries), 1);
    assert_eq!(stat(&c, Stat::Timeouts), 2);
    assert_between(took, 500, 3000, "two 300 ms timeouts");

    // A connection error is not retried.
    let port = closed_port();
    let mut config = config_for(&port.url());
    config.retry.on_timeout = true;
    let refused = client(&config);
    let e = expect_err(cmd(&refused, &["GET", "k"]), Status::Connection);
    assert!(!e.message().contains("attempts"), "{}", e.message());
    assert_eq!(stat(&refused, Stat::Retries), 0);

    // Whereas the default policy retries it three times.
    let default = client(&config_for(&port.url()));
    let e = expect_err(cmd(&default, &["GET", "k"]), Status::Connection);
    assert_contains(&e, "after 4 attempts");
    assert_eq!(stat(&default, Stat::Retries), 3);
}

#[test]
fn retry_on_errors_retries_exactly_the_listed_statuses() {
    let server = RedisServer::start();
    let mut config = server.config();
    config.read_timeout_ms = 300;
    config.retry = RetrySettings {
        on_errors: Some(vec![Status::Server]),
        ..constant_retry(10, 2)
    };
    let c = client(&config);
    ok(&c, &["RPUSH", "list", "a"]);

    // WRONGTYPE is SERVER: listed, so the (read-only) GET is sent three times.
    let (_, failed_before) = cmdstat(&server, "get");
    let e = expect_err(cmd(&c, &["GET", "list"]), Status::Server);
    assert!(e.message().starts_with("WRONGTYPE"), "{}", e.message());
    assert_contains(&e, "after 3 attempts");
    assert_eq!(stat(&c, Stat::Retries), 2);
    assert_eq!(
        cmdstat(&server, "get").1,
        failed_before + 3,
        "the server saw 3 GETs"
    );

    // A timeout is not listed: one attempt.
    server.sigstop();
    let (result, took) = timed(|| cmd(&c, &["GET", "k"]));
    server.sigcont();
    let e = expect_err(result, Status::Timeout);
    assert!(!e.message().contains("attempts"), "{}", e.message());
    assert_eq!(stat(&c, Stat::Retries), 2);
    assert_between(took, 250, 2000, "one 300 ms timeout");

    // Nor is CONNECTION.
    let mut config = config_for(&closed_port().url());
    config.retry.on_errors = Some(vec![Status::Server]);
    let refused = client(&config);
    expect_err(cmd(&refused, &["GET", "k"]), Status::Connection);
    assert_eq!(stat(&refused, Stat::Retries), 0);

    // And by default SERVER errors are never retried.
    let default = client(&server.config());
    expect_err(cmd(&default, &["GET", "list"]), Status::Server);
    assert_eq!(stat(&default, Stat::Retries), 0);
}

#[test]
fn max_retries_zero_disables_retries() {
    let port = closed_port();
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}?max_retries=0", port.url()));
    rec.install(&mut config);
    let c = client(&config);
    let e = expect_err(cmd(&c, &["GET", "k"]), Status::Connection);
    assert!(!e.message().contains("attempts"), "{}", e.message());
    assert_eq!(stat(&c, Stat::Retries), 0);
    assert!(rec.of(EventKind::Retry).is_empty());
    assert_eq!(rec.of(EventKind::Command)[0].attempt, 1);

    // It also overrides an explicit policy.
    let mut config = config_for(&format!("{}?max_retries=0", port.url()));
    config.retry.policy = constant_retry(10, 5).policy;
    let c = client(&config);
    expect_err(cmd(&c, &["GET", "k"]), Status::Connection);
    assert_eq!(stat(&c, Stat::Retries), 0);
}

#[test]
fn the_final_error_names_the_attempts_made() {
    let port = closed_port();
    let rec = Recorder::default();
    let mut config = config_for(&port.url());
    config.retry = constant_retry(30, 3);
    rec.install(&mut config);
    let c = client(&config);
    let (result, took) = timed(|| cmd(&c, &["GET", "k"]));
    let e = expect_err(result, Status::Connection);
    assert_contains(&e, "after 4 attempts");
    assert_contains(&e, "refused");
    assert_between(took, 80, 3000, "three 30 ms backoffs");
    let retries = rec.of(EventKind::Retry);
    let attempts: Vec<u32> = retries.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(retries.iter().all(|e| e.status == Status::Connection));
    let command = &rec.of(EventKind::Command)[0];
    assert_eq!((command.status, command.attempt), (Status::Connection, 4));
    assert_eq!(command.error_type.as_deref(), Some("BRISK_ERR_CONNECTION"));
    assert_eq!(stat(&c, Stat::Retries), 3);
    assert_eq!(stat(&c, Stat::Errors), 1);
    assert_eq!(stat(&c, Stat::Commands), 1);
}

// ---------------------------------------------------------------------------------------------
// Events

const SECRET: &str = "s3cr3t-Value-Q9";

#[test]
fn command_events_describe_the_work_and_never_carry_values() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}/2", server.url()));
    rec.install(&mut config);
    let c = client(&config);
    let address = format!("127.0.0.1:{}", server.port());

    let secret_key = format!("key-{SECRET}");
    ok(&c, &["SET", &secret_key, SECRET]);
    assert_eq!(text(&ok(&c, &["GET", &secret_key])), SECRET);
    ok(&c, &["HSET", "h", "field", SECRET]);
    let e = expect_err(cmd(&c, &["LPUSH", &secret_key, SECRET]), Status::Server);
    assert!(e.message().starts_with("WRONGTYPE"));
    // An error whose text quotes the arguments.
    let e = expect_err(cmd(&c, &["NOSUCHCOMMAND", SECRET]), Status::Server);
    assert_contains(&e, SECRET);
    let mut p = c.pipeline();
    append(&mut p, &["SET", "p1", SECRET]).unwrap();
    append(&mut p, &["GET", "p1"]).unwrap();
    append(&mut p, &["ECHO", SECRET]).unwrap();
    p.exec().unwrap();
    let mut t = c.transaction();
    append(&mut t, &["INCR", "t1"]).unwrap();
    append(&mut t, &["SET", "t2", SECRET]).unwrap();
    t.exec().unwrap();
    let mut s = c.session().unwrap();
    session_cmd(&mut s, &["GET", &secret_key]).unwrap();
    drop(s);

    let events = rec.all();
    for e in &events {
        let fields = format!("{} {} {:?}", e.command, e.address, e.error_type);
        assert!(!fields.contains("s3cr3t"), "a value leaked into {e:?}");
        assert_eq!(e.address, address);
        assert_eq!(e.db, 2);
    }
    let connect = events
        .iter()
        .position(|e| e.kind == EventKind::Connect)
        .expect("CONNECT");
    assert_eq!(events[connect].status, Status::Ok);
    let first_command = events
        .iter()
        .position(|e| e.kind == EventKind::Command)
        .unwrap();
    assert!(connect < first_command);

    let commands: Vec<(String, Status, u32, Option<String>, u32)> = rec
        .of(EventKind::Command)
        .into_iter()
        .map(|e| (e.command, e.status, e.attempt, e.error_type, e.batch_size))
        .collect();
    let expected = [
        ("SET", Status::Ok, None, 1),
        ("GET", Status::Ok, None, 1),
        ("HSET", Status::Ok, None, 1),
        ("LPUSH", Status::Server, Some("WRONGTYPE"), 1),
        ("NOSUCHCOMMAND", Status::Server, Some("ERR"), 1),
        ("PIPELINE", Status::Ok, None, 3),
        ("MULTI", Status::Ok, None, 2),
        ("GET", Status::Ok, None, 1),
    ];
    assert_eq!(commands.len(), expected.len(), "{commands:?}");
    for (got, want) in commands.iter().zip(expected) {
        assert_eq!(
            (got.0.as_str(), got.1, got.2, got.3.as_deref(), got.4),
            (want.0, want.1, 1, want.2, want.3)
        );
    }
    // COMMANDS counts what a pipeline or transaction carries.
    assert_eq!(stat(&c, Stat::Commands), 5 + 3 + 2 + 1);
    assert_eq!(stat(&c, Stat::Errors), 2);
    for e in rec.of(EventKind::Command) {
        assert!(e.duration > Duration::ZERO);
        assert_at_most(e.duration, 5000, "a COMMAND event's duration");
    }
}

mod c_api {
    //! The same promise where API.md makes it: names in upper case through `brisk_event_*`.

    use super::*;
    use brisk::capi::client::{brisk_client_free, brisk_client_new, brisk_command};
    use brisk::capi::config::{
        brisk_config_free, brisk_config_new, brisk_config_set_event_callback, brisk_config_set_url,
    };
    use brisk::capi::event::{
        BRISK_EVENT_COMMAND, brisk_event, brisk_event_command_name, brisk_event_error_type,
        brisk_event_kind_of, brisk_event_server_address,
    };
    use brisk::capi::status::BRISK_OK;
    use std::ffi::{CStr, CString, c_char, c_void};

    unsafe extern "C" fn record(userdata: *mut c_void, event: *const brisk_event) {
        // SAFETY: userdata is the Mutex below, alive for the client's life; event is live.
        unsafe {
            let seen = &*(userdata as *const Mutex<Vec<(String, String, String)>>);
            if brisk_event_kind_of(event) != BRISK_EVENT_COMMAND {
                return;
            }
            let text = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let name = text(brisk_event_command_name(event, std::ptr::null_mut()));
            let error = text(brisk_event_error_type(event));
            let address = text(brisk_event_server_address(event));
            seen.lock().unwrap().push((name, error, address));
        }
    }

    #[test]
    fn c_events_name_commands_in_upper_case() {
        let server = RedisServer::start();
        let seen: Mutex<Vec<(String, String, String)>> = Mutex::default();
        let url = CString::new(server.url()).unwrap();
        // SAFETY: every pointer comes from the API itself or outlives its use; the client is
        // freed before `seen`.
        unsafe {
            let cfg = brisk_config_new();
            assert_eq!(brisk_config_set_url(cfg, url.as_ptr()), BRISK_OK);
            let userdata = &seen as *const _ as *mut c_void;
            assert_eq!(
                brisk_config_set_event_callback(cfg, Some(record), userdata),
                BRISK_OK
            );
            let mut c = std::ptr::null_mut();
            assert_eq!(brisk_client_new(cfg, &mut c), BRISK_OK);
            brisk_config_free(cfg);
            let run = |args: &[&str]| {
                let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
                let argv: Vec<*const c_char> = owned.iter().map(|a| a.as_ptr()).collect();
                brisk_command(
                    c,
                    argv.len(),
                    argv.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(run(&["set", "k", SECRET]), BRISK_OK);
            assert_eq!(run(&["Get", "k"]), BRISK_OK);
            assert_ne!(run(&["lpush", "k", SECRET]), BRISK_OK);
            brisk_client_free(c);
        }
        let seen = seen.into_inner().unwrap();
        let address = format!("127.0.0.1:{}", server.port());
        let expected = [
            ("SET", "", address.as_str()),
            ("GET", "", address.as_str()),
            ("LPUSH", "WRONGTYPE", address.as_str()),
        ];
        let got: Vec<(&str, &str, &str)> = seen
            .iter()
            .map(|(n, e, a)| (n.as_str(), e.as_str(), a.as_str()))
            .collect();
        assert_eq!(got, expected);
    }
}

#[test]
fn connect_and_disconnect_events_appear_when_they_should() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.retry = constant_retry(10, 3);
    rec.install(&mut config);
    let c = client(&config);
    ok(&c, &["SET", "k", "v"]);
    let kinds = |rec: &Recorder| -> Vec<EventKind> { rec.all().iter().map(|e| e.kind).collect() };
    assert_eq!(kinds(&rec), [EventKind::Connect, EventKind::Command]);

    // A quiet command on a healthy pooled connection: nothing but the COMMAND.
    rec.clear();
    ok(&c, &["GET", "k"]);
    assert_eq!(kinds(&rec), [EventKind::Command]);

    // Killed while idle: the peek drops it (DISCONNECT, lost) and a new one is made.
    server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    rec.clear();
    ok(&c, &["GET", "k"]);
    let events = rec.all();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [
            EventKind::Disconnect,
            EventKind::Connect,
            EventKind::Command
        ]
    );
    assert_eq!(events[0].status, Status::Connection);

    // Killed while blocked on the server: the BLPOP fails (blocking commands are not replayed,
    // though BLPOP only reads), the broken connection is dropped, the next command gets a new one.
    rec.clear();
    std::thread::scope(|s| {
        let reader = s.spawn(|| cmd(&c, &["BLPOP", "nothing", "0"]));
        let blocked = wait_until(Duration::from_secs(5), || {
            server.info_field("clients", "blocked_clients") == 1
        });
        assert_eq!(server.cli(&["CLIENT", "KILL", "TYPE", "normal"]), "1");
        let e = expect_err(reader.join().unwrap(), Status::Connection);
        assert!(blocked);
        assert_contains(&e, "not replayed");
    });
    ok(&c, &["GET", "k"]);
    let events = rec.all();
    // The broken connection is dropped as the attempt ends, before the command is reported.
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [
            EventKind::Disconnect,
            EventKind::Command,
            EventKind::Connect,
            EventKind::Command
        ],
        "{events:?}"
    );
    assert_eq!(events[0].status, Status::Connection);
    assert_eq!(
        (
            events[1].command.as_str(),
            events[1].status,
            events[1].attempt
        ),
        ("BLPOP", Status::Connection, 1)
    );
    assert_eq!(stat(&c, Stat::Retries), 0);
    assert_eq!(stat(&c, Stat::Errors), 1);
}

// ---------------------------------------------------------------------------------------------
// The fault proxy

#[test]
fn proxy_delay_slows_commands_without_failing_them() {
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let c = client(&config_for(&format!("{}?read_timeout=2000", proxy.url())));
    ok(&c, &["SET", "k", "v"]);

    proxy.set_delay(Duration::from_millis(150));
    let (result, took) = timed(|| cmd(&c, &["GET", "k"]));
    assert_eq!(text(&result.expect("delayed GET")), "v");
    // 150 ms on the way there, 150 ms on the way back.
    assert_between(took, 280, 1900, "a delayed round trip");
    let (result, took) = timed(|| {
        let mut p = c.pipeline();
        for i in 0..10 {
            append(&mut p, &["INCR", &format!("d{i}")]).unwrap();
        }
        p.exec()
    });
    assert_eq!(result.expect("delayed pipeline").children().len(), 10);
    assert_between(took, 280, 1900, "a pipeline is one delayed round trip");

    proxy.heal();
    assert_eq!(text(&ok(&c, &["GET", "k"])), "v");
    assert_eq!(stat(&c, Stat::Errors), 0);
    assert_eq!(stat(&c, Stat::Timeouts), 0);
    assert_eq!(
        stat(&c, Stat::Connects),
        1,
        "the same connection throughout"
    );
}

#[test]
fn proxy_cut_mid_reply_is_a_connection_error_and_the_connection_is_dropped() {
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}?max_retries=0", proxy.url()));
    rec.install(&mut config);
    let c = client(&config);
    let value = "x".repeat(1000);
    ok(&c, &["SET", "big", &value]);
    assert_eq!(stat(&c, Stat::PoolOpen), 1);
    rec.clear();

    proxy.cut_after(100);
    let e = expect_err(cmd(&c, &["GET", "big"]), Status::Connection);
    assert!(e.is_sent());
    assert_eq!(
        stat(&c, Stat::PoolOpen),
        0,
        "the half-read connection is closed"
    );
    let lost = rec.of(EventKind::Disconnect);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].status, Status::Connection);

    proxy.heal();
    assert_eq!(text(&ok(&c, &["GET", "big"])), value);
    assert_eq!(stat(&c, Stat::PoolOpen), 1);
    assert_eq!(stat(&c, Stat::Reconnects), 1);

    // With retries on, the same cut is absorbed: the read is retried on a new connection (the
    // proxy is healed when the RETRY is reported, before the new attempt).
    let proxy = Arc::new(proxy);
    let healer = proxy.clone();
    let rec = Recorder::default();
    let mut config = config_for(&proxy.url());
    config.retry = constant_retry(10, 3);
    rec.install_with(&mut config, move |e| {
        if e.kind == EventKind::Retry {
            healer.heal();
        }
    });
    let retrying = client(&config);
    ok(&retrying, &["PING"]);
    proxy.cut_after(100);
    assert_eq!(text(&ok(&retrying, &["GET", "big"])), value);
    assert_eq!(stat(&retrying, Stat::Retries), 1);
    assert_eq!(rec.of(EventKind::Retry)[0].status, Status::Connection);
    assert_eq!(stat(&retrying, Stat::Errors), 0);
}

#[test]
fn proxy_reset_of_every_connection_is_survived() {
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let rec = Recorder::default();
    let mut config = config_for(&proxy.url());
    config.set_pool_size(4).unwrap();
    // The proxy resets connections within its 20 ms poll; a retry backoff longer than that
    // makes the retry meet the pool's other connections already reset (and replaced after the
    // peek), not one the proxy is about to reset, so exactly one retry is made.
    config.retry = constant_retry(100, 3);
    rec.install(&mut config);
    let c = client(&config);

    // Idle connections reset: the peek finds them all, the next commands run on new ones.
    fill_pool(&c, 4);
    assert!(wait_until(Duration::from_secs(5), || proxy
        .open_connections()
        == 4));
    proxy.reset_all();
    assert!(wait_until(Duration::from_secs(5), || proxy
        .open_connections()
        == 0));
    rec.clear();
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = &c;
            s.spawn(move || {
                for i in 0..25 {
                    let key = format!("reset:{t}");
                    ok(c, &["SET", &key, &i.to_string()]);
                    assert_eq!(text(&ok(c, &["GET", &key])), i.to_string());
                }
            });
        }
    });
    assert_eq!(stat(&c, Stat::Errors), 0);
    assert!(stat(&c, Stat::Reconnects) >= 1);
    let lost = rec
        .of(EventKind::Disconnect)
        .iter()
        .filter(|e| e.status == Status::Connection)
        .count();
    assert_eq!(lost, 4, "every reset connection was dropped");

    // Reset while a request is in flight (held by the proxy's delay): a read is retried, a
    // write is reported; for pipelines and transactions the same holds for the whole batch.
    let run_across_reset = |work: &(dyn Fn() -> Result<Reply> + Sync)| -> (Result<Reply>, u64) {
        // A pooled connection ready, so that the first bytes the proxy sees are the request's
        // (not a new connection's handshake).
        ok(&c, &["PING"]);
        let retries = stat(&c, Stat::Retries);
        proxy.set_delay(Duration::from_millis(500));
        let before = proxy.client_bytes();
        let result = std::thread::scope(|s| {
            let worker = s.spawn(work);
            let in_flight = wait_until(Duration::from_secs(5), || proxy.client_bytes() > before);
            proxy.reset_all();
            proxy.heal();
            assert!(in_flight, "the request never reached the proxy");
            worker.join().unwrap()
        });
        (result, stat(&c, Stat::Retries) - retries)
    };
    let batch = |transaction: bool, commands: &[&[&str]]| -> Result<Reply> {
        let mut p = if transaction {
            c.transaction()
        } else {
            c.pipeline()
        };
        for args in commands {
            append(&mut p, args)?;
        }
        p.exec()
    };
    ok(&c, &["SET", "k", "v"]);

    let (result, retries) = run_across_reset(&|| cmd(&c, &["GET", "k"]));
    assert_eq!(text(&result.expect("GET across a reset")), "v");
    assert_eq!(retries, 1);
    let (result, retries) = run_across_reset(&|| batch(false, &[&["GET", "k"], &["GET", "k"]]));
    assert_eq!(result.expect("read-only pipeline").children().len(), 2);
    assert_eq!(retries, 1);
    let (result, retries) = run_across_reset(&|| batch(true, &[&["GET", "k"], &["EXISTS", "k"]]));
    assert_eq!(result.expect("read-only transaction").children().len(), 2);
    assert_eq!(retries, 1);

    let (result, retries) = run_across_reset(&|| cmd(&c, &["INCR", "reset:n"]));
    let e = expect_err(result, Status::Connection);
    assert_contains(&e, "may have been applied");
    assert_eq!(retries, 0);
    let (result, retries) =
        run_across_reset(&|| batch(false, &[&["GET", "k"], &["INCR", "reset:n"]]));
    assert_contains(
        &expect_err(result, Status::Connection),
        "may have been applied",
    );
    assert_eq!(retries, 0);
    let (result, retries) = run_across_reset(&|| batch(true, &[&["INCR", "reset:n"]]));
    assert_contains(
        &expect_err(result, Status::Connection),
        "may have been applied",
    );
    assert_eq!(retries, 0);
    // Three writes "may have been applied"; the proxy delivered none of them, and none was
    // applied twice.
    assert!(counter(&c, "reset:n") <= 3);
    assert_eq!(stat(&c, Stat::Errors), 3);
}

/// A new client whose first connection's COMMAND reply (the command-table fetch) stops after
/// 1000 bytes and hangs past the read timeout; the proxy resumes once the next request reaches
/// it. Returns the reply to `args`, the first command of the client.
fn first_command_after_a_half_read_command_table(
    server: &RedisServer,
    args: &[&str],
) -> (Result<Reply>, Recorder, Client) {
    let proxy = Arc::new(FaultProxy::in_front_of(server));
    let hook_proxy = proxy.clone();
    let first_connect = AtomicBool::new(true);
    let rec = Recorder::default();
    let mut config = config_for(&format!("{}?read_timeout=500", proxy.url()));
    rec.install_with(&mut config, move |e| {
        if e.kind == EventKind::Connect && first_connect.swap(false, SeqCst) {
            hook_proxy.stall_after(1000);
        }
    });
    let c = client(&config);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let stalled = wait_until(Duration::from_secs(5), || proxy.is_stalled());
            let before = proxy.client_bytes();
            let next_request = wait_until(Duration::from_secs(5), || proxy.client_bytes() > before);
            proxy.resume();
            assert!(
                stalled && next_request,
                "stalled {stalled}, next request {next_request}"
            );
        });
        cmd(&c, args)
    });
    (result, rec, c)
}

#[test]
fn a_half_read_command_table_never_answers_a_command() {
    // Regression: the COMMAND fetch on a client's first connection timed out half-read, the
    // connection was marked broken, and the caller's command was still written on it, so the
    // rest of the COMMAND reply came back as the caller's reply (GET answered with a 240-element
    // array, status OK). Now the failed fetch fails the attempt as "not sent" and it is retried.
    let server = RedisServer::start();
    server.cli(&["SET", "k", "v"]);

    let (result, rec, c) = first_command_after_a_half_read_command_table(&server, &["GET", "k"]);
    let reply = result.unwrap_or_else(|e| panic!("GET: {:?}: {}", e.status(), e.message()));
    assert_eq!(reply.kind(), brisk::ReplyKind::String, "{reply:?}");
    assert_eq!(text(&reply), "v");
    let retry = &rec.of(EventKind::Retry)[0];
    assert_eq!(
        (retry.command.as_str(), retry.status),
        ("GET", Status::Timeout)
    );
    assert_eq!(stat(&c, Stat::Errors), 0);

    // A write is not sent on that connection either, so even SAFE mode retries it: applied once.
    let (result, _, c) = first_command_after_a_half_read_command_table(&server, &["INCR", "n"]);
    let reply = result.unwrap_or_else(|e| panic!("INCR: {:?}: {}", e.status(), e.message()));
    assert_eq!(integer(&reply), 1);
    assert_eq!(counter(&c, "n"), 1);
}

#[test]
fn error_type_never_carries_an_argument() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    rec.install(&mut config);
    let c = client(&config);
    let secret = "TOPSECRET42";
    let e = expect_err(
        cmd(
            &c,
            &[
                "EVAL",
                "return redis.error_reply(ARGV[1])",
                "0",
                &format!("{secret} boom"),
            ],
        ),
        Status::Server,
    );
    assert!(e.message().starts_with(secret), "{}", e.message());
    for event in rec.all() {
        let fields = format!("{} {:?}", event.command, event.error_type);
        assert!(
            !fields.contains(secret),
            "an argument leaked into {event:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Pool maintenance: min idle, idle timeout, max lifetime

#[test]
fn min_idle_connections_are_opened_in_the_background() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.set_pool_size(8).unwrap();
    config.pool.min_idle = 3;
    rec.install(&mut config);
    let c = client(&config);

    assert!(
        wait_until(Duration::from_secs(5), || {
            stat(&c, Stat::PoolOpen) == 3 && stat(&c, Stat::PoolIdle) == 3
        }),
        "open {}, idle {}",
        stat(&c, Stat::PoolOpen),
        stat(&c, Stat::PoolIdle)
    );
    assert!(wait_until(Duration::from_secs(5), || server
        .normal_clients()
        == 3));
    assert_eq!(stat(&c, Stat::Connects), 3);
    assert_eq!(stat(&c, Stat::Commands), 0, "no command was needed");
    let connects = rec.of(EventKind::Connect);
    assert_eq!(connects.len(), 3);
    assert!(connects.iter().all(|e| e.status == Status::Ok));

    // Three borrowed for good: maintenance opens more until three are idle again.
    let sessions: Vec<_> = (0..3).map(|_| c.session().unwrap()).collect();
    assert!(
        wait_until(Duration::from_secs(5), || {
            stat(&c, Stat::PoolOpen) == 6 && stat(&c, Stat::PoolIdle) == 3
        }),
        "open {}, idle {}",
        stat(&c, Stat::PoolOpen),
        stat(&c, Stat::PoolIdle)
    );
    drop(sessions);
    assert_eq!(stat(&c, Stat::PoolIdle), 6);
    assert_eq!(stat(&c, Stat::Connects), 6);
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.set_pool_size(4).unwrap();
    config.pool.idle_timeout_ms = 300;
    rec.install(&mut config);
    let c = client(&config);

    fill_pool(&c, 4);
    let filled = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || stat(&c, Stat::PoolOpen) == 0),
        "open {}",
        stat(&c, Stat::PoolOpen)
    );
    assert!(
        filled.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    assert!(wait_until(Duration::from_secs(5), || server
        .normal_clients()
        == 0));
    let closed = rec.of(EventKind::Disconnect);
    assert_eq!(closed.len(), 4);
    assert!(
        closed.iter().all(|e| e.status == Status::Ok),
        "closed on purpose"
    );

    assert_eq!(text(&ok(&c, &["PING"])), "PONG");
    assert_eq!(stat(&c, Stat::Connects), 5);
    assert_eq!(stat(&c, Stat::Reconnects), 0, "nothing was lost");
}

#[test]
fn connections_past_their_max_lifetime_are_closed_on_return() {
    let server = RedisServer::start();
    let rec = Recorder::default();
    let mut config = server.config();
    config.pool.max_lifetime_ms = 400;
    rec.install(&mut config);
    let c = client(&config);

    let mut session = c.session().unwrap();
    let first_id = integer(&session_cmd(&mut session, &["CLIENT", "ID"]).unwrap());
    let_time_pass(Duration::from_millis(500)); // older than its lifetime, while borrowed
    assert_eq!(
        stat(&c, Stat::PoolOpen),
        1,
        "a borrowed connection is left alone"
    );
    session_cmd(&mut session, &["PING"]).unwrap();
    drop(session);
    assert_eq!(stat(&c, Stat::PoolOpen), 0, "closed as it came back");
    let closed = rec.of(EventKind::Disconnect);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].status, Status::Ok);
    let mut session = c.session().unwrap();
    let second_id = integer(&session_cmd(&mut session, &["CLIENT", "ID"]).unwrap());
    assert_ne!(first_id, second_id);
    drop(session);

    // Under steady use connections are renewed, and no command notices.
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(1300) {
        ok(&c, &["INCR", "life:n"]);
        n += 1;
        std::thread::sleep(Duration::from_millis(5)); // pacing the loop
    }
    assert_eq!(counter(&c, "life:n"), n);
    assert!(
        stat(&c, Stat::Connects) >= 4,
        "connects {}",
        stat(&c, Stat::Connects)
    );
    assert_eq!(stat(&c, Stat::Errors), 0);
    assert_eq!(stat(&c, Stat::Reconnects), 0);
}
