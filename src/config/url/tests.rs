//! URL parsing tests: every form, every option, bad input, and the password never echoed.

use super::*;
use crate::config::Secret;
use crate::core::Status;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A config with `url` applied to the defaults; panics with the message if it is rejected.
#[track_caller]
fn parsed(url: &str) -> Config {
    let mut cfg = Config::default();
    if let Err(e) = apply(&mut cfg, url) {
        panic!("{url:?} rejected: {}", e.message());
    }
    cfg
}

/// The message of the INVALID_ARGUMENT error `url` must produce.
#[track_caller]
fn rejected(url: &str) -> String {
    let mut cfg = Config::default();
    match apply(&mut cfg, url) {
        Ok(()) => panic!("{url:?} accepted: {cfg:?}"),
        Err(e) => {
            assert_eq!(
                e.status(),
                Status::InvalidArgument,
                "{url:?}: {}",
                e.message()
            );
            e.message().to_owned()
        }
    }
}

/// `url` is rejected with a message that contains `why`.
#[track_caller]
fn assert_rejected(url: &str, why: &str) {
    let message = rejected(url);
    assert!(
        message.contains(why),
        "{url:?}: message {message:?} does not say {why:?}"
    );
}

fn tcp(host: &str, port: u16) -> Endpoint {
    Endpoint::Tcp {
        host: host.to_owned(),
        port,
    }
}

fn password(cfg: &Config) -> Option<&str> {
    cfg.password.as_ref().map(Secret::expose)
}

/// Everything in a config, the password included (its `Debug` hides it).
fn snapshot(cfg: &Config) -> String {
    format!("{cfg:?} password={:?}", password(cfg))
}

// ---------------------------------------------------------------------------------------------
// Hosts, ports, databases
// ---------------------------------------------------------------------------------------------

#[test]
fn host_port_and_db() {
    let cases: &[(&str, Endpoint, u32)] = &[
        ("redis://localhost", tcp("localhost", 6379), 0),
        ("redis://example.com:6380", tcp("example.com", 6380), 0),
        ("redis://10.0.0.1:7000/2", tcp("10.0.0.1", 7000), 2),
        ("redis://h/", tcp("h", 6379), 0),
        ("redis://h:/5", tcp("h", 6379), 5),
        ("redis://h:65535/4294967295", tcp("h", 65535), u32::MAX),
        ("redis://h:1", tcp("h", 1), 0),
        ("redis://h?db=3", tcp("h", 6379), 3),
        ("redis://h/3?db=3", tcp("h", 6379), 3),
        ("redis://h/?db=7", tcp("h", 6379), 7),
        ("redis://my%2Dhost:6379", tcp("my-host", 6379), 0),
    ];
    for (url, endpoint, db) in cases {
        let cfg = parsed(url);
        assert_eq!(&cfg.endpoint, endpoint, "{url}");
        assert_eq!(cfg.db, *db, "{url}");
        assert!(!cfg.tls.enabled, "{url}");
        assert_eq!(cfg.mode, Mode::Standalone, "{url}");
    }
}

#[test]
fn empty_host_means_localhost() {
    for (url, port) in [
        ("redis://", 6379),
        ("redis://:6380", 6380),
        ("redis://user:pw@", 6379),
        ("redis://user:pw@:6381/1", 6381),
        ("redis:///2", 6379),
    ] {
        assert_eq!(parsed(url).endpoint, tcp("localhost", port), "{url}");
    }
}

#[test]
fn ipv6_literals() {
    let cases = [
        ("redis://[::1]:6380", "::1", 6380, "[::1]:6380"),
        ("redis://[::1]", "::1", 6379, "[::1]:6379"),
        ("redis://[::1]:", "::1", 6379, "[::1]:6379"),
        (
            "redis://[2001:db8::7]/3",
            "2001:db8::7",
            6379,
            "[2001:db8::7]:6379",
        ),
        (
            "redis://u:p@[fe80::1]:7000",
            "fe80::1",
            7000,
            "[fe80::1]:7000",
        ),
        (
            "rediss://[::ffff:10.0.0.1]:6390",
            "::ffff:10.0.0.1",
            6390,
            "[::ffff:10.0.0.1]:6390",
        ),
    ];
    for (url, host, port, address) in cases {
        let cfg = parsed(url);
        assert_eq!(cfg.endpoint, tcp(host, port), "{url}");
        assert_eq!(cfg.endpoint.address(), address, "{url}");
    }
}

#[test]
fn malformed_ipv6_literals() {
    assert_rejected("redis://[::1", "unclosed '['");
    assert_rejected("redis://[::1:6379", "unclosed '['");
    assert_rejected("redis://[", "unclosed '['");
    assert_rejected("redis://[::1]6379", "unexpected text after IPv6 address");
    assert_rejected("redis://[::1]x", "unexpected text after IPv6 address");
    assert_rejected("redis://[localhost]:6379", "not an IPv6 address");
    assert_rejected("redis://[1.2.3.4]", "not an IPv6 address");
    assert_rejected("redis://[]", "not an IPv6 address");
    assert_rejected("redis://::1", "must be in brackets");
    assert_rejected("redis://::1:6379", "must be in brackets");
    assert_rejected("redis://2001:db8::1/0", "must be in brackets");
}

#[test]
fn bad_ports() {
    for (url, why) in [
        ("redis://h:0", "0 is not a valid port"),
        ("redis://h:65536", "out of range"),
        ("redis://h:99999999999", "out of range"),
        ("redis://h:abc", "not a number"),
        ("redis://h:-1", "not a number"),
        ("redis://h:+1", "not a number"),
        ("redis://h: 80", "not a number"),
        ("redis://[::1]:0", "0 is not a valid port"),
        ("redis://[::1]:x", "not a number"),
    ] {
        let message = rejected(url);
        assert!(message.contains("port"), "{url}: {message}");
        assert!(message.contains(why), "{url}: {message}");
    }
}

#[test]
fn bad_dbs() {
    for (url, why) in [
        ("redis://h/abc", "not a number"),
        ("redis://h/-1", "not a number"),
        ("redis://h/1.5", "not a number"),
        ("redis://h/1/2", "not a number"),
        ("redis://h/4294967296", "out of range"),
        ("redis://h?db=x", "not a number"),
        ("redis://h?db=4294967296", "out of range"),
        ("redis://h?db=", "not a number"),
        (
            "redis://h/3?db=4",
            "given both in the path and as an option",
        ),
    ] {
        let message = rejected(url);
        assert!(message.contains("db"), "{url}: {message}");
        assert!(message.contains(why), "{url}: {message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Schemes
// ---------------------------------------------------------------------------------------------

#[test]
fn tls_comes_from_the_scheme() {
    assert!(parsed("rediss://h").tls.enabled);
    assert!(parsed("REDISS://h").tls.enabled);
    assert!(!parsed("Redis://h").tls.enabled);
    // A later redis:// URL turns TLS off again.
    let mut cfg = parsed("rediss://h:6380");
    apply(&mut cfg, "redis://h:6379").unwrap();
    assert!(!cfg.tls.enabled);
}

#[test]
fn cluster_urls_give_seed_nodes() {
    let cfg = parsed("redis+cluster://u:p@h1:7000,h2:7001,[::1]:7002,h4/0?read_timeout=9");
    assert_eq!(cfg.mode, Mode::Cluster);
    assert_eq!(
        cfg.nodes,
        [
            ("h1".to_owned(), 7000),
            ("h2".to_owned(), 7001),
            ("::1".to_owned(), 7002),
            ("h4".to_owned(), 6379)
        ]
    );
    assert_eq!(cfg.username.as_deref(), Some("u"));
    assert_eq!(password(&cfg), Some("p"));
    assert_eq!(cfg.read_timeout_ms, 9);
    assert!(!cfg.tls.enabled);

    let cfg = parsed("rediss+cluster://h1:7000");
    assert_eq!(cfg.mode, Mode::Cluster);
    assert_eq!(cfg.nodes, [("h1".to_owned(), 7000)]);
    assert!(cfg.tls.enabled);

    assert_rejected("redis+cluster://h1:7000,h2:0", "0 is not a valid port");
}

#[test]
fn sentinel_urls_give_sentinels_and_the_master_name() {
    // Sentinel hosts without a port are on 26379.
    let cfg = parsed("redis+sentinel://u:p@s1:26380,s2,[::1]:26381/mymaster/3?read_timeout=9");
    assert_eq!(cfg.mode, Mode::Sentinel);
    assert_eq!(
        cfg.nodes,
        [
            ("s1".to_owned(), 26380),
            ("s2".to_owned(), 26379),
            ("::1".to_owned(), 26381)
        ]
    );
    assert_eq!(cfg.sentinel.master_name.as_deref(), Some("mymaster"));
    assert_eq!(cfg.db, 3);
    // The userinfo is the data nodes'; the sentinels get none unless the options say so.
    assert_eq!(cfg.username.as_deref(), Some("u"));
    assert_eq!(password(&cfg), Some("p"));
    assert_eq!(cfg.sentinel.username, None);
    assert!(cfg.sentinel.password.is_none());
    assert_eq!(cfg.sentinel.timeout_ms, 500);
    assert_eq!(cfg.read_timeout_ms, 9);
    assert!(!cfg.tls.enabled);

    let cfg = parsed(
        "rediss+sentinel://s1/m%2Dx?sentinel_username=sam&sentinel_password=s%40cret\
         &sentinel_timeout=250",
    );
    assert_eq!(cfg.mode, Mode::Sentinel);
    assert!(cfg.tls.enabled);
    assert_eq!(cfg.sentinel.master_name.as_deref(), Some("m-x"));
    assert_eq!(cfg.db, 0);
    assert_eq!(cfg.sentinel.username.as_deref(), Some("sam"));
    assert_eq!(
        cfg.sentinel.password.as_ref().map(Secret::expose),
        Some("s@cret")
    );
    assert_eq!(cfg.sentinel.timeout_ms, 250);

    assert_rejected("redis+sentinel://s1:26379", "master name: missing");
    assert_rejected("redis+sentinel://s1:26379/", "master name: missing");
    assert_rejected("redis+sentinel://s1/m/x", "db");
    assert_rejected("redis+sentinel://s1/a%20b", "must not contain spaces");
    assert_rejected("redis+sentinel://s1:0/m", "0 is not a valid port");
    for option in [
        "sentinel_username=a",
        "sentinel_password=b",
        "sentinel_timeout=1",
    ] {
        assert_rejected(
            &format!("redis://h?{option}"),
            "only for redis+sentinel:// URLs",
        );
    }
}

#[test]
fn valkey_schemes_are_the_redis_ones() {
    for (valkey, redis) in [
        (
            "valkey://u:p@h:6380/2?read_timeout=7",
            "redis://u:p@h:6380/2?read_timeout=7",
        ),
        ("valkeys://h", "rediss://h"),
        ("VALKEYS://h", "rediss://h"),
        (
            "valkey+cluster://h1:7000,h2:7001",
            "redis+cluster://h1:7000,h2:7001",
        ),
        ("valkeys+cluster://h1:7000", "rediss+cluster://h1:7000"),
    ] {
        assert_eq!(
            snapshot(&parsed(valkey)),
            snapshot(&parsed(redis)),
            "{valkey}"
        );
    }
    assert!(parsed("valkeys://h").tls.enabled);
    assert_eq!(parsed("valkey+cluster://h1:7000").mode, Mode::Cluster);
}

#[test]
fn several_hosts_need_the_cluster_scheme() {
    assert_rejected(
        "redis://h1:7000,h2:7001",
        "several hosts need redis+cluster://",
    );
    assert_rejected("rediss://h1,h2", "several hosts need redis+cluster://");
}

#[test]
fn unix_sockets() {
    let cfg = parsed("unix:///tmp/redis.sock");
    assert_eq!(cfg.endpoint, Endpoint::Unix("/tmp/redis.sock".into()));
    assert_eq!(cfg.db, 0);
    assert!(!cfg.tls.enabled);

    let cfg = parsed("unix:///var/run/redis/redis.sock?db=2&client_name=worker");
    assert_eq!(
        cfg.endpoint,
        Endpoint::Unix("/var/run/redis/redis.sock".into())
    );
    assert_eq!(cfg.db, 2);
    assert_eq!(cfg.client_name.as_deref(), Some("worker"));

    let cfg = parsed("unix://user:pa%40ss@/tmp/redis.sock");
    assert_eq!(cfg.endpoint, Endpoint::Unix("/tmp/redis.sock".into()));
    assert_eq!(cfg.username.as_deref(), Some("user"));
    assert_eq!(password(&cfg), Some("pa@ss"));

    let cfg = parsed("UNIX:///tmp/my%20dir/redis.sock");
    assert_eq!(
        cfg.endpoint,
        Endpoint::Unix("/tmp/my dir/redis.sock".into())
    );

    // The path is the socket, not a db.
    let cfg = parsed("unix:///tmp/3");
    assert_eq!(cfg.endpoint, Endpoint::Unix("/tmp/3".into()));
    assert_eq!(cfg.db, 0);
}

#[test]
fn malformed_unix_urls() {
    assert_rejected(
        "unix://localhost/tmp/redis.sock",
        "unix:// URLs take no host",
    );
    assert_rejected("unix://u:p@host/tmp/s", "unix:// URLs take no host");
    assert_rejected("unix://", "missing socket path");
    assert_rejected("unix:///", "missing socket path");
    assert_rejected("unix://?db=1", "missing socket path");
    assert_rejected("unix:///tmp/s?db=abc", "not a number");
    assert_rejected("unix:///tmp/%FF", "not valid UTF-8");
}

#[test]
fn bad_schemes() {
    for url in [
        "",
        "localhost:6379",
        "redis:/h",
        "redis//h",
        "redis:h",
        "//h:6379",
    ] {
        assert_rejected(
            url,
            "expected redis://, rediss://, redis+cluster://, redis+sentinel://, valkey://, \
             valkeys:// or unix://",
        );
    }
    for (url, scheme) in [
        ("http://h", "\"http\""),
        ("tcp://h:6379", "\"tcp\""),
        ("valkey+unix://h", "\"valkey+unix\""),
        ("unix+cluster:///tmp/s", "\"unix+cluster\""),
        ("://h", "\"\""),
    ] {
        let message = rejected(url);
        assert!(message.contains("unknown scheme"), "{url}: {message}");
        assert!(message.contains(scheme), "{url}: {message}");
    }
}

#[test]
fn fragments_are_rejected() {
    assert_rejected("redis://h#frag", "'#' is not allowed");
    assert_rejected("redis://h/0?db=0#x", "'#' is not allowed");
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

#[test]
fn credentials() {
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("redis://user:pass@h", Some("user"), Some("pass")),
        ("redis://:pass@h", None, Some("pass")),
        ("redis://user@h", Some("user"), None),
        // An empty password is no password (as in redis-py).
        ("redis://user:@h", Some("user"), None),
        ("redis://@h", None, None),
        // Percent-encoded: "p@ss:w/rd%" and "us:er".
        (
            "redis://us%3Aer:p%40ss%3Aw%2Frd%25@h",
            Some("us:er"),
            Some("p@ss:w/rd%"),
        ),
        ("redis://u:%F0%9F%94%91@h", Some("u"), Some("\u{1F511}")),
        // Only the first ':' separates user from password.
        ("redis://u:a:b:c@h", Some("u"), Some("a:b:c")),
        // A literal '@' in the password: the last '@' ends the userinfo.
        ("redis://u:p@ss@h:6380", Some("u"), Some("p@ss")),
        ("redis://u:p%20w@[::1]:6380/1", Some("u"), Some("p w")),
    ];
    for (url, user, pass) in cases {
        let cfg = parsed(url);
        assert_eq!(cfg.username.as_deref(), *user, "{url}");
        assert_eq!(password(&cfg), *pass, "{url}");
    }
    let cfg = parsed("redis://u:p@ss@h:6380");
    assert_eq!(cfg.endpoint, tcp("h", 6380));
}

#[test]
fn credentials_that_are_not_utf8_are_rejected() {
    assert_rejected("redis://u:%FF@h", "password: not valid UTF-8");
    assert_rejected("redis://%C3%28:p@h", "username: not valid UTF-8");
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

#[test]
fn every_option() {
    type Check = fn(&Config) -> String;
    let cases: &[(&str, Check, &str)] = &[
        (
            "connect_timeout=100",
            |c| c.connect_timeout_ms.to_string(),
            "100",
        ),
        ("read_timeout=0", |c| c.read_timeout_ms.to_string(), "0"),
        (
            "write_timeout=4294967295",
            |c| c.write_timeout_ms.to_string(),
            "4294967295",
        ),
        (
            "command_deadline=2500",
            |c| c.command_deadline_ms.to_string(),
            "2500",
        ),
        ("pool_size=7", |c| c.pool.size.to_string(), "7"),
        ("pool_min_idle=2", |c| c.pool.min_idle.to_string(), "2"),
        (
            "pool_max_wait=300",
            |c| format!("{:?}", c.pool.max_wait_ms),
            "Some(300)",
        ),
        (
            "pool_idle_timeout=60000",
            |c| c.pool.idle_timeout_ms.to_string(),
            "60000",
        ),
        (
            "pool_max_lifetime=3600000",
            |c| c.pool.max_lifetime_ms.to_string(),
            "3600000",
        ),
        (
            "health_check_interval=1000",
            |c| c.health_check_interval_ms.to_string(),
            "1000",
        ),
        (
            "client_name=worker-1",
            |c| format!("{:?}", c.client_name),
            "Some(\"worker-1\")",
        ),
        ("client_name=", |c| format!("{:?}", c.client_name), "None"),
        ("protocol=2", |c| c.protocol.to_string(), "2"),
        ("protocol=3", |c| c.protocol.to_string(), "3"),
        (
            "max_retries=5",
            |c| format!("{:?}", c.retry.max_retries),
            "Some(5)",
        ),
        (
            "max_retries=0",
            |c| format!("{:?}", c.retry.max_retries),
            "Some(0)",
        ),
        ("db=15", |c| c.db.to_string(), "15"),
        (
            "tls_insecure_skip_verify=true",
            |c| c.tls.insecure_skip_verify.to_string(),
            "true",
        ),
        (
            "tls_server_name=cache.internal",
            |c| format!("{:?}", c.tls.server_name),
            "Some(\"cache.internal\")",
        ),
        // Names and values are percent-decoded.
        (
            "client%5Fname=my%2Dapp",
            |c| format!("{:?}", c.client_name),
            "Some(\"my-app\")",
        ),
        (
            "connect_timeout=%31%32",
            |c| c.connect_timeout_ms.to_string(),
            "12",
        ),
    ];
    for (query, check, expected) in cases {
        let url = format!("redis://h?{query}");
        assert_eq!(check(&parsed(&url)), *expected, "{url}");
    }
}

/// Each go-redis and redis-py name sets what brisk's own name sets, and reads a bare number in
/// its library's unit (seconds); brisk's names read it as milliseconds.
#[test]
fn go_redis_and_redis_py_aliases() {
    type Check = fn(&Config) -> String;
    let cases: &[(&str, &str, Check)] = &[
        ("dial_timeout=3", "connect_timeout=3000", |c| {
            c.connect_timeout_ms.to_string()
        }),
        ("socket_connect_timeout=0.5", "connect_timeout=500", |c| {
            c.connect_timeout_ms.to_string()
        }),
        (
            "socket_timeout=2.25",
            "read_timeout=2250&write_timeout=2250",
            |c| format!("{} {}", c.read_timeout_ms, c.write_timeout_ms),
        ),
        ("max_connections=12", "pool_size=12", |c| {
            c.pool.size.to_string()
        }),
        ("min_idle_conns=3", "pool_min_idle=3", |c| {
            c.pool.min_idle.to_string()
        }),
        ("pool_timeout=4", "pool_max_wait=4000", |c| {
            format!("{:?}", c.pool.max_wait_ms)
        }),
        ("conn_max_idle_time=5m", "pool_idle_timeout=300000", |c| {
            c.pool.idle_timeout_ms.to_string()
        }),
        ("idle_timeout=60", "pool_idle_timeout=60000", |c| {
            c.pool.idle_timeout_ms.to_string()
        }),
        ("conn_max_lifetime=1h", "pool_max_lifetime=3600000", |c| {
            c.pool.max_lifetime_ms.to_string()
        }),
        ("max_conn_age=2", "pool_max_lifetime=2000", |c| {
            c.pool.max_lifetime_ms.to_string()
        }),
        ("min_retry_backoff=8ms", "backoff_base=8", |c| {
            format!("{:?}", c.retry.policy)
        }),
        ("max_retry_backoff=1", "backoff_cap=1000", |c| {
            format!("{:?}", c.retry.policy)
        }),
        ("skip_verify=true", "tls_insecure_skip_verify=true", |c| {
            c.tls.insecure_skip_verify.to_string()
        }),
        ("read_only=true", "read_from=replica_preferred", |c| {
            format!("{:?}", c.cluster.read_from)
        }),
        ("route_randomly=1", "read_from=any", |c| {
            format!("{:?}", c.cluster.read_from)
        }),
    ];
    for (alias, own, check) in cases {
        let by_alias = parsed(&format!("rediss://h?{alias}"));
        let by_own = parsed(&format!("rediss://h?{own}"));
        assert_eq!(check(&by_alias), check(&by_own), "{alias} vs {own}");
        assert_eq!(snapshot(&by_alias), snapshot(&by_own), "{alias} vs {own}");
    }
}

#[test]
fn durations_take_units() {
    for (text, ms) in [
        ("0", 0),
        ("250", 250),
        ("250ms", 250),
        ("1s", 1000),
        ("1.5s", 1500),
        ("0.001s", 1),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("1.000000000s", 1000),
        ("4294967295ms", u32::MAX),
        ("4294967.295s", u32::MAX),
        ("007ms", 7),
    ] {
        let url = format!("redis://h?read_timeout={text}");
        assert_eq!(parsed(&url).read_timeout_ms, ms, "{url}");
    }
    for (text, why) in [
        ("4294967296ms", "out of range"),
        ("4294968s", "out of range"),
        ("99999999999999999999999h", "out of range"),
        ("1.0005s", "not a whole number of milliseconds"),
        ("0.5ms", "not a whole number of milliseconds"),
        ("1.0000000001s", "not a duration"),
        ("1us", "not a duration"),
        ("1 s", "not a duration"),
        ("1S", "not a duration"),
        (".5s", "not a duration"),
        ("1..5s", "not a duration"),
        ("s", "not a duration"),
        ("-1s", "not a duration"),
        ("1m30s", "not a duration"),
    ] {
        assert_rejected(&format!("redis://h?read_timeout={text}"), why);
    }
    // A bare number under an alias is seconds, fractions included.
    assert_eq!(
        parsed("redis://h?dial_timeout=1.5").connect_timeout_ms,
        1500
    );
    assert_eq!(parsed("redis://h?dial_timeout=10ms").connect_timeout_ms, 10);
}

#[test]
fn backoff_in_a_url() {
    use crate::core::retry::{Backoff, RetryPolicy};
    let cfg = parsed("redis://h?backoff=exponential&backoff_base=8ms&backoff_cap=512ms");
    assert_eq!(
        cfg.retry.policy,
        Some(RetryPolicy {
            backoff: Backoff::Exponential,
            base_ms: 8,
            cap_ms: 512,
            retries: RetryPolicy::DEFAULT.retries,
        })
    );
    // Order does not matter: the check is made once all options are applied.
    let cfg = parsed("redis://h?backoff_cap=5s&backoff_base=2s&max_retries=9");
    let policy = cfg.retry.policy.unwrap();
    assert_eq!((policy.base_ms, policy.cap_ms), (2000, 5000));
    assert_eq!(cfg.retry.resolve().policy.retries, 9);
    for (kind, backoff) in [
        ("none", Backoff::None),
        ("constant", Backoff::Constant),
        ("EXPONENTIAL", Backoff::Exponential),
        ("full_jitter", Backoff::FullJitter),
        ("equal_jitter", Backoff::EqualJitter),
        ("decorrelated_jitter", Backoff::DecorrelatedJitter),
    ] {
        let cfg = parsed(&format!("redis://h?backoff={kind}"));
        assert_eq!(cfg.retry.policy.unwrap().backoff, backoff, "{kind}");
    }
    // An explicit policy is kept and changed, not replaced by the default.
    let mut cfg = Config::default();
    cfg.retry.policy = Some(RetryPolicy {
        backoff: Backoff::Constant,
        base_ms: 5,
        cap_ms: 5,
        retries: 7,
    });
    apply(&mut cfg, "redis://h?backoff_cap=50").unwrap();
    assert_eq!(
        cfg.retry.policy,
        Some(RetryPolicy {
            backoff: Backoff::Constant,
            base_ms: 5,
            cap_ms: 50,
            retries: 7
        })
    );
    assert_rejected(
        "redis://h?backoff_base=2s",
        "backoff_cap: 1000 ms is below backoff_base (2000 ms)",
    );
    assert_rejected(
        "redis://h?min_retry_backoff=1&max_retry_backoff=500ms",
        "is below backoff_base",
    );
    // With no backoff at all, base and cap do not matter.
    parsed("redis://h?backoff=none&backoff_base=2s");
    assert_rejected("redis://h?backoff=linear", "is not none, constant");
}

#[test]
fn retry_and_connection_words() {
    use crate::core::retry::RetryWrites;
    let cfg = parsed("redis://h?retry_on_timeout=true&retry_writes=always");
    assert!(cfg.retry.on_timeout);
    assert_eq!(cfg.retry.writes, RetryWrites::Always);
    assert_eq!(
        parsed("redis://h?retry_writes=SAFE").retry.writes,
        RetryWrites::Safe
    );
    assert_rejected("redis://h?retry_writes=never", "is not safe or always");
    assert_eq!(parsed("redis://h?socket_keepalive=no").keepalive, None);
    let mut cfg = parsed("redis://h?socket_keepalive=false");
    apply(&mut cfg, "redis://h?socket_keepalive=true").unwrap();
    assert_eq!(cfg.keepalive, Config::default().keepalive);
    assert_eq!(
        parsed("redis://h?max_reply_bytes=1024").max_reply_bytes,
        1024
    );
}

#[test]
fn cluster_options() {
    use crate::config::ReadFrom;
    let cfg = parsed(
        "redis+cluster://h1:7000?addr=h2:7001&addr=[::1]:7002&read_from=any\
         &cluster_refresh_interval=30s&cluster_error_retry_attempts=5",
    );
    assert_eq!(
        cfg.nodes,
        [
            ("h1".to_owned(), 7000),
            ("h2".to_owned(), 7001),
            ("::1".to_owned(), 7002)
        ]
    );
    assert_eq!(cfg.cluster.read_from, ReadFrom::Any);
    assert_eq!(cfg.cluster.refresh_interval_ms, 30_000);
    assert_eq!(cfg.cluster.error_retry_attempts, 5);
    assert_eq!(
        parsed("redis+cluster://h1:7000?read_only=false")
            .cluster
            .read_from,
        ReadFrom::Primary
    );
    assert_rejected("redis://h?addr=h2:7001", "only with redis+cluster:// URLs");
    assert_rejected("redis+cluster://h?addr=h2:0", "0 is not a valid port");
    assert_rejected("redis+cluster://h?read_from=replica", "is not primary");
}

/// The header documents every option the parser accepts (brisk_config_set_url's comment), and
/// mentions no option the parser does not know.
#[test]
fn the_header_lists_every_option() {
    let header = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/include/brisk.h"));
    let start = header
        .find("Sets the server, and any other setting, from a URL")
        .expect("brisk_config_set_url's documentation");
    let end = start + header[start..].find("# Safety").unwrap();
    let doc = &header[start..end];
    for (name, _, _) in options::NAMES {
        assert!(
            doc.contains(&format!("`{name}`")),
            "brisk_config_set_url's documentation does not mention `{name}`"
        );
    }
    let schemes = [
        "redis://",
        "rediss://",
        "redis+cluster://",
        "rediss+cluster://",
        "unix://",
        "valkey://",
        "valkeys://",
        "valkey+cluster://",
        "valkeys+cluster://",
    ];
    for scheme in schemes {
        assert!(doc.contains(scheme), "the URL documentation omits {scheme}");
    }
    // Every `word` followed by `=`-able use in the options list is a known name or a value.
    let options = &doc[doc.find("Options (").unwrap()..];
    let known_words = [
        "ms",
        "s",
        "m",
        "h",
        "250ms",
        "1.5s",
        "dial_timeout=3",
        "true",
        "false",
        "1",
        "0",
        "yes",
        "no",
        "on",
        "off",
        "safe",
        "always",
        "none",
        "constant",
        "exponential",
        "full_jitter",
        "equal_jitter",
        "decorrelated_jitter",
        "primary",
        "replica_preferred",
        "any",
        "host:port",
        "default",
        "broadcast",
        "optin",
    ];
    for quoted in options.split('`').skip(1).step_by(2) {
        assert!(
            options::NAMES.iter().any(|(name, _, _)| *name == quoted)
                || known_words.contains(&quoted)
                || quoted.starts_with("BRISK_")
                || quoted.contains("://"),
            "the URL documentation names `{quoted}`, which is no option"
        );
    }
}

#[test]
fn booleans_in_options() {
    for (text, value) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ] {
        let url = format!("rediss://h?tls_insecure_skip_verify={text}");
        assert_eq!(parsed(&url).tls.insecure_skip_verify, value, "{url}");
    }
    for text in ["", "2", "maybe", "y", "tru"] {
        let url = format!("rediss://h?tls_insecure_skip_verify={text}");
        assert_rejected(&url, "is not a boolean");
    }
}

#[test]
fn several_options_and_empty_pairs() {
    let cfg = parsed("redis://h:1/2?&connect_timeout=10&&read_timeout=20&write_timeout=30&");
    assert_eq!(
        (
            cfg.connect_timeout_ms,
            cfg.read_timeout_ms,
            cfg.write_timeout_ms,
            cfg.db
        ),
        (10, 20, 30, 2)
    );
    // The last of a repeated option wins.
    assert_eq!(parsed("redis://h?pool_size=1&pool_size=2").pool.size, 2);
}

#[test]
fn unknown_options_are_named() {
    for (url, name) in [
        ("redis://h?foo=1", "\"foo\""),
        ("redis://h?connect_timeout=1&timeout=5", "\"timeout\""),
        ("redis://h?Connect_Timeout=1", "\"Connect_Timeout\""),
        ("redis://user:pw@h?sentinel_master=m", "\"sentinel_master\""),
        ("redis://h?%66oo=1", "\"foo\""),
    ] {
        let message = rejected(url);
        assert!(message.contains("unknown option"), "{url}: {message}");
        assert!(message.contains(name), "{url}: {message}");
    }
}

#[test]
fn bad_option_values() {
    for (query, why) in [
        ("connect_timeout=abc", "not a duration"),
        ("connect_timeout=-1", "not a duration"),
        ("connect_timeout=1.5", "not a whole number of milliseconds"),
        ("connect_timeout=", "not a duration"),
        ("read_timeout=4294967296", "out of range"),
        ("write_timeout=1e3", "not a duration"),
        ("command_deadline=x", "not a duration"),
        ("pool_size=0", "pool_size must be at least 1"),
        ("pool_size=many", "not a number"),
        ("pool_min_idle=-2", "not a number"),
        ("pool_max_wait=1sec", "not a duration"),
        ("pool_idle_timeout=%20", "not a duration"),
        ("pool_max_lifetime=99999999999", "out of range"),
        ("health_check_interval=on", "not a duration"),
        ("protocol=4", "protocol must be 2 or 3"),
        ("protocol=1", "protocol must be 2 or 3"),
        ("protocol=0", "protocol must be 2 or 3"),
        ("protocol=RESP3", "not a number"),
        ("max_retries=-1", "not a number"),
        (
            "client_name=has%20space",
            "client_name must not contain spaces",
        ),
        ("client_name=a%0Ab", "client_name must not contain spaces"),
        ("connect_timeout", "has no value"),
        ("db", "has no value"),
        ("client_name=%FF", "not valid UTF-8"),
        ("%FF=1", "not valid UTF-8"),
    ] {
        let url = format!("redis://h?{query}");
        let message = rejected(&url);
        assert!(
            message.contains(why),
            "{url}: message {message:?} does not say {why:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Failures: no partial updates, no password in messages
// ---------------------------------------------------------------------------------------------

#[test]
fn a_failed_apply_leaves_the_config_unchanged() {
    let mut cfg =
        parsed("rediss://alice:original@primary:6390/4?read_timeout=1234&client_name=app");
    let before = snapshot(&cfg);
    // Each fails at a different stage: after the credentials, after the endpoint, after the db,
    // after some options were applied.
    for url in [
        "redis://bob:changed@other:1/9?read_timeout=1&nope=1",
        "redis://bob:changed@other:1/9?read_timeout=1&protocol=4",
        "redis://bob:changed@other:1/x",
        "redis://bob:changed@other:0",
        "unix://bob:changed@/tmp/s?db=1&db=x",
        "redis+cluster://bob:changed@a:1,b:0",
        "redis://bob:changed@other#x",
        "ftp://bob:changed@other",
        "redis://u:%FF@other",
    ] {
        assert!(apply(&mut cfg, url).is_err(), "{url} accepted");
        assert_eq!(snapshot(&cfg), before, "{url} changed the config");
    }
}

#[test]
fn a_successful_apply_keeps_what_the_url_does_not_mention() {
    let mut cfg = Config::default();
    cfg.set_read_timeout_ms(777);
    cfg.set_client_name("kept").unwrap();
    apply(&mut cfg, "redis://h:1").unwrap();
    assert_eq!(cfg.read_timeout_ms, 777);
    assert_eq!(cfg.client_name.as_deref(), Some("kept"));
}

/// Malformed URLs that each carry `pw` as (or inside) the password.
fn malformed_urls_with_password(pw: &str) -> Vec<String> {
    [
        // Well-formed userinfo, malformed elsewhere.
        "redis://user:PW@h:abc",
        "redis://user:PW@h:0",
        "redis://user:PW@h:99999",
        "redis://user:PW@h/abc",
        "redis://user:PW@h?unknown=1",
        "redis://user:PW@h?connect_timeout=x",
        "redis://user:PW@h?protocol=4",
        "redis://user:PW@h?db",
        "redis://user:PW@[::1",
        "redis://user:PW@[zz]:1",
        "redis://user:PW@::1",
        "redis://user:PW@a,b",
        "redis://user:PW@h#x",
        "redis://user:PW%FF@h",
        "unix://user:PW@host/tmp/s",
        "unix://user:PW@",
        "http://user:PW@h",
        "redis:/user:PW@h",
        "user:PW@h:6379",
        // Characters that should have been percent-encoded in the password.
        "redis://user:PW/x@h",
        "redis://user:x/PW@h",
        "redis://user:PW?x@h",
        "redis://user:x?PW@h",
        "redis://user:x?PW=1@h",
        "redis://user:x?a=PW@h",
        "redis://user:x?a=1&PW@h",
        "redis://user:PW#x@h",
        "redis://:PW/1@h:6379/0",
        "redis://user:x/y/PW@h",
        "redis+cluster://user:PW/x@a:1,b:2",
        "redis+sentinel://user:PW/x@a:1,b:2/m",
        "redis+sentinel://user:PW@a:1,b:2",
        "redis+sentinel://user:PW@a:1/m/x",
        "redis+sentinel://a:1/m?sentinel_password=PW%FF",
        "redis://a:1?sentinel_password=PW",
        "unix://user:PW?x@/tmp/s",
        // A "://" after the password makes everything before it look like a scheme.
        "user:PW@h://x",
        "redis:PW://x",
    ]
    .iter()
    .map(|u| u.replace("PW", pw))
    .collect()
}

#[test]
fn messages_never_contain_the_password() {
    let pw = "S3cretPw";
    for url in malformed_urls_with_password(pw) {
        let mut cfg = Config::default();
        match apply(&mut cfg, &url) {
            Ok(()) => panic!("{url:?} accepted"),
            Err(e) => {
                assert_eq!(e.status(), Status::InvalidArgument, "{url}");
                assert!(!e.message().contains(pw), "{url:?}: {:?}", e.message());
                assert!(!format!("{e:?}").contains(pw), "{url:?}: {e:?}");
            }
        }
    }
}

#[test]
fn errors_about_text_that_may_be_the_password_name_the_part_and_the_fix() {
    for (url, part) in [
        ("redis://user:pa55/w0rd@h", "url: host: malformed"),
        ("redis://user:pa55?w0rd@h", "url: host: malformed"),
        ("redis://h/pa55?w0rd@h", "url: db: malformed"),
        ("redis://h?x=pa55@w0rd", "url: option: malformed"),
    ] {
        let message = rejected(url);
        assert!(message.starts_with(part), "{url}: {message}");
        assert!(message.contains("percent-encode"), "{url}: {message}");
        assert!(
            !message.contains("pa55") && !message.contains("w0rd"),
            "{url}: {message}"
        );
    }
    assert_rejected("user:pa55@w0rd://h", "url: scheme: unknown scheme");
}

#[test]
fn errors_still_quote_what_cannot_be_the_password() {
    // With credentials in place, text after the userinfo is quoted as usual.
    assert_rejected("redis://user:pw@h:abc", "\"abc\" is not a number");
    assert_rejected("redis://user:pw@h/abc", "\"abc\" is not a number");
    assert_rejected("redis://user:pw@h?nope=1", "unknown option \"nope\"");
    assert_rejected("redis://user:pw@[zz]", "\"zz\" is not an IPv6 address");
}

#[test]
fn secret_debug_is_redacted() {
    let cfg = parsed("redis://u:hunter2@h");
    assert!(!format!("{cfg:?}").contains("hunter2"));
    assert_eq!(password(&cfg), Some("hunter2"));
}

#[test]
fn a_plain_url_after_a_cluster_url_is_standalone_again() {
    let mut cfg = Config::default();
    apply(&mut cfg, "redis+cluster://a:7000,b:7001").unwrap();
    assert_eq!(cfg.mode, Mode::Cluster);
    apply(&mut cfg, "redis://c:7002").unwrap();
    assert_eq!(cfg.mode, Mode::Standalone);
    assert!(cfg.nodes.is_empty());
    assert_eq!(cfg.endpoint, tcp("c", 7002));
}

// ---------------------------------------------------------------------------------------------
// Client-side caching
// ---------------------------------------------------------------------------------------------

#[test]
fn client_cache_options() {
    let cfg = parsed(
        "redis://h?client_cache=1000&client_cache_ttl=60000&client_cache_max_bytes=1048576\
         &client_cache_mode=broadcast&client_cache_prefix=user%3A&client_cache_prefix=cfg:",
    );
    assert_eq!(cfg.cache.max_entries, 1000);
    assert_eq!(cfg.cache.ttl_ms, 60_000);
    assert_eq!(cfg.cache.max_bytes, 1 << 20);
    assert_eq!(cfg.cache.mode, crate::config::CacheMode::Broadcast);
    assert_eq!(cfg.cache.prefixes, [b"user:".to_vec(), b"cfg:".to_vec()]);
    // The TTL is on by default; 0 turns it off only when written.
    let on = parsed("redis://h?client_cache=10");
    assert_eq!(on.cache.ttl_ms, crate::config::DEFAULT_CACHE_TTL_MS);
    assert_eq!(
        parsed("redis://h?client_cache=10&client_cache_ttl=0")
            .cache
            .ttl_ms,
        0
    );
    assert_eq!(
        parsed("redis://h?client_cache_mode=OPTIN").cache.mode,
        crate::config::CacheMode::OptIn
    );
    assert_rejected("redis://h?client_cache_mode=lru", "client_cache_mode");
    assert_rejected("redis://h?client_cache_prefix=", "must not be empty");
    assert_rejected("redis://h?client_cache=-1", "client_cache");
}
