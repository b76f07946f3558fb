//! Client-side caching: reads answered from memory that are never stale.
//!
//! - [`store`]: the entries (sharded for hits), the index (keys, pending reads, nodes'
//!   tracking state, bounds), tokens.
//! - [`listener`]: one invalidation connection per node, read on the client's `brisk-cache`
//!   thread by a task that waits on nothing else.
//! - This module: the [`Cache`] the drivers call (`exec/`, pipelines, sessions), the push
//!   consumer for `invalidate` frames and connection closes, counters and events.
//!
//! How the server's tracking is used (see docs/ARCHITECTURE.md, "Client-side caching"):
//! every data connection that carries a cached read is tracked with `CLIENT TRACKING ON
//! REDIRECT <id>` to the node's invalidation connection, set up lazily on its first cached
//! read after each (re)connect of the invalidation connection, pipelined with that read. So
//! pooled connections sitting idle never hold unread invalidations (guarantee 2), and RESP2
//! and RESP3 work alike. What the server tracks for a connection ends with it: entries read
//! through a connection go when it closes.

pub(crate) mod listener;
mod read_mostly;
pub(crate) mod store;

use crate::config::{CacheSettings, Config};
use crate::core::cache::{
    self as rules, Access, CACHING_YES, Invalidation, Mode, access, changes_tracking, command_hash,
    redirect_target_gone, tracking_on, under_prefixes,
};
use crate::core::command_table::{CommandTable, Positions};
use crate::core::{Error, Result, Status};
use crate::net::push::{PushConsumer, PushOrigin, PushRegistration, PushRouter};
use crate::net::{ConnectSettings, Connection};
use crate::resp::{Args, Reply, ReplyKind, all_encoded, encode_command, encode_owned};
use crate::telemetry::events::{Event, EventKind, Observer};
use crate::telemetry::stats::Stat;
use bytes::BytesMut;
use listener::Listeners;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use store::{Limits, Live, Lookup, NodeId, Store, Token, Via};

/// Why entries went, as events report it (as their command name; `brisk_event_cache_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The server said these keys changed.
    Invalidation,
    /// A flush: `brisk_client_cache_flush`, a FLUSHALL/FLUSHDB (by anyone), a write whose keys
    /// cannot be named.
    Flush,
    /// The tracking state that covered them is gone or in doubt: the invalidation connection
    /// (lost, killed, unanswered PING, `tracking-redir-broken`), a data connection they were
    /// read through, or a session changed its connection's tracking.
    ConnectionLost,
    /// A cluster failover or slot move (or a Sentinel master switch).
    Topology,
}

impl Reason {
    /// The event's command name for this reason.
    pub fn name(self) -> &'static [u8] {
        match self {
            Reason::Invalidation => b"INVALIDATE",
            Reason::Flush => b"FLUSH",
            Reason::ConnectionLost => b"CONNECTION_LOST",
            Reason::Topology => b"TOPOLOGY",
        }
    }

    /// The reason an event's command name stands for.
    pub fn from_name(name: &[u8]) -> Option<Reason> {
        [
            Reason::Invalidation,
            Reason::Flush,
            Reason::ConnectionLost,
            Reason::Topology,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

/// A command the cache could not answer, for [`Cache::plan`].
pub(crate) struct Missed {
    hash: u64,
}

/// What the cache does for a command it could not answer.
pub(crate) enum Plan {
    /// A read that missed: run it through [`Cache::fetch`] (or the async hooks) so its reply
    /// may be kept.
    Read(Read),
    /// A write: run it, then [`Cache::written`].
    Write(Write),
    /// Nothing to do with the cache.
    Uncached,
}

/// A cacheable read that missed.
pub(crate) struct Read {
    hash: u64,
    keys: Positions,
    /// The async path's token, taken right before each send.
    token: Option<Token>,
}

/// The keys (argument positions) a write changes, or all of them.
pub(crate) enum Write {
    Keys(Positions),
    Everything,
    /// These keys, and maybe others that only the server can name (a script's undeclared
    /// keys, SORT's STORE key).
    KeysAndMore(Positions),
}

/// Writes queued in a session's MULTI, applied (and evicted again) at EXEC.
#[derive(Default)]
pub(crate) struct SessionWrites {
    in_multi: bool,
    keys: Vec<Vec<u8>>,
    everything: bool,
    /// A write with keys only the server can name is queued: it runs at EXEC.
    unnamed: bool,
}

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
            Ok(listener_settings) => self.listeners.join(node, listener_settings),
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

    /// The cached reply of `args`, if it may be served now (counted as a hit); otherwise what
    /// [`Cache::plan`] needs.
    #[inline]
    pub fn lookup(&self, args: &Args<'_>) -> std::result::Result<Reply, Missed> {
        if args.is_empty() {
            return Err(Missed { hash: 0 });
        }
        let hash = command_hash(args, self.seed);
        match self.store.hit(hash, args) {
            Lookup::Hit(reply) => {
                self.observer.stats.bump(Stat::CacheHits);
                Ok(reply)
            }
            Lookup::Miss => Err(Missed { hash }),
            Lookup::Unconfirmed => {
                // The invalidation thread has not had a PING answered lately (it sleeps when
                // nobody hits, or the machine is overloaded): ask it to, and read this one from
                // the server.
                self.listeners.wake();
                Err(Missed { hash })
            }
        }
    }

    /// What to do with a command the cache could not answer (after [`Cache::lookup`]).
    #[inline]
    pub fn plan(&self, table: Option<&CommandTable>, args: &Args<'_>, missed: Missed) -> Plan {
        self.plan_miss(table, args, missed.hash)
    }

    #[inline(never)]
    fn plan_miss(&self, table: Option<&CommandTable>, args: &Args<'_>, hash: u64) -> Plan {
        match access(table, args) {
            Access::Cacheable(keys) if under_prefixes(&self.prefixes, args, &keys) => {
                self.observer.stats.bump(Stat::CacheMisses);
                Plan::Read(Read {
                    hash,
                    keys,
                    token: None,
                })
            }
            Access::Writes(keys) => Plan::Write(Write::Keys(keys)),
            Access::WritesUnknown => Plan::Write(Write::Everything),
            Access::WritesMore(keys) => Plan::Write(Write::KeysAndMore(keys)),
            Access::Cacheable(_) | Access::Neither => Plan::Uncached,
        }
    }

    /// Runs a read that missed on `conn` (the blocking driver's, on the node its keys put it):
    /// a token is taken before the request is sent, the connection is set up to track first if
    /// it is not yet (pipelined: one round trip), and the reply is kept unless something
    /// dropped the token meanwhile.
    pub fn fetch(&self, conn: &mut Connection, args: &Args<'_>, read: &Read) -> Result<Reply> {
        let via = match (self.mode, conn.push_origin()) {
            (Mode::Broadcast, _) => Via::Listener,
            (_, Some(origin)) => Via::Conn(origin.connection),
            (_, None) => return conn.command(args),
        };
        let Some(this) = self.this.upgrade() else {
            return conn.command(args);
        };
        let token = this
            .store
            .begin(conn.address(), read.hash, args, &read.keys, via);
        let Some(token) = token else {
            return conn.command(args);
        };
        let optin = self.mode == Mode::OptIn;
        let setup = token.setup;
        if setup.is_none() && !optin {
            let reply = conn.command(args)?;
            self.store.fill(token, args, &reply, false);
            return Ok(reply);
        }
        let mut encoded = BytesMut::new();
        if let Some(id) = setup {
            encode_owned(&mut encoded, &tracking_on(id, self.mode));
        }
        if optin {
            encoded.extend_from_slice(CACHING_YES);
        }
        encode_command(&mut encoded, args);
        let ahead = usize::from(setup.is_some()) + usize::from(optin);
        let mut replies = conn.pipeline(&encoded, ahead + 1)?;
        let reply = replies.pop().expect("as many replies as commands");
        if reply.kind() == ReplyKind::Error {
            return Err(Error::from_reply(reply.as_bytes().unwrap_or_default()));
        }
        match replies.iter().find(|r| r.kind() == ReplyKind::Error) {
            None => {
                let node = token.node();
                if self.store.fill(token, args, &reply, setup.is_some()) {
                    // What the server tracks for it ends when the server closes it: the
                    // invalidation thread watches for that.
                    if let Via::Conn(connection) = via {
                        self.listeners.watch(node, connection, conn.raw_fd());
                    }
                }
            }
            Some(refusal) => {
                // Answered, not kept. A redirect target the server no longer knows is an
                // invalidation connection lost without our hearing it yet.
                if redirect_target_gone(refusal.as_bytes().unwrap_or_default()) {
                    self.in_doubt(token.node());
                }
            }
        }
        Ok(reply)
    }

    /// After a write ran (whatever its outcome: it may have been applied): the entries of its
    /// keys go, and reads of them in flight are not kept (guarantee 1).
    pub fn written(&self, args: &Args<'_>, write: &Write) {
        match write {
            Write::Keys(positions) => self.invalidate_at(args, positions),
            Write::Everything => self.flush_all(Reason::Flush),
            Write::KeysAndMore(positions) => {
                self.invalidate_at(args, positions);
                self.after_unnamed_writes();
            }
        }
    }

    fn invalidate_at(&self, args: &Args<'_>, positions: &Positions) {
        let dropped = self
            .store
            .invalidate(positions.iter().map(|&i| args.get(i)));
        self.count_invalidated(dropped);
    }

    /// The reply of a write with keys only the server can name (a script's undeclared keys,
    /// SORT's STORE key) has been read: its invalidations name them, so hits wait for a lease
    /// PING sent from now on (the thread is woken to send it).
    fn after_unnamed_writes(&self) {
        self.store.leases.after_unnamed_writes();
        self.listeners.wake();
    }

    /// [`Cache::written`] for a command held encoded (the async path).
    pub fn written_encoded(&self, encoded: &[u8], write: &Write) {
        all_encoded(encoded, |args| {
            self.written(args, write);
            false
        });
    }

    /// Before an async read is sent on the node at `address`: takes its token and returns what
    /// goes ahead of it on the multiplexed connection (tracking re-asserted, as the cache
    /// cannot know what that shared connection has set; OPTIN's `CLIENT CACHING YES`) and how
    /// many replies that adds.
    pub fn before_async_send(
        &self,
        read: &mut Read,
        encoded: &[u8],
        address: &str,
    ) -> Option<(Vec<u8>, u8)> {
        read.token = None;
        let this = self.this.upgrade()?;
        let via = match self.mode {
            Mode::Broadcast => Via::Listener,
            _ => Via::Mux,
        };
        let mut token = None;
        all_encoded(encoded, |args| {
            token = this.store.begin(address, read.hash, args, &read.keys, via);
            false
        });
        let token = token?;
        let mut ahead = BytesMut::new();
        let mut count = 0;
        if self.mode != Mode::Broadcast {
            encode_owned(&mut ahead, &tracking_on(token.redirect, self.mode));
            count += 1;
        }
        if self.mode == Mode::OptIn {
            ahead.extend_from_slice(CACHING_YES);
            count += 1;
        }
        read.token = Some(token);
        Some((ahead.to_vec(), count))
    }

    /// An async read's reply arrived: kept if its token still holds.
    pub fn after_async_reply(&self, read: &mut Read, encoded: &[u8], reply: &Reply) {
        let mut token = read.token.take();
        all_encoded(encoded, |args| {
            if let Some(token) = token.take() {
                self.store.fill(token, args, reply, false);
            }
            false
        });
    }

    /// After a pipeline or transaction ran: the keys of its writes go.
    pub fn after_batch(&self, table: Option<&CommandTable>, encoded: &[u8]) {
        let mut everything = false;
        let mut unnamed = false;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        all_encoded(encoded, |args| {
            match access(table, args) {
                Access::Writes(positions) => {
                    keys.extend(positions.iter().map(|&i| args.get(i).to_vec()));
                }
                Access::WritesMore(positions) => {
                    keys.extend(positions.iter().map(|&i| args.get(i).to_vec()));
                    unnamed = true;
                }
                Access::WritesUnknown => everything = true,
                _ => {}
            }
            true
        });
        if unnamed {
            self.after_unnamed_writes();
        }
        if everything {
            return self.flush_all(Reason::Flush);
        }
        if !keys.is_empty() {
            let dropped = self.store.invalidate(keys.iter().map(Vec::as_slice));
            self.count_invalidated(dropped);
        }
    }

    /// After a session's command: its writes' keys go (again at EXEC for writes queued in
    /// MULTI); a command that changes what the server tracks for the connection (RESET,
    /// CLIENT TRACKING, HELLO 2, AUTH, SELECT) drops everything, since entries may have been
    /// read through that connection when it was pooled.
    pub fn session_command(
        &self,
        table: Option<&CommandTable>,
        args: &Args<'_>,
        queued: &mut SessionWrites,
    ) {
        let name = args.name();
        if changes_tracking(args) {
            *queued = SessionWrites::default();
            return self.flush_all(Reason::ConnectionLost);
        }
        if name.eq_ignore_ascii_case(b"MULTI") {
            queued.in_multi = true;
            return;
        }
        if name.eq_ignore_ascii_case(b"EXEC") || name.eq_ignore_ascii_case(b"DISCARD") {
            let done = std::mem::take(queued);
            if name.eq_ignore_ascii_case(b"EXEC") {
                if done.unnamed {
                    self.after_unnamed_writes();
                }
                if done.everything {
                    return self.flush_all(Reason::Flush);
                }
                let dropped = self.store.invalidate(done.keys.iter().map(Vec::as_slice));
                self.count_invalidated(dropped);
            }
            return;
        }
        let write = match access(table, args) {
            Access::Writes(keys) => Write::Keys(keys),
            Access::WritesUnknown => Write::Everything,
            Access::WritesMore(keys) => Write::KeysAndMore(keys),
            _ => return,
        };
        self.written(args, &write);
        if queued.in_multi {
            match write {
                Write::Keys(positions) => queued
                    .keys
                    .extend(positions.iter().map(|&i| args.get(i).to_vec())),
                Write::KeysAndMore(positions) => {
                    queued.unnamed = true;
                    queued
                        .keys
                        .extend(positions.iter().map(|&i| args.get(i).to_vec()));
                }
                Write::Everything => queued.everything = true,
            }
        }
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
        self.count_invalidated(dropped);
        self.emit(reason, dropped, c"");
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

    // ----- what the invalidation connections report -----

    fn listener_live(&self, node: NodeId, live: Live) {
        self.store.node_live(node, live);
        self.settle_ready(node, Ok(()));
    }

    fn listener_lost(&self, node: NodeId, error: Error) {
        let dropped = self.store.node_lost(node, None);
        if let Some(dropped) = dropped {
            self.count_invalidated(dropped);
            self.emit_for(node, Reason::ConnectionLost, dropped);
        }
        self.settle_ready(node, Err(error));
    }

    fn listener_unsupported(&self, node: NodeId, error: Error) {
        self.store
            .node_unsupported(node, error.message().to_owned());
        self.settle_ready(node, Err(error));
    }

    /// Records how the first attempt went (later ones change nothing here).
    fn settle_ready(&self, node: NodeId, outcome: Result<()>) {
        lock(&self.ready).entry(node).or_insert(outcome);
        self.ready_changed.notify_all();
    }

    /// An invalidation message from `node` (unknown: a push whose connection is not a live
    /// invalidation connection yet).
    fn invalidation(&self, node: Option<NodeId>, invalidation: Invalidation<'_>) {
        match invalidation {
            Invalidation::Keys(keys) => {
                let count = keys.len();
                let dropped = self.store.invalidate(keys);
                self.count_invalidated(dropped);
                match node {
                    Some(node) => self.emit_for(node, Reason::Invalidation, count),
                    None => self.emit(Reason::Invalidation, count, c""),
                }
            }
            // FLUSHALL / FLUSHDB on that node.
            Invalidation::All => match node {
                Some(node) => {
                    let dropped = self.store.flush_node(node);
                    self.count_invalidated(dropped);
                    self.emit_for(node, Reason::Flush, dropped);
                }
                None => self.flush_all(Reason::Flush),
            },
        }
    }

    /// The node's tracking state is in doubt: its entries go and its invalidation connection
    /// starts over.
    fn in_doubt(&self, node: NodeId) {
        if let Some(dropped) = self.store.node_lost(node, None) {
            self.count_invalidated(dropped);
            self.emit_for(node, Reason::ConnectionLost, dropped);
        }
        self.listeners.doubt(node);
    }

    /// A data connection the server closed (seen by the invalidation thread): what the server
    /// tracked for it is gone, so is everything read through it.
    fn data_connection_lost(&self, node: NodeId, connection: u64) {
        let address = self.store.with_node(node, |n| n.address.clone());
        let Some(address) = address else {
            return;
        };
        let dropped = self.store.connection_closed(&address, connection);
        if dropped > 0 {
            self.count_invalidated(dropped);
            self.emit_for(node, Reason::ConnectionLost, dropped);
        }
    }

    fn sweep(&self, budget: usize) {
        self.store.sweep(budget);
    }

    fn count_invalidated(&self, dropped: usize) {
        if dropped > 0 {
            self.observer
                .stats
                .add(Stat::CacheInvalidations, dropped as u64);
        }
    }

    fn emit_for(&self, node: NodeId, reason: Reason, count: usize) {
        if !self.observer.enabled() {
            return;
        }
        let address = self
            .store
            .with_node(node, |n| n.address.replace('\0', ""))
            .unwrap_or_default();
        let address = CString::new(address).unwrap_or_default();
        self.emit(reason, count, &address);
    }

    fn emit(&self, reason: Reason, count: usize, address: &std::ffi::CStr) {
        if !self.observer.enabled() {
            return;
        }
        let status = match reason {
            Reason::ConnectionLost => Status::Connection,
            _ => Status::Ok,
        };
        self.observer.emit(&Event {
            kind: EventKind::CacheInvalidate,
            status,
            command: reason.name(),
            duration: Duration::ZERO,
            attempt: 1,
            address,
            error_type: (status != Status::Ok).then(|| status.name()),
            batch_size: u32::try_from(count).unwrap_or(u32::MAX),
            db: self.observer.db(),
        });
    }
}

/// The cache as a push consumer: `invalidate` frames, `tracking-redir-broken`, and every
/// connection close. Holds the cache weakly: the router outlives it.
struct Consumer(Weak<Cache>);

impl PushConsumer for Consumer {
    fn push(&self, origin: &PushOrigin, frame: &Reply) {
        let Some(cache) = self.0.upgrade() else {
            return;
        };
        let node = cache.store.listener_node(origin.connection);
        if let Some(invalidation) = rules::parse_push(frame) {
            return cache.invalidation(node, invalidation);
        }
        // `tracking-redir-broken` on a data connection: the server lost the invalidation
        // connection it redirects to. Only a connection tracked to the live one matters (one
        // left over from before a reconnect says nothing new).
        if cache.store.is_tracked(&origin.address, origin.connection) {
            if let Some(node) = cache.store.node_at(&origin.address) {
                cache.in_doubt(node);
            }
        }
    }

    fn connection_closed(&self, origin: &PushOrigin) {
        let Some(cache) = self.0.upgrade() else {
            return;
        };
        cache.listeners.unwatch(origin.connection);
        if let Some(node) = cache.store.listener_node(origin.connection) {
            // The listener task sees it too and starts over; dropping now is what matters.
            if let Some(dropped) = cache.store.node_lost(node, Some(origin.connection)) {
                cache.count_invalidated(dropped);
                cache.emit_for(node, Reason::ConnectionLost, dropped);
            }
            return;
        }
        let dropped = cache
            .store
            .connection_closed(&origin.address, origin.connection);
        if dropped > 0 {
            cache.count_invalidated(dropped);
            if let Some(node) = cache.store.node_at(&origin.address) {
                cache.emit_for(node, Reason::ConnectionLost, dropped);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
