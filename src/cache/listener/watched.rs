//! One node's invalidation connection as the watching thread keeps it: its state (connecting,
//! up with its PING in flight, waiting to reconnect, unsupported), its attempts and pause, and
//! how often it is PINGed.

use super::{LEASE_PING_EVERY, PING_EVERY};
use crate::cache::store::NodeId;
use crate::core::cache::Role;
use crate::net::{ConnectSettings, Connection};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One node's invalidation connection, as the watching thread keeps it.
pub(super) struct Watched {
    pub(super) node: NodeId,
    pub(super) settings: Arc<ConnectSettings>,
    pub(super) state: State,
    /// Numbers attempts, so that a late result of an abandoned one is ignored.
    pub(super) attempt: u64,
    pub(super) pause: Duration,
    /// Hits want this node's lease until then.
    pub(super) active_until: Option<Instant>,
}

impl Watched {
    /// How often to PING now: often while hits want the node's lease.
    pub(super) fn ping_every(&self, now: Instant) -> Duration {
        match self.active_until.is_some_and(|until| now < until) {
            true => LEASE_PING_EVERY,
            false => PING_EVERY,
        }
    }

    /// How long a PING may go unanswered before the connection counts as lost.
    pub(super) fn ping_timeout(&self) -> Duration {
        self.settings.read_timeout.unwrap_or(Duration::from_secs(5))
    }
}

pub(super) enum State {
    /// A thread is connecting.
    Connecting,
    Up {
        conn: Connection,
        since: Instant,
        /// When the PING in flight was sent (one at a time), also as `store::now_ns`.
        ping_sent: Option<(Instant, u64)>,
        /// When the last PING was sent.
        last_ping: Instant,
        /// The role the node said it has in its last probe's answer (RESP3 only): a change
        /// means a failover, and what was read there can no longer be trusted.
        role: Option<Role>,
    },
    /// Connect again at this time.
    Waiting(Instant),
    /// The server cannot track: never again.
    Unsupported,
}
