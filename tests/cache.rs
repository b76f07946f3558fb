//! Client-side caching (issue 10), against real servers and real faults. Each test names the
//! guarantee it proves (the numbers are the issue's and the header's):
//!
//! - 1: read-your-own-writes;
//! - 2: no stale read after an invalidation arrives (applied by a reader that waits on nothing
//!   else, and hits served only under a fresh lease);
//! - 3: a read in flight when its key is invalidated is answered but not kept;
//! - 4: flush on doubt;
//! - 5: bounded;
//! - 6: invalidations are not per DB.
//!
//! Timing bounds are generous (the machine is small and shared); waiting for a condition is
//! polling with a deadline. The 1 ms of guarantee 2 is the issue's own rule, checked as stated.

mod support;

use brisk::stats::Stat;
use brisk::{Client, Config, Reply};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    FaultProxy, RedisCluster, RedisServer, append, call_async, cmd, ok, session_cmd, text,
    wait_until,
};

// ---------------------------------------------------------------------------------------------
// Helpers

const WAIT: Duration = Duration::from_secs(10);

/// A config for `server` with the cache on (`entries` entries, default TTL).
fn cached_config(server: &RedisServer, entries: u32) -> Config {
    let mut config = server.config();
    config.cache.max_entries = entries;
    config
}

fn cached(server: &RedisServer) -> Client {
    Client::new(&cached_config(server, 10_000)).expect("a cached client")
}

fn plain(server: &RedisServer) -> Client {
    Client::new(&server.config()).expect("a client")
}

fn get(client: &Client, key: &str) -> Option<String> {
    let reply = ok(client, &["GET", key]);
    reply.as_str().map(str::to_owned)
}

fn hits(client: &Client) -> u64 {
    client.stat(Stat::CacheHits)
}

/// Reads `key` until a read is a hit (the first read fills the entry; a hit right after a
/// quiet spell may still go to the server while the invalidation thread wakes up, see
/// `store::Leases`); its value.
#[track_caller]
fn warm(client: &Client, key: &str) -> Option<String> {
    let value = get(client, key);
    let mut before = hits(client);
    let hit = wait_until(WAIT, || {
        assert_eq!(get(client, key), value);
        let now = hits(client);
        std::mem::replace(&mut before, now) < now
    });
    assert!(hit, "{key} was not kept");
    value
}

/// Reads `key` through `brisk_command_async` until a read is a hit, each read answering what a
/// blocking read answers (the first async read may fill the entry over the node's multiplexed
/// connection); its value.
#[track_caller]
fn warm_async(client: &Client, key: &str) -> Option<String> {
    let read = |c: &Client| get_async(c, key).unwrap().as_str().map(str::to_owned);
    let value = read(client);
    assert_eq!(
        value,
        get(client, key),
        "{key}: async and blocking reads differ"
    );
    let mut before = hits(client);
    let hit = wait_until(WAIT, || {
        assert_eq!(read(client), value);
        let now = hits(client);
        std::mem::replace(&mut before, now) < now
    });
    assert!(hit, "{key}: no async read was a hit");
    value
}

/// What the cache drops, as its `CacheInvalidate` events say: (reason, batch size).
type Drops = Arc<Mutex<Vec<(String, u32)>>>;

/// Records `config`'s client's cache drops.
fn record_drops(config: &mut Config) -> Drops {
    let drops = Drops::default();
    let seen = drops.clone();
    config.events =
        brisk::events::HandlerSlot(Some(Arc::new(move |e: &brisk::events::Event<'_>| {
            if e.kind == brisk::events::EventKind::CacheInvalidate {
                let reason = String::from_utf8_lossy(e.command).into_owned();
                seen.lock().unwrap().push((reason, e.batch_size));
            }
        })));
    drops
}

fn stop_on_drop(stop: &AtomicBool) -> impl Drop + '_ {
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    Stop(stop)
}

// ---------------------------------------------------------------------------------------------
// What is cached

/// The key is the whole command: HGET h f1 and HGET h f2 are different entries, each served
/// from memory after its first read.
#[test]
fn reads_are_served_from_memory_keyed_by_the_whole_command() {
    let server = RedisServer::start();
    let client = cached(&server);
    ok(&client, &["HSET", "h", "f1", "one", "f2", "two"]);
    assert_eq!(warm(&client, "missing"), None);
    let hget = |field: &str| text(&ok(&client, &["HGET", "h", field]));
    let mut hits_before = hits(&client);
    for field in ["f1", "f2"] {
        // Kept separately: each is a miss first, then hits.
        assert!(wait_until(WAIT, || {
            let _ = hget(field);
            let now = hits(&client);
            std::mem::replace(&mut hits_before, now) < now
        }));
    }
    for _ in 0..100 {
        assert_eq!(hget("f1"), "one");
        assert_eq!(hget("f2"), "two");
    }
    assert_eq!(client.stat(Stat::CacheEntries), 3);
    assert!(client.stat(Stat::CacheBytes) > 0);
    assert!(client.stat(Stat::CacheMisses) >= 3);
}

/// TIME, RANDOMKEY, SRANDMEMBER, TTL, SCAN... are never answered from memory.
#[test]
fn time_and_random_reads_are_never_cached() {
    let server = RedisServer::start();
    let client = cached(&server);
    ok(&client, &["SADD", "s", "a", "b", "c"]);
    ok(&client, &["SET", "k", "v", "EX", "100"]);
    let commands: [&[&str]; 6] = [
        &["TIME"],
        &["RANDOMKEY"],
        &["SRANDMEMBER", "s"],
        &["TTL", "k"],
        &["SCAN", "0"],
        &["OBJECT", "IDLETIME", "k"],
    ];
    for command in commands {
        for _ in 0..5 {
            ok(&client, command);
        }
    }
    assert_eq!(hits(&client), 0);
    assert_eq!(client.stat(Stat::CacheEntries), 0);
    // TIME moves on.
    let a = ok(&client, &["TIME"]);
    assert!(wait_until(WAIT, || {
        let b = ok(&client, &["TIME"]);
        format!("{b:?}") != format!("{a:?}")
    }));
}

// ---------------------------------------------------------------------------------------------
// Guarantee 1: read-your-own-writes

/// Guarantee 1: every write path of this client (command, async command, pipeline,
/// transaction, session, MULTI in a session, multi-key writes, scripts) drops the entries of
/// its keys before its reply is handed back: the next read is never the old value.
#[test]
fn own_writes_are_always_read_back() {
    let server = RedisServer::start();
    let client = cached(&server);
    let entries = |c: &Client| c.stat(Stat::CacheEntries);
    // Written once: the server's own invalidation of this client's write comes back later and
    // may drop an entry filled in between (harmless, but it would blur the count below).
    ok(&client, &["SET", "other", "x"]);
    for round in 0..300 {
        let v = round.to_string();
        let path = round % 7;
        warm(&client, "k");
        warm(&client, "other");
        let before = entries(&client);
        // k's entry goes before the write's reply is handed back (the read-back below proves
        // it), and nothing else goes. The count may also stay: the server's own invalidation
        // of the previous round's write may arrive late and have dropped k's refilled entry
        // already (harmless, and not this client's write).
        let check = |when: &str| {
            let now = entries(&client);
            assert!(
                now == before - 1 || now == before,
                "path {path} {when}: {before} entries before, {now} after"
            );
        };
        match path {
            0 => {
                ok(&client, &["SET", "k", &v]);
                check("SET");
            }
            1 => {
                call_async(&client, &["SET", "k", &v]).unwrap();
                check("async SET");
            }
            2 => {
                let mut p = client.pipeline();
                append(&mut p, &["GET", "k"]).unwrap();
                append(&mut p, &["SET", "k", &v]).unwrap();
                p.exec().unwrap();
                check("pipeline");
            }
            3 => {
                let mut t = client.transaction();
                append(&mut t, &["SET", "k", &v]).unwrap();
                t.exec().unwrap();
                check("transaction");
            }
            4 => {
                let mut s = client.session().unwrap();
                session_cmd(&mut s, &["SET", "k", &v]).unwrap();
                check("session");
                // Before the session even ends.
                assert_eq!(get(&client, "k").as_deref(), Some(v.as_str()));
            }
            5 => {
                let mut s = client.session().unwrap();
                session_cmd(&mut s, &["MULTI"]).unwrap();
                session_cmd(&mut s, &["SET", "k", &v]).unwrap();
                session_cmd(&mut s, &["EXEC"]).unwrap();
                check("MULTI/EXEC in a session");
            }
            _ => {
                ok(
                    &client,
                    &["EVAL", "redis.call('SET', KEYS[1], ARGV[1])", "1", "k", &v],
                );
                check("EVAL");
            }
        }
        assert_eq!(
            get(&client, "k").as_deref(),
            Some(v.as_str()),
            "path {path}"
        );
        assert_eq!(get(&client, "other").as_deref(), Some("x"));
    }
    // Multi-key writes drop every key they name; MGET depends on each of its keys.
    ok(&client, &["MSET", "a", "1", "b", "1"]);
    warm(&client, "a");
    let mget = |c: &Client| format!("{:?}", ok(c, &["MGET", "a", "b"]));
    mget(&client);
    ok(&client, &["MSET", "b", "2", "c", "3"]);
    assert_eq!(
        mget(&client),
        format!("{:?}", ok(&plain(&server), &["MGET", "a", "b"]))
    );
    ok(&client, &["DEL", "a"]);
    assert_eq!(get(&client, "a"), None);
    // FLUSHALL by this client empties the cache.
    warm(&client, "b");
    assert!(client.stat(Stat::CacheEntries) > 0);
    ok(&client, &["FLUSHALL"]);
    assert_eq!(client.stat(Stat::CacheEntries), 0);
    assert_eq!(get(&client, "b"), None);
}

/// Guarantee 1 for scripts that write keys they do not declare (standalone allows it): brisk
/// cannot name those keys, so the next hit waits for the server's word (a lease PING sent
/// after the script's reply, which comes back only after the script's invalidations): the
/// read right after the script is the new value, every time, whether the script ran as a
/// command, an async command, in a pipeline or in a session's MULTI/EXEC.
#[test]
fn a_script_that_writes_undeclared_keys_is_read_back() {
    let server = RedisServer::start();
    let client = cached(&server);
    ok(&client, &["SET", "k", "0"]);
    ok(&client, &["SET", "other", "x"]);
    let mut stale = Vec::new();
    for round in 1..=1000u32 {
        let v = round.to_string();
        warm(&client, "k");
        warm(&client, "other");
        let script = "redis.call('SET', 'k', ARGV[1])";
        match round % 4 {
            0 => {
                ok(&client, &["EVAL", script, "0", &v]);
            }
            3 => {
                let mut s = client.session().unwrap();
                session_cmd(&mut s, &["MULTI"]).unwrap();
                session_cmd(&mut s, &["EVAL", script, "0", &v]).unwrap();
                session_cmd(&mut s, &["EXEC"]).unwrap();
            }
            1 => {
                call_async(&client, &["EVAL", script, "0", &v]).unwrap();
            }
            _ => {
                let mut p = client.pipeline();
                append(&mut p, &["EVAL", script, "0", &v]).unwrap();
                p.exec().unwrap();
            }
        }
        if get(&client, "k").as_deref() != Some(v.as_str()) {
            stale.push(round);
        }
    }
    assert!(stale.is_empty(), "stale after rounds {stale:?}");
    // Hits go on afterwards (the scripts did not empty the cache).
    let before = hits(&client);
    get(&client, "other");
    assert!(wait_until(WAIT, || {
        get(&client, "other");
        hits(&client) > before
    }));
}

/// Guarantee 1 for a write whose key the server's table cannot point at (SORT's STORE key may
/// be anywhere: its key spec is `unknown`): after it, hits wait for the server's word, and the
/// read right after is the sorted list, every time.
#[test]
fn sort_store_is_read_back() {
    let server = RedisServer::start();
    let client = cached(&server);
    let other = plain(&server);
    let lrange = |c: &Client| format!("{:?}", ok(c, &["LRANGE", "dst", "0", "-1"]));
    let mut stale = Vec::new();
    for round in 1..=300u32 {
        let v = round.to_string();
        ok(&client, &["DEL", "dst", "src"]);
        ok(&client, &["RPUSH", "dst", "old"]);
        ok(&client, &["RPUSH", "src", &v]);
        lrange(&client);
        assert!(wait_until(WAIT, || {
            let before = hits(&client);
            lrange(&client);
            hits(&client) > before
        }));
        ok(&client, &["SORT", "src", "ALPHA", "STORE", "dst"]);
        if lrange(&client) != lrange(&other) {
            stale.push(round);
        }
    }
    assert!(stale.is_empty(), "stale after rounds {stale:?}");
}

/// Guarantee 1 for a write that fails after it may have been applied (here: a script that
/// writes, then errors): its keys are dropped all the same.
#[test]
fn a_failed_write_still_drops_its_keys() {
    let server = RedisServer::start();
    let client = cached(&server);
    ok(&client, &["SET", "k", "old"]);
    warm(&client, "k");
    let script = "redis.call('SET', KEYS[1], 'new'); return redis.call('INCR', KEYS[1])";
    assert!(cmd(&client, &["EVAL", script, "1", "k"]).is_err());
    assert_eq!(get(&client, "k").as_deref(), Some("new"));
}

// ---------------------------------------------------------------------------------------------
// Guarantee 2: other clients' writes

/// Guarantee 2, round by round: another client's write reaches this client's cache as an
/// invalidation, applied as it arrives; from then on the next read is the new value, every
/// time. (The invalidation's travel time is measured, not assumed.)
#[test]
fn another_clients_write_is_seen_by_the_next_read() {
    let server = RedisServer::start();
    let client = cached(&server);
    let writer = plain(&server);
    ok(&writer, &["SET", "k", "0"]);
    let mut travel = Vec::new();
    let mut stale_right_after_ack = 0;
    for round in 1..=2000u32 {
        warm(&client, "k");
        let invalidations = client.stat(Stat::CacheInvalidations);
        let v = round.to_string();
        ok(&writer, &["SET", "k", &v]);
        let acked = Instant::now();
        if get(&client, "k").as_deref() != Some(v.as_str()) {
            stale_right_after_ack += 1;
        }
        let arrived = loop {
            if client.stat(Stat::CacheInvalidations) > invalidations {
                break acked.elapsed();
            }
            assert!(
                acked.elapsed() < WAIT,
                "round {round}: no invalidation arrived"
            );
            std::thread::yield_now();
        };
        travel.push(arrived);
        assert_eq!(
            get(&client, "k").as_deref(),
            Some(v.as_str()),
            "round {round}"
        );
    }
    travel.sort();
    println!(
        "invalidation applied within (ack -> counted) p50 {:?} p99 {:?} max {:?}; a read \
         right after the ack was the old value {stale_right_after_ack} times in 2000",
        travel[travel.len() / 2],
        travel[travel.len() * 99 / 100],
        travel[travel.len() - 1]
    );
}

/// Guarantee 2 under concurrency (the issue's stress): 8 reader threads on one cached client,
/// 2 writer threads INCRementing shared keys through another client. Every value a reader
/// sees is at least the last value acknowledged to a writer more than 1 ms before that read
/// began; at least 100,000 reads.
#[test]
fn no_stale_read_under_concurrent_writers() {
    concurrent_writers_stress(Reads::Blocking);
}

/// [`no_stale_read_under_concurrent_writers`] with 4 of the 8 readers on the async path
/// (`brisk_command_async`): entries filled and hit by both paths.
#[test]
fn no_stale_async_or_blocking_read_under_concurrent_writers() {
    concurrent_writers_stress(Reads::Mixed);
}

fn concurrent_writers_stress(reads_via: Reads) {
    let server = RedisServer::start();
    let client = Arc::new(cached(&server));
    let writer = Arc::new(plain(&server));
    const KEYS: usize = 4;
    for k in 0..KEYS {
        ok(&writer, &["SET", &format!("counter:{k}"), "0"]);
    }
    // Per key, the recent acknowledgements: (when, value).
    type Log = Mutex<Vec<(Instant, i64)>>;
    let acks: Arc<Vec<Log>> = Arc::new((0..KEYS).map(|_| Mutex::new(Vec::new())).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(Mutex::new(Vec::<String>::new()));
    let margin = Duration::from_millis(1);
    std::thread::scope(|scope| {
        let _stop = stop_on_drop(&stop);
        for w in 0..2 {
            let (writer, acks, stop) = (writer.clone(), acks.clone(), stop.clone());
            scope.spawn(move || {
                let mut i = w;
                while !stop.load(SeqCst) {
                    let k = i % KEYS;
                    i += 1;
                    let value = ok(&writer, &["INCR", &format!("counter:{k}")])
                        .as_integer()
                        .unwrap();
                    let now = Instant::now();
                    let mut log = acks[k].lock().unwrap();
                    log.push((now, value));
                    if log.len() > 4096 {
                        log.drain(..2048);
                    }
                }
            });
        }
        let readers: Vec<_> = (0..8)
            .map(|r| {
                let (client, acks, stop, reads, stale) = (
                    client.clone(),
                    acks.clone(),
                    stop.clone(),
                    reads.clone(),
                    stale.clone(),
                );
                scope.spawn(move || {
                    let mut i = r;
                    while !stop.load(SeqCst) {
                        let k = i % KEYS;
                        i += 1;
                        let started = Instant::now();
                        let key = format!("counter:{k}");
                        let reply = match reads_via == Reads::Mixed && r % 2 == 1 {
                            true => get_async(&client, &key).unwrap(),
                            false => ok(&client, &["GET", &key]),
                        };
                        let seen: i64 = text(&reply).parse().unwrap();
                        let floor = {
                            let log = acks[k].lock().unwrap();
                            log.iter()
                                .rev()
                                .find(|(at, _)| *at + margin < started)
                                .map_or(0, |(_, v)| *v)
                        };
                        if seen < floor {
                            let late = {
                                let log = acks[k].lock().unwrap();
                                log.iter()
                                    .find(|(_, v)| *v == seen + 1)
                                    .map(|(at, _)| started.duration_since(*at))
                            };
                            stale.lock().unwrap().push(format!(
                                "counter:{k}: read {seen}, but {floor} was acknowledged more \
                                 than 1 ms before the read began (the next value {late:?} before)"
                            ));
                        }
                        reads.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(300);
        while reads.load(SeqCst) < 150_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, SeqCst);
        for r in readers {
            r.join().unwrap();
        }
    });
    let reads = reads.load(SeqCst);
    let stale = stale.lock().unwrap();

    println!(
        "{reads} reads, {} hits, {} misses, {} invalidations",
        client.stat(Stat::CacheHits),
        client.stat(Stat::CacheMisses),
        client.stat(Stat::CacheInvalidations)
    );
    assert!(reads >= 100_000, "only {reads} reads");
    assert!(
        stale.is_empty(),
        "{} stale reads: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    assert!(client.stat(Stat::CacheHits) > 0, "the cache was never used");
}

// ---------------------------------------------------------------------------------------------
// Guarantee 3: the in-flight race

/// A large value read through a proxy that slows every connection's replies down: the read is
/// processed by the server, its reply still on its way, when another client's write sends an
/// invalidation (a small frame, through on the invalidation connection well before the reply).
fn in_flight_read(async_path: bool) {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", server.port()).parse().unwrap());
    let mut config = Config::default();
    config.set_url(&proxy.url()).unwrap();
    config.cache.max_entries = 100;
    config.set_client_name("cached-reader").unwrap();
    config.read_timeout_ms = 60_000;
    let client = Client::new(&config).unwrap();
    let writer = plain(&server);
    let old = "o".repeat(2 << 20);
    ok(&writer, &["SET", "big", &old]);
    // Warm: the data connection is tracked, the entry filled; then invalidated.
    warm(&client, "big");
    ok(&writer, &["SET", "big", &old]);
    assert!(wait_until(WAIT, || client.stat(Stat::CacheEntries) == 0));

    proxy.set_delay(Duration::from_millis(5));
    // GETRANGE (not the GET used above): CLIENT LIST then shows when the server has run it.
    let read = ["GETRANGE", "big", "0", "-1"];
    // The control: the same slow read with no write meanwhile is kept.
    let control = match async_path {
        false => ok(&client, &read),
        true => call_async(&client, &read).unwrap(),
    };
    assert_eq!(control.as_bytes().map(<[u8]>::len), Some(old.len()));
    assert_eq!(
        client.stat(Stat::CacheEntries),
        1,
        "the control read was not kept"
    );
    ok(&writer, &["SET", "big", &old]);
    assert!(wait_until(WAIT, || client.stat(Stat::CacheEntries) == 0));
    // The connection's last command is something else again (CLIENT LIST then shows
    // cmd=getrange only once the next read has run).
    match async_path {
        false => ok(&client, &["GET", "unrelated"]),
        true => call_async(&client, &["GET", "unrelated"]).unwrap(),
    };
    let invalidations = client.stat(Stat::CacheInvalidations);
    let reader = {
        let client = &client;
        move || -> Reply {
            match async_path {
                false => ok(client, &read),
                true => call_async(client, &read).unwrap(),
            }
        }
    };
    std::thread::scope(|scope| {
        let read = scope.spawn(reader);
        // The server has run the GET (its reply is on its way through the proxy).
        assert!(wait_until(WAIT, || {
            server
                .cli(&["CLIENT", "LIST"])
                .lines()
                .any(|l| l.contains("name=cached-reader") && l.contains("cmd=getrange"))
        }));
        ok(&writer, &["SET", "big", "new"]);
        let reply = read.join().unwrap();
        // Answered with what the server read...
        assert_eq!(reply.as_bytes().map(<[u8]>::len), Some(old.len()));
    });
    proxy.heal();
    // ...but not kept: no entry was ever filled (the invalidation dropped a pending read, not
    // an entry), and the next read is the new value.
    assert_eq!(client.stat(Stat::CacheEntries), 1, "only GET unrelated");
    assert_eq!(client.stat(Stat::CacheInvalidations), invalidations);
    assert_eq!(get(&client, "big").as_deref(), Some("new"));
}

/// Guarantee 3, blocking path.
#[test]
fn in_flight_read_is_answered_not_kept() {
    in_flight_read(false);
}

/// Guarantee 3, async path.
#[test]
fn in_flight_async_read_is_answered_not_kept() {
    in_flight_read(true);
}

// ---------------------------------------------------------------------------------------------
// Guarantee 6

/// Guarantee 6: invalidations are not per DB on the server: a write in DB 3 (by another
/// client, or by this one in a session) drops entries read in DB 0.
#[test]
fn a_write_in_another_db_invalidates() {
    let server = RedisServer::start();
    let client = cached(&server);
    ok(&client, &["SET", "k", "db0"]);
    warm(&client, "k");
    let mut other = server.config();
    other.db = 3;
    let other = Client::new(&other).unwrap();
    let invalidations = client.stat(Stat::CacheInvalidations);
    ok(&other, &["SET", "k", "db3"]);
    assert!(wait_until(WAIT, || client.stat(Stat::CacheInvalidations)
        > invalidations));
    assert_eq!(client.stat(Stat::CacheEntries), 0);
    // Still DB 0's value, read again from the server.
    assert_eq!(get(&client, "k").as_deref(), Some("db0"));
    // The same through this client's own session in DB 3.
    warm(&client, "k");
    let mut s = client.session().unwrap();
    session_cmd(&mut s, &["SELECT", "3"]).unwrap();
    session_cmd(&mut s, &["SET", "k", "db3 again"]).unwrap();
    drop(s);
    assert_eq!(client.stat(Stat::CacheEntries), 0);
    assert_eq!(get(&client, "k").as_deref(), Some("db0"));
}

// ---------------------------------------------------------------------------------------------
// Guarantee 4: flush on doubt

/// `id=` of the connection the cached client's data connections redirect their invalidations
/// to (its invalidation connection), as the server sees it.
fn listener_id(server: &RedisServer, name: &str) -> Option<String> {
    server.cli(&["CLIENT", "LIST"]).lines().find_map(|line| {
        let field = |f: &str| support::client_info_field(line, f);
        (line.contains(&format!("name={name} ")) && field("redir") != "-1").then(|| field("redir"))
    })
}

/// The `id=` of the cached client's data connections whose last command was `command`.
fn data_connection_ids(server: &RedisServer, name: &str, command: &str) -> Vec<String> {
    server
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|line| line.contains(&format!("name={name} ")))
        .filter(|line| support::client_info_field(line, "cmd") == command)
        .map(|line| support::client_info_field(line, "id"))
        .collect()
}

fn named_cached(server: &RedisServer, name: &str) -> Client {
    let mut config = cached_config(server, 10_000);
    config.set_client_name(name).unwrap();
    Client::new(&config).unwrap()
}

/// After a write by `writer`, waits for the cached client to have applied its invalidation
/// (the tracking is up again after a fault).
#[track_caller]
fn assert_tracked_again(client: &Client, writer: &Client, key: &str, value: &str) {
    warm(client, key);
    let invalidations = client.stat(Stat::CacheInvalidations);
    ok(writer, &["SET", key, value]);
    let acknowledged = Instant::now();
    assert!(
        wait_until(WAIT, || client.stat(Stat::CacheInvalidations)
            > invalidations),
        "no invalidation after the fault: tracking was not set up again"
    );
    // The counter may have moved for another reason (a late report of the fault); guarantee 2
    // covers reads from 1 ms after the write's acknowledgement, so read no earlier.
    assert!(wait_until(WAIT, || acknowledged.elapsed() >= Duration::from_millis(2)));
    assert_eq!(get(client, key).as_deref(), Some(value));
}

/// Guarantee 4: CLIENT KILL of the invalidation connection drops every entry before the next
/// hit; while it is down nothing is kept; once it is back, tracking is set up again (a write
/// by another client invalidates again).
#[test]
fn killing_the_invalidation_connection_drops_everything() {
    let server = RedisServer::start();
    let client = named_cached(&server, "killed");
    let writer = plain(&server);
    ok(&writer, &["SET", "k", "old"]);
    warm(&client, "k");
    let listener = listener_id(&server, "killed").expect("an invalidation connection");
    server.cli(&["CLIENT", "KILL", "ID", &listener]);
    assert!(wait_until(WAIT, || client.stat(Stat::CacheEntries) == 0));
    // Nobody tracks for this client now: the write invalidates nothing, and the read is new.
    ok(&writer, &["SET", "k", "new"]);
    assert_eq!(get(&client, "k").as_deref(), Some("new"));
    // A new invalidation connection, which the next read's data connection is tracked to.
    assert!(wait_until(WAIT, || {
        get(&client, "k");
        listener_id(&server, "killed").is_some_and(|id| id != listener)
    }));
    assert_tracked_again(&client, &writer, "k", "newer");
}

/// Guarantee 4: a data connection the server closes (CLIENT KILL, its idle timeout) takes
/// what the server tracked for it: the entries read through it go at once, although no
/// invalidation will ever come for them.
#[test]
fn a_data_connection_closed_by_the_server_takes_its_entries() {
    let server = RedisServer::start();
    let client = named_cached(&server, "data");
    let writer = plain(&server);
    ok(&writer, &["SET", "k", "old"]);
    warm(&client, "k");
    let ids = data_connection_ids(&server, "data", "get");
    assert_eq!(ids.len(), 1, "one pooled connection read k");
    let invalidations = client.stat(Stat::CacheInvalidations);
    server.cli(&["CLIENT", "KILL", "ID", &ids[0]]);
    assert!(wait_until(WAIT, || client.stat(Stat::CacheInvalidations)
        > invalidations));
    assert_eq!(client.stat(Stat::CacheEntries), 0);
    ok(&writer, &["SET", "k", "new"]);
    assert_eq!(get(&client, "k").as_deref(), Some("new"));
    assert_tracked_again(&client, &writer, "k", "newer");
}

/// Guarantee 4: a FLUSHALL by another client is a null invalidation: everything goes.
#[test]
fn another_clients_flushall_empties_the_cache() {
    let server = RedisServer::start();
    let client = cached(&server);
    let writer = plain(&server);
    ok(&writer, &["MSET", "a", "1", "b", "2"]);
    warm(&client, "a");
    warm(&client, "b");
    ok(&writer, &["FLUSHALL"]);
    assert!(wait_until(WAIT, || client.stat(Stat::CacheEntries) == 0));
    assert_eq!(get(&client, "a"), None);
}

/// Guarantee 4: a primary that turns replica (a failover) drops what was read there, although
/// no invalidation comes: its new primary acknowledges writes it has not seen yet, and it sends
/// their invalidations only once it has caught up (here never: its new primary accepts the
/// connection and never answers). The invalidation connection's lease probe (HELLO) says the
/// role changed. Promoted again, it drops again, and tracking goes on.
#[test]
fn a_primary_turned_replica_drops_what_was_read_there() {
    let server = RedisServer::start();
    let mut config = cached_config(&server, 1000);
    let drops = record_drops(&mut config);
    let client = Client::new(&config).unwrap();
    let writer = plain(&server);
    ok(&writer, &["SET", "k", "v"]);
    warm(&client, "k");
    let topology = |n: usize| {
        wait_until(WAIT, || {
            let drops = drops.lock().unwrap();
            drops
                .iter()
                .filter(|(reason, _)| reason == "TOPOLOGY")
                .count()
                >= n
        })
    };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    server.cli(&["REPLICAOF", "127.0.0.1", &port]);
    assert!(topology(1), "no drop for the role change: {drops:?}");
    assert_eq!(client.stat(Stat::CacheEntries), 0);
    // A replica still serves reads (standalone): what it reads is its own now.
    assert_eq!(warm(&client, "k").as_deref(), Some("v"));
    server.cli(&["REPLICAOF", "NO", "ONE"]);
    assert!(topology(2), "no drop for the promotion: {drops:?}");
    assert_tracked_again(&client, &writer, "k", "after");
}

/// Guarantee 4: a session command that changes what the server tracks for its connection
/// (RESET, CLIENT TRACKING OFF, HELLO, AUTH, SELECT) drops everything before it returns.
#[test]
fn a_session_that_changes_tracking_drops_everything() {
    let server = RedisServer::start();
    let client = cached(&server);
    ok(&client, &["SET", "k", "v"]);
    for command in [
        &["RESET"][..],
        &["CLIENT", "TRACKING", "OFF"],
        &["HELLO", "3"],
        &["SELECT", "0"],
    ] {
        warm(&client, "k");
        let mut session = client.session().unwrap();
        session_cmd(&mut session, command).unwrap();
        assert_eq!(client.stat(Stat::CacheEntries), 0, "{command:?}");
    }
}

/// Readers and a writer around a fault. The writer SETs increasing values (`SET key n`)
/// through its own client, logging each acknowledgement; every read that succeeds must be at
/// least the value acknowledged more than 1 ms before it began (reads may fail during the
/// fault). Returns the reads checked.
fn no_stale_read_around(
    client: &Client,
    writer: &Client,
    keys: usize,
    readers: usize,
    fault: impl FnOnce(),
) -> u64 {
    let keys: Vec<String> = (0..keys).map(|k| format!("f:{k}")).collect();
    let write = |key: &str, n: i64| cmd(writer, &["SET", key, &n.to_string()]).is_ok();
    no_stale_read_of(client, &keys, &write, readers, fault)
}

/// [`no_stale_read_around`] with the keys given and `write(key, n)` (true when `n` was
/// acknowledged, so that a read must never see less than it from 1 ms later on).
fn no_stale_read_of(
    client: &Client,
    keys: &[String],
    write: &(dyn Fn(&str, i64) -> bool + Sync),
    readers: usize,
    fault: impl FnOnce(),
) -> u64 {
    no_stale_read_via(client, keys, write, readers, Reads::Blocking, fault)
}

/// Which path the readers of [`no_stale_read_via`] read through.
#[derive(Clone, Copy, PartialEq)]
enum Reads {
    /// `brisk_command` (pooled connections, tracked one by one).
    Blocking,
    /// Every other reader through `brisk_command_async` (the node's multiplexed connection),
    /// the rest blocking: both paths fill and hit the same entries.
    Mixed,
}

/// A GET through `brisk_command_async`, waited for (refused or failed: an error, as a
/// blocking read during a fault would be).
fn get_async(client: &Client, key: &str) -> brisk::Result<Reply> {
    let (tx, rx) = std::sync::mpsc::channel();
    let words: [&[u8]; 2] = [b"GET", key.as_bytes()];
    let args = brisk::Args::from_slices(&words);
    client.command_async_with(&args, move |outcome| {
        let _ = tx.send(outcome);
    })?;
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the async read's callback within 60 s")
}

/// [`no_stale_read_of`], the readers reading through `reads`.
fn no_stale_read_via(
    client: &Client,
    keys: &[String],
    write: &(dyn Fn(&str, i64) -> bool + Sync),
    readers: usize,
    reads_via: Reads,
    fault: impl FnOnce(),
) -> u64 {
    type Log = Mutex<Vec<(Instant, i64)>>;
    let acks: Vec<Log> = keys.iter().map(|_| Mutex::new(vec![])).collect();
    for key in keys {
        assert!(
            wait_until(Duration::from_secs(60), || write(key, 0)),
            "the first write of {key}"
        );
    }
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let stale = Mutex::new(Vec::<String>::new());
    std::thread::scope(|scope| {
        let _stop = stop_on_drop(&stop);
        scope.spawn(|| {
            let mut n = 0i64;
            while !stop.load(SeqCst) {
                n += 1;
                let k = n as usize % keys.len();
                if write(&keys[k], n) {
                    acks[k].lock().unwrap().push((Instant::now(), n));
                }
            }
        });
        for r in 0..readers {
            let (acks, stop, reads, stale) = (&acks, &stop, &reads, &stale);
            scope.spawn(move || {
                let mut i = r;
                while !stop.load(SeqCst) {
                    let k = i % keys.len();
                    i += 1;
                    let started = Instant::now();
                    let reply = match reads_via == Reads::Mixed && r % 2 == 1 {
                        true => get_async(client, &keys[k]),
                        false => cmd(client, &["GET", &keys[k]]),
                    };
                    let Ok(reply) = reply else {
                        continue;
                    };
                    let seen: i64 = reply.as_str().and_then(|v| v.parse().ok()).unwrap_or(-1);
                    let floor = acks[k]
                        .lock()
                        .unwrap()
                        .iter()
                        .rev()
                        .find(|(at, _)| *at + Duration::from_millis(1) < started)
                        .map_or(0, |(_, v)| *v);
                    // A value of another key's turn is fine: only going back is stale.
                    if seen < floor {
                        stale
                            .lock()
                            .unwrap()
                            .push(format!("{}: read {seen}, {floor} acknowledged", keys[k]));
                    }
                    reads.fetch_add(1, SeqCst);
                }
            });
        }
        // Some reads before the fault, then the fault, then reads after it.
        let settle = |n: u64| {
            let target = reads.load(SeqCst) + n;
            assert!(
                wait_until(Duration::from_secs(180), || reads.load(SeqCst) >= target),
                "the readers stalled"
            );
        };
        settle(5_000);
        fault();
        let hits = client.stat(Stat::CacheHits);
        settle(20_000);
        stop.store(true, SeqCst);
        assert!(
            client.stat(Stat::CacheHits) > hits,
            "no hit after the fault: the cache never came back"
        );
    });
    let stale = stale.into_inner().unwrap();
    assert!(
        stale.is_empty(),
        "{} stale reads: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    reads.into_inner()
}

/// Guarantee 4 under readers: CLIENT KILL of the invalidation connection.
#[test]
fn no_stale_read_across_a_killed_invalidation_connection() {
    let server = RedisServer::start();
    let client = named_cached(&server, "killed");
    let writer = plain(&server);
    no_stale_read_around(&client, &writer, 4, 4, || {
        let listener = listener_id(&server, "killed").expect("an invalidation connection");
        server.cli(&["CLIENT", "KILL", "ID", &listener]);
    });
    assert_tracked_again(&client, &writer, "k", "after");
}

/// The `id=` of every data connection of the cached client named `name` (not its invalidation
/// connection): pooled connections and the multiplexed one.
fn all_data_connection_ids(server: &RedisServer, name: &str) -> Vec<String> {
    let listener = listener_id(server, name);
    server
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|line| line.contains(&format!("name={name} ")))
        .map(|line| support::client_info_field(line, "id"))
        .filter(|id| Some(id) != listener.as_ref())
        .collect()
}

/// Guarantees 2 and 4 on the async path, beside the blocking one: half the readers read
/// through `brisk_command_async` (the node's multiplexed connection, its tracking re-asserted
/// ahead of each cached read), half through `brisk_command`, while another client writes.
/// The server then kills every data connection of the cached client (what it tracked for them
/// is gone, and no invalidation will ever come for it): the entries go, no read is ever stale,
/// hits come back.
#[test]
fn no_stale_async_or_blocking_read_across_killed_data_connections() {
    let server = RedisServer::start();
    let client = named_cached(&server, "mixed");
    let writer = plain(&server);
    ok(&writer, &["SET", "a", "1"]);
    assert_eq!(warm_async(&client, "a").as_deref(), Some("1"));
    let keys: Vec<String> = (0..4).map(|k| format!("f:{k}")).collect();
    let write = |key: &str, n: i64| cmd(&writer, &["SET", key, &n.to_string()]).is_ok();
    let killed = AtomicU64::new(0);
    no_stale_read_via(&client, &keys, &write, 4, Reads::Mixed, || {
        let ids = all_data_connection_ids(&server, "mixed");
        assert!(
            ids.len() >= 2,
            "pooled and multiplexed connections: {ids:?}"
        );
        for id in ids {
            server.cli(&["CLIENT", "KILL", "ID", &id]);
            killed.fetch_add(1, SeqCst);
        }
    });
    assert!(killed.load(SeqCst) >= 2);
    // Tracked again on both paths: another client's write reaches entries filled by each.
    ok(&writer, &["SET", "a", "2"]);
    assert_eq!(warm_async(&client, "a").as_deref(), Some("2"));
    assert_tracked_again(&client, &writer, "a", "3");
    let invalidations = client.stat(Stat::CacheInvalidations);
    warm_async(&client, "a");
    ok(&writer, &["SET", "a", "4"]);
    let acknowledged = Instant::now();
    assert!(wait_until(WAIT, || client.stat(Stat::CacheInvalidations)
        > invalidations));
    // As in assert_tracked_again: no earlier than guarantee 2 covers.
    assert!(wait_until(WAIT, || acknowledged.elapsed() >= Duration::from_millis(2)));
    assert_eq!(text(&get_async(&client, "a").unwrap()), "4");
}

/// A server that keeps what it acknowledged across a restart (every write is on disk before
/// its reply): reads before and after can be compared.
fn persistent_server() -> RedisServer {
    RedisServer::builder()
        .config("appendonly yes")
        .config("appendfsync always")
        .start()
}

/// Guarantee 4 under readers: the server restarts (kill -9, then up again from its AOF on
/// the same port): every connection is lost, the entries go, tracking is set up again.
#[test]
fn no_stale_read_across_a_server_restart() {
    let mut server = persistent_server();
    let mut config = cached_config(&server, 10_000);
    config.connect_timeout_ms = 500;
    let client = Client::new(&config).unwrap();
    let writer = plain(&server);
    let server_cell = Mutex::new(&mut server);
    no_stale_read_around(&client, &writer, 4, 4, || {
        server_cell.lock().unwrap().restart();
    });
    assert_tracked_again(&client, &writer, "k", "after");
}

/// Guarantee 4 under readers: the server stops (SIGSTOP) longer than the read timeout: the
/// invalidation connection's PING goes unanswered, the entries go; after SIGCONT the client
/// carries on with tracking set up again.
#[test]
fn no_stale_read_across_a_stopped_server() {
    let server = RedisServer::start();
    let mut config = cached_config(&server, 10_000);
    config.read_timeout_ms = 300;
    config.set_client_name("stopped").unwrap();
    let client = Client::new(&config).unwrap();
    let writer = plain(&server);
    let before = Mutex::new(None);
    no_stale_read_around(&client, &writer, 4, 4, || {
        *before.lock().unwrap() = listener_id(&server, "stopped");
        server.sigstop();
        let stopped = Instant::now();
        // Well past the PING's deadline (read timeout) before it answers again.
        while stopped.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(50));
        }
        server.sigcont();
    });
    // The invalidation connection was given up (its PING unanswered) and replaced.
    let before = before
        .into_inner()
        .unwrap()
        .expect("an invalidation connection");
    assert!(wait_until(WAIT, || {
        get(&client, "k");
        listener_id(&server, "stopped").is_some_and(|id| id != before)
    }));
    assert_tracked_again(&client, &writer, "k", "after");
}

// ---------------------------------------------------------------------------------------------
// Guarantee 5: bounded

/// Guarantee 5: at most max_entries entries and max_bytes bytes, whatever is read; LRU (here
/// CLOCK) keeps what is used; a flush returns the cache to nothing.
#[test]
fn entries_and_bytes_stay_within_their_bounds() {
    let server = RedisServer::start();
    let mut config = cached_config(&server, 100);
    config.cache.max_bytes = 40_000;
    let client = Client::new(&config).unwrap();
    let value = "v".repeat(100);
    for i in 0..1000 {
        ok(&client, &["SET", &format!("key:{i}"), &value]);
    }
    for i in 0..1000 {
        ok(&client, &["GET", &format!("key:{i}")]);
        assert!(client.stat(Stat::CacheEntries) <= 100);
        assert!(client.stat(Stat::CacheBytes) <= 40_000);
    }
    assert!(client.stat(Stat::CacheEvictions) >= 900);
    let per_entry = client.stat(Stat::CacheBytes) / client.stat(Stat::CacheEntries).max(1);
    println!(
        "{} entries, {} bytes ({per_entry} per entry with a 100-byte value)",
        client.stat(Stat::CacheEntries),
        client.stat(Stat::CacheBytes)
    );
    client.cache_flush();
    assert_eq!(client.stat(Stat::CacheEntries), 0);
    assert_eq!(client.stat(Stat::CacheBytes), 0);
}

/// Guarantee 5: an entry is never served past its TTL (even with no invalidation, which a
/// TTL is the backstop for), and expired entries are swept.
#[test]
fn entries_expire_after_their_ttl() {
    let server = RedisServer::start();
    let mut config = cached_config(&server, 100);
    config.cache.ttl_ms = 300;
    let client = Client::new(&config).unwrap();
    ok(&client, &["SET", "k", "v"]);
    warm(&client, "k");
    let filled = Instant::now();
    // After the TTL, every read of k goes to the server until it is kept again.
    assert!(wait_until(WAIT, || filled.elapsed() > Duration::from_millis(350)));
    let misses = client.stat(Stat::CacheMisses);
    get(&client, "k");
    assert_eq!(client.stat(Stat::CacheMisses), misses + 1);
    // And a sweep drops what nobody reads.
    ok(&client, &["SET", "j", "v"]);
    warm(&client, "j");
    assert!(wait_until(WAIT, || client.stat(Stat::CacheEntries) == 0));
    assert!(client.stat(Stat::CacheEvictions) >= 1);
}

// ---------------------------------------------------------------------------------------------
// Modes and protocols

/// The server's count of keys it tracks for clients (INFO stats `tracking_total_keys`).
fn tracked_keys(server: &RedisServer) -> u64 {
    let info = server.cli(&["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("tracking_total_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("tracking_total_keys in INFO stats")
}

/// The checks every mode and protocol must pass: own writes read back (1), another client's
/// write seen by a read 1 ms after its acknowledgement and its invalidation applied (2), a
/// FLUSHALL by another client empties the cache (4).
fn the_basics_hold(client: &Client, writer: &Client, key: &str) {
    the_basics_hold_with(client, writer, key, &|| {
        ok(writer, &["FLUSHALL"]);
    });
}

/// [`the_basics_hold`], with how another client flushes the key's server.
fn the_basics_hold_with(client: &Client, writer: &Client, key: &str, flushall: &dyn Fn()) {
    ok(client, &["SET", key, "mine"]);
    warm(client, key);
    ok(client, &["SET", key, "mine again"]);
    assert_eq!(get(client, key).as_deref(), Some("mine again"));
    for round in 0..50 {
        assert_tracked_again(client, writer, key, &format!("theirs {round}"));
    }
    warm(client, key);
    let entries = client.stat(Stat::CacheEntries);
    flushall();
    assert!(wait_until(WAIT, || client.stat(Stat::CacheEntries) < entries));
    assert_eq!(get(client, key), None);
}

/// A RESP2 client: its data connections speak RESP2 and redirect their invalidations to an
/// invalidation connection that speaks RESP3 (every server that tracks does), whose lease
/// probes then say the node's role.
#[test]
fn a_resp2_client_listens_over_resp3() {
    let server = RedisServer::start();
    let (list, listener) = resp2_client_holds_the_basics(&server);
    let mut speaking = Vec::new();
    for line in list.lines().filter(|l| l.contains("name=resp2 ")) {
        let field = |f: &str| support::client_info_field(line, f);
        speaking.push((field("id") == listener, field("resp")));
    }
    speaking.sort();
    speaking.dedup();
    // Data connections (false) in RESP2, the invalidation connection (true) in RESP3.
    let expected = [(false, "2".to_owned()), (true, "3".to_owned())];
    assert_eq!(speaking, expected, "{list}");
}

/// A server without HELLO (renamed away): the invalidation connection speaks RESP2, so it
/// subscribes to `__redis__:invalidate` (RESP2 has no push frames), and the data connections
/// redirect to it, exactly as over RESP3.
#[test]
fn resp2_works_through_the_invalidation_channel() {
    let server = RedisServer::builder()
        .config("rename-command HELLO \"\"")
        .start();
    let (list, listener) = resp2_client_holds_the_basics(&server);
    let line = list
        .lines()
        .find(|l| support::client_info_field(l, "id") == listener)
        .expect("the invalidation connection");
    assert_eq!(support::client_info_field(line, "resp"), "2");
    assert_eq!(support::client_info_field(line, "sub"), "1");
}

/// A RESP2 client named `resp2` on `server`: the basics hold on the blocking and the async
/// paths. `CLIENT LIST` after that, and the `id=` its data connections redirect to.
fn resp2_client_holds_the_basics(server: &RedisServer) -> (String, String) {
    let mut config = cached_config(server, 1000);
    config.set_protocol(2).unwrap();
    config.set_client_name("resp2").unwrap();
    let client = Client::new(&config).unwrap();
    let writer = plain(server);
    the_basics_hold(&client, &writer, "k");
    let list = server.cli(&["CLIENT", "LIST"]);
    let listener = listener_id(server, "resp2").expect("redirected data connections");
    // And the async path too.
    ok(&writer, &["SET", "a", "1"]);
    assert_eq!(text(&call_async(&client, &["GET", "a"]).unwrap()), "1");
    assert!(wait_until(WAIT, || {
        let before = hits(&client);
        call_async(&client, &["GET", "a"]).unwrap();
        hits(&client) > before
    }));
    ok(&writer, &["SET", "a", "2"]);
    let acked = Instant::now();
    while acked.elapsed() < Duration::from_millis(1) {
        std::hint::spin_loop();
    }
    assert_eq!(text(&call_async(&client, &["GET", "a"]).unwrap()), "2");
    (list, listener)
}

/// BROADCAST: the invalidation connection asks for every change under the prefixes (`BCAST
/// PREFIX user:`), so data connections need no tracking at all; only reads under the prefixes
/// are cached; changes to keys never read are announced too.
#[test]
fn broadcast_mode_caches_the_prefixes_only() {
    let server = RedisServer::start();
    let mut config = cached_config(&server, 1000);
    config.cache.mode = brisk::config::CacheMode::Broadcast;
    config.add_client_cache_prefix(b"user:").unwrap();
    config.set_client_name("bcast").unwrap();
    let events = record_drops(&mut config);
    let client = Client::new(&config).unwrap();
    let writer = plain(&server);
    the_basics_hold(&client, &writer, "user:1");
    // Outside the prefix: never kept.
    ok(&writer, &["SET", "other", "x"]);
    let entries = client.stat(Stat::CacheEntries);
    let hits_before = hits(&client);
    for _ in 0..20 {
        assert_eq!(get(&client, "other").as_deref(), Some("x"));
    }
    assert_eq!(hits(&client), hits_before);
    assert_eq!(client.stat(Stat::CacheEntries), entries);
    // A key under the prefix that this client never read is announced all the same.
    events.lock().unwrap().clear();
    ok(&writer, &["SET", "user:never-read", "x"]);
    assert!(wait_until(WAIT, || events
        .lock()
        .unwrap()
        .iter()
        .any(|(reason, keys)| reason == "INVALIDATE" && *keys == 1)));
    // Nothing is tracked per data connection: the server tracks no keys, only the prefix.
    assert_eq!(tracked_keys(&server), 0);
    let list = server.cli(&["CLIENT", "LIST"]);
    let tracking: Vec<&str> = list
        .lines()
        .filter(|l| {
            l.contains("name=bcast ") && support::client_info_field(l, "flags").contains('t')
        })
        .collect();
    assert_eq!(
        tracking.len(),
        1,
        "only the invalidation connection tracks: {list}"
    );
    assert!(support::client_info_field(tracking[0], "flags").contains('B'));
}

/// OPTIN: only reads of keys under the prefixes are cached, each sent right after `CLIENT
/// CACHING YES`; the server tracks nothing else this client reads.
#[test]
fn optin_mode_tracks_only_what_it_caches() {
    let server = RedisServer::start();
    let mut config = cached_config(&server, 1000);
    config.cache.mode = brisk::config::CacheMode::OptIn;
    config.add_client_cache_prefix(b"hot:").unwrap();
    let client = Client::new(&config).unwrap();
    let writer = plain(&server);
    the_basics_hold(&client, &writer, "hot:1");
    // Reads outside the prefixes: not kept, and not tracked by the server either.
    for i in 0..50 {
        ok(&writer, &["SET", &format!("cold:{i}"), "x"]);
    }
    let tracked = tracked_keys(&server);
    let entries = client.stat(Stat::CacheEntries);
    for i in 0..50 {
        get(&client, &format!("cold:{i}"));
        get(&client, &format!("cold:{i}"));
    }
    assert_eq!(client.stat(Stat::CacheEntries), entries);
    assert_eq!(tracked_keys(&server), tracked, "OPTIN reads were tracked");
    // A cached read is tracked.
    ok(&writer, &["SET", "hot:2", "x"]);
    warm(&client, "hot:2");
    assert!(tracked_keys(&server) > tracked);
}

/// DEFAULT mode tracks what it reads, cached or not (the contrast to OPTIN), on the data
/// connections, redirected to the invalidation connection.
#[test]
fn default_mode_tracks_every_read() {
    let server = RedisServer::start();
    let client = cached(&server);
    let writer = plain(&server);
    for i in 0..20 {
        ok(&writer, &["SET", &format!("k:{i}"), "x"]);
    }
    for i in 0..20 {
        warm(&client, &format!("k:{i}"));
    }
    assert!(tracked_keys(&server) >= 20);
}

/// A server (or a user) that cannot track makes creating the client fail with a clear
/// message, never a silently half-working cache.
#[test]
fn a_server_that_cannot_track_refuses_the_client() {
    // CLIENT renamed away: as a server without CLIENT TRACKING answers.
    let server = RedisServer::builder()
        .config("rename-command CLIENT \"\"")
        .start();
    let error = Client::new(&cached_config(&server, 100))
        .err()
        .expect("refused");
    assert!(
        error.message().contains("CLIENT TRACKING"),
        "{}",
        error.message()
    );
    // Without the cache, the same server is fine.
    ok(&plain(&server), &["PING"]);

    // A user who may read but not use CLIENT TRACKING.
    let server = RedisServer::builder()
        .config("user reader on >pw ~* &* +@all -client")
        .start();
    let mut config = cached_config(&server, 100);
    config.username = Some("reader".into());
    config.password = Some("pw".to_owned().into());
    let error = Client::new(&config).err().expect("refused");
    assert_eq!(error.status(), brisk::Status::Auth, "{}", error.message());
    assert!(error.message().contains("CLIENT"), "{}", error.message());
}

// ---------------------------------------------------------------------------------------------
// Cluster

fn slot(key: &str) -> u16 {
    brisk::core::cluster::key_slot(key.as_bytes())
}

fn cached_cluster_client(cluster: &RedisCluster) -> Client {
    let mut config = cluster.config();
    config.cache.max_entries = 10_000;
    Client::new(&config).expect("a cached cluster client")
}

/// Cluster: tracking per node (an invalidation connection to each node read from, the data
/// connections of each node redirected to it): the basics hold for keys on every primary, and
/// a FLUSHALL on one node empties what came from it.
#[test]
fn cluster_caches_per_node() {
    let cluster = RedisCluster::start();
    let client = cached_cluster_client(&cluster);
    let writer = Client::new(&cluster.config()).unwrap();
    let mut primaries = std::collections::HashSet::new();
    for key in ["a", "b", "c", "d", "e", "f"] {
        let primary = cluster.primary_of_slot(0, slot(key));
        primaries.insert(primary);
        the_basics_hold_with(&client, &writer, key, &|| {
            cluster.nodes[primary].cli(&["FLUSHALL"]);
        });
    }
    assert_eq!(primaries.len(), 3, "keys on every primary");
    // Multi-key reads on one slot are cached and depend on every key.
    ok(&writer, &["MSET", "{u}a", "1", "{u}b", "2"]);
    let mget = || format!("{:?}", ok(&client, &["MGET", "{u}a", "{u}b"]));
    mget();
    assert!(wait_until(WAIT, || {
        let before = hits(&client);
        mget();
        hits(&client) > before
    }));
    ok(&writer, &["SET", "{u}b", "3"]);
    let acked = Instant::now();
    while acked.elapsed() < Duration::from_millis(1) {
        std::hint::spin_loop();
    }
    assert_eq!(mget(), r#"Array["1", "3"]"#);
}

/// Cluster, guarantee 1 on every path, for keys on every primary: a write by this client
/// through a command, an async command, a pipeline spanning the three primaries and a
/// transaction drops the entries of its keys (filled by blocking and by async reads) before
/// its reply is handed back.
#[test]
fn cluster_own_writes_are_read_back_on_every_path() {
    let cluster = RedisCluster::start();
    let client = cached_cluster_client(&cluster);
    let keys = ["a", "b", "c", "d", "e", "f"];
    let owners: std::collections::HashSet<usize> = keys
        .iter()
        .map(|k| cluster.primary_of_slot(0, slot(k)))
        .collect();
    assert_eq!(owners.len(), 3, "keys on every primary");
    for round in 0..8 {
        for key in keys {
            ok(&client, &["SET", key, "before"]);
            warm(&client, key);
            warm_async(&client, key);
        }
        let v = format!("round {round}");
        match round % 4 {
            0 => {
                for key in keys {
                    ok(&client, &["SET", key, &v]);
                }
            }
            1 => {
                for key in keys {
                    call_async(&client, &["SET", key, &v]).unwrap();
                }
            }
            2 => {
                let mut p = client.pipeline();
                for key in keys {
                    append(&mut p, &["GET", key]).unwrap();
                    append(&mut p, &["SET", key, &v]).unwrap();
                }
                p.exec().unwrap();
            }
            _ => {
                for key in keys {
                    let mut t = client.transaction();
                    append(&mut t, &["SET", key, &v]).unwrap();
                    t.exec().unwrap();
                }
            }
        }
        for key in keys {
            assert_eq!(get(&client, key).as_deref(), Some(v.as_str()), "{key}");
            assert_eq!(text(&get_async(&client, key).unwrap()), v, "{key} (async)");
        }
    }
}

/// Cluster, guarantee 4 under readers: a manual failover (CLUSTER FAILOVER, nothing lost):
/// the slot's owner changes, the entries go, the new primary's invalidation connection takes
/// over; no read is ever stale.
#[test]
fn cluster_no_stale_read_across_a_failover() {
    failover_under_readers(Reads::Blocking);
}

/// [`cluster_no_stale_read_across_a_failover`] with half the readers on the async path (each
/// node's multiplexed connection).
#[test]
fn cluster_no_stale_async_or_blocking_read_across_a_failover() {
    failover_under_readers(Reads::Mixed);
}

fn failover_under_readers(reads: Reads) {
    let cluster = RedisCluster::start();
    let client = cached_cluster_client(&cluster);
    let writer = Client::new(&cluster.config()).unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("{{f}}:{i}")).collect();
    let primary = cluster.primary_of_slot(0, slot("{f}"));
    let replica = cluster.replica_of(primary);
    let write = |key: &str, n: i64| cmd(&writer, &["SET", key, &n.to_string()]).is_ok();
    no_stale_read_via(&client, &keys, &write, 4, reads, || {
        cluster.nodes[replica].cli(&["CLUSTER", "FAILOVER"]);
        assert!(wait_until(Duration::from_secs(30), || cluster.is_primary(replica)));
    });
}

/// Cluster, guarantee 4 under readers: the primary is killed and its replica promoted. The
/// writer counts a SET as acknowledged only once WAIT says a replica has it (an acknowledged
/// write lost with the primary would look like a stale read); the killed node's entries go
/// with its invalidation connection.
#[test]
fn cluster_no_stale_read_across_a_killed_primary() {
    let mut cluster = RedisCluster::start();
    let client = cached_cluster_client(&cluster);
    let mut config = cluster.config();
    config.retry.max_retries = Some(0);
    let writer = Client::new(&config).unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("{{k}}:{i}")).collect();
    let primary = cluster.primary_of_slot(0, slot("{k}"));
    let replica = cluster.replica_of(primary);
    let session = Mutex::new(None::<brisk::Session>);
    let write = |key: &str, n: i64| {
        let mut session = session.lock().unwrap();
        if session.is_none() {
            *session = writer.session().ok();
        }
        let Some(s) = session.as_mut() else {
            return false;
        };
        let acknowledged = session_cmd(s, &["SET", key, &n.to_string()]).is_ok()
            && session_cmd(s, &["WAIT", "1", "2000"])
                .ok()
                .and_then(|r| r.as_integer())
                == Some(1);
        if !acknowledged {
            // A new session next time: it pins the slot's owner as the topology says then.
            *session = None;
        }
        acknowledged
    };
    let cluster_cell = Mutex::new(&mut cluster);
    no_stale_read_of(&client, &keys, &write, 4, || {
        let mut cluster = cluster_cell.lock().unwrap();
        cluster.nodes[primary].kill();
        assert!(wait_until(Duration::from_secs(60), || cluster.is_primary(replica)));
    });
}

/// Cluster, guarantee 4 under readers: the keys' slot migrates to another primary (MIGRATE
/// deletes each key on the old owner, which invalidates it; ASK, then MOVED); no read is ever
/// stale.
#[test]
fn cluster_no_stale_read_across_a_slot_migration() {
    let cluster = RedisCluster::start();
    let client = cached_cluster_client(&cluster);
    let writer = Client::new(&cluster.config()).unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("{{m}}:{i}")).collect();
    let from = cluster.primary_of_slot(0, slot("{m}"));
    let to = (0..cluster.nodes.len())
        .find(|&i| i != from && cluster.is_primary(i))
        .unwrap();
    let write = |key: &str, n: i64| cmd(&writer, &["SET", key, &n.to_string()]).is_ok();
    no_stale_read_of(&client, &keys, &write, 4, || {
        cluster.migrate_slot(slot("{m}"), from, to);
    });
    assert_eq!(cluster.primary_of_slot(0, slot("{m}")), to);
}
