//! Resolution: finding the master by asking the sentinels in order, checking it with `ROLE`,
//! starting again while the two disagree, and learning the other sentinels and the replicas
//! from the sentinel whose answer held. Also what queues a resolution in the background (a
//! sentinel's announcement, a refresh). Installing what was found is [`view`](super::view).

use super::{Sentinel, SentinelNode, View, endpoint};
use crate::core::cluster::NodeAddress;
use crate::core::sentinel::{Role, parse_instances, parse_master_address, parse_role};
use crate::core::{Error, Result, Status};
use crate::node::Node;
use crate::resp::{Args, Reply};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Rounds (a sentinel's answer, then ROLE) one resolution makes before giving up while the
/// sentinel and the node disagree (or the node does not answer).
const RESOLUTION_ROUNDS: u32 = 3;

/// A resolution attempted less than this long after the previous one waits (a storm of failing
/// commands resolves once, not once each).
const MIN_RESOLUTION_GAP: Duration = Duration::from_millis(100);

/// Sentinels learnt beyond the seeds are capped (a misconfigured deployment could list many).
const MAX_SENTINELS: usize = 32;

impl Sentinel {
    /// Resolves the master unless the view changed since generation `seen` (then the caller
    /// routes with the newer one). Callers that wait while another resolution runs take its
    /// outcome instead of starting one more.
    pub(super) fn resolve(&self, seen: u64) -> Result<Arc<View>> {
        let asked = self.resolutions_started.load(Relaxed);
        let mut resolving = self.resolving.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_closed() {
            return Err(Self::closed_error());
        }
        let view = self.view();
        if view.master.is_some() && view.generation != seen {
            return Ok(view);
        }
        if self.resolutions_started.load(Relaxed) != asked {
            // One started after this caller asked, and has finished: it is the answer.
            return match &resolving.last_failure {
                Some(failure) => Err(failure.clone()),
                None => Ok(self.view()),
            };
        }
        if let Some(previous) = resolving.last_started {
            let since = previous.elapsed();
            if since < MIN_RESOLUTION_GAP {
                std::thread::sleep(MIN_RESOLUTION_GAP - since);
            }
        }
        resolving.last_started = Some(Instant::now());
        self.resolutions_started.fetch_add(1, Relaxed);
        let result = self.resolve_now();
        resolving.last_failure = result.as_ref().err().cloned();
        result
    }

    /// Asks the sentinels for the master and checks it with ROLE, again (after a pause) while
    /// they disagree, at most [`RESOLUTION_ROUNDS`] times. A sentinel whose answer the node
    /// contradicted is asked after the others in the next rounds (it may not have heard of a
    /// failover yet); the one whose answer holds moves to the front of the list.
    fn resolve_now(&self) -> Result<Arc<View>> {
        let started = Instant::now();
        let mut disagreement = None;
        let mut doubted: Vec<Arc<SentinelNode>> = Vec::new();
        for round in 0..RESOLUTION_ROUNDS {
            if round > 0 {
                std::thread::sleep(Duration::from_millis(100 * u64::from(round)));
            }
            if self.is_closed() {
                return Err(Self::closed_error());
            }
            let (sentinel, master) = self.ask_sentinels(&doubted)?;
            let node = self.node_for_master(&master)?;
            let error = match self.role_of(&node) {
                Ok(Role::Master) => {
                    self.to_front(&sentinel);
                    return Ok(self.install(&sentinel, master, node));
                }
                Ok(role) => Error::new(
                    Status::Connection,
                    format!(
                        "sentinel {} names {master} as the master of '{}', but {master} says \
                         it is a {}",
                        sentinel.address,
                        self.master_name,
                        role.name()
                    ),
                ),
                // The node is down or not reachable yet: the failover may be under way.
                Err(e) if matches!(e.status(), Status::Connection | Status::Timeout) => {
                    e.context(format!(
                        "sentinel {} names {master} as the master of '{}', but its ROLE \
                         check failed",
                        sentinel.address, self.master_name
                    ))
                }
                // Refused credentials and the like: asking again will not help.
                Err(e) => return Err(e.context(format!("checking the ROLE of master {master}"))),
            };
            disagreement = Some(error);
            doubted.push(sentinel);
        }
        let error = disagreement.expect("at least one round");
        Err(error.detail(format!(
            "asked and checked {RESOLUTION_ROUNDS} times over {} ms",
            started.elapsed().as_millis()
        )))
    }

    /// Asks the sentinels in order (those in `doubted` last) where the master is, and returns
    /// the first answer. CONNECTION when none answered, SENTINEL when those that answered do not
    /// know the name.
    fn ask_sentinels(
        &self,
        doubted: &[Arc<SentinelNode>],
    ) -> Result<(Arc<SentinelNode>, NodeAddress)> {
        let name = self.master_name.as_bytes();
        let question: [&[u8]; 3] = [b"SENTINEL", b"get-master-addr-by-name", name];
        let mut unknown = Vec::new();
        let mut failures = Vec::new();
        // The status of a failure other than an unreachable sentinel (refused credentials...).
        let mut other = None;
        let is_doubted = |s: &Arc<SentinelNode>| doubted.iter().any(|d| Arc::ptr_eq(d, s));
        let (trusted, suspect): (Vec<_>, Vec<_>) = self
            .sentinel_list()
            .into_iter()
            .partition(|s| !is_doubted(s));
        for sentinel in trusted.into_iter().chain(suspect) {
            if self.is_closed() {
                return Err(Self::closed_error());
            }
            let answer = self
                .ask(&sentinel.node, &question)
                .and_then(|reply| parse_master_address(reply.node()));
            match answer {
                Ok(Some(master)) => return Ok((sentinel, master)),
                Ok(None) => unknown.push(sentinel.address.to_string()),
                Err(e) => {
                    if !matches!(e.status(), Status::Connection | Status::Timeout) {
                        other.get_or_insert(e.status());
                    }
                    failures.push(describe(&sentinel.address, &e));
                }
            }
        }
        let name = &self.master_name;
        let failures = failures.join("; ");
        if !unknown.is_empty() {
            let mut message = format!(
                "no sentinel knows a master named '{name}' ({} answered that they monitor no \
                 such master",
                unknown.join(", ")
            );
            if !failures.is_empty() {
                message.push_str(&format!("; the others failed: {failures}"));
            }
            message.push(')');
            return Err(Error::new(Status::Sentinel, message));
        }
        let tried = self.sentinel_list().len();
        match other {
            Some(status) => Err(Error::new(
                status,
                format!("no sentinel answered where master '{name}' is ({failures})"),
            )),
            None => Err(Error::new(
                Status::Connection,
                format!("no sentinel answered (tried {tried}: {failures})"),
            )),
        }
    }

    /// One question to one sentinel, within the sentinel timeout (connecting included).
    fn ask(&self, node: &Node, args: &[&[u8]]) -> Result<Reply> {
        let pool = node.pool();
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            let mut conn = pool.get(deadline)?;
            let result = match deadline {
                Some(deadline) => conn.bound_request(Instant::now(), self.timeout, Some(deadline)),
                None => Ok(()),
            }
            .and_then(|()| conn.metadata_command(&Args::from_slices(args)));
            // A pooled connection the sentinel had closed meanwhile: take another.
            let replace = result.is_err() && conn.stale_on_reuse();
            pool.put(conn);
            if !replace {
                return result;
            }
        }
    }

    /// What the node says it is, asked over a connection of its pool (which then carries
    /// commands), within the sentinel timeout to connect.
    fn role_of(&self, node: &Node) -> Result<Role> {
        let question: [&[u8]; 1] = [b"ROLE"];
        let pool = node.pool();
        let connect_by = self.timeout.map(|t| Instant::now() + t);
        loop {
            let mut conn = pool.get(connect_by)?;
            let result = conn
                .metadata_command(&Args::from_slices(&question))
                .and_then(|reply| parse_role(reply.node()));
            let replace = result.is_err() && conn.stale_on_reuse();
            pool.put(conn);
            if !replace {
                return result;
            }
        }
    }

    fn to_front(&self, sentinel: &Arc<SentinelNode>) {
        let mut sentinels = self.sentinels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = sentinels.iter().position(|s| Arc::ptr_eq(s, sentinel)) {
            let answered = sentinels.remove(at);
            sentinels.insert(0, answered);
        }
    }

    /// Adds the sentinels `sentinel` knows of (best effort: the list stays as it is if it
    /// cannot say).
    pub(super) fn learn_sentinels(&self, sentinel: &SentinelNode) {
        let name = self.master_name.as_bytes();
        let question: [&[u8]; 3] = [b"SENTINEL", b"sentinels", name];
        let Ok(others) = self
            .ask(&sentinel.node, &question)
            .and_then(|reply| parse_instances(reply.node()))
        else {
            return;
        };
        let mut sentinels = self.sentinels.lock().unwrap_or_else(|p| p.into_inner());
        // A sentinel not linked to this one yet is still worth asking; one it believes down is
        // not.
        for other in others.into_iter().filter(|s| !s.is_down()) {
            if sentinels.len() >= MAX_SENTINELS {
                break;
            }
            if sentinels.iter().any(|s| s.address == other.address) {
                continue;
            }
            let Ok(settings) = self
                .home
                .pool()
                .connect_settings()
                .for_endpoint(&self.sentinel_config, endpoint(&other.address))
            else {
                continue;
            };
            let node = Arc::new(Node::new(settings, &self.sentinel_context));
            sentinels.push(Arc::new(SentinelNode {
                address: other.address,
                node,
            }));
        }
    }

    /// The replicas `sentinel` lists that may serve reads; `None` if it cannot say.
    pub(super) fn read_replicas(
        &self,
        sentinel: &SentinelNode,
        master: &NodeAddress,
    ) -> Option<Vec<NodeAddress>> {
        let name = self.master_name.as_bytes();
        let question: [&[u8]; 3] = [b"SENTINEL", b"replicas", name];
        let instances = self
            .ask(&sentinel.node, &question)
            .and_then(|reply| parse_instances(reply.node()))
            .ok()?;
        Some(
            instances
                .into_iter()
                .filter(|r| r.is_usable_replica() && &r.address != master)
                .map(|r| r.address)
                .collect(),
        )
    }

    /// The node to check as the master at `address`: the current master's, a replica's (a
    /// promoted replica keeps its pool), or a new one.
    fn node_for_master(&self, address: &NodeAddress) -> Result<Arc<Node>> {
        let view = self.view();
        let known = view
            .master
            .iter()
            .chain(view.replicas.iter())
            .find(|(a, _)| a == address);
        match known {
            Some((_, node)) => Ok(node.clone()),
            None => self.new_data_node(address),
        }
    }

    /// The sentinel at `from` announced that the master moved to `to`: resolve again (unless
    /// it is there already), in the background, asking that sentinel first (the others may not
    /// have heard yet).
    pub(super) fn hint(&self, from: &NodeAddress, to: &NodeAddress) {
        let view = self.view();
        if view.master.as_ref().is_some_and(|(a, _)| a == to) {
            return;
        }
        let announcer = self
            .sentinel_list()
            .into_iter()
            .find(|s| s.address == *from);
        if let Some(announcer) = announcer {
            self.to_front(&announcer);
        }
        self.queue_resolution();
    }

    /// Resolves the master in the background, unless a resolution is queued already.
    pub(super) fn queue_resolution(&self) -> bool {
        let Some(this) = self.this.upgrade() else {
            return false;
        };
        let generation = self.view().generation;
        self.background
            .queue(move || this.resolve(generation).map(drop))
    }
}

/// A failure, naming the sentinel unless the message does already.
fn describe(address: &NodeAddress, error: &Error) -> String {
    let address = address.to_string();
    if error.message().contains(&address) {
        error.message().to_owned()
    } else {
        format!("{address}: {}", error.message())
    }
}
