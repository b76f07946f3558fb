//! Client configuration: plain data with validated setters and documented defaults.
//!
//! The C API's `brisk_config` is a box around [`Config`]; `brisk_client_new` copies it, so a
//! client never sees later changes.

pub mod pubsub;
pub mod url;

pub use pubsub::{Overflow, PubSubSettings};

pub use crate::core::cache::Mode as CacheMode;
pub use crate::core::retry::RetrySettings;
use crate::core::{Error, Result};
use crate::telemetry::events::HandlerSlot;
use crate::telemetry::otel::OtelSettings;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where a standalone client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl Endpoint {
    /// `host:port` (IPv6 in brackets) or the socket path, for messages and events.
    pub fn address(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Unix(path) => path.display().to_string(),
        }
    }
}

/// Topology. The numbers are the C API's `brisk_mode` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone = 0,
    Cluster = 1,
    Sentinel = 2,
}

/// Which nodes of a cluster serve reads. The numbers are the C API's `brisk_read_from` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    Primary = 0,
    /// A replica of the slot's shard when one answers, else its primary.
    ReplicaPreferred = 1,
    /// Any node of the slot's shard, primary or replica, spreading the load.
    Any = 2,
}

/// Cluster-mode settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Whole-cluster attempts: after a CONNECTION, TIMEOUT or CLUSTER_DOWN error the failed node
    /// is dropped from the startup nodes, the topology re-read and the command tried again.
    pub error_retry_attempts: u32,
    pub read_from: ReadFrom,
    /// Background topology refresh period; 0 turns it off.
    pub refresh_interval_ms: u32,
}

/// Sentinel-mode settings: which master, and how to talk to the sentinels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelSettings {
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    pub master_name: Option<String>,
    /// Credentials for the sentinels themselves; none by default (the data nodes' credentials
    /// are never sent to them).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Bounds each question to one sentinel (connecting included), so that a sentinel that is
    /// down costs little before the next is asked.
    pub timeout_ms: u32,
}

impl Default for SentinelSettings {
    fn default() -> Self {
        SentinelSettings {
            master_name: None,
            username: None,
            password: None,
            timeout_ms: 500,
        }
    }
}

/// A password: kept out of `Debug` output and therefore out of every message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub idle_s: u32,
    pub interval_s: u32,
    pub probes: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub enabled: bool,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    pub size: u32,
    pub min_idle: u32,
    /// `None`: the read timeout + 1000 ms.
    pub max_wait_ms: Option<u32>,
    pub idle_timeout_ms: u32,
    pub max_lifetime_ms: u32,
}

/// Which thread runs the callbacks of async commands. The numbers are the C API's
/// `brisk_async_dispatch` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AsyncDispatch {
    /// A brisk runtime thread, as soon as the outcome is known.
    #[default]
    Runtime = 0,
    /// The application's thread that calls `Client::async_dispatch`, in completion order; a
    /// descriptor (`Client::async_fd`) is readable while callbacks wait.
    Caller = 1,
}

/// Called on a brisk runtime thread after it ran one or more async callbacks of the client
/// (runtime dispatch): once per batch of replies read together, and after any callback run on
/// its own. Lets a program that hands completions to another thread wake it once per batch.
pub type BatchEnd = Arc<dyn Fn() + Send + Sync>;

/// A config slot for [`BatchEnd`] (which has no `Debug` of its own).
#[derive(Clone, Default)]
pub struct BatchEndSlot(pub Option<BatchEnd>);

impl std::fmt::Debug for BatchEndSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(hook)"
        } else {
            "None"
        })
    }
}

impl AsyncDispatch {
    pub fn from_u32(n: u32) -> Option<AsyncDispatch> {
        match n {
            0 => Some(AsyncDispatch::Runtime),
            1 => Some(AsyncDispatch::Caller),
            _ => None,
        }
    }
}

/// Client-side caching (off unless `max_entries` is set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most entries kept; 0: the cache is off.
    pub max_entries: u32,
    /// How long an entry may be served at most; 0: no limit (only when the user says so).
    pub ttl_ms: u32,
    /// Most bytes kept (keys, values and bookkeeping); 0: no limit.
    pub max_bytes: u64,
    pub mode: CacheMode,
    /// Only reads of keys under these prefixes are cached (none: every key); in BROADCAST mode
    /// the server is told about exactly these.
    pub prefixes: Vec<Vec<u8>>,
}

/// The TTL of cached entries unless the user sets one: a backstop for anything missed.
pub(crate) const DEFAULT_CACHE_TTL_MS: u32 = 300_000;
/// The byte bound of the cache unless the user sets one.
pub(crate) const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_entries: 0,
            ttl_ms: DEFAULT_CACHE_TTL_MS,
            max_bytes: DEFAULT_CACHE_MAX_BYTES,
            mode: CacheMode::Default,
            prefixes: Vec::new(),
        }
    }
}

impl CacheSettings {
    pub fn enabled(&self) -> bool {
        self.max_entries > 0
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub endpoint: Endpoint,
    pub mode: Mode,
    /// Seed nodes for cluster and Sentinel modes.
    pub nodes: Vec<(String, u16)>,
    pub cluster: ClusterSettings,
    pub sentinel: SentinelSettings,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub db: u32,
    pub client_name: Option<String>,
    /// 2 or 3.
    pub protocol: u32,
    pub connect_timeout_ms: u32,
    pub read_timeout_ms: u32,
    pub write_timeout_ms: u32,
    pub command_deadline_ms: u32,
    /// The most memory one reply may take (0: no limit); see [`DEFAULT_MAX_REPLY_BYTES`].
    pub max_reply_bytes: usize,
    /// `None`: keepalive off.
    pub keepalive: Option<Keepalive>,
    pub pool: PoolSettings,
    pub health_check_interval_ms: u32,
    pub retry: RetrySettings,
    pub tls: TlsSettings,
    pub events: HandlerSlot,
    /// OpenTelemetry export (off unless an endpoint is set).
    pub otel: OtelSettings,
    pub pubsub: PubSubSettings,
    pub cache: CacheSettings,
    pub async_dispatch: AsyncDispatch,
    /// Runtime dispatch only: called after each batch of async callbacks.
    pub async_batch_end: BatchEndSlot,
}

pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 5000;

/// TCP keepalive unless turned off: probe after 30 s idle, every 5 s, 3 times.
pub(crate) const DEFAULT_KEEPALIVE: Keepalive = Keepalive {
    idle_s: 30,
    interval_s: 5,
    probes: 3,
};

pub use crate::resp::DEFAULT_MAX_REPLY_BYTES;

impl Default for Config {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        Config {
            endpoint: Endpoint::Tcp {
                host: "localhost".into(),
                port: 6379,
            },
            mode: Mode::Standalone,
            nodes: Vec::new(),
            cluster: ClusterSettings {
                error_retry_attempts: 3,
                read_from: ReadFrom::Primary,
                refresh_interval_ms: 60_000,
            },
            sentinel: SentinelSettings::default(),
            username: None,
            password: None,
            db: 0,
            client_name: None,
            protocol: 3,
            connect_timeout_ms: DEFAULT_TIMEOUT_MS,
            read_timeout_ms: DEFAULT_TIMEOUT_MS,
            write_timeout_ms: DEFAULT_TIMEOUT_MS,
            command_deadline_ms: 0,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            keepalive: Some(DEFAULT_KEEPALIVE),
            pool: PoolSettings {
                size: 10 * cpus,
                min_idle: 0,
                max_wait_ms: None,
                idle_timeout_ms: 1_800_000,
                max_lifetime_ms: 0,
            },
            health_check_interval_ms: 0,
            retry: RetrySettings::default(),
            tls: TlsSettings::default(),
            events: HandlerSlot::default(),
            otel: OtelSettings::default(),
            pubsub: PubSubSettings::default(),
            cache: CacheSettings::default(),
            async_dispatch: AsyncDispatch::Runtime,
            async_batch_end: BatchEndSlot::default(),
        }
    }
}

/// 0 means "no limit".
pub fn limit(ms: u32) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(u64::from(ms)))
}

/// `[::1]` -> `::1`: IPv6 literals are accepted with or without brackets.
fn unbracket(host: String) -> String {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .map(str::to_owned)
        .unwrap_or(host)
}

fn non_empty(value: &str, what: &str) -> Result<String> {
    if value.is_empty() {
        return Err(Error::invalid_argument(format!("{what} must not be empty")));
    }
    Ok(value.to_owned())
}

impl Config {
    pub fn set_url(&mut self, url: &str) -> Result<()> {
        url::apply(self, url)
    }

    pub fn set_address(&mut self, host: &str, port: u16) -> Result<()> {
        let host = non_empty(host, "host")?;
        if port == 0 {
            return Err(Error::invalid_argument("port must not be 0"));
        }
        self.endpoint = Endpoint::Tcp {
            host: unbracket(host),
            port,
        };
        Ok(())
    }

    /// The name the sentinels know the master by.
    pub fn set_sentinel_master(&mut self, name: &str) -> Result<()> {
        let name = non_empty(name, "sentinel master name")?;
        // The sentinels split their answers on spaces (`+switch-master` messages).
        if name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::invalid_argument(
                "sentinel master name must not contain spaces or control characters",
            ));
        }
        self.sentinel.master_name = Some(name);
        Ok(())
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// Adds a seed node for cluster (or Sentinel) mode.
    pub fn add_node(&mut self, host: &str, port: u16) -> Result<()> {
        let host = non_empty(host, "host")?;
        if port == 0 {
            return Err(Error::invalid_argument("port must not be 0"));
        }
        let host = unbracket(host);
        if !self.nodes.iter().any(|(h, p)| *h == host && *p == port) {
            self.nodes.push((host, port));
        }
        Ok(())
    }

    pub fn set_unix_path(&mut self, path: &str) -> Result<()> {
        self.endpoint = Endpoint::Unix(PathBuf::from(non_empty(path, "path")?));
        Ok(())
    }

    pub fn set_client_name(&mut self, name: &str) -> Result<()> {
        // Redis rejects names with spaces or newlines (CLIENT SETNAME); say so up front.
        if name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::invalid_argument(
                "client_name must not contain spaces, newlines or control characters",
            ));
        }
        self.client_name = (!name.is_empty()).then(|| name.to_owned());
        Ok(())
    }

    pub fn set_protocol(&mut self, version: u32) -> Result<()> {
        match version {
            2 | 3 => {
                self.protocol = version;
                Ok(())
            }
            _ => Err(Error::invalid_argument(format!(
                "protocol must be 2 or 3, not {version}"
            ))),
        }
    }

    pub fn set_connect_timeout_ms(&mut self, ms: u32) {
        self.connect_timeout_ms = ms;
    }

    pub fn set_read_timeout_ms(&mut self, ms: u32) {
        self.read_timeout_ms = ms;
    }

    pub fn set_write_timeout_ms(&mut self, ms: u32) {
        self.write_timeout_ms = ms;
    }

    pub fn set_pool_size(&mut self, size: u32) -> Result<()> {
        if size == 0 {
            return Err(Error::invalid_argument("pool_size must be at least 1"));
        }
        self.pool.size = size;
        Ok(())
    }

    pub fn set_keepalive(&mut self, idle_s: u32, interval_s: u32, probes: u32) -> Result<()> {
        if idle_s == 0 {
            self.keepalive = None;
            return Ok(());
        }
        if interval_s == 0 || probes == 0 {
            return Err(Error::invalid_argument(
                "keepalive interval_s and probes must be at least 1 when idle_s is set",
            ));
        }
        self.keepalive = Some(Keepalive {
            idle_s,
            interval_s,
            probes,
        });
        Ok(())
    }

    /// Turns client-side caching on with at most `max_entries` entries, each served for at most
    /// `ttl_ms` (0: no limit); `max_entries` 0 turns it off.
    pub fn set_client_cache(&mut self, max_entries: u32, ttl_ms: u32) {
        self.cache.max_entries = max_entries;
        self.cache.ttl_ms = ttl_ms;
    }

    /// Adds a key prefix for client-side caching (see [`CacheSettings::prefixes`]).
    pub fn add_client_cache_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        if prefix.is_empty() {
            return Err(Error::invalid_argument(
                "client cache prefix must not be empty (with no prefix at all, every key is cached)",
            ));
        }
        if !self.cache.prefixes.iter().any(|p| p == prefix) {
            self.cache.prefixes.push(prefix.to_vec());
        }
        Ok(())
    }

    /// How long a caller waits for a pooled connection.
    pub fn pool_max_wait(&self) -> Option<Duration> {
        match self.pool.max_wait_ms {
            Some(ms) => limit(ms),
            None if self.read_timeout_ms == 0 => None,
            None => limit(self.read_timeout_ms.saturating_add(1000)),
        }
    }

    /// Checks the combination of settings before a client is built from them.
    pub fn validate(&self) -> Result<()> {
        if self.mode != Mode::Standalone && self.nodes.is_empty() {
            return Err(Error::invalid_argument(
                "cluster and sentinel modes need at least one node (brisk_config_add_node)",
            ));
        }
        if self.mode == Mode::Sentinel && self.sentinel.master_name.is_none() {
            return Err(Error::invalid_argument(
                "sentinel mode needs the master's name (brisk_config_set_sentinel_master, or \
                 redis+sentinel://host:port,.../master_name)",
            ));
        }
        if self.mode == Mode::Cluster && self.db != 0 {
            return Err(Error::invalid_argument(format!(
                "db {} in cluster mode: Redis Cluster has only database 0",
                self.db
            )));
        }
        if matches!(self.endpoint, Endpoint::Unix(_)) && self.tls.enabled {
            return Err(Error::invalid_argument(
                "TLS over a Unix socket is not supported",
            ));
        }
        if self.cache.mode == CacheMode::Broadcast {
            let prefixes = &self.cache.prefixes;
            for (i, a) in prefixes.iter().enumerate() {
                if let Some(b) = prefixes[i + 1..]
                    .iter()
                    .find(|b| a.starts_with(b) || b.starts_with(a))
                {
                    return Err(Error::invalid_argument(format!(
                        "client cache prefixes {:?} and {:?} overlap, which BROADCAST mode \
                         does not allow (the server refuses it): keep the shorter one",
                        String::from_utf8_lossy(a),
                        String::from_utf8_lossy(b)
                    )));
                }
            }
        }
        if self.pool.min_idle > self.pool.size {
            return Err(Error::invalid_argument(format!(
                "pool_min_idle ({}) is larger than pool_size ({})",
                self.pool.min_idle, self.pool.size
            )));
        }
        Ok(())
    }
}
