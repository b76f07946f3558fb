//! Metrics: the cross-client set that go-redis (`extra/redisotel-native`) and redis-py emit,
//! with their names, units, attributes and bucket boundaries, and brisk's own under
//! `brisk.client.*`. The SDK aggregates; counts that brisk keeps anyway (reconnects, health
//! checks, redirects, pool sizes) are read from the client when the exporter collects, so they
//! cost the command path nothing.

use super::attrs::{self, DEFAULT_PORT, Server};
use super::exporter::Channel;
use crate::core::Status;
use crate::telemetry::events::Event;
use crate::telemetry::stats::Stat;
use opentelemetry::metrics::{BoundHistogram, Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// The boundaries (seconds) go-redis and redis-py give every duration histogram: 100 us to
/// 10 s.
pub(crate) const DURATION_BUCKETS: [f64; 11] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];

/// A pool as the exporter sees it when it collects.
pub struct PoolState<'a> {
    pub address: &'a str,
    pub open: u64,
    pub idle: u64,
    /// Callers waiting for a connection now.
    pub waiting: u64,
}

/// What the exporter reads from the client it reports on (nothing once the client is gone).
pub trait Source: Send + Sync {
    fn stat(&self, stat: Stat) -> u64;
    fn pools(&self, each: &mut dyn FnMut(PoolState<'_>));
}

/// Set once the client exists (it is made after its telemetry).
pub type SourceSlot = Arc<OnceLock<Box<dyn Source>>>;

pub struct Metrics {
    /// Tells this client's bound instruments from other clients' in a thread's cache.
    id: u64,
    db: StringValue,
    operation_duration: Histogram<f64>,
    create_time: Histogram<f64>,
    wait_time: Histogram<f64>,
    timeouts: Counter<u64>,
    closed: Counter<u64>,
    errors: Counter<u64>,
}

fn base() -> [KeyValue; 2] {
    [
        attrs::static_kv(attrs::DB_SYSTEM_NAME, attrs::REDIS),
        attrs::static_kv(attrs::LIBRARY, attrs::LIBRARY_VALUE),
    ]
}

/// `server.address`, and `server.port` unless it is Redis's default (as go-redis does).
fn push_server(kv: &mut Vec<KeyValue>, server: &Server) {
    kv.push(attrs::string_kv(attrs::SERVER_ADDRESS, &server.address));
    if let Some(port) = server.port.filter(|p| *p != DEFAULT_PORT) {
        kv.push(KeyValue::new(attrs::SERVER_PORT, port));
    }
}

fn pool_name(server: &Server, db: &StringValue) -> KeyValue {
    KeyValue::new(
        attrs::POOL_NAME,
        format!("{}/{}", server.endpoint.as_str(), db.as_str()),
    )
}

fn push_error(kv: &mut Vec<KeyValue>, error_type: &str) {
    let value = attrs::text(error_type);
    kv.push(attrs::string_kv(attrs::ERROR_TYPE, &value));
    kv.push(attrs::static_kv(
        attrs::ERRORS_CATEGORY,
        attrs::error_category(error_type),
    ));
    if attrs::is_server_code(error_type) {
        kv.push(attrs::string_kv(attrs::DB_RESPONSE_STATUS_CODE, &value));
    }
}

impl Metrics {
    pub fn new(meter: &Meter, db: StringValue, source: SourceSlot, spans: Arc<Channel>) -> Metrics {
        let histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        register_pool_gauges(meter, &source, &db);
        register_brisk_counters(meter, &source, spans);
        Metrics {
            operation_duration: histogram(
                "db.client.operation.duration",
                "Duration of database client operations",
            ),
            create_time: histogram(
                "db.client.connection.create_time",
                "The time it took to create a new connection",
            ),
            wait_time: histogram(
                "db.client.connection.wait_time",
                "The time it took to obtain a connection from the pool",
            ),
            timeouts: meter
                .u64_counter("db.client.connection.timeouts")
                .with_unit("{timeout}")
                .with_description(
                    "The number of connection timeouts that have occurred trying to obtain a \
                     connection from the pool",
                )
                .build(),
            closed: meter
                .u64_counter("redis.client.connection.closed")
                .with_unit("{connection}")
                .with_description("The number of connections that have been closed")
                .build(),
            errors: meter
                .u64_counter("redis.client.errors")
                .with_unit("{error}")
                .with_description("Number of errors handled by the Redis client")
                .build(),
            db,
            id: NEXT_ID.fetch_add(1, Relaxed),
        }
    }

    /// A finished command: its duration, and its error if it failed.
    ///
    /// The histogram is recorded through an instrument bound to the command's attributes,
    /// found in a small per-thread cache by the event's bytes: the SDK then neither builds nor
    /// hashes an attribute set per command.
    pub fn command(&self, event: &Event<'_>) {
        let seconds = event.duration.as_secs_f64();
        BOUND.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, bound)) = cache.iter().find(|(key, _)| key.matches(self.id, event)) {
                bound.record(seconds);
                return;
            }
            if cache.len() >= MAX_BOUND {
                cache.clear();
            }
            let bound = self
                .operation_duration
                .bind(&self.command_attributes(event));
            bound.record(seconds);
            cache.push((BoundKey::of(self.id, event), bound));
        });
        if let Some(error_type) = event.error_type {
            let server = attrs::server(event.address.to_bytes());
            let retries = i64::from(event.attempt.saturating_sub(1));
            self.error(&server, error_type, false, retries);
        }
    }

    fn command_attributes(&self, event: &Event<'_>) -> Vec<KeyValue> {
        let server = attrs::server(event.address.to_bytes());
        let retries = i64::from(event.attempt.saturating_sub(1));
        let mut kv = Vec::with_capacity(12);
        kv.extend(base());
        kv.push(attrs::string_kv(
            attrs::DB_OPERATION_NAME,
            &attrs::operation_name(event.command),
        ));
        kv.push(attrs::string_kv(attrs::DB_NAMESPACE, &self.db));
        kv.push(KeyValue::new(attrs::RETRY_ATTEMPTS, retries));
        push_server(&mut kv, &server);
        if event.batch_size >= 2 {
            kv.push(KeyValue::new(
                attrs::DB_OPERATION_BATCH_SIZE,
                i64::from(event.batch_size),
            ));
        }
        if let Some(error_type) = event.error_type {
            push_error(&mut kv, error_type);
        }
        kv
    }

    /// A try that failed and is retried: an error handled inside the client.
    pub fn retry(&self, event: &Event<'_>) {
        if let Some(error_type) = event.error_type {
            let server = attrs::server(event.address.to_bytes());
            let retries = i64::from(event.attempt.saturating_sub(1));
            self.error(&server, error_type, true, retries);
        }
    }

    fn error(&self, server: &Server, error_type: &str, internal: bool, retries: i64) {
        let mut kv = Vec::with_capacity(9);
        kv.extend(base());
        push_error(&mut kv, error_type);
        kv.push(KeyValue::new(attrs::ERRORS_INTERNAL, internal));
        kv.push(KeyValue::new(attrs::RETRY_ATTEMPTS, retries));
        push_server(&mut kv, server);
        self.errors.add(1, &kv);
    }

    fn pool_attrs(&self, event: &Event<'_>) -> Vec<KeyValue> {
        let server = attrs::server(event.address.to_bytes());
        let mut kv = Vec::with_capacity(5);
        kv.extend(base());
        kv.push(pool_name(&server, &self.db));
        kv
    }

    pub fn connected(&self, event: &Event<'_>) {
        if event.status == Status::Ok {
            let kv = self.pool_attrs(event);
            self.create_time.record(event.duration.as_secs_f64(), &kv);
        }
    }

    pub fn disconnected(&self, event: &Event<'_>) {
        let mut kv = self.pool_attrs(event);
        let lost = event.status != Status::Ok;
        kv.push(attrs::static_kv(
            attrs::CLOSE_REASON,
            if lost { "lost" } else { "closed" },
        ));
        if let Some(error_type) = event.error_type.filter(|_| lost) {
            kv.push(attrs::string_kv(
                attrs::ERROR_TYPE,
                &attrs::text(error_type),
            ));
        }
        self.closed.add(1, &kv);
    }

    /// A caller waited for a pooled connection; gave up (a timeout) unless OK.
    pub fn pool_wait(&self, event: &Event<'_>) {
        let kv = self.pool_attrs(event);
        self.wait_time.record(event.duration.as_secs_f64(), &kv);
        if event.status != Status::Ok {
            self.timeouts.add(1, &kv);
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// What tells a command's attribute set: the event's own bytes, compared as they come.
struct BoundKey {
    client: u64,
    batch_size: u32,
    attempt: u32,
    name: Box<[u8]>,
    address: Box<[u8]>,
    error_type: Option<Box<str>>,
}

impl BoundKey {
    fn of(client: u64, event: &Event<'_>) -> BoundKey {
        BoundKey {
            client,
            batch_size: event.batch_size,
            attempt: event.attempt,
            name: event.command.into(),
            address: event.address.to_bytes().into(),
            error_type: event.error_type.map(Into::into),
        }
    }

    fn matches(&self, client: u64, event: &Event<'_>) -> bool {
        self.client == client
            && self.batch_size == event.batch_size
            && self.attempt == event.attempt
            && *self.name == *event.command
            && *self.address == *event.address.to_bytes()
            && self.error_type.as_deref() == event.error_type
    }
}

/// Bound instruments per thread, at most this many (then the cache starts again; the SDK
/// keeps what they recorded).
const MAX_BOUND: usize = 64;

thread_local! {
    static BOUND: RefCell<Vec<(BoundKey, BoundHistogram<f64>)>> = const { RefCell::new(Vec::new()) };
}

/// `db.client.connection.count` (idle/used) and `db.client.connection.pending_requests`, per
/// pool, read when the exporter collects.
fn register_pool_gauges(meter: &Meter, source: &SourceSlot, db: &StringValue) {
    let pool_attrs = |address: &str, db: &StringValue| {
        let server = attrs::server(address.as_bytes());
        let mut kv = Vec::with_capacity(6);
        kv.extend(base());
        push_server(&mut kv, &server);
        kv.push(pool_name(&server, db));
        kv
    };
    let (from, db_count) = (source.clone(), db.clone());
    meter
        .i64_observable_gauge("db.client.connection.count")
        .with_unit("{connection}")
        .with_description(
            "The number of connections that are currently in state described by the state \
             attribute",
        )
        .with_callback(move |observer| {
            let Some(source) = from.get() else { return };
            source.pools(&mut |pool| {
                for (state, count) in [("idle", pool.idle), ("used", pool.open - pool.idle)] {
                    let mut kv = pool_attrs(pool.address, &db_count);
                    kv.push(attrs::static_kv(attrs::CONNECTION_STATE, state));
                    kv.push(KeyValue::new(attrs::CONNECTION_PUBSUB, false));
                    observer.observe(count as i64, &kv);
                }
            });
        })
        .build();
    let (from, db_pending) = (source.clone(), db.clone());
    meter
        .i64_observable_gauge("db.client.connection.pending_requests")
        .with_unit("{request}")
        .with_description("The number of pending requests waiting for a connection")
        .with_callback(move |observer| {
            let Some(source) = from.get() else { return };
            source.pools(&mut |pool| {
                observer.observe(pool.waiting as i64, &pool_attrs(pool.address, &db_pending));
            });
        })
        .build();
}

/// brisk's own counters, beyond the shared set.
fn register_brisk_counters(meter: &Meter, source: &SourceSlot, spans: Arc<Channel>) {
    const COUNTERS: [(&str, &str, &str, Stat); 5] = [
        (
            "brisk.client.reconnects",
            "{connection}",
            "Connections opened to replace lost ones",
            Stat::Reconnects,
        ),
        (
            "brisk.client.health_checks",
            "{check}",
            "Health-check PINGs sent",
            Stat::HealthChecks,
        ),
        (
            "brisk.client.health_check.failures",
            "{check}",
            "Health checks that found a dead connection",
            Stat::HealthCheckFailures,
        ),
        (
            "brisk.client.redirects",
            "{redirect}",
            "Cluster redirections (MOVED, ASK) followed",
            Stat::Redirects,
        ),
        (
            "brisk.client.topology.refreshes",
            "{refresh}",
            "Cluster topology reads",
            Stat::TopologyRefreshes,
        ),
    ];
    for (name, unit, description, stat) in COUNTERS {
        let from = source.clone();
        meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |observer| {
                if let Some(source) = from.get() {
                    observer.observe(source.stat(stat), &base());
                }
            })
            .build();
    }
    // Client-side caching, by redis-py's names: read from the client's cache counters.
    let from = source.clone();
    meter
        .u64_observable_counter("redis.client.csc.requests")
        .with_unit("{request}")
        .with_description("Client-side cache lookups, by result")
        .with_callback(move |observer| {
            if let Some(source) = from.get() {
                for (result, stat) in [("hit", Stat::CacheHits), ("miss", Stat::CacheMisses)] {
                    let mut kv = base().to_vec();
                    kv.push(attrs::static_kv(attrs::CSC_RESULT, result));
                    observer.observe(source.stat(stat), &kv);
                }
            }
        })
        .build();
    let from = source.clone();
    meter
        .u64_observable_counter("redis.client.csc.evictions")
        .with_unit("{eviction}")
        .with_description("Client-side cache entries removed, by reason")
        .with_callback(move |observer| {
            if let Some(source) = from.get() {
                let mut kv = base().to_vec();
                kv.push(attrs::static_kv(attrs::CSC_REASON, "invalidation"));
                observer.observe(source.stat(Stat::CacheInvalidations), &kv);
            }
        })
        .build();
    meter
        .u64_observable_counter("brisk.client.telemetry.dropped_spans")
        .with_unit("{span}")
        .with_description("Spans dropped: the export queue was full or the collector failed")
        .with_callback(move |observer| observer.observe(spans.dropped(), &base()))
        .build();
}
