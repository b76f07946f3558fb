//! What talks to one server: its pool of blocking connections and, once an async command needs
//! it, its multiplexed connection (the async driver, `net::mux`).
//!
//! A route (`route/`) owns the nodes of its topology (one for a standalone server, one per
//! cluster node) and hands them to the drivers (`exec/`).

pub(crate) mod pool;

use crate::cache::Cache;
use crate::net::ConnectSettings;
use crate::net::mux::{LoopReads, Mux, MuxSettings};
use crate::net::push::PushRouter;
use crate::telemetry::events::Observer;
use pool::{Pool, PoolSettings};
use std::ffi::CStr;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// What every node of one client shares.
#[derive(Clone)]
pub(crate) struct NodeContext {
    pub pool: PoolSettings,
    pub observer: Arc<Observer>,
    /// Set when the client closes: a mux fails what it holds and lets go of its connection.
    pub closed: watch::Receiver<bool>,
    /// The client's push router, which every connection hands its push frames to.
    pub pushes: Arc<PushRouter>,
    /// The client-side cache, when it is on: every node gets an invalidation connection.
    pub cache: Option<Arc<Cache>>,
    /// In caller dispatch: the muxes' connections are read by the dispatching thread.
    pub loop_reads: Option<Arc<LoopReads>>,
}

/// One server.
pub(crate) struct Node {
    pool: Pool,
    mux: OnceLock<Mux>,
    closed: watch::Receiver<bool>,
    loop_reads: Option<Arc<LoopReads>>,
}

impl Node {
    pub fn new(mut settings: ConnectSettings, ctx: &NodeContext) -> Node {
        settings.pushes = Some(ctx.pushes.clone());
        if let Some(cache) = &ctx.cache {
            cache.join(&settings);
        }
        Node {
            pool: Pool::new(settings, ctx.pool.clone(), ctx.observer.clone()),
            mux: OnceLock::new(),
            closed: ctx.closed.clone(),
            loop_reads: ctx.loop_reads.clone(),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn address(&self) -> &str {
        self.pool.address()
    }

    /// The address as a C string, for events.
    pub fn address_c(&self) -> &CStr {
        self.pool.address_c()
    }

    /// The node's multiplexed connection, started on first use.
    pub fn mux(&self) -> &Mux {
        self.mux.get_or_init(|| {
            let settings = self.pool.connect_settings();
            Mux::spawn(
                settings.clone(),
                MuxSettings {
                    read_timeout: settings.read_timeout,
                    health_check_interval: self.pool.settings().health_check_interval,
                    loop_reads: self.loop_reads.clone(),
                },
                self.pool.observer().clone(),
                self.closed.clone(),
            )
        })
    }

    /// Whether the mux was started (an async command used this node).
    pub fn mux_started(&self) -> bool {
        self.mux.get().is_some()
    }

    /// Waits until the mux (if it was started) has let go of its connection.
    pub fn wait_mux_idle(&self) {
        if let Some(mux) = self.mux.get() {
            mux.wait_idle();
        }
    }

    /// Closes the pool (idle connections closed, blocking commands interrupted, later borrows
    /// refused). The mux closes on the client's close signal.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A node borrowed from a route: the route's own (standalone) or shared from its map (cluster),
/// so the common case costs no reference count.
pub(crate) enum NodeRef<'a> {
    Borrowed(&'a Arc<Node>),
    Shared(Arc<Node>),
}

impl std::ops::Deref for NodeRef<'_> {
    type Target = Node;
    fn deref(&self) -> &Node {
        match self {
            NodeRef::Borrowed(node) => node,
            NodeRef::Shared(node) => node,
        }
    }
}

impl NodeRef<'_> {
    /// An owned handle, for work that outlives the borrow (an async command in flight).
    pub fn to_arc(&self) -> Arc<Node> {
        match self {
            NodeRef::Borrowed(node) => Arc::clone(node),
            NodeRef::Shared(node) => node.clone(),
        }
    }
}
