//! Attribute names and values, shared by spans and metrics.
//!
//! The values that repeat on every command (the operation name, the server, the error type)
//! are made once per thread and then shared (a reference count), so recording a command
//! allocates nothing: a small per-thread table, searched by the bytes as they come.

use opentelemetry::{Key, KeyValue, StringValue, Value};
use std::cell::RefCell;
use std::sync::Arc;

pub(crate) const DB_SYSTEM_NAME: Key = Key::from_static_str("db.system.name");
pub(crate) const DB_OPERATION_NAME: Key = Key::from_static_str("db.operation.name");
pub(crate) const DB_NAMESPACE: Key = Key::from_static_str("db.namespace");
pub(crate) const DB_OPERATION_BATCH_SIZE: Key = Key::from_static_str("db.operation.batch.size");
pub(crate) const DB_RESPONSE_STATUS_CODE: Key = Key::from_static_str("db.response.status_code");
pub(crate) const SERVER_ADDRESS: Key = Key::from_static_str("server.address");
pub(crate) const SERVER_PORT: Key = Key::from_static_str("server.port");
pub(crate) const ERROR_TYPE: Key = Key::from_static_str("error.type");
pub(crate) const POOL_NAME: Key = Key::from_static_str("db.client.connection.pool.name");
pub(crate) const CONNECTION_STATE: Key = Key::from_static_str("db.client.connection.state");
pub(crate) const LIBRARY: Key = Key::from_static_str("redis.client.library");
pub(crate) const RETRY_ATTEMPTS: Key =
    Key::from_static_str("redis.client.operation.retry_attempts");
pub(crate) const ERRORS_CATEGORY: Key = Key::from_static_str("redis.client.errors.category");
pub(crate) const ERRORS_INTERNAL: Key = Key::from_static_str("redis.client.errors.internal");
pub(crate) const CONNECTION_PUBSUB: Key = Key::from_static_str("redis.client.connection.pubsub");
pub(crate) const CSC_RESULT: Key = Key::from_static_str("redis.client.csc.result");
pub(crate) const CSC_REASON: Key = Key::from_static_str("redis.client.csc.reason");
pub(crate) const CLOSE_REASON: Key = Key::from_static_str("redis.client.connection.close.reason");

/// `db.system.name`'s value.
pub(crate) const REDIS: &str = "redis";
/// `redis.client.library`: `<library>:<version>`, as go-redis and redis-py report theirs.
pub(crate) const LIBRARY_VALUE: &str = concat!("brisk:", env!("CARGO_PKG_VERSION"));
/// Redis's port: `server.port` is left out of metrics when it is this (as go-redis does).
pub(crate) const DEFAULT_PORT: i64 = 6379;

pub fn static_kv(key: Key, value: &'static str) -> KeyValue {
    KeyValue::new(key, Value::String(StringValue::from(value)))
}

/// A shared string value: cloning it counts a reference (a `StringValue` made from a `String`
/// would copy the text on every clone).
pub fn shared(text: &str) -> StringValue {
    StringValue::from(Arc::<str>::from(text))
}

pub fn string_kv(key: Key, value: &StringValue) -> KeyValue {
    KeyValue::new(key, Value::String(value.clone()))
}

/// A server as telemetry names it: `server.address` and `server.port` (none for a Unix
/// socket), from brisk's `host:port`, `[v6]:port` or socket path.
#[derive(Clone, Debug)]
pub struct Server {
    pub address: StringValue,
    pub port: Option<i64>,
    /// The address as brisk writes it (the pool's name).
    pub endpoint: StringValue,
}

impl Server {
    pub fn parse(endpoint: &str) -> Server {
        let split = endpoint
            .rsplit_once(':')
            .filter(|(host, _)| !endpoint.starts_with('/') && !host.is_empty())
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)));
        let (host, port) = match split {
            Some((host, port)) => (host.trim_matches(['[', ']']), Some(i64::from(port))),
            None => (endpoint, None),
        };
        Server {
            address: shared(host),
            port,
            endpoint: shared(endpoint),
        }
    }
}

/// A per-thread table from bytes to a value made of them once.
struct Interned<T> {
    entries: Vec<(Box<[u8]>, T)>,
}

/// Past this many distinct values a table starts again (a program that sends ever new command
/// names cannot grow it without bound).
const MAX_INTERNED: usize = 64;

impl<T: Clone> Interned<T> {
    const fn new() -> Self {
        Interned {
            entries: Vec::new(),
        }
    }

    fn get(&mut self, key: &[u8], make: impl FnOnce() -> T) -> T {
        if let Some((_, value)) = self.entries.iter().find(|(k, _)| **k == *key) {
            return value.clone();
        }
        if self.entries.len() >= MAX_INTERNED {
            self.entries.clear();
        }
        let value = make();
        self.entries.push((key.into(), value.clone()));
        value
    }
}

thread_local! {
    static NAMES: RefCell<Interned<StringValue>> = const { RefCell::new(Interned::new()) };
    static TEXTS: RefCell<Interned<StringValue>> = const { RefCell::new(Interned::new()) };
    static SERVERS: RefCell<Interned<Arc<Server>>> = const { RefCell::new(Interned::new()) };
}

/// `db.operation.name` of a command as sent (`get` -> `GET`); never more than the name.
pub fn operation_name(name: &[u8]) -> StringValue {
    NAMES.with(|t| {
        t.borrow_mut().get(name, || {
            let mut text = String::from_utf8_lossy(name).into_owned();
            text.make_ascii_uppercase();
            shared(&text)
        })
    })
}

/// A short text that repeats (an error type).
pub fn text(value: &str) -> StringValue {
    TEXTS.with(|t| t.borrow_mut().get(value.as_bytes(), || shared(value)))
}

pub fn server(endpoint: &[u8]) -> Arc<Server> {
    SERVERS.with(|t| {
        t.borrow_mut().get(endpoint, || {
            Arc::new(Server::parse(&String::from_utf8_lossy(endpoint)))
        })
    })
}

/// `redis.client.errors.category` of an `error.type`: brisk's statuses by what they are, a
/// server's error code as `server` (go-redis's categories).
pub fn error_category(error_type: &str) -> &'static str {
    match error_type {
        "BRISK_ERR_CONNECTION"
        | "BRISK_ERR_TIMEOUT"
        | "BRISK_ERR_PROTOCOL"
        | "BRISK_ERR_CLOSED" => "network",
        "BRISK_ERR_TLS" => "tls",
        "BRISK_ERR_AUTH" => "auth",
        "NOAUTH" | "WRONGPASS" | "NOPERM" => "auth",
        t if t.starts_with("BRISK_") => "other",
        _ => "server",
    }
}

/// Whether an `error.type` is a server's error code (which is also `db.response.status_code`)
/// rather than a brisk status name.
pub fn is_server_code(error_type: &str) -> bool {
    !error_type.starts_with("BRISK_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_split_into_address_and_port() {
        let s = Server::parse("127.0.0.1:6380");
        assert_eq!(s.address.as_str(), "127.0.0.1");
        assert_eq!(s.port, Some(6380));
        let s = Server::parse("[::1]:7000");
        assert_eq!(s.address.as_str(), "::1");
        assert_eq!(s.port, Some(7000));
        let s = Server::parse("/tmp/redis.sock");
        assert_eq!(s.address.as_str(), "/tmp/redis.sock");
        assert_eq!(s.port, None);
    }

    #[test]
    fn names_are_upper_cased_and_shared() {
        let a = operation_name(b"get");
        let b = operation_name(b"get");
        assert_eq!(a.as_str(), "GET");
        assert_eq!(a, b);
        for i in 0..(MAX_INTERNED * 2) {
            operation_name(format!("cmd{i}").as_bytes());
        }
        assert_eq!(operation_name(b"get").as_str(), "GET");
        NAMES.with(|t| assert!(t.borrow().entries.len() <= MAX_INTERNED));
    }

    #[test]
    fn categories() {
        assert_eq!(error_category("WRONGTYPE"), "server");
        assert_eq!(error_category("BRISK_ERR_TIMEOUT"), "network");
        assert_eq!(error_category("BRISK_ERR_POOL_EXHAUSTED"), "other");
        assert!(is_server_code("WRONGTYPE"));
        assert!(!is_server_code("BRISK_ERR_CONNECTION"));
    }
}
