//! A real Redis Cluster on loopback: 3 primaries and 3 replicas (`redis-cli --cluster create
//! --cluster-replicas 1`), `cluster-node-timeout` 1000 ms so failovers take about a second or
//! two. Every node is a [`RedisServer`] with its own port, bus port and directory; dropping the
//! cluster kills them all. The server and cli programs follow `BRISK_TEST_SERVER` and
//! `BRISK_TEST_CLI` (see `server.rs`).

use super::server::{RedisServer, cli_program, free_port};
use super::wait_until;
use brisk::Config;
use std::process::Command;
use std::time::Duration;

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    /// For a replica: its primary's id.
    pub primary_id: Option<String>,
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::builder()
                    .config("cluster-enabled yes")
                    .config("cluster-config-file nodes.conf")
                    .config("cluster-node-timeout 1000")
                    // Any replica may take over, however long its link was down.
                    .config("cluster-replica-validity-factor 0")
                    .config("cluster-allow-replica-migration no")
                    .config(&format!("cluster-port {}", free_port()))
                    .start()
            })
            .collect();
        let mut create = Command::new(cli_program());
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("run {} --cluster create: {e}", cli_program()));
        assert!(
            out.status.success(),
            "{} --cluster create failed: {}{}",
            cli_program(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy();
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok`, knows all six nodes, and
    /// every replica's link to its primary is up.
    pub fn wait_healthy(&self) {
        let healthy = wait_until(Duration::from_secs(60), || {
            self.nodes.iter().all(|n| {
                let info = n.cli(&["CLUSTER", "INFO"]);
                let replication = n.cli(&["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_known_nodes:6")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            })
        });
        assert!(
            healthy,
            "the cluster did not become healthy:\n{}",
            self.describe()
        );
    }

    /// A client config for this cluster, seeded with every node.
    pub fn config(&self) -> Config {
        let mut cfg = Config::default();
        cfg.set_mode(brisk::config::Mode::Cluster);
        for node in &self.nodes {
            cfg.add_node("127.0.0.1", node.port()).unwrap();
        }
        cfg
    }

    /// `CLUSTER NODES` as seen by node `from`.
    pub fn topology(&self, from: usize) -> Vec<NodeInfo> {
        self.nodes[from]
            .cli(&["CLUSTER", "NODES"])
            .lines()
            .filter_map(parse_node_line)
            .collect()
    }

    /// Index (into `nodes`) of the node with this port.
    pub fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("a node of this cluster")
    }

    /// The primary serving `slot`, as node `from` sees it.
    pub fn primary_of_slot(&self, from: usize, slot: u16) -> usize {
        let info = self
            .topology(from)
            .into_iter()
            .find(|n| n.primary && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .expect("an owner of the slot");
        self.index_of(info.port)
    }

    /// A replica of the primary at `primary`.
    pub fn replica_of(&self, primary: usize) -> usize {
        let topology = self.topology(primary);
        let id = topology
            .iter()
            .find(|n| n.port == self.nodes[primary].port())
            .expect("the primary itself")
            .id
            .clone();
        let replica = topology
            .iter()
            .find(|n| n.primary_id.as_deref() == Some(id.as_str()))
            .expect("a replica");
        self.index_of(replica.port)
    }

    /// Whether node `index` is a primary now (asking itself).
    pub fn is_primary(&self, index: usize) -> bool {
        self.nodes[index]
            .cli(&["INFO", "replication"])
            .contains("role:master")
    }

    /// Moves `slot` with its keys from node `from` to node `to` the way `redis-cli --cluster
    /// reshard` does: IMPORTING/MIGRATING, MIGRATE of every key, then SETSLOT NODE everywhere.
    pub fn migrate_slot(&self, slot: u16, from: usize, to: usize) {
        let slot = slot.to_string();
        let id = |i: usize| self.nodes[i].cli(&["CLUSTER", "MYID"]);
        let (from_id, to_id) = (id(from), id(to));
        self.nodes[to].cli(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
        self.nodes[from].cli(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
        // Bounded: 100 keys a round, and no test puts a million keys in one slot.
        let mut moved_all = false;
        for _ in 0..10_000 {
            let keys = self.nodes[from].cli(&["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
            if keys.is_empty() {
                moved_all = true;
                break;
            }
            let port = self.nodes[to].port().to_string();
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            migrate.extend(keys.lines());
            self.nodes[from].cli(&migrate);
        }
        assert!(
            moved_all,
            "slot {slot}: keys still on node {from} after 10,000 MIGRATEs"
        );
        for i in 0..self.nodes.len() {
            if self.is_primary(i) {
                self.nodes[i].cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
            }
        }
    }

    pub fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}:\n{}", n.port(), n.cli(&["CLUSTER", "NODES"])))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn parse_node_line(line: &str) -> Option<NodeInfo> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let address = fields[1].split('@').next()?;
    let port = address.rsplit_once(':')?.1.parse().ok()?;
    let flags = fields[2];
    let primary = flags.contains("master") && !flags.contains("fail");
    let slots = fields[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|x| (x, x)),
        })
        .collect();
    Some(NodeInfo {
        id: fields[0].to_owned(),
        port,
        primary,
        primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
        slots,
    })
}
