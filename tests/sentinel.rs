//! Sentinel mode against a real deployment on loopback (`support::SentinelSetup`: a master, a
//! replica and three sentinels): resolution and its errors, failovers under a writer (asked for,
//! and the master killed), a demoted master that still says it is the master, replica reads,
//! and every API (async, pipelines, transactions, sessions) following the master.
//!
//! The failover tests run one at a time (a lock): a failover takes seconds of the sentinels'
//! own timing, which a machine busy with several at once would stretch. Every figure a test
//! measures is printed (run with `--nocapture` to see them).

mod support;

use brisk::config::{Mode, ReadFrom};
use brisk::events::{Event, EventKind};
use brisk::pubsub::{Kind, Subscriber};
use brisk::stats::Stat;
use brisk::{Client, Config, Status};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::*;

/// One failover at a time (see the module documentation).
static FAILOVERS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    FAILOVERS.lock().unwrap_or_else(|p| p.into_inner())
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("not host:port: {address}"))
}

/// The master a client is on: the node that served a `ROLE`-free probe (the port of the
/// address in its COMMAND event).
struct Observed {
    /// (when, new master address) for each TOPOLOGY event.
    topology: Mutex<Vec<(Instant, String)>>,
    /// The address of the last command finished on each thread that asked (by thread name).
    last_address: Mutex<Option<String>>,
}

impl Observed {
    fn install(config: &mut Config) -> Arc<Observed> {
        let observed = Arc::new(Observed {
            topology: Mutex::default(),
            last_address: Mutex::default(),
        });
        let sink = observed.clone();
        config.events.0 = Some(Arc::new(move |event: &Event<'_>| match event.kind {
            EventKind::Topology => sink
                .topology
                .lock()
                .unwrap()
                .push((Instant::now(), event.address.to_string_lossy().into_owned())),
            EventKind::Command => {
                *sink.last_address.lock().unwrap() =
                    Some(event.address.to_string_lossy().into_owned())
            }
            _ => {}
        }));
        observed
    }

    /// When the client switched to the master on `port` (its TOPOLOGY event), if it did.
    fn switched_to(&self, port: u16) -> Option<Instant> {
        self.topology
            .lock()
            .unwrap()
            .iter()
            .find(|(_, address)| port_of(address) == port)
            .map(|(at, _)| *at)
    }

    fn last_address(&self) -> Option<String> {
        self.last_address.lock().unwrap().clone()
    }
}

#[test]
fn resolves_the_master_and_reports_each_failure_promptly() {
    let setup = SentinelSetup::start();
    let master = setup.master_port();

    let mut config = setup.config();
    let observed = Observed::install(&mut config);
    let client = Client::new(&config).unwrap();
    let started = Instant::now();
    ok(&client, &["SET", "sentinel:key", "v"]);
    let first = started.elapsed();
    assert_eq!(text(&ok(&client, &["GET", "sentinel:key"])), "v");
    assert_eq!(port_of(&observed.last_address().unwrap()), master);
    assert_eq!(setup.node(master).cli(&["GET", "sentinel:key"]), "v");
    assert_eq!(client.stat(Stat::TopologyRefreshes), 1);
    assert_eq!(observed.topology.lock().unwrap().len(), 1);
    println!(
        "first command (resolution included): {} ms",
        first.as_millis()
    );

    // A name no sentinel monitors: SENTINEL, naming the sentinels that answered.
    let mut unknown = setup.config();
    unknown.set_sentinel_master("nosuchmaster").unwrap();
    let client = Client::new(&unknown).unwrap();
    let started = Instant::now();
    let e = expect_err(cmd(&client, &["PING"]), Status::Sentinel);
    let took = started.elapsed();
    assert!(e.message().contains("nosuchmaster"), "{}", e.message());
    for sentinel in &setup.sentinels {
        let address = format!("127.0.0.1:{}", sentinel.port());
        assert!(e.message().contains(&address), "{}", e.message());
    }
    assert!(took < Duration::from_secs(5), "{took:?}");
    println!("unknown master: {} ms: {}", took.as_millis(), e.message());

    // No sentinel reachable: CONNECTION, naming every sentinel tried.
    let down: Vec<ClosedPort> = (0..3).map(|_| closed_port()).collect();
    let mut nowhere = Config::default();
    nowhere.set_mode(Mode::Sentinel);
    nowhere.set_sentinel_master(MASTER_NAME).unwrap();
    for port in &down {
        nowhere.add_node("127.0.0.1", port.port()).unwrap();
    }
    let client = Client::new(&nowhere).unwrap();
    let started = Instant::now();
    let e = expect_err(cmd(&client, &["PING"]), Status::Connection);
    let took = started.elapsed();
    assert!(
        e.message().contains("no sentinel answered"),
        "{}",
        e.message()
    );
    for port in &down {
        let address = format!("127.0.0.1:{}", port.port());
        assert!(e.message().contains(&address), "{}", e.message());
    }
    assert!(took < Duration::from_secs(10), "{took:?}");
    println!(
        "no sentinel reachable: {} ms: {}",
        took.as_millis(),
        e.message()
    );

    // Bad arguments, refused by Client::new.
    let mut no_name = Config::default();
    no_name.set_mode(Mode::Sentinel);
    no_name
        .add_node("127.0.0.1", setup.sentinels[0].port())
        .unwrap();
    let e = expect_err(Client::new(&no_name).map(drop), Status::InvalidArgument);
    assert!(e.message().contains("master"), "{}", e.message());
    let mut no_sentinels = Config::default();
    no_sentinels.set_mode(Mode::Sentinel);
    no_sentinels.set_sentinel_master(MASTER_NAME).unwrap();
    let e = expect_err(
        Client::new(&no_sentinels).map(drop),
        Status::InvalidArgument,
    );
    assert!(e.message().contains("node"), "{}", e.message());
    assert_eq!(
        Config::default()
            .set_sentinel_master("")
            .unwrap_err()
            .status(),
        Status::InvalidArgument
    );
}

#[test]
fn the_first_sentinel_down_the_others_answer() {
    let mut setup = SentinelSetup::start();
    let master = setup.master_port();
    setup.sentinels[0].kill();
    let config = setup.config();
    let client = Client::new(&config).unwrap();
    let started = Instant::now();
    ok(&client, &["SET", "k", "v"]);
    let took = started.elapsed();
    assert_eq!(setup.node(master).cli(&["GET", "k"]), "v");
    println!(
        "first sentinel down: resolved through the second in {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// An acknowledged write: when, on which node, and (for INCR) the counter it returned.
#[derive(Clone, Copy, Debug)]
struct Ack {
    at: Instant,
    /// The node's port (0: not known, for the async writer).
    port: u16,
    value: i64,
}

/// What a writer saw.
#[derive(Default)]
struct WriterLog {
    sets: Vec<(String, Ack)>,
    incrs: Vec<Ack>,
    /// INCRs that failed after their request was sent: they may have been applied.
    uncertain_incrs: i64,
    errors: Vec<(Instant, Status, String)>,
}

impl WriterLog {
    fn set(&mut self, key: String, outcome: brisk::Result<brisk::Reply>, port: u16) {
        match outcome {
            Ok(_) => self.sets.push((
                key,
                Ack {
                    at: Instant::now(),
                    port,
                    value: 0,
                },
            )),
            Err(e) => self.error(&e),
        }
    }

    fn incr(&mut self, outcome: brisk::Result<brisk::Reply>, port: u16) {
        match outcome {
            Ok(reply) => self.incrs.push(Ack {
                at: Instant::now(),
                port,
                value: reply.node().as_integer().expect("INCR answers an integer"),
            }),
            Err(e) => {
                if e.is_sent() {
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

    /// The first write acknowledged after `t`.
    fn first_ack_after(&self, t: Instant) -> Option<Ack> {
        self.sets
            .iter()
            .map(|(_, a)| *a)
            .chain(self.incrs.iter().copied())
            .filter(|a| a.at > t)
            .min_by_key(|a| a.at)
    }

    /// The acknowledged SETs whose key `node` does not have.
    fn missing_on(&self, node: &RedisServer) -> Vec<(String, Ack)> {
        let direct = Client::new(&node.config()).expect("a client of the node");
        let mut missing = Vec::new();
        for chunk in self.sets.chunks(500) {
            let mut mget = vec!["MGET"];
            mget.extend(chunk.iter().map(|(k, _)| k.as_str()));
            let values = ok(&direct, &mget).into_elements();
            assert_eq!(values.len(), chunk.len());
            for ((key, ack), value) in chunk.iter().zip(values) {
                if value.is_nil() {
                    missing.push((key.clone(), *ack));
                }
            }
        }
        missing
    }
}

/// A thread writing as fast as it can (SET of a fresh key, then INCR of one counter) until
/// stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
    handle: thread::JoinHandle<WriterLog>,
}

impl Writer {
    /// Through the blocking API; each acknowledgement records the node that served it (from the
    /// client's COMMAND events: this thread is the client's only user).
    fn blocking(client: Arc<Client>, observed: Arc<Observed>, prefix: &str) -> Writer {
        let prefix = prefix.to_owned();
        Writer::spawn(move |log, acknowledged, stop| {
            let counter = format!("{prefix}:counter");
            let port = || observed.last_address().map_or(0, |a| port_of(&a));
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("{prefix}:{i}");
                i += 1;
                let outcome = cmd(&client, &["SET", &key, "x"]);
                log.set(key, outcome, port());
                let outcome = cmd(&client, &["INCR", &counter]);
                log.incr(outcome, port());
                acknowledged.store((log.sets.len() + log.incrs.len()) as u64, Ordering::Relaxed);
            }
        })
    }

    /// Through the async API, 20 commands in flight (SETs and INCRs alternating).
    fn pumping(client: Arc<Client>, prefix: &str) -> Writer {
        let prefix = prefix.to_owned();
        Writer::spawn(move |log, acknowledged, stop| {
            let counter = format!("{prefix}:counter");
            let key = |i: u64| format!("{prefix}:{}", i / 2);
            let next = |i: u64| match i % 2 {
                0 => vec!["SET".into(), key(i), "x".into()],
                _ => vec!["INCR".into(), counter.clone()],
            };
            pump_async(&client, 20, u64::MAX, stop, next, |i, outcome| {
                match i % 2 {
                    0 => log.set(key(i), outcome, 0),
                    _ => log.incr(outcome, 0),
                }
                acknowledged.store((log.sets.len() + log.incrs.len()) as u64, Ordering::Relaxed);
            });
        })
    }

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

    /// Waits until `n` more writes were acknowledged.
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

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn signed_ms(from: Instant, to: Instant) -> i128 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_millis() as i128,
        None => -(from.duration_since(to).as_millis() as i128),
    }
}

/// The counter on `node` (0 when unset).
fn counter_on(node: &RedisServer, prefix: &str) -> i64 {
    node.cli(&["GET", &format!("{prefix}:counter")])
        .parse()
        .unwrap_or(0)
}

/// Checks and prints what a writer's log says about writes across a failover to `new`:
/// the counter never exceeds acknowledged + may-have-been-applied (no INCR applied twice), and
/// the acknowledged writes that are lost were all acknowledged within `window`. Returns the
/// number of lost acknowledged SETs.
fn check_writes(
    what: &str,
    log: &WriterLog,
    new: &RedisServer,
    prefix: &str,
    window: (Instant, Instant),
) -> usize {
    let counter = counter_on(new, prefix);
    let acknowledged = log.incrs.len() as i64;
    assert!(
        counter <= acknowledged + log.uncertain_incrs,
        "{what}: an INCR was applied twice: counter {counter} > {acknowledged} acknowledged + \
         {} uncertain",
        log.uncertain_incrs
    );
    let missing = log.missing_on(new);
    let in_window = |ack: &Ack| ack.at >= window.0 && ack.at <= window.1;
    for (key, ack) in &missing {
        assert!(
            in_window(ack),
            "{what}: {key}, acknowledged {} ms from the window's start, is lost outside the \
             failover window ({} ms)",
            signed_ms(window.0, ack.at),
            signed_ms(window.0, window.1)
        );
    }
    // Where the writer knows the node of each INCR: the new master's first answer tells what
    // its counter held when it took over, so the old master's later answers are the INCRs lost.
    let new_port = new.port();
    let lost_incrs = match log.incrs.iter().find(|a| a.port == new_port) {
        Some(first_new) => {
            let lost: Vec<&Ack> = log
                .incrs
                .iter()
                .filter(|a| a.port != new_port && a.value >= first_new.value)
                .collect();
            for ack in &lost {
                assert!(
                    in_window(ack),
                    "{what}: an INCR lost outside the failover window"
                );
            }
            lost.len().to_string()
        }
        None => format!("at least {}", (acknowledged - counter).max(0)),
    };
    println!(
        "{what}: {} SETs and {acknowledged} INCRs acknowledged, {} errors ({} INCRs may have been \
         applied); counter {counter} <= {acknowledged} + {}; acknowledged but lost: {} SETs and \
         {lost_incrs} INCRs, all within the {} ms failover window",
        log.sets.len(),
        log.errors.len(),
        log.uncertain_incrs,
        log.uncertain_incrs,
        missing.len(),
        signed_ms(window.0, window.1)
    );
    missing.len()
}

#[test]
fn an_asked_failover_moves_every_writer_to_the_new_master_within_seconds() {
    let _one = one_at_a_time();
    let setup = SentinelSetup::start();
    let old = setup.master_port();
    let mut config = setup.config();
    let observed = Observed::install(&mut config);
    let blocking = Writer::blocking(
        Arc::new(Client::new(&config).unwrap()),
        observed.clone(),
        "b",
    );
    let pumping = Writer::pumping(Arc::new(Client::new(&setup.config()).unwrap()), "a");
    for w in [&blocking, &pumping] {
        assert!(
            w.wait_for_more(200, Duration::from_secs(20)),
            "the writers run"
        );
    }

    let asked = Instant::now();
    setup.failover(0);
    let switch = setup.wait_switched(old, Duration::from_secs(60));
    let new = switch.port;
    for w in [&blocking, &pumping] {
        assert!(
            w.wait_for_more(500, Duration::from_secs(30)),
            "writes go on after the failover:\n{}",
            setup.describe()
        );
    }
    let (blocking, pumping) = (blocking.finish(), pumping.finish());

    let switched = observed
        .switched_to(new)
        .expect("the client switched to the new master (TOPOLOGY event)");
    println!(
        "asked failover: the sentinels named {new} {} ms after SENTINEL FAILOVER; the client \
         switched {} ms after the first sentinel named it ({} ms after all three agreed)",
        signed_ms(asked, switch.first_named),
        signed_ms(switch.first_named, switched),
        signed_ms(switch.agreed, switched)
    );
    assert!(
        switched <= switch.agreed + Duration::from_secs(5),
        "the client switched {} ms after the sentinels agreed",
        signed_ms(switch.agreed, switched)
    );
    // The blocking writer knows the node of each write: once on the new master it never goes
    // back, and what it lost was acknowledged by the old one during the failover.
    let first_new = blocking
        .incrs
        .iter()
        .chain(blocking.sets.iter().map(|(_, a)| a))
        .filter(|a| a.port == new)
        .map(|a| a.at)
        .min()
        .expect("writes on the new master");
    let back_on_old = blocking
        .incrs
        .iter()
        .chain(blocking.sets.iter().map(|(_, a)| a))
        .filter(|a| a.port == old && a.at > first_new)
        .count();
    assert_eq!(back_on_old, 0, "writes went back to the old master");
    let new_node = setup.node(new);
    check_writes(
        "blocking writer",
        &blocking,
        new_node,
        "b",
        (asked, first_new),
    );
    // The async writer's in-flight requests may finish on the old master a moment after the
    // switch (and its acknowledgements are recorded when the writer thread gets to them): its
    // window closes a little later.
    check_writes(
        "async writer",
        &pumping,
        new_node,
        "a",
        (asked, switched + Duration::from_secs(3)),
    );
    for (at, status, message) in blocking.errors.iter().chain(&pumping.errors) {
        assert!(
            matches!(status, Status::Connection | Status::Timeout) && *at >= asked,
            "unexpected error: {status:?}: {message}"
        );
    }
}

#[test]
fn a_demoted_master_that_still_says_master_gets_no_write_after_the_switch() {
    let _one = one_at_a_time();
    let setup = SentinelSetup::start();
    let old = setup.master_port();
    let mut config = setup.config();
    let observed = Observed::install(&mut config);
    let writer = Writer::blocking(
        Arc::new(Client::new(&config).unwrap()),
        observed.clone(),
        "d",
    );
    assert!(
        writer.wait_for_more(200, Duration::from_secs(20)),
        "the writer runs"
    );

    setup.failover(0);
    let switch = setup.wait_switched(old, Duration::from_secs(60));
    let new = switch.port;
    assert!(
        wait_until(Duration::from_secs(10), || observed
            .switched_to(new)
            .is_some()),
        "the client switched to {new}"
    );
    // Whatever was in flight at the switch has finished after two more writes.
    assert!(
        writer.wait_for_more(2, Duration::from_secs(10)),
        "writes go on"
    );
    let old_node = setup.node(old);
    let role = cli_through_reconfiguration(old_node, &["ROLE"]);
    let (sets, incrs) = (
        command_calls(old_node, "set"),
        command_calls(old_node, "incr"),
    );
    // Two seconds of writes (at least a hundred), while the old node would still take them
    // (the sentinels reconfigure it some 8 s after the switch).
    let checked = Instant::now();
    let written_before = writer.acknowledged.load(Ordering::Relaxed);
    assert!(
        writer.wait_for_more(100, Duration::from_secs(5)),
        "writes go on"
    );
    while checked.elapsed() < Duration::from_secs(2) {
        assert!(
            writer.wait_for_more(1, Duration::from_secs(10)),
            "writes go on"
        );
    }
    let written = writer.acknowledged.load(Ordering::Relaxed) - written_before;
    let (sets_after, incrs_after) = (
        command_calls(old_node, "set"),
        command_calls(old_node, "incr"),
    );
    let role_after = cli_through_reconfiguration(old_node, &["ROLE"]);
    let checked_for = checked.elapsed();
    let log = writer.finish();
    // The point of the test: the old node would still take writes (it says master, and the
    // sentinels have not reconfigured it yet), yet none came.
    assert!(
        role.starts_with("master") && role_after.starts_with("master"),
        "the old master was reconfigured before the check ended (ROLE {role:?} then \
         {role_after:?}): the check proves nothing"
    );
    assert_eq!(
        (sets_after, incrs_after),
        (sets, incrs),
        "writes reached the demoted master after the client switched"
    );
    let switched = observed.switched_to(new).unwrap();
    let on_old_after_agreement = log
        .incrs
        .iter()
        .chain(log.sets.iter().map(|(_, a)| a))
        .filter(|a| a.port == old && a.at > switch.agreed)
        .count();
    println!(
        "demoted master: the client switched {} ms after the sentinels agreed; writes \
         acknowledged by the old master after they agreed: {on_old_after_agreement}; over {} ms \
         in which the old master still said ROLE master, its SET/INCR calls stayed at {sets}/\
         {incrs} while the client wrote {written} times to the new master",
        signed_ms(switch.agreed, switched),
        checked_for.as_millis(),
    );
    assert_eq!(
        on_old_after_agreement, 0,
        "writes went to the old master after the sentinels agreed"
    );
}

#[test]
fn a_killed_master_is_replaced_and_writes_resume_within_seconds() {
    let _one = one_at_a_time();
    let mut setup = SentinelSetup::start();
    let old = setup.master_port();
    let mut config = setup.config();
    let observed = Observed::install(&mut config);
    let blocking = Writer::blocking(
        Arc::new(Client::new(&config).unwrap()),
        observed.clone(),
        "k",
    );
    let pumping = Writer::pumping(Arc::new(Client::new(&setup.config()).unwrap()), "ka");
    for w in [&blocking, &pumping] {
        assert!(
            w.wait_for_more(200, Duration::from_secs(20)),
            "the writers run"
        );
    }

    let killed = Instant::now();
    setup.node_mut(old).kill();
    let switch = setup.wait_switched(old, Duration::from_secs(90));
    let new = switch.port;
    for w in [&blocking, &pumping] {
        assert!(
            w.wait_for_more(500, Duration::from_secs(30)),
            "writes resume after the failover:\n{}",
            setup.describe()
        );
    }
    let (blocking, pumping) = (blocking.finish(), pumping.finish());
    let new_node = setup.node(new);
    for (what, log, prefix) in [
        ("blocking writer", &blocking, "k"),
        ("async writer", &pumping, "ka"),
    ] {
        // Writes answered before the kill may be recorded just after it (async callbacks): the
        // outage shows in errors, so writing resumed at the first success after the last error.
        let outage_seen = log
            .errors
            .last()
            .map_or(killed, |(at, _, _)| *at)
            .max(killed);
        let resumed = log
            .first_ack_after(outage_seen)
            .expect("a write acknowledged after the kill")
            .at;
        println!(
            "master killed, {what}: first write acknowledged {} ms after the kill ({} ms after \
             the first sentinel named {new}, which was {} ms after the kill)",
            signed_ms(killed, resumed),
            signed_ms(switch.first_named, resumed),
            signed_ms(killed, switch.first_named)
        );
        assert!(
            resumed <= switch.first_named + Duration::from_secs(10),
            "{what}: writes resumed {} ms after the sentinels named the new master",
            signed_ms(switch.first_named, resumed)
        );
        for (at, status, message) in &log.errors {
            assert!(
                matches!(status, Status::Connection | Status::Timeout) && *at >= killed,
                "{what}: unexpected error: {status:?}: {message}"
            );
        }
        // Asynchronous replication may lose what the old master acknowledged last.
        check_writes(
            what,
            log,
            new_node,
            prefix,
            (killed - Duration::from_secs(2), resumed),
        );
    }
    println!(
        "master killed: the client's TOPOLOGY event {} ms after the first sentinel named {new}",
        signed_ms(
            switch.first_named,
            observed.switched_to(new).expect("switched")
        )
    );
}

#[test]
fn replica_reads_go_to_the_replica_and_fall_back_to_the_master_when_it_dies() {
    let mut setup = SentinelSetup::start();
    let master = setup.master_port();
    let replica = setup.other(master).port();
    let mut config = setup.config();
    config.cluster.read_from = ReadFrom::ReplicaPreferred;
    let client = Client::new(&config).unwrap();
    ok(&client, &["SET", "r:key", "v"]);
    assert!(
        wait_until(Duration::from_secs(10), || setup
            .node(replica)
            .cli(&["GET", "r:key"])
            == "v"),
        "the write reached the replica"
    );
    for port in [master, replica] {
        setup.node(port).cli(&["CONFIG", "RESETSTAT"]);
    }
    let (reads, writes) = (300, 100);
    for _ in 0..reads {
        assert_eq!(text(&ok(&client, &["GET", "r:key"])), "v");
    }
    for i in 0..writes {
        ok(&client, &["SET", &format!("r:w{i}"), "x"]);
    }
    let served = |port: u16, command: &str| command_calls(setup.node(port), command);
    println!(
        "replica reads: GET served by the replica {} times, by the master {}; SET by the \
         master {}",
        served(replica, "get"),
        served(master, "get"),
        served(master, "set")
    );
    assert_eq!(served(replica, "get"), reads);
    assert_eq!(served(master, "get"), 0);
    assert_eq!(served(master, "set"), writes);

    setup.node_mut(replica).kill();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..reads {
        let one = Instant::now();
        match cmd(&client, &["GET", "r:key"]) {
            Ok(reply) => assert_eq!(text(&reply), "v"),
            Err(e) => panic!(
                "a read failed with the replica dead: {:?}: {}",
                e.status(),
                e.message()
            ),
        }
        slowest = slowest.max(one.elapsed());
    }
    let on_master = command_calls(setup.node(master), "get");
    println!(
        "replica killed: {reads} reads, no error, {on_master} served by the master in {} ms \
         (slowest {} ms, the one that found the replica dead)",
        started.elapsed().as_millis(),
        slowest.as_millis()
    );
    assert_eq!(on_master, reads);
}

#[test]
fn async_pipelines_transactions_and_sessions_follow_a_failover() {
    let _one = one_at_a_time();
    let setup = SentinelSetup::start();
    let old = setup.master_port();
    let mut config = setup.config();
    let observed = Observed::install(&mut config);
    let client = Client::new(&config).unwrap();

    // Before: every API on the first master.
    let mut session = client.session().unwrap();
    session_cmd(&mut session, &["SET", "s:before", "1"]).unwrap();
    let mut watching = client.session().unwrap();
    session_cmd(&mut watching, &["WATCH", "s:watched"]).unwrap();
    let mut pipeline = client.pipeline();
    append(&mut pipeline, &["SET", "p:before", "1"]).unwrap();
    append(&mut pipeline, &["GET", "p:before"]).unwrap();
    pipeline.exec().unwrap();
    let mut transaction = client.transaction();
    append(&mut transaction, &["INCR", "t:counter"]).unwrap();
    transaction.exec().unwrap();
    call_async(&client, &["SET", "a:before", "1"]).unwrap();
    assert_eq!(setup.node(old).cli(&["GET", "a:before"]), "1");

    setup.failover(0);
    let new = setup.wait_switched(old, Duration::from_secs(60)).port;
    assert!(
        wait_until(Duration::from_secs(10), || observed
            .switched_to(new)
            .is_some()),
        "the client switched to {new}"
    );

    // After: each lands on the new master, none on the old one.
    call_async(&client, &["SET", "a:after", "1"]).unwrap();
    let mut pipeline = client.pipeline();
    append(&mut pipeline, &["SET", "p:after", "1"]).unwrap();
    append(&mut pipeline, &["GET", "p:after"]).unwrap();
    let replies = pipeline.exec().unwrap().into_elements();
    assert_eq!(text(&replies[1]), "1");
    let mut transaction = client.transaction();
    append(&mut transaction, &["INCR", "t:counter"]).unwrap();
    let replies = transaction.exec().unwrap().into_elements();
    assert_eq!(replies[0].node().as_integer(), Some(2));
    session_cmd(&mut session, &["SET", "s:after", "1"]).unwrap();
    // A session's WATCH died with the old master's connection: said once, then it goes on.
    let e = expect_err(
        session_cmd(&mut watching, &["GET", "s:watched"]),
        Status::Connection,
    );
    assert!(e.message().contains("WATCH"), "{}", e.message());
    session_cmd(&mut watching, &["WATCH", "s:watched"]).unwrap();
    session_cmd(&mut watching, &["MULTI"]).unwrap();
    session_cmd(&mut watching, &["SET", "s:watched", "1"]).unwrap();
    session_cmd(&mut watching, &["EXEC"]).unwrap();

    let (new_node, old_node) = (setup.node(new), setup.node(old));
    let old_role = cli_through_reconfiguration(old_node, &["ROLE"]);
    for key in ["a:after", "p:after", "s:after", "s:watched"] {
        assert_eq!(new_node.cli(&["GET", key]), "1", "{key} on the new master");
        if old_role.starts_with("master") {
            assert_eq!(
                old_node.cli(&["GET", key]),
                "",
                "{key} not on the old master"
            );
        }
    }
    assert_eq!(new_node.cli(&["GET", "t:counter"]), "2");
    println!(
        "after the failover: async, pipeline, transaction and two sessions ran on {new} \
         (old master {old} still says {:?})",
        old_role.lines().next().unwrap_or("")
    );
}

#[test]
fn sentinel_credentials_are_separate_from_the_data_nodes() {
    let setup = SentinelSetup::start_with(SetupOptions {
        data_password: Some("data-secret".into()),
        sentinel_password: Some("sentinel-secret".into()),
        ..SetupOptions::default()
    });
    let mut config = setup.config();
    config.password = Some("data-secret".to_owned().into());
    config.sentinel.password = Some("sentinel-secret".to_owned().into());
    let client = Client::new(&config).unwrap();
    ok(&client, &["SET", "auth:key", "v"]);
    assert_eq!(
        setup.node(setup.master_port()).cli(&["GET", "auth:key"]),
        "v"
    );

    // Without the sentinels' password: they refuse, which is not CONNECTION.
    let mut no_sentinel_auth = config.clone();
    no_sentinel_auth.sentinel.password = None;
    let e = cmd(&Client::new(&no_sentinel_auth).unwrap(), &["PING"]).unwrap_err();
    assert_eq!(e.status(), Status::Auth, "{}", e.message());
    assert!(!e.message().contains("secret"), "{}", e.message());
    println!(
        "sentinel auth: without the sentinels' password: {}",
        e.message()
    );
    // With a wrong data password: the master refuses its ROLE check.
    let mut bad_data_auth = config.clone();
    bad_data_auth.password = Some("wrong".to_owned().into());
    let e = cmd(&Client::new(&bad_data_auth).unwrap(), &["PING"]).unwrap_err();
    assert_eq!(e.status(), Status::Auth, "{}", e.message());
    assert!(!e.message().contains("secret"), "{}", e.message());
    println!("sentinel auth: with a wrong data password: {}", e.message());

    // The data password is never sent to the sentinels: over RESP2 (`AUTH password`) sentinels
    // without a password would refuse it.
    let open = SentinelSetup::start_with(SetupOptions {
        data_password: Some("data-secret".into()),
        sentinel_password: None,
        ..SetupOptions::default()
    });
    let mut config = open.config();
    config.password = Some("data-secret".to_owned().into());
    config.set_protocol(2).unwrap();
    ok(&Client::new(&config).unwrap(), &["SET", "auth:key", "v"]);
}

#[test]
fn sentinels_learnt_from_the_first_keep_the_client_going_when_it_is_gone() {
    let _one = one_at_a_time();
    let mut setup = SentinelSetup::start();
    let old = setup.master_port();
    // Only the first sentinel is given: the others are learnt from it.
    let mut config = setup.config();
    config.nodes.truncate(1);
    let observed = Observed::install(&mut config);
    let client = Client::new(&config).unwrap();
    ok(&client, &["SET", "learnt:before", "1"]);

    setup.sentinels[0].kill();
    setup.failover(1);
    let switch = setup.wait_switched_by(&[1, 2], old, Duration::from_secs(60));
    assert!(
        wait_until(Duration::from_secs(20), || observed
            .switched_to(switch.port)
            .is_some()),
        "the client followed the failover through the sentinels it learnt"
    );
    ok(&client, &["SET", "learnt:after", "1"]);
    assert_eq!(setup.node(switch.port).cli(&["GET", "learnt:after"]), "1");
    println!(
        "seed sentinel gone: the client switched {} ms after the remaining sentinels agreed, \
         through the sentinels it had learnt",
        signed_ms(switch.agreed, observed.switched_to(switch.port).unwrap())
    );
}

#[test]
fn replica_reads_follow_the_replicas_through_a_failover() {
    let _one = one_at_a_time();
    let setup = SentinelSetup::start();
    let old = setup.master_port();
    let replica = setup.other(old).port();
    let mut config = setup.config();
    config.cluster.read_from = ReadFrom::ReplicaPreferred;
    let client = Client::new(&config).unwrap();
    ok(&client, &["SET", "rf:key", "v"]);
    assert!(
        wait_until(Duration::from_secs(10), || setup
            .node(replica)
            .cli(&["GET", "rf:key"])
            == "v"),
        "the write reached the replica"
    );
    setup.node(replica).cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..50 {
        assert_eq!(text(&ok(&client, &["GET", "rf:key"])), "v");
    }
    assert_eq!(command_calls(setup.node(replica), "get"), 50);

    // The replica becomes the master; the old master, once the sentinels have made it a
    // replica, serves the reads.
    setup.failover(0);
    let switch = setup.wait_switched(old, Duration::from_secs(60));
    assert_eq!(switch.port, replica);
    let old_node = setup.node(old);
    let demoted = wait_until(Duration::from_secs(60), || {
        cli_through_reconfiguration(old_node, &["ROLE"]).starts_with("slave")
    });
    assert!(
        demoted,
        "the sentinels reconfigured the old master:\n{}",
        setup.describe()
    );
    let demoted_at = Instant::now();
    let reads_before = command_calls(old_node, "get");
    let mut reads = 0;
    let served = wait_until(Duration::from_secs(60), || {
        reads += 1;
        assert_eq!(text(&ok(&client, &["GET", "rf:key"])), "v");
        command_calls(old_node, "get") > reads_before
    });
    assert!(
        served,
        "reads never reached the old master once it was a replica:\n{}",
        setup.describe()
    );
    println!(
        "replica list after a failover: reads reached the demoted master {} ms after it became \
         a replica ({reads} reads meanwhile, all answered), {} resolutions in all",
        demoted_at.elapsed().as_millis(),
        client.stat(Stat::TopologyRefreshes)
    );
}

#[test]
fn tls_to_the_sentinels_and_the_data_nodes() {
    let _one = one_at_a_time();
    let setup = SentinelSetup::start_with(SetupOptions {
        tls: true,
        ..SetupOptions::default()
    });
    let old = setup.master_port();
    // Every server listens on TLS only: any answer came over TLS.
    let mut config = setup.config();
    let observed = Observed::install(&mut config);
    let client = Client::new(&config).unwrap();
    ok(&client, &["SET", "tls:key", "v"]);
    assert_eq!(setup.node(old).cli(&["GET", "tls:key"]), "v");

    // The announcements come over TLS too: an asked failover is followed at once.
    setup.failover(0);
    let switch = setup.wait_switched(old, Duration::from_secs(60));
    assert!(
        wait_until(Duration::from_secs(10), || observed
            .switched_to(switch.port)
            .is_some()),
        "the client followed the failover over TLS"
    );
    ok(&client, &["SET", "tls:after", "v"]);
    assert_eq!(setup.node(switch.port).cli(&["GET", "tls:after"]), "v");
    println!(
        "TLS: sentinels and data nodes over TLS; the client switched {} ms after the sentinels \
         agreed",
        signed_ms(switch.agreed, observed.switched_to(switch.port).unwrap())
    );

    // A client that does not trust the CA: the sentinels' certificates are refused (TLS, not
    // CONNECTION: they were reachable).
    let mut untrusting = setup.config();
    untrusting.tls.ca_file = Some(setup.tls_files().other_ca_cert.clone());
    let e = expect_err(
        cmd(&Client::new(&untrusting).unwrap(), &["PING"]),
        Status::Tls,
    );
    println!("TLS with an unrelated CA: {}", e.message());
}

#[test]
fn a_sentinel_the_node_contradicts_is_asked_last_and_the_rounds_are_bounded() {
    let setup = SentinelSetup::start();
    let master = setup.master_port();
    let replica = setup.other(master).port();
    // A stale "sentinel" first in the list: it names the replica as the master (a scripted
    // peer answering everything, the handshake included, with that address).
    let port = replica.to_string();
    let answer = format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{port}\r\n", port.len());
    let stale = ScriptedServer::replying(answer.as_bytes());
    let mut config = setup.config();
    config
        .nodes
        .insert(0, ("127.0.0.1".to_owned(), stale.port()));
    let client = Client::new(&config).unwrap();
    let started = Instant::now();
    ok(&client, &["SET", "stale:key", "v"]);
    let took = started.elapsed();
    assert_eq!(setup.node(master).cli(&["GET", "stale:key"]), "v");
    println!(
        "stale sentinel first: its answer contradicted by ROLE, the next round asked the others \
         first; resolved in {} ms",
        took.as_millis()
    );

    // With only the stale one: a bounded number of rounds, then CONNECTION saying why.
    let mut only_stale = Config::default();
    only_stale.set_mode(Mode::Sentinel);
    only_stale.set_sentinel_master(MASTER_NAME).unwrap();
    only_stale.add_node("127.0.0.1", stale.port()).unwrap();
    let client = Client::new(&only_stale).unwrap();
    let started = Instant::now();
    let e = expect_err(cmd(&client, &["SET", "stale:key", "v"]), Status::Connection);
    let took = started.elapsed();
    assert!(
        e.message().contains("says it is a replica"),
        "{}",
        e.message()
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    println!(
        "only a stale sentinel: {} ms: {}",
        took.as_millis(),
        e.message()
    );
}

#[test]
fn the_client_side_cache_forgets_the_old_master_at_a_failover() {
    let _one = one_at_a_time();
    let setup = SentinelSetup::start();
    let old = setup.master_port();
    let mut config = setup.config();
    config.cache.max_entries = 1000;
    let observed = Observed::install(&mut config);
    let client = Client::new(&config).unwrap();
    ok(&client, &["SET", "csc:key", "before"]);
    assert!(
        read_until_a_hit(&client, "csc:key", "before"),
        "cached on the old master"
    );
    assert_eq!(client.stat(Stat::CacheEntries), 1);

    setup.failover(0);
    let switch = setup.wait_switched(old, Duration::from_secs(60));
    assert!(
        wait_until(Duration::from_secs(30), || observed
            .switched_to(switch.port)
            .is_some()),
        "the client followed the failover (a +switch-master hint; it sends nothing meanwhile)"
    );
    assert_eq!(
        client.stat(Stat::CacheEntries),
        0,
        "what was read from the old master was dropped at the switch"
    );
    // Written behind the client's back on the new master: the next read sees it, and is
    // cached again (tracked on the new master).
    setup.node(switch.port).cli(&["SET", "csc:key", "after"]);
    assert_eq!(text(&ok(&client, &["GET", "csc:key"])), "after");
    assert!(
        read_until_a_hit(&client, "csc:key", "after"),
        "cached again, on the new master"
    );
    // And the new master's invalidations reach it.
    setup.node(switch.port).cli(&["SET", "csc:key", "later"]);
    assert!(
        wait_until(Duration::from_secs(5), || text(&ok(
            &client,
            &["GET", "csc:key"]
        )) == "later"),
        "invalidated by the new master"
    );
}

/// Reads `key` (always `value`) until a read is a hit: a hit needs the node's invalidation
/// connection to have answered a PING just before (`cache::store::Leases`), so the first reads
/// after a quiet spell may still go to the server.
fn read_until_a_hit(client: &Client, key: &str, value: &str) -> bool {
    let mut before = client.stat(Stat::CacheHits);
    wait_until(Duration::from_secs(10), || {
        assert_eq!(text(&ok(client, &["GET", key])), value);
        let now = client.stat(Stat::CacheHits);
        std::mem::replace(&mut before, now) < now
    })
}

/// Publishes `tag-1`, `tag-2`, ... through `client` until `sub` receives one of them (up to
/// 60 s); the time that took.
fn received_through(client: &Client, sub: &Subscriber, tag: &str) -> Option<Duration> {
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(60) {
        sent += 1;
        let payload = format!("{tag}-{sent}");
        // A publish may fail while the master moves; the next one is retried anyway.
        let _ = cmd(client, &["PUBLISH", "ha:news", &payload]);
        while let Some(message) = sub.next(Some(Duration::from_millis(100))).unwrap() {
            if message.payload().starts_with(tag.as_bytes()) {
                return Some(started.elapsed());
            }
        }
    }
    None
}

#[test]
fn a_subscriber_keeps_receiving_through_a_failover_and_the_old_master_killed() {
    let _one = one_at_a_time();
    let mut setup = SentinelSetup::start();
    let old = setup.master_port();
    let mut config = setup.config();
    let observed = Observed::install(&mut config);
    let client = Client::new(&config).unwrap();
    let sub = client.subscriber(None).unwrap();
    sub.subscribe(Kind::Channel, &[b"ha:news"]).unwrap();
    assert!(received_through(&client, &sub, "before").is_some());

    // The sentinels switch; the subscriber's node, demoted, still relays what the new master
    // publishes (PUBLISH is replicated) once the sentinels have made it a replica, or the
    // subscriber has moved.
    setup.failover(0);
    let switch = setup.wait_switched(old, Duration::from_secs(60));
    assert!(
        wait_until(Duration::from_secs(30), || observed
            .switched_to(switch.port)
            .is_some()),
        "the client followed the failover"
    );
    let after_switch = received_through(&client, &sub, "switched")
        .expect("messages published on the new master arrive after the switch");
    let old_role = cli_through_reconfiguration(setup.node(old), &["ROLE"]);
    assert!(
        old_role.starts_with("master"),
        "the first message after the switch came only once the sentinels had made the old \
         master a replica (ROLE {old_role:?}), which relays what the new master publishes: the \
         subscriber did not move ({} ms)",
        after_switch.as_millis()
    );
    // Not through the demoted node's replication: the subscriber moved to the new master (and
    // left the old one first, so nothing arrives twice).
    let numsub = |port: u16| {
        cli_through_reconfiguration(setup.node(port), &["PUBSUB", "NUMSUB", "ha:news"])
            .lines()
            .nth(1)
            .map(str::to_owned)
    };
    assert!(
        wait_until(Duration::from_secs(10), || numsub(switch.port).as_deref()
            == Some("1")
            && numsub(old).as_deref() == Some("0")),
        "subscribed on the new master only: NUMSUB {:?} there, {:?} on the old one",
        numsub(switch.port),
        numsub(old)
    );

    // The old master dies: the subscriber subscribes again where the sentinels say.
    let resubscribes = sub.stat(Stat::PubsubResubscribes);
    setup.node_mut(old).kill();
    let after_kill = received_through(&client, &sub, "killed")
        .expect("messages arrive after the old master was killed");
    assert!(
        sub.stat(Stat::PubsubResubscribes) > resubscribes
            || received_through(&client, &sub, "still").is_some(),
        "the subscriber is subscribed on a live node"
    );
    println!(
        "Sentinel Pub/Sub: a message through {} ms after the switch was followed, {} ms after \
         the old master was killed ({} resubscriptions)",
        after_switch.as_millis(),
        after_kill.as_millis(),
        sub.stat(Stat::PubsubResubscribes)
    );
}
