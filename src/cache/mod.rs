//! Client-side caching: reads answered from memory that are never stale.
//!
//! - [`store`]: the entries (sharded for hits), the index (keys, pending reads, nodes'
//!   tracking state, bounds), tokens, leases, eviction.
//! - [`listener`]: one invalidation connection per node, read on the client's `brisk-cache`
//!   thread by a task that waits on nothing else.
//! - This module: the [`Cache`] the drivers call (`exec/`, pipelines, sessions): nodes joining,
//!   their invalidation connections' first outcome, flushes, closing, totals. Its hooks live
//!   with their job:
//!   - [`reads`]: lookups, the plan for a command that missed, and running a read that missed
//!     so its reply may be kept (blocking and async paths);
//!   - [`writes`]: what this client's writes (single, pipelined, in sessions and MULTI) drop;
//!   - [`invalidations`]: what the invalidation connections and the push router report
//!     (`invalidate` frames, connection closes), as the push consumer;
//!   - [`events`]: why entries went ([`Reason`]), counted and reported as events.
//!
//! How the server's tracking is used (see docs/ARCHITECTURE.md, "Client-side caching"):
//! every data connection that carries a cached read is tracked with `CLIENT TRACKING ON
//! REDIRECT <id>` to the node's invalidation connection, set up lazily on its first cached
//! read after each (re)connect of the invalidation connection, pipelined with that read. So
//! pooled connections sitting idle never hold unread invalidations (guarantee 2), and RESP2
//! and RESP3 work alike. What the server tracks for a connection ends with it: entries read
//! through a connection go when it closes.

mod events;
mod invalidations;
pub(crate) mod listener;
mod read_mostly;
mod reads;
pub(crate) mod store;
mod writes;

pub use events::Reason;
pub(crate) use reads::Plan;
pub(crate) use writes::SessionWrites;

use crate::config::{CacheSettings, Config};
use crate::core::cache::{Mode, tracking_on};
use crate::core::{Error, Result, Status};
use crate::net::push::{PushRegistration, PushRouter};
use crate::net::{ConnectSettings, Connection};
use crate::resp::Args;
use crate::telemetry::events::Observer;
use invalidations::Consumer;
use listener::Listeners;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use store::{Limits, NodeId, Store};

pub(crate) struct Cache {
    pub(crate) store: Arc<Store>,
    pub(crate) mode: Mode,
    pub(crate) prefixes: Vec<Vec<u8>>,
    seed: u64,
    observer: Arc<Observer>,
    /// How connections are made (the invalidation connections copy each node's settings).
    config: Config,
    listeners: Listeners,
    /// The nodes that joined.
    joined: Mutex<Vec<NodeId>>,
    /// Per node: how its first invalidation connection attempt went.
    ready: Mutex<HashMap<NodeId, Result<()>>>,
    ready_changed: Condvar,
    registration: Mutex<Option<PushRegistration>>,
    this: Weak<Cache>,
    closed: AtomicBool,
}

impl Cache {
    /// The cache of a client whose config turns it on, consuming `invalidate` pushes (and
    /// hearing connection closes) from `pushes`.
    pub fn new(
        config: &Config,
        observer: Arc<Observer>,
        pushes: &Arc<PushRouter>,
    ) -> Result<Arc<Cache>> {
        let settings: &CacheSettings = &config.cache;
        let limits = Limits {
            max_entries: settings.max_entries as usize,
            max_bytes: match settings.max_bytes {
                0 => usize::MAX,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
            ttl: crate::config::limit(settings.ttl_ms),
        };
        let listeners = Listeners::new()?;
        let cache = Arc::new_cyclic(|this| Cache {
            store: Arc::new(Store::new(limits)),
            mode: settings.mode,
            prefixes: settings.prefixes.clone(),
            seed: fastrand::u64(..),
            observer,
            config: config.clone(),
            listeners,
            joined: Mutex::default(),
            ready: Mutex::default(),
            ready_changed: Condvar::new(),
            registration: Mutex::default(),
            this: this.clone(),
            closed: AtomicBool::new(false),
        });
        let consumer = Arc::new(Consumer(Arc::downgrade(&cache)));
        let registration = pushes.register(&[b"invalidate", b"tracking-redir-broken"], consumer);
        *lock(&cache.registration) = Some(registration);
        cache.listeners.start(cache.clone())?;
        Ok(cache)
    }

    /// A node joins the client: its invalidation connection is opened (and kept open) from
    /// now on, with the node's connection settings.
    pub fn join(&self, settings: &ConnectSettings) {
        let node = self.store.node(&settings.address);
        {
            let mut joined = lock(&self.joined);
            if joined.contains(&node) {
                return;
            }
            joined.push(node);
        }
        match settings.for_endpoint(&self.config, settings.endpoint.clone()) {
            Ok(mut listener_settings) => {
                // RESP3 whatever the client speaks (every server that tracks does; one that
                // does not know HELLO gets a RESP2 subscriber): its probes then say the
                // node's role.
                listener_settings.handshake.protocol = 3;
                self.listeners.join(node, listener_settings)
            }
            Err(e) => self.listener_unsupported(node, e),
        }
    }

    /// Waits (up to `timeout`) for the first attempt at the invalidation connection of the
    /// node at `address`: OK once it is up; its failure otherwise (a server without
    /// CLIENT TRACKING, refused credentials, nothing listening).
    pub fn wait_ready(&self, address: &str, timeout: Duration) -> Result<()> {
        let Some(node) = self.store.node_at(address) else {
            return Err(Error::new(
                Status::Internal,
                "the node never joined the cache",
            ));
        };
        let deadline = Instant::now() + timeout;
        let mut ready = lock(&self.ready);
        loop {
            if let Some(outcome) = ready.get(&node) {
                return outcome.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::new(
                    Status::Timeout,
                    format!(
                        "client-side caching: no invalidation connection to {address} within \
                         {} ms",
                        timeout.as_millis()
                    ),
                ));
            }
            ready = self
                .ready_changed
                .wait_timeout(ready, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Tracks a data connection to its node's invalidation connection now (the check a new
    /// client makes: a server or user that cannot, fails it).
    pub fn set_up(&self, conn: &mut Connection) -> Result<()> {
        let Some(origin) = conn.push_origin().map(|o| o.connection) else {
            return Ok(());
        };
        if self.mode == Mode::Broadcast || self.store.is_tracked(conn.address(), origin) {
            return Ok(());
        }
        let live = self
            .store
            .node_at(conn.address())
            .and_then(|n| self.store.with_node(n, |s| s.live).flatten());
        let Some(live) = live else {
            return Ok(());
        };
        let command = tracking_on(live.client_id, self.mode);
        let words: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        conn.command(&Args::from_slices(&words))
            .map_err(|e| e.context("client-side caching: CLIENT TRACKING on a data connection"))?;
        Ok(())
    }

    /// `brisk_client_cache_flush`: drops everything now.
    pub fn flush(&self) {
        self.flush_all(Reason::Flush);
    }

    /// The topology changed (a failover, a slot moved): nothing read before may be trusted.
    pub fn topology_changed(&self) {
        self.flush_all(Reason::Topology);
    }

    fn flush_all(&self, reason: Reason) {
        let dropped = self.store.flush();
        self.report(None, reason, dropped, dropped);
    }

    /// The client closes: the invalidation connections end, and with them every entry.
    pub fn close(&self) {
        if self.closed.swap(true, Relaxed) {
            return;
        }
        self.listeners.close();
        let nodes = lock(&self.joined).clone();
        for node in nodes {
            self.store.node_lost(node, None);
        }
        self.store.flush();
        *lock(&self.registration) = None;
    }

    pub fn entries(&self) -> u64 {
        self.store.entries()
    }

    pub fn bytes(&self) -> u64 {
        self.store.bytes()
    }

    pub fn evictions(&self) -> u64 {
        self.store.evictions()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
