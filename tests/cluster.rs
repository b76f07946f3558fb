//! Redis Cluster mode against a real 3-primary/3-replica cluster on loopback: routing by key,
//! split multi-key commands, pipelines across nodes, transactions and sessions on one slot,
//! replica reads, and the faults a cluster lives with (manual failover, a killed primary, slot
//! migration) under a running write load.

mod support;

use brisk::config::{AsyncDispatch, ReadFrom};
use brisk::stats::Stat;
use brisk::{Client, Status};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::{
    RedisCluster, append, assert_at_most, call_async, client as client_from, cmd, expect_err, ok,
    pump_async, readable, session_cmd, text, wait_until,
};

fn client(cluster: &RedisCluster) -> Client {
    client_from(&cluster.config())
}

fn slot(key: &str) -> u16 {
    brisk::core::cluster::key_slot(key.as_bytes())
}

#[test]
fn routes_keys_splits_multi_key_commands_and_pipelines_across_nodes() {
    let cluster = RedisCluster::start();
    let c = client(&cluster);

    // 10,000 keys over all slots, then read back.
    for i in 0..10_000 {
        ok(&c, &["SET", &format!("key:{i}"), &i.to_string()]);
    }
    for i in (0..10_000).step_by(7) {
        assert_eq!(text(&ok(&c, &["GET", &format!("key:{i}")])), i.to_string());
    }
    let total: i64 = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| cluster.is_primary(*i))
        .map(|(_, n)| n.cli(&["DBSIZE"]).parse::<i64>().unwrap())
        .inspect(|&n| assert!(n > 2000, "keys are spread over the primaries"))
        .sum();
    assert_eq!(total, 10_000);

    // Hash tags keep multi-key commands on one slot; they run as one command.
    ok(&c, &["MSET", "{user1}:a", "1", "{user1}:b", "2"]);
    let got = ok(&c, &["MGET", "{user1}:a", "{user1}:b"]);
    assert_eq!(
        got.into_elements().iter().map(text).collect::<Vec<_>>(),
        ["1", "2"]
    );
    ok(
        &c,
        &["SUNIONSTORE", "{user1}:u", "{user1}:s1", "{user1}:s2"],
    );

    // Keys over several slots: MSET/MGET/EXISTS/DEL are split by slot and reassembled in order.
    let keys: Vec<String> = (0..50).map(|i| format!("spread:{i}")).collect();
    let mut mset = vec!["MSET".to_owned()];
    for (i, k) in keys.iter().enumerate() {
        mset.extend([k.clone(), format!("v{i}")]);
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(text(&ok(&c, &mset)), "OK");
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.push("spread:missing");
    let values = ok(&c, &mget).into_elements();
    assert_eq!(values.len(), 51);
    for (i, v) in values.iter().take(50).enumerate() {
        assert_eq!(text(v), format!("v{i}"));
    }
    assert!(values[50].is_nil());
    let mut exists = vec!["EXISTS"];
    exists.extend(keys.iter().map(String::as_str));
    assert_eq!(ok(&c, &exists).node().as_integer(), Some(50));
    let mut del = vec!["DEL"];
    del.extend(keys.iter().take(20).map(String::as_str));
    assert_eq!(ok(&c, &del).node().as_integer(), Some(20));

    // An error reply is an error, counted once, as on a standalone client.
    let (commands, errors) = (c.stat(Stat::Commands), c.stat(Stat::Errors));
    expect_err(cmd(&c, &["LPUSH", "key:1", "x"]), Status::Server);
    assert_eq!(c.stat(Stat::Commands) - commands, 1);
    assert_eq!(c.stat(Stat::Errors) - errors, 1);

    // Commands that cannot be split are refused before anything is sent.
    let e = expect_err(cmd(&c, &["SUNION", "a", "b"]), Status::InvalidArgument);
    assert!(e.message().contains("CROSSSLOT"), "{}", e.message());
    let e = expect_err(cmd(&c, &["RENAME", "a", "b"]), Status::InvalidArgument);
    assert!(e.message().contains("CROSSSLOT"), "{}", e.message());

    // A pipeline across nodes: replies in the caller's order, errors in place.
    let mut p = c.pipeline();
    for i in 0..1000 {
        if i == 500 {
            append(&mut p, &["LPUSH", "key:1", "x"]).unwrap(); // WRONGTYPE
        } else {
            append(&mut p, &["GET", &format!("key:{i}")]).unwrap();
        }
    }
    let replies = p.exec().unwrap().into_elements();
    assert_eq!(replies.len(), 1000);
    for (i, r) in replies.iter().enumerate() {
        if i == 500 {
            assert_eq!(r.kind(), brisk::ReplyKind::Error);
        } else {
            assert_eq!(text(r), i.to_string());
        }
    }
    let mut p = c.pipeline();
    let e = expect_err(append(&mut p, &["MGET", "a", "b"]), Status::InvalidArgument);
    assert!(e.message().contains("CROSSSLOT"));

    // Transactions run on the node of their slot, and only there.
    let mut t = c.transaction();
    append(&mut t, &["INCR", "{acct}:n"]).unwrap();
    append(&mut t, &["INCR", "{acct}:n"]).unwrap();
    let r = t.exec().unwrap().into_elements();
    assert_eq!(r[1].node().as_integer(), Some(2));
    let mut t = c.transaction();
    append(&mut t, &["INCR", "x1"]).unwrap();
    append(&mut t, &["INCR", "x2"]).unwrap();
    expect_err(t.exec(), Status::InvalidArgument);

    // A session stays on one slot: WATCH/MULTI/EXEC work there, other slots are refused.
    let mut s = c.session().unwrap();
    session_cmd(&mut s, &["WATCH", "{acct}:n"]).unwrap();
    session_cmd(&mut s, &["MULTI"]).unwrap();
    session_cmd(&mut s, &["INCR", "{acct}:n"]).unwrap();
    let exec = session_cmd(&mut s, &["EXEC"]).unwrap().into_elements();
    assert_eq!(exec[0].node().as_integer(), Some(3));
    expect_err(
        session_cmd(&mut s, &["GET", "elsewhere"]),
        Status::InvalidArgument,
    );
    drop(s);

    // Keyless commands go to some primary.
    assert_eq!(text(&ok(&c, &["PING"])), "PONG");
    assert!(c.stat(Stat::TopologyRefreshes) >= 1);
    assert!(c.stat(Stat::PoolOpen) >= 3, "one pool per primary at least");
}

#[test]
fn async_commands_go_to_their_nodes_pipelined_on_one_connection_each() {
    let cluster = RedisCluster::start();
    let c = client(&cluster);
    let never = AtomicBool::new(false);
    let mut failures = Vec::new();
    let mut check =
        |what: &str, i: u64, outcome: brisk::Result<brisk::Reply>, want: String| match outcome {
            Ok(r) if text(&r) == want => {}
            Ok(r) => failures.push(format!("{what} {i}: {:?}", r.kind())),
            Err(e) => failures.push(format!("{what} {i}: {:?} {}", e.status(), e.message())),
        };
    let set = |i: u64| vec!["SET".into(), format!("akey:{i}"), i.to_string()];
    pump_async(&c, 500, 10_000, &never, set, |i, o| {
        check("SET", i, o, "OK".into())
    });
    let get = |i: u64| vec!["GET".into(), format!("akey:{i}")];
    pump_async(&c, 500, 10_000, &never, get, |i, o| {
        check("GET", i, o, i.to_string())
    });
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );

    let per_primary: Vec<i64> = (0..6)
        .filter(|&i| cluster.is_primary(i))
        .map(|i| cluster.nodes[i].cli(&["DBSIZE"]).parse().unwrap())
        .collect();
    assert_eq!(per_primary.iter().sum::<i64>(), 10_000, "{per_primary:?}");
    assert!(per_primary.iter().all(|&n| n > 2000), "{per_primary:?}");
    // Routed by the slot map from the start: no MOVED. One multiplexed connection per primary
    // (and the seed's pooled connection that read the topology), not one per command in flight.
    assert_eq!(c.stat(Stat::Redirects), 0);
    let connects = c.stat(Stat::Connects);
    assert!(
        connects <= 5,
        "{connects} connections for 20,000 async commands"
    );

    // Keys over several slots are split and merged; what cannot be split is refused.
    let mut mget = vec!["MGET"];
    let keys: Vec<String> = (0..50).map(|i| format!("akey:{i}")).collect();
    mget.extend(keys.iter().map(String::as_str));
    let values = call_async(&c, &mget).unwrap().into_elements();
    assert_eq!(
        values.iter().map(text).collect::<Vec<_>>(),
        (0..50).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let e = expect_err(
        call_async(&c, &["SUNION", "a", "b"]),
        Status::InvalidArgument,
    );
    assert!(e.message().contains("CROSSSLOT"), "{}", e.message());
    // Error replies keep their status; keyless commands go to some primary.
    let e = expect_err(call_async(&c, &["LPUSH", "akey:1", "x"]), Status::Server);
    assert!(e.message().starts_with("WRONGTYPE"), "{}", e.message());
    assert_eq!(text(&call_async(&c, &["PING"]).unwrap()), "PONG");

    // Caller dispatch: one descriptor for every primary's connection, which this thread reads
    // when it dispatches (several sockets ready at once: the epoll path), 100 GETs in flight.
    let mut config = cluster.config();
    config.async_dispatch = AsyncDispatch::Caller;
    let d = client_from(&config);
    let answers: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let (total, window) = (3_000u64, 100usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    while answers.lock().unwrap().len() < total as usize && Instant::now() < deadline {
        while sent < total && sent as usize - answers.lock().unwrap().len() < window {
            let answers = answers.clone();
            let key = format!("akey:{sent}");
            let words = [&b"GET"[..], key.as_bytes()];
            let args = brisk::Args::from_slices(&words);
            let i = sent;
            d.command_async(
                &args,
                Box::new(move |outcome| {
                    let got = match outcome {
                        Ok(reply) => text(&reply),
                        Err(e) => format!("{:?}: {}", e.status(), e.message()),
                    };
                    answers.lock().unwrap().push((i, got));
                }),
            )
            .unwrap();
            sent += 1;
        }
        readable(d.async_fd().unwrap(), 100);
        d.async_dispatch(0);
    }
    let answers = answers.lock().unwrap();
    assert_eq!(answers.len(), total as usize, "every callback within 60 s");
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(i, got)| *got != i.to_string())
        .collect();
    assert!(wrong.is_empty(), "{:?}", &wrong[..wrong.len().min(5)]);
    let connects = d.stat(Stat::Connects);
    assert!(connects <= 5, "{connects} connections for 3,000 async GETs");

    // With a connection per primary in the descriptor, the dispatch asks epoll which one the
    // reply is on and reads it then and there (a runtime thread only reads, on a 50 ms tick,
    // what nobody dispatched). Submitted from another thread, so that nothing is held for this
    // one's next dispatch.
    for i in 0..20u64 {
        let key = format!("akey:{}", i * 37);
        std::thread::scope(|s| {
            s.spawn(|| {
                let words = [&b"GET"[..], key.as_bytes()];
                d.command_async(&brisk::Args::from_slices(&words), Box::new(|_| {}))
                    .unwrap();
            });
        });
        readable(d.async_fd().unwrap(), 5000);
        assert_eq!(
            d.async_dispatch(0),
            1,
            "round {i} ({key}): read and run at once"
        );
    }
}

#[test]
fn replica_reads_and_moved_after_a_slot_changes_hands() {
    let mut cluster = RedisCluster::start();
    let plain = client(&cluster);
    ok(&plain, &["SET", "r:1", "hello"]);
    // CLUSTER SHARDS calls a replica "loading" until its replication offset moves; only
    // "online" replicas take reads. Writes to every shard move them all.
    for i in 0..100 {
        ok(&plain, &["SET", &format!("warm:{i}"), "x"]);
    }
    assert!(wait_until(Duration::from_secs(20), || {
        !cluster.nodes[0]
            .cli(&["CLUSTER", "SHARDS"])
            .contains("loading")
    }));
    let mut cfg = cluster.config();
    cfg.cluster.read_from = ReadFrom::ReplicaPreferred;
    let c = Client::new(&cfg).unwrap();
    // Reads go to the replica, which may lag: WAIT makes the write reach it first.
    let primary = cluster.primary_of_slot(0, slot("r:1"));
    let replica = cluster.replica_of(primary);
    let reached = wait_until(Duration::from_secs(10), || {
        cluster.nodes[replica].cli(&["DBSIZE"]) == cluster.nodes[primary].cli(&["DBSIZE"])
    });
    assert!(reached, "replication reached the replica");
    let before: u64 = replica_gets(&cluster, replica);
    for _ in 0..20 {
        assert_eq!(text(&ok(&c, &["GET", "r:1"])), "hello");
    }
    assert!(
        replica_gets(&cluster, replica) >= before + 20,
        "the GETs were served by the replica (redirects {}, before {before}, after {})",
        c.stat(Stat::Redirects),
        replica_gets(&cluster, replica)
    );
    // Writes still go to the primary.
    ok(&c, &["SET", "r:1", "again"]);

    // Move the slot of "m:1" to another primary behind the client's back: MOVED follows it.
    ok(&plain, &["SET", "m:1", "v"]);
    let s = slot("m:1");
    let from = cluster.primary_of_slot(0, s);
    let to = (0..6)
        .find(|&i| i != from && cluster.is_primary(i))
        .expect("another primary");
    cluster.migrate_slot(s, from, to);
    assert_eq!(text(&ok(&plain, &["GET", "m:1"])), "v");
    assert!(plain.stat(Stat::Redirects) >= 1, "a MOVED was followed");

    // A replica that stops answering: reads fall back to the primary, with no error.
    cluster.nodes[replica].kill();
    for _ in 0..20 {
        assert_eq!(text(&ok(&c, &["GET", "r:1"])), "again");
    }
}

fn replica_gets(cluster: &RedisCluster, node: usize) -> u64 {
    let stats = cluster.nodes[node].cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find(|l| l.starts_with("cmdstat_get:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// A writer that SETs fresh keys and INCRs one counter as fast as it can, recording what the
/// client acknowledged and every error.
struct Writer {
    stop: Arc<AtomicBool>,
    /// Acknowledged SETs so far, to wait on while the writer runs.
    acknowledged: Arc<AtomicU64>,
    handle: thread::JoinHandle<WriterLog>,
}

#[derive(Default)]
struct WriterLog {
    acknowledged_sets: Vec<String>,
    acknowledged_incrs: i64,
    /// INCRs reported as "may have been applied".
    uncertain_incrs: i64,
    errors: Vec<(Instant, Status, String)>,
    successes: Vec<Instant>,
}

impl WriterLog {
    /// Records how the SET of `key` ended; `acknowledged` counts the successes for waiters.
    fn set(&mut self, key: String, outcome: brisk::Result<brisk::Reply>, acknowledged: &AtomicU64) {
        match outcome {
            Ok(_) => {
                self.acknowledged_sets.push(key);
                self.successes.push(Instant::now());
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.error(&e),
        }
    }

    /// Records how an INCR of the counter ended.
    fn incr(&mut self, outcome: brisk::Result<brisk::Reply>) {
        match outcome {
            Ok(_) => self.acknowledged_incrs += 1,
            Err(e) => {
                if e.message().contains("may have been applied") {
                    self.uncertain_incrs += 1;
                }
                self.error(&e);
            }
        }
    }

    fn error(&mut self, e: &brisk::Error) {
        self.errors
            .push((Instant::now(), e.status(), e.message().to_owned()));
    }
}

impl Writer {
    /// Starts a thread that runs `load(log, acknowledged, stop)` until stopped.
    fn spawn(
        load: impl FnOnce(&mut WriterLog, &AtomicU64, &AtomicBool) + Send + 'static,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let (flag, count) = (stop.clone(), acknowledged.clone());
        let handle = thread::spawn(move || {
            let mut log = WriterLog::default();
            load(&mut log, &count, &flag);
            log
        });
        Writer {
            stop,
            acknowledged,
            handle,
        }
    }

    /// SETs of fresh keys and INCRs of `counter`, one after the other, as fast as they go.
    fn start(client: Arc<Client>, counter: &str) -> Writer {
        let counter = counter.to_owned();
        Writer::spawn(move |log, acknowledged, stop| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w:{i}");
                i += 1;
                log.set(key.clone(), cmd(&client, &["SET", &key, "x"]), acknowledged);
                log.incr(cmd(&client, &["INCR", &counter]));
            }
        })
    }

    /// The same load through the async API, `window` commands in flight: SETs of fresh keys
    /// and INCRs of `counter`, alternating.
    fn start_async(client: Arc<Client>, counter: &str, window: usize) -> Writer {
        let counter = counter.to_owned();
        Writer::spawn(move |log, acknowledged, stop| {
            let key = |i: u64| format!("wa:{}", i / 2);
            let next = |i: u64| match i % 2 {
                0 => vec!["SET".into(), key(i), "x".into()],
                _ => vec!["INCR".into(), counter.clone()],
            };
            pump_async(&client, window, u64::MAX, stop, next, |i, outcome| {
                match i % 2 {
                    0 => log.set(key(i), outcome, acknowledged),
                    _ => log.incr(outcome),
                }
            });
        })
    }

    /// Waits until this writer has had `n` more SETs acknowledged.
    fn wait_for_more(&self, n: u64, timeout: Duration) -> bool {
        let from = self.acknowledged.load(Ordering::Relaxed);
        wait_until(timeout, || {
            self.acknowledged.load(Ordering::Relaxed) >= from + n
        })
    }

    fn finish(self) -> WriterLog {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer thread")
    }
}

/// The two writers of the fault tests: through the blocking API and the async one.
const WRITER_APIS: [&str; 2] = ["blocking", "async"];

/// A blocking and an async writer (20 in flight) on `client`, each INCRing its own counter;
/// returns once both have writes acknowledged.
fn start_writers(client: &Arc<Client>, counters: [&str; 2]) -> [Writer; 2] {
    let writers = [
        Writer::start(client.clone(), counters[0]),
        Writer::start_async(client.clone(), counters[1], 20),
    ];
    for w in &writers {
        assert!(
            w.wait_for_more(100, Duration::from_secs(10)),
            "the writers run"
        );
    }
    writers
}

/// Waits until each writer, whatever the other does, has 250 more SETs acknowledged.
fn wait_for_writers(writers: &[Writer; 2], timeout: Duration, what: &str) {
    for (w, api) in writers.iter().zip(WRITER_APIS) {
        assert!(w.wait_for_more(250, timeout), "{api}: {what}");
    }
}

/// Checks that every acknowledged SET is there; returns how many are missing.
fn missing_sets(client: &Client, log: &WriterLog) -> usize {
    let mut missing = 0;
    for chunk in log.acknowledged_sets.chunks(200) {
        let mut mget = vec!["MGET"];
        mget.extend(chunk.iter().map(String::as_str));
        let values = ok(client, &mget).into_elements();
        missing += values.iter().filter(|v| v.is_nil()).count();
    }
    missing
}

#[test]
fn manual_failover_under_load_loses_nothing_and_surfaces_no_error() {
    let cluster = RedisCluster::start();
    let c = Arc::new(client(&cluster));
    // Both counters live in one slot, so one primary fails over under both loads.
    let counters = ["{counter}:failover", "{counter}:failover-async"];
    let primary = cluster.primary_of_slot(0, slot(counters[0]));
    let replica = cluster.replica_of(primary);
    let writers = start_writers(&c, counters);

    cluster.nodes[replica].cli(&["CLUSTER", "FAILOVER"]);
    assert!(
        wait_until(Duration::from_secs(30), || cluster.is_primary(replica)
            && !cluster.is_primary(primary)),
        "the replica took over:\n{}",
        cluster.describe()
    );
    wait_for_writers(
        &writers,
        Duration::from_secs(10),
        "writes go on after the failover",
    );
    let logs = writers.map(Writer::finish);

    for ((log, counter), api) in logs.iter().zip(counters).zip(WRITER_APIS) {
        assert!(
            log.errors.is_empty(),
            "{api}: errors surfaced during a manual failover: {:?}",
            &log.errors[..log.errors.len().min(5)]
        );
        assert_eq!(
            missing_sets(&c, log),
            0,
            "{api}: every acknowledged write is there"
        );
        let value = text(&ok(&c, &["GET", counter])).parse::<i64>().unwrap();
        assert_eq!(value, log.acknowledged_incrs, "{api}: counter");
        eprintln!(
            "manual failover, {api} API: {} SETs and {} INCRs acknowledged, 0 errors",
            log.acknowledged_sets.len(),
            log.acknowledged_incrs,
        );
    }
    eprintln!(
        "manual failover: {} redirects, {} refreshes",
        c.stat(Stat::Redirects),
        c.stat(Stat::TopologyRefreshes)
    );
}

#[test]
fn killed_primary_recovers_within_seconds_and_never_double_applies() {
    let mut cluster = RedisCluster::start();
    let c = Arc::new(client(&cluster));
    let counters = ["{counter}:kill", "{counter}:kill-async"];
    let primary = cluster.primary_of_slot(0, slot(counters[0]));
    let replica = cluster.replica_of(primary);
    let writers = start_writers(&c, counters);

    let killed = Instant::now();
    cluster.nodes[primary].kill();
    assert!(
        wait_until(Duration::from_secs(30), || cluster.is_primary(replica)),
        "the replica was promoted"
    );
    let promoted = Instant::now();
    wait_for_writers(
        &writers,
        Duration::from_secs(20),
        "writes resumed after the promotion",
    );
    let logs = writers.map(Writer::finish);

    for ((log, counter), api) in logs.iter().zip(counters).zip(WRITER_APIS) {
        let resumed = log
            .successes
            .iter()
            .find(|&&t| t > promoted)
            .map(|t| t.duration_since(promoted));
        let resumed =
            resumed.unwrap_or_else(|| panic!("{api}: writes resumed after the promotion"));
        assert_at_most(
            resumed,
            10_000,
            &format!("{api}: writes resumed after the promotion"),
        );
        for (at, status, message) in &log.errors {
            assert!(
                matches!(
                    status,
                    Status::Connection | Status::Timeout | Status::ClusterDown
                ),
                "{api}: unexpected error {status:?}: {message}"
            );
            assert!(*at >= killed, "{api}: an error before the kill: {message}");
        }
        let value = text(&ok(&c, &["GET", counter])).parse::<i64>().unwrap();
        // SAFE mode: the counter is at most what was acknowledged plus what was reported as
        // possibly applied; it may be less by what asynchronous replication lost in the kill.
        assert!(
            value <= log.acknowledged_incrs + log.uncertain_incrs,
            "{api}: INCR applied twice: {value} > {} + {}",
            log.acknowledged_incrs,
            log.uncertain_incrs
        );
        let lost_incrs = log.acknowledged_incrs - value.min(log.acknowledged_incrs);
        let lost_sets = missing_sets(&c, log);
        eprintln!(
            "primary killed, {api} API: writes resumed {resumed:?} after the promotion ({:?} \
             after the kill); {} errors ({} may have been applied); acknowledged but lost to \
             async replication: {lost_sets} of {} SETs, {lost_incrs} of {} INCRs; counter {value}",
            promoted.duration_since(killed),
            log.errors.len(),
            log.uncertain_incrs,
            log.acknowledged_sets.len(),
            log.acknowledged_incrs
        );
    }
}

#[test]
fn slot_migration_under_load_follows_ask_without_errors() {
    let cluster = RedisCluster::start();
    let c = Arc::new(client(&cluster));
    let tag = "{mig}";
    let s = slot("mig");
    for i in 0..300 {
        ok(&c, &["SET", &format!("{tag}:{i}"), &i.to_string()]);
    }
    let from = cluster.primary_of_slot(0, s);
    let to = (0..6)
        .find(|&i| i != from && cluster.is_primary(i))
        .expect("another primary");
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let reader = {
        let (c, stop, errors) = (c.clone(), stop.clone(), errors.clone());
        thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let i = reads % 300;
                reads += 1;
                match cmd(&c, &["GET", &format!("{tag}:{i}")]) {
                    Ok(r) => assert_eq!(text(&r), i.to_string()),
                    Err(e) => {
                        *errors
                            .lock()
                            .unwrap()
                            .entry(e.message().into())
                            .or_default() += 1
                    }
                }
            }
            reads
        })
    };
    // The same through the async API, 20 GETs in flight.
    let async_reader = {
        let (c, stop, errors) = (c.clone(), stop.clone(), errors.clone());
        thread::spawn(move || {
            let next = |i: u64| vec!["GET".into(), format!("{tag}:{}", i % 300)];
            pump_async(&c, 20, u64::MAX, &stop, next, |i, outcome| match outcome {
                Ok(r) => assert_eq!(text(&r), (i % 300).to_string()),
                Err(e) => {
                    *errors
                        .lock()
                        .unwrap()
                        .entry(format!("async: {}", e.message()))
                        .or_default() += 1
                }
            })
        })
    };
    cluster.migrate_slot(s, from, to);
    let redirects = c.stat(Stat::Redirects);
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    let async_reads = async_reader.join().unwrap();
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );
    for i in 0..300 {
        assert_eq!(
            text(&ok(&c, &["GET", &format!("{tag}:{i}")])),
            i.to_string()
        );
    }
    assert!(redirects > 0, "the migration was seen");
    eprintln!(
        "slot migration: {reads} blocking and {async_reads} async reads, {redirects} redirects, \
         no errors"
    );
}

/// A multi-key command meeting a slot half migrated gets TRYAGAIN: the blocking and the async
/// path both pause and send it again, and succeed once the migration is done (MOVED).
#[test]
fn tryagain_mid_migration_is_waited_out() {
    let cluster = RedisCluster::start();
    let c = Arc::new(client(&cluster));
    let s = slot("try");
    ok(&c, &["SET", "{try}:a", "1"]);
    ok(&c, &["SET", "{try}:b", "2"]);
    let from = cluster.primary_of_slot(0, s);
    let to = (0..6)
        .find(|&i| i != from && cluster.is_primary(i))
        .expect("another primary");
    let id = |i: usize| cluster.nodes[i].cli(&["CLUSTER", "MYID"]);
    let (from_id, to_id, slot_arg) = (id(from), id(to), s.to_string());
    cluster.nodes[to].cli(&["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id]);
    cluster.nodes[from].cli(&["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id]);
    let port = cluster.nodes[to].port().to_string();
    let migrate = |key: &str| {
        cluster.nodes[from].cli(&["MIGRATE", "127.0.0.1", &port, key, "0", "5000"]);
    };
    // One key moved, one not: a command on both is answered TRYAGAIN by either node.
    migrate("{try}:a");

    let (commands, errors) = (c.stat(Stat::Commands), c.stat(Stat::Errors));
    let blocking = {
        let c = c.clone();
        thread::spawn(move || cmd(&c, &["MGET", "{try}:a", "{try}:b"]))
    };
    let asynchronous = {
        let c = c.clone();
        thread::spawn(move || call_async(&c, &["MGET", "{try}:a", "{try}:b"]))
    };
    assert!(
        wait_until(Duration::from_secs(10), || c.stat(Stat::Redirects) >= 2),
        "both commands met TRYAGAIN"
    );
    migrate("{try}:b");
    // The new owner first, then the old one (as `redis-cli --cluster` does), then the rest.
    let others = (0..6).filter(|&i| i != to && i != from && cluster.is_primary(i));
    for i in [to, from].into_iter().chain(others) {
        cluster.nodes[i].cli(&["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id]);
    }
    for (api, outcome) in [
        ("blocking", blocking.join().unwrap()),
        ("async", asynchronous.join().unwrap()),
    ] {
        let values = outcome
            .unwrap_or_else(|e| panic!("{api}: {:?} {}", e.status(), e.message()))
            .into_elements();
        assert_eq!(
            values.iter().map(text).collect::<Vec<_>>(),
            ["1", "2"],
            "{api}"
        );
    }
    // Each command counts once, however many rounds it took, and neither as an error.
    assert_eq!(c.stat(Stat::Commands) - commands, 2);
    assert_eq!(c.stat(Stat::Errors) - errors, 0);
    let errorstats = cluster.nodes[from].cli(&["INFO", "errorstats"]);
    assert!(
        errorstats.contains("errorstat_TRYAGAIN:count="),
        "the old owner answered TRYAGAIN: {errorstats}"
    );
    eprintln!("TRYAGAIN: {} redirects followed", c.stat(Stat::Redirects));
}

/// No node answers: async commands waiting for the topology share its reads (one at a time, on
/// one blocking thread) instead of queueing a read each, so they all fail within the cluster
/// attempts' pauses, freeing the client does not wait for queued reads, and the runtime's
/// blocking threads stay free for everyone else.
#[test]
fn async_commands_share_topology_reads_when_no_node_answers() {
    let nobody = support::closed_port();
    let mut cfg = brisk::Config::default();
    cfg.set_mode(brisk::config::Mode::Cluster);
    cfg.add_node("127.0.0.1", nobody.port()).unwrap();
    let server = support::RedisServer::start();
    let bystander = Client::new(&server.config()).unwrap();

    let c = client_from(&cfg);
    let started = Instant::now();
    let never = AtomicBool::new(false);
    let mut failures = Vec::new();
    let get = |i: u64| vec!["GET".into(), format!("k{i}")];
    pump_async(&c, 200, 200, &never, get, |_, outcome| {
        failures.push(outcome.expect_err("no node answers"))
    });
    let took = started.elapsed();
    assert_eq!(failures.len(), 200);
    for e in &failures {
        assert_eq!(e.status(), Status::Connection, "{}", e.message());
    }
    assert_at_most(took, 10_000, "200 commands failing with no node answering");

    // Commands still waiting for reads when the client is freed: free does not wait for them.
    let c = client_from(&cfg);
    for i in 0..200 {
        let key = format!("k{i}");
        let args: [&[u8]; 2] = [b"GET", key.as_bytes()];
        c.command_async(&brisk::Args::from_slices(&args), Box::new(|_| {}))
            .unwrap();
    }
    // Meanwhile a client of another server is not held up by them.
    let ping = Instant::now();
    assert_eq!(text(&call_async(&bystander, &["PING"]).unwrap()), "PONG");
    assert_at_most(ping.elapsed(), 2000, "a bystander's PING");
    let freeing = Instant::now();
    drop(c);
    assert_at_most(freeing.elapsed(), 3000, "freeing the client");
    eprintln!("no node answers: 200 async commands failed in {took:?}");
}

#[test]
fn configuration_is_checked() {
    let mut cfg = brisk::Config::default();
    cfg.set_mode(brisk::config::Mode::Cluster);
    expect_err(Client::new(&cfg).map(drop), Status::InvalidArgument);
    cfg.add_node("127.0.0.1", 1).unwrap();
    cfg.db = 1;
    let e = expect_err(Client::new(&cfg).map(drop), Status::InvalidArgument);
    assert!(e.message().contains("database 0"));
    cfg.db = 0;
    // Nothing listens: the first command fails with CONNECTION, naming the node.
    let c = Client::new(&cfg).unwrap();
    let e = expect_err(cmd(&c, &["GET", "k"]), Status::Connection);
    assert!(e.message().contains("127.0.0.1:1"), "{}", e.message());
}

#[test]
fn recovers_from_the_one_seed_left_when_every_other_node_moved() {
    let mut cluster = RedisCluster::start();
    let c = client(&cluster);
    for i in 0..200 {
        ok(&c, &["SET", &format!("seed:{i}"), &i.to_string()]);
    }
    // Every node but the first comes back on a new port, one after the other; the client's
    // seeds and its slot map now name five dead addresses.
    for i in 1..cluster.nodes.len() {
        cluster.nodes[i].move_to_new_port();
    }
    assert!(
        wait_until(Duration::from_secs(60), || {
            (0..6).all(|i| {
                let info = cluster.nodes[i].cli(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
                    && cluster
                        .topology(i)
                        .iter()
                        .all(|n| cluster.nodes.iter().any(|s| s.port() == n.port))
            })
        }),
        "the cluster settled on the new ports:\n{}",
        cluster.describe()
    );
    // Redis kept the data (replicas), or lost it with a failover-less restart: either way the
    // client must reach every shard again through the one seed that did not move.
    let recovered = wait_until(Duration::from_secs(30), || {
        (0..200).all(|i| cmd(&c, &["SET", &format!("seed:{i}"), "again"]).is_ok())
    });
    assert!(
        recovered,
        "the client found the moved nodes through the surviving seed"
    );
    for i in (0..200).step_by(13) {
        assert_eq!(text(&ok(&c, &["GET", &format!("seed:{i}")])), "again");
    }
    assert!(c.stat(Stat::TopologyRefreshes) >= 2);
}
