//! The `?option=value` part of a URL: brisk's option names, the go-redis and redis-py names
//! accepted as aliases, and how their values are read.
//!
//! A duration takes a unit (`250ms`, `1.5s`, `2m`, `1h`); a bare number is read in the unit of
//! the library the name comes from: milliseconds under brisk's own names, seconds under the
//! aliases (go-redis's `ParseURL` and redis-py's `socket_timeout` read bare numbers as seconds,
//! and a pasted URL must mean what it meant there). Names both brisk and another library use
//! (`read_timeout`, `write_timeout`, `health_check_interval`) keep brisk's milliseconds.

use super::{bad, parse_bool, parse_number};
use crate::config::{CacheMode, Config, DEFAULT_KEEPALIVE, ReadFrom};
use crate::core::Result;
use crate::core::retry::{Backoff, RetryPolicy, RetryWrites};

/// The unit of a duration written without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BareUnit {
    Millis,
    Seconds,
}

/// What an option sets. Several names may set the same thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Setting {
    ConnectTimeout,
    ReadTimeout,
    WriteTimeout,
    /// redis-py's `socket_timeout`: reads and writes.
    SocketTimeout,
    CommandDeadline,
    MaxReplyBytes,
    PoolSize,
    PoolMinIdle,
    PoolMaxWait,
    PoolIdleTimeout,
    PoolMaxLifetime,
    HealthCheckInterval,
    Keepalive,
    ClientName,
    Protocol,
    Db,
    MaxRetries,
    RetryOnTimeout,
    RetryWrites,
    Backoff,
    BackoffBase,
    BackoffCap,
    TlsServerName,
    TlsInsecureSkipVerify,
    ReadFrom,
    /// go-redis's cluster `read_only`: reads from replicas.
    ReadOnly,
    /// go-redis's cluster `route_randomly`: reads from any node of the shard.
    RouteRandomly,
    ClusterRefreshInterval,
    ClusterErrorRetryAttempts,
    /// go-redis's cluster `addr`: one more seed node.
    Addr,
    SentinelUsername,
    SentinelPassword,
    SentinelTimeout,
    ClientCache,
    ClientCacheTtl,
    ClientCacheMaxBytes,
    ClientCacheMode,
    /// One more prefix for BROADCAST or OPTIN caching; may repeat.
    ClientCachePrefix,
}

use BareUnit::{Millis, Seconds};
use Setting::*;

/// Every accepted option name: what it sets and the unit of a bare duration under it. The
/// header's URL documentation (`brisk_config_set_url`) lists them all; a test checks that.
pub(super) const NAMES: &[(&str, Setting, BareUnit)] = &[
    ("connect_timeout", ConnectTimeout, Millis),
    ("dial_timeout", ConnectTimeout, Seconds), // go-redis
    ("socket_connect_timeout", ConnectTimeout, Seconds), // redis-py
    ("read_timeout", ReadTimeout, Millis),
    ("write_timeout", WriteTimeout, Millis),
    ("socket_timeout", SocketTimeout, Seconds), // redis-py
    ("command_deadline", CommandDeadline, Millis),
    ("max_reply_bytes", MaxReplyBytes, Millis),
    ("pool_size", PoolSize, Millis),
    ("max_connections", PoolSize, Millis), // redis-py
    ("pool_min_idle", PoolMinIdle, Millis),
    ("min_idle_conns", PoolMinIdle, Millis), // go-redis
    ("pool_max_wait", PoolMaxWait, Millis),
    ("pool_timeout", PoolMaxWait, Seconds), // go-redis
    ("pool_idle_timeout", PoolIdleTimeout, Millis),
    ("conn_max_idle_time", PoolIdleTimeout, Seconds), // go-redis
    ("idle_timeout", PoolIdleTimeout, Seconds),       // go-redis before v9
    ("pool_max_lifetime", PoolMaxLifetime, Millis),
    ("conn_max_lifetime", PoolMaxLifetime, Seconds), // go-redis
    ("max_conn_age", PoolMaxLifetime, Seconds),      // go-redis before v9
    ("health_check_interval", HealthCheckInterval, Millis),
    ("socket_keepalive", Keepalive, Millis), // redis-py
    ("client_name", ClientName, Millis),
    ("protocol", Protocol, Millis),
    ("db", Db, Millis),
    ("max_retries", MaxRetries, Millis),
    ("retry_on_timeout", RetryOnTimeout, Millis), // redis-py
    ("retry_writes", RetryWrites, Millis),
    ("backoff", Backoff, Millis),
    ("backoff_base", BackoffBase, Millis),
    ("min_retry_backoff", BackoffBase, Seconds), // go-redis
    ("backoff_cap", BackoffCap, Millis),
    ("max_retry_backoff", BackoffCap, Seconds), // go-redis
    ("tls_server_name", TlsServerName, Millis),
    ("tls_insecure_skip_verify", TlsInsecureSkipVerify, Millis),
    ("skip_verify", TlsInsecureSkipVerify, Millis), // go-redis
    ("read_from", ReadFrom, Millis),
    ("read_only", ReadOnly, Millis),           // go-redis cluster
    ("route_randomly", RouteRandomly, Millis), // go-redis cluster
    ("cluster_refresh_interval", ClusterRefreshInterval, Millis),
    (
        "cluster_error_retry_attempts",
        ClusterErrorRetryAttempts,
        Millis,
    ),
    ("addr", Addr, Millis), // go-redis cluster
    ("sentinel_username", SentinelUsername, Millis),
    ("sentinel_password", SentinelPassword, Millis),
    ("sentinel_timeout", SentinelTimeout, Millis),
    ("client_cache", ClientCache, Millis),
    ("client_cache_ttl", ClientCacheTtl, Millis),
    ("client_cache_max_bytes", ClientCacheMaxBytes, Millis),
    ("client_cache_mode", ClientCacheMode, Millis),
    ("client_cache_prefix", ClientCachePrefix, Millis),
];

/// Applies option `key=value` to `cfg`. `path_has_db`: the URL's path named a database.
pub(super) fn apply(cfg: &mut Config, key: &str, value: &str, path_has_db: bool) -> Result<()> {
    let Some(&(_, setting, bare)) = NAMES.iter().find(|(name, _, _)| *name == key) else {
        return Err(bad("option", format!("unknown option {key:?}")));
    };
    let ms = || parse_duration_ms(value, key, bare);
    let count = || parse_number::<u32>(value, key);
    if matches!(
        setting,
        SentinelUsername | SentinelPassword | SentinelTimeout
    ) && cfg.mode != crate::config::Mode::Sentinel
    {
        return Err(bad(key, "only for redis+sentinel:// URLs"));
    }
    match setting {
        ConnectTimeout => cfg.set_connect_timeout_ms(ms()?),
        ReadTimeout => cfg.set_read_timeout_ms(ms()?),
        WriteTimeout => cfg.set_write_timeout_ms(ms()?),
        SocketTimeout => {
            let ms = ms()?;
            cfg.set_read_timeout_ms(ms);
            cfg.set_write_timeout_ms(ms);
        }
        CommandDeadline => cfg.command_deadline_ms = ms()?,
        MaxReplyBytes => cfg.max_reply_bytes = parse_number(value, key)?,
        PoolSize => cfg.set_pool_size(count()?)?,
        PoolMinIdle => cfg.pool.min_idle = count()?,
        PoolMaxWait => cfg.pool.max_wait_ms = Some(ms()?),
        PoolIdleTimeout => cfg.pool.idle_timeout_ms = ms()?,
        PoolMaxLifetime => cfg.pool.max_lifetime_ms = ms()?,
        HealthCheckInterval => cfg.health_check_interval_ms = ms()?,
        Keepalive => {
            cfg.keepalive = match (parse_bool(value, key)?, cfg.keepalive) {
                (false, _) => None,
                (true, Some(kept)) => Some(kept),
                (true, None) => Some(DEFAULT_KEEPALIVE),
            }
        }
        ClientName => cfg.set_client_name(value)?,
        Protocol => cfg.set_protocol(count()?)?,
        Db => {
            let db = count()?;
            if path_has_db && db != cfg.db {
                return Err(bad("db", "given both in the path and as an option"));
            }
            cfg.db = db;
        }
        MaxRetries => cfg.retry.max_retries = Some(count()?),
        RetryOnTimeout => cfg.retry.on_timeout = parse_bool(value, key)?,
        RetryWrites => {
            cfg.retry.writes = match value.to_ascii_lowercase().as_str() {
                "safe" => RetryWrites::Safe,
                "always" => RetryWrites::Always,
                _ => return Err(bad(key, format!("{value:?} is not safe or always"))),
            }
        }
        Backoff => policy(cfg).backoff = parse_backoff(value, key)?,
        BackoffBase => policy(cfg).base_ms = ms()?,
        BackoffCap => policy(cfg).cap_ms = ms()?,
        TlsServerName => cfg.tls.server_name = Some(value.to_owned()),
        TlsInsecureSkipVerify => cfg.tls.insecure_skip_verify = parse_bool(value, key)?,
        ReadFrom => {
            cfg.cluster.read_from = match value.to_ascii_lowercase().as_str() {
                "primary" => ReadFrom::Primary,
                "replica_preferred" => ReadFrom::ReplicaPreferred,
                "any" => ReadFrom::Any,
                _ => {
                    return Err(bad(
                        key,
                        format!("{value:?} is not primary, replica_preferred or any"),
                    ));
                }
            }
        }
        ReadOnly => {
            cfg.cluster.read_from = if parse_bool(value, key)? {
                ReadFrom::ReplicaPreferred
            } else {
                ReadFrom::Primary
            }
        }
        RouteRandomly => {
            cfg.cluster.read_from = if parse_bool(value, key)? {
                ReadFrom::Any
            } else {
                ReadFrom::Primary
            }
        }
        ClusterRefreshInterval => cfg.cluster.refresh_interval_ms = ms()?,
        ClusterErrorRetryAttempts => cfg.cluster.error_retry_attempts = count()?,
        Addr => {
            if cfg.mode != crate::config::Mode::Cluster {
                return Err(bad(
                    key,
                    "adds a cluster seed node: only with redis+cluster:// URLs",
                ));
            }
            let (host, port) = super::parse_host_port(value, super::DEFAULT_PORT)?;
            cfg.add_node(&host, port)?;
        }
        SentinelUsername => cfg.sentinel.username = (!value.is_empty()).then(|| value.to_owned()),
        SentinelPassword => {
            cfg.sentinel.password = (!value.is_empty()).then(|| value.to_owned().into());
        }
        SentinelTimeout => cfg.sentinel.timeout_ms = ms()?,
        ClientCache => cfg.cache.max_entries = count()?,
        ClientCacheTtl => cfg.cache.ttl_ms = ms()?,
        ClientCacheMaxBytes => cfg.cache.max_bytes = parse_number(value, key)?,
        ClientCacheMode => {
            cfg.cache.mode = match value.to_ascii_lowercase().as_str() {
                "default" => CacheMode::Default,
                "broadcast" | "bcast" => CacheMode::Broadcast,
                "optin" => CacheMode::OptIn,
                _ => {
                    return Err(bad(
                        key,
                        format!("{value:?} is not default, broadcast or optin"),
                    ));
                }
            }
        }
        ClientCachePrefix => cfg.add_client_cache_prefix(value.as_bytes())?,
    }
    Ok(())
}

/// The policy a backoff option changes: the config's explicit one, else the default made
/// explicit (so the URL's change applies on top of 3 retries, full jitter, 10 ms .. 1 s).
fn policy(cfg: &mut Config) -> &mut RetryPolicy {
    cfg.retry.policy.get_or_insert(RetryPolicy::DEFAULT)
}

/// Checks what options can only be judged together, once all are applied.
pub(super) fn check(cfg: &Config) -> Result<()> {
    if let Some(p) = cfg.retry.policy
        && p.backoff != Backoff::None
        && p.cap_ms < p.base_ms
    {
        return Err(bad(
            "backoff_cap",
            format!("{} ms is below backoff_base ({} ms)", p.cap_ms, p.base_ms),
        ));
    }
    Ok(())
}

fn parse_backoff(value: &str, key: &str) -> Result<Backoff> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "none" => Backoff::None,
        "constant" => Backoff::Constant,
        "exponential" => Backoff::Exponential,
        "full_jitter" => Backoff::FullJitter,
        "equal_jitter" => Backoff::EqualJitter,
        "decorrelated_jitter" => Backoff::DecorrelatedJitter,
        _ => {
            return Err(bad(
                key,
                format!(
                    "{value:?} is not none, constant, exponential, full_jitter, equal_jitter \
                     or decorrelated_jitter"
                ),
            ));
        }
    })
}

/// A duration in whole milliseconds: `DIGITS[.DIGITS][ms|s|m|h]`; without a unit, `bare`.
pub(super) fn parse_duration_ms(text: &str, what: &str, bare: BareUnit) -> Result<u32> {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let unit_ms: u64 = match unit {
        "" if bare == BareUnit::Millis => 1,
        "" => 1000,
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(bad(
                what,
                format!("{text:?} is not a duration (a number, optionally with ms, s, m or h)"),
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) || fraction.len() > 9 {
        return Err(bad(
            what,
            format!("{text:?} is not a duration (a number, optionally with ms, s, m or h)"),
        ));
    }
    let out_of_range = || bad(what, format!("{text:?} is out of range"));
    let whole: u64 = whole.parse().map_err(|_| out_of_range())?;
    let scale = 10u64.pow(fraction.len() as u32);
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| out_of_range())?
    };
    // (whole + fraction / scale) * unit_ms, exactly, in u128 so nothing overflows.
    let scaled =
        (u128::from(whole) * u128::from(scale) + u128::from(fraction)) * u128::from(unit_ms);
    if scaled % u128::from(scale) != 0 {
        return Err(bad(
            what,
            format!("{text:?} is not a whole number of milliseconds"),
        ));
    }
    u32::try_from(scaled / u128::from(scale)).map_err(|_| out_of_range())
}
