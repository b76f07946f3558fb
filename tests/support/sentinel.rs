//! A real Sentinel deployment on loopback: a master, one replica and three sentinels
//! (`redis-server --sentinel`, or Valkey's through `BRISK_TEST_SERVER`), each a [`RedisServer`]
//! with its own port and directory; dropping the deployment kills them all.
//!
//! The sentinels watch the master under [`MASTER_NAME`] with quorum 2, consider a node down
//! after 1000 ms without an answer and time failovers out after 3000 ms, so that a real failover
//! (the master killed) takes a few seconds. Replication is diskless with no delay, so a replica
//! (re)syncs at once. [`SentinelSetup::start`] returns once every sentinel knows the replica and
//! the other two sentinels and the replica's link is up: a failover can be asked for right away.

use super::server::{RedisServer, RedisServerBuilder};
use super::tls::{self, TlsFiles};
use super::wait_until;
use brisk::Config;
use brisk::config::Mode;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const MASTER_NAME: &str = "mymaster";

/// How long the deployment may take to settle (on a loaded machine).
const SETTLE: Duration = Duration::from_secs(60);

pub struct SentinelSetup {
    /// The two data nodes: `data[0]` starts as the master, `data[1]` as its replica.
    pub data: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
    /// With TLS: the directory of the certificates every server shares, and them.
    tls: Option<(PathBuf, TlsFiles)>,
}

/// Options for [`SentinelSetup::start_with`].
#[derive(Default, Clone)]
pub struct SetupOptions {
    /// `requirepass` (and `masterauth`) on the data nodes; the sentinels are told with
    /// `sentinel auth-pass`.
    pub data_password: Option<String>,
    /// `requirepass` on the sentinels.
    pub sentinel_password: Option<String>,
    /// Every server serves TLS only (one CA for all), replication and the sentinels' links
    /// included.
    pub tls: bool,
}

impl SentinelSetup {
    pub fn start() -> SentinelSetup {
        SentinelSetup::start_with(SetupOptions::default())
    }

    pub fn start_with(options: SetupOptions) -> SentinelSetup {
        let tls = options.tls.then(|| {
            let dir = std::env::temp_dir().join(format!(
                "brisk-sentinel-tls-{}-{}",
                std::process::id(),
                NEXT_TLS_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the certificate directory");
            let files = tls::generate(&dir);
            (dir, files)
        });
        let with_tls = |builder: RedisServerBuilder| match &tls {
            Some((_, files)) => builder.tls_with(files).config("tls-replication yes"),
            None => builder,
        };
        let data_node = |replica_of: Option<u16>| {
            let mut builder = with_tls(RedisServer::builder())
                .config("repl-diskless-sync yes")
                .config("repl-diskless-sync-delay 0");
            if let Some(password) = &options.data_password {
                builder = builder
                    .password(password)
                    .config(&format!("masterauth {password}"));
            }
            if let Some(port) = replica_of {
                builder = builder.config(&format!("replicaof 127.0.0.1 {port}"));
            }
            builder.start()
        };
        let master = data_node(None);
        let replica = data_node(Some(master.port()));
        let sentinels = (0..3)
            .map(|_| {
                let mut builder: RedisServerBuilder = with_tls(RedisServer::builder())
                    .sentinel()
                    .config(&format!(
                        "sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2",
                        master.port()
                    ))
                    .config(&format!(
                        "sentinel down-after-milliseconds {MASTER_NAME} 1000"
                    ))
                    .config(&format!("sentinel failover-timeout {MASTER_NAME} 3000"))
                    .config(&format!("sentinel parallel-syncs {MASTER_NAME} 1"));
                if let Some(password) = &options.data_password {
                    builder =
                        builder.config(&format!("sentinel auth-pass {MASTER_NAME} {password}"));
                }
                if let Some(password) = &options.sentinel_password {
                    builder = builder.password(password);
                }
                builder.start()
            })
            .collect();
        let setup = SentinelSetup {
            data: vec![master, replica],
            sentinels,
            tls,
        };
        setup.wait_settled();
        setup
    }

    /// Waits until every sentinel knows the replica and the two other sentinels, and the
    /// replica's link to the master is up.
    pub fn wait_settled(&self) {
        let settled = wait_until(SETTLE, || {
            let master = self.master_port_by(0);
            let Some(master) = master else { return false };
            let replicas_up = self.data.iter().all(|node| {
                let info = node.cli(&["INFO", "replication"]);
                node.port() == master || info.contains("master_link_status:up")
            });
            replicas_up
                && (0..self.sentinels.len()).all(|i| {
                    let state = self.sentinels[i].cli(&["SENTINEL", "MASTER", MASTER_NAME]);
                    field(&state, "num-slaves") == Some("1")
                        && field(&state, "num-other-sentinels") == Some("2")
                        && self.master_port_by(i) == Some(master)
                })
        });
        assert!(
            settled,
            "the sentinel deployment did not settle:\n{}",
            self.describe()
        );
    }

    /// A client config for this deployment: Sentinel mode, the three sentinels in order.
    pub fn config(&self) -> Config {
        let mut cfg = Config::default();
        cfg.set_mode(Mode::Sentinel);
        for sentinel in &self.sentinels {
            cfg.add_node("127.0.0.1", sentinel.port()).unwrap();
        }
        cfg.set_sentinel_master(MASTER_NAME).unwrap();
        if let Some((_, files)) = &self.tls {
            cfg.tls.enabled = true;
            cfg.tls.ca_file = Some(files.ca_cert.clone());
        }
        cfg
    }

    /// The certificates every server uses; panics for a deployment without TLS.
    pub fn tls_files(&self) -> &TlsFiles {
        &self.tls.as_ref().expect("a deployment with TLS").1
    }

    /// The master's port as sentinel `i` names it.
    pub fn master_port_by(&self, i: usize) -> Option<u16> {
        let answer = self.sentinels[i].cli(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME]);
        answer.lines().nth(1)?.trim().parse().ok()
    }

    /// The data node with this port.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.data
            .iter()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.data
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// The data node that is not on `port`.
    pub fn other(&self, port: u16) -> &RedisServer {
        self.data
            .iter()
            .find(|n| n.port() != port)
            .expect("two data nodes")
    }

    /// The master as the sentinels agree on it now.
    pub fn master_port(&self) -> u16 {
        self.master_port_by(0).expect("sentinel 0 names a master")
    }

    /// Asks sentinel `i` for a failover (`SENTINEL FAILOVER`), again while it answers that no
    /// replica is good enough yet (its view of the replica may be a few seconds old).
    pub fn failover(&self, i: usize) {
        let mut last = String::new();
        let asked = wait_until(SETTLE, || {
            last = self.sentinels[i].cli(&["SENTINEL", "FAILOVER", MASTER_NAME]);
            last == "OK"
        });
        assert!(asked, "SENTINEL FAILOVER was refused: {last}");
    }

    /// Waits until all three sentinels name a master other than `old`; returns its port and
    /// when the test saw the first and the last sentinel name it.
    pub fn wait_switched(&self, old: u16, timeout: Duration) -> Switch {
        self.wait_switched_by(&[0, 1, 2], old, timeout)
    }

    /// [`SentinelSetup::wait_switched`] asking only the sentinels `which` (the others may be
    /// down).
    pub fn wait_switched_by(&self, which: &[usize], old: u16, timeout: Duration) -> Switch {
        let mut first = None;
        let mut new = None;
        let agreed = wait_until(timeout, || {
            let named: Vec<Option<u16>> = which.iter().map(|&i| self.master_port_by(i)).collect();
            if first.is_none() && named.iter().any(|p| p.is_some_and(|p| p != old)) {
                first = Some(Instant::now());
            }
            match named[0] {
                Some(port) if port != old && named.iter().all(|p| *p == Some(port)) => {
                    new = Some(port);
                    true
                }
                _ => false,
            }
        });
        assert!(
            agreed,
            "the sentinels did not agree on a new master within {timeout:?}:\n{}",
            self.describe()
        );
        Switch {
            port: new.expect("agreed"),
            first_named: first.expect("named"),
            agreed: Instant::now(),
        }
    }

    /// Waits until the node on `port` says ROLE master and its replica (the other node, when
    /// it runs) has its link up.
    pub fn wait_master_ready(&self, port: u16) {
        let ready = wait_until(SETTLE, || {
            self.node(port).cli(&["ROLE"]).starts_with("master")
        });
        assert!(ready, "{port} did not become master:\n{}", self.describe());
    }

    pub fn describe(&self) -> String {
        let mut out = String::new();
        for node in &self.data {
            out += &format!(
                "data {}: {}\n",
                node.port(),
                node.cli(&["ROLE"]).replace('\n', " ")
            );
        }
        for (i, sentinel) in self.sentinels.iter().enumerate() {
            out += &format!(
                "sentinel {i} ({}): master {:?}\n",
                sentinel.port(),
                self.master_port_by(i)
            );
        }
        out
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        // The servers go first (their own drops), then the certificates they used.
        self.data.clear();
        self.sentinels.clear();
        if let Some((dir, _)) = &self.tls {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static NEXT_TLS_DIR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// When the sentinels switched to a new master.
pub struct Switch {
    pub port: u16,
    /// When the test first saw a sentinel name it.
    pub first_named: Instant,
    /// When the test saw all three name it.
    pub agreed: Instant,
}

/// A field of `redis-cli` output listing a flat key/value reply (one item per line).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .find(|kv| kv[0] == name)
        .and_then(|kv| kv.get(1).copied())
}

/// `INFO commandstats` calls of `command` (lower case) on `node`.
pub fn command_calls(node: &RedisServer, command: &str) -> u64 {
    let info = cli_through_reconfiguration(node, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `node.cli(args)`, tried again (for up to 10 s) when it fails: a sentinel reconfiguring a
/// data node ends with `CLIENT KILL TYPE normal`, which can take a redis-cli of the test with it.
#[track_caller]
pub fn cli_through_reconfiguration(node: &RedisServer, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node.try_cli(args) {
            Ok(out) => return out,
            Err(error) if Instant::now() >= deadline => panic!("{error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
