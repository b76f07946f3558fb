//! Sentinel mode against a real deployment on loopback (`support::SentinelSetup`: a master, a
//! replica and three sentinels): resolution and its errors, failovers under a writer (asked for,
//! and the master killed), a demoted master that still says it is the master, replica reads,
//! and every API (async, pipelines, transactions, sessions) following the master.
//!
//! The failover tests run one at a time (a lock): a failover takes seconds of the sentinels'
//! own timing, which a machine busy with several at once would stretch. Every figure a test
//! measures is printed (run with `--nocapture` to see them).

mod support;

use brisk::config::Mode;
use brisk::events::{Event, EventKind};
use brisk::stats::Stat;
use brisk::{Client, Config, Status};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

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
