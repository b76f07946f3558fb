//! Commands against a real server: reply types (RESP3 and RESP2), large values and argument
//! lists, pipelines, transactions, sessions, connection-state rules and pool exhaustion.

mod support;

use brisk::{Args, ReplyKind, Status};
use std::time::{Duration, Instant};
use support::{
    RedisServer, append, assert_between, binary_value, client_for, cmd, expect_err, ok, ok_bytes,
    session_cmd, text,
};

/// A server that accepts `DEBUG PROTOCOL <type>`, which answers with each RESP3 type.
fn debug_server() -> RedisServer {
    RedisServer::builder()
        .config("enable-debug-command yes")
        .start()
}

// ---------------------------------------------------------------------------------------------
// Reply types

#[test]
fn resp3_replies_keep_their_types() {
    let server = debug_server();
    let c = client_for(&server.url());

    let set = ok(&c, &["SET", "s", "v"]);
    assert_eq!((set.kind(), text(&set).as_str()), (ReplyKind::Status, "OK"));
    let get = ok(&c, &["GET", "s"]);
    assert_eq!((get.kind(), text(&get).as_str()), (ReplyKind::String, "v"));
    assert!(ok(&c, &["GET", "missing"]).is_nil());
    assert_eq!(ok(&c, &["INCR", "n"]).as_integer(), Some(1));

    ok(&c, &["HSET", "h", "a", "1", "b", "2"]);
    let map = ok(&c, &["HGETALL", "h"]);
    assert_eq!(map.kind(), ReplyKind::Map);
    assert_eq!(map.pairs().count(), 2);
    assert_eq!(map.get("a").and_then(|v| v.as_str()), Some("1"));
    assert_eq!(map.get("b").and_then(|v| v.as_str()), Some("2"));

    ok(&c, &["SADD", "set", "x", "y", "z"]);
    let set = ok(&c, &["SMEMBERS", "set"]);
    assert_eq!(set.kind(), ReplyKind::Set);
    let mut members: Vec<&str> = set.children().iter().filter_map(|m| m.as_str()).collect();
    members.sort();
    assert_eq!(members, ["x", "y", "z"]);

    ok(&c, &["ZADD", "z", "1.5", "m"]);
    let score = ok(&c, &["ZSCORE", "z", "m"]);
    assert_eq!(score.kind(), ReplyKind::Double);
    assert_eq!(score.as_double(), Some(1.5));

    let info = ok(&c, &["CLIENT", "INFO"]);
    assert_eq!(info.kind(), ReplyKind::Verbatim);
    assert_eq!(info.verbatim_format(), Some(*b"txt"));
    assert!(text(&info).starts_with("id="), "{info:?}");

    let debug = |kind: &str| ok(&c, &["DEBUG", "PROTOCOL", kind]);
    let t = debug("true");
    assert_eq!((t.kind(), t.as_integer()), (ReplyKind::Bool, Some(1)));
    let f = debug("false");
    assert_eq!((f.kind(), f.as_integer()), (ReplyKind::Bool, Some(0)));
    assert!(debug("null").is_nil());
    let big = debug("bignum");
    assert_eq!(big.kind(), ReplyKind::BigNumber);
    assert_eq!(text(&big), "1234567999999999999999999999999999999");
    let double = debug("double");
    assert_eq!(double.kind(), ReplyKind::Double);
    // The server's text is kept beside the value.
    assert_eq!(text(&double), "3.141");
    assert_eq!(double.as_double(), "3.141".parse().ok());
    assert_eq!(debug("map").kind(), ReplyKind::Map);
    assert_eq!(debug("set").kind(), ReplyKind::Set);
    let verbatim = debug("verbatim");
    assert_eq!(verbatim.kind(), ReplyKind::Verbatim);
    assert_eq!(text(&verbatim), "This is a verbatim\nstring");

    // An attribute is dropped and a push frame routed out of band: the caller gets the real
    // reply behind them, and the next command gets its own reply.
    assert_eq!(
        text(&debug("attrib")),
        "Some real reply following the attribute"
    );
    assert_eq!(
        text(&debug("push")),
        "Some real reply following the push reply"
    );
    assert_eq!(text(&ok(&c, &["ECHO", "after-push"])), "after-push");
}

#[test]
fn resp2_replies_are_arrays_and_strings() {
    let server = debug_server();
    let c = client_for(&format!("{}?protocol=2", server.url()));

    ok(&c, &["HSET", "h", "a", "1", "b", "2"]);
    let map = ok(&c, &["HGETALL", "h"]);
    assert_eq!(map.kind(), ReplyKind::Array);
    assert_eq!(map.children().len(), 4);
    // get() also reads a flat key/value array.
    assert_eq!(map.get("b").and_then(|v| v.as_str()), Some("2"));

    ok(&c, &["SADD", "set", "x", "y"]);
    let set = ok(&c, &["SMEMBERS", "set"]);
    assert_eq!((set.kind(), set.children().len()), (ReplyKind::Array, 2));

    ok(&c, &["ZADD", "z", "1.5", "m"]);
    let score = ok(&c, &["ZSCORE", "z", "m"]);
    assert_eq!(
        (score.kind(), text(&score).as_str()),
        (ReplyKind::String, "1.5")
    );

    let info = ok(&c, &["CLIENT", "INFO"]);
    assert_eq!(info.kind(), ReplyKind::String);
    assert!(text(&info).contains("resp=2"));

    let t = ok(&c, &["DEBUG", "PROTOCOL", "true"]);
    assert_eq!((t.kind(), t.as_integer()), (ReplyKind::Integer, Some(1)));
    let big = ok(&c, &["DEBUG", "PROTOCOL", "bignum"]);
    assert_eq!(big.kind(), ReplyKind::String);
    assert!(ok(&c, &["DEBUG", "PROTOCOL", "null"]).is_nil());
}

#[test]
fn server_errors_keep_the_server_text() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    ok(&c, &["SET", "str", "x"]);
    let e = expect_err(cmd(&c, &["LPUSH", "str", "y"]), Status::Server);
    assert!(e.message().starts_with("WRONGTYPE"), "{}", e.message());
    let e = expect_err(cmd(&c, &["NOSUCHCOMMAND"]), Status::Server);
    assert!(
        e.message().starts_with("ERR unknown command"),
        "{}",
        e.message()
    );
    // Error replies leave the connection usable.
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
    assert_eq!(text(&ok(&c, &["GET", "str"])), "x");

    let empty: [&[u8]; 0] = [];
    expect_err(
        c.command(&Args::from_slices(&empty)),
        Status::InvalidArgument,
    );
}

#[test]
fn a_write_to_a_replica_is_readonly() {
    let primary = RedisServer::start();
    let replica = RedisServer::builder()
        .config(&format!("replicaof 127.0.0.1 {}", primary.port()))
        .start();
    let c = client_for(&replica.url());
    let e = expect_err(cmd(&c, &["SET", "k", "v"]), Status::ReadOnly);
    assert!(e.message().starts_with("READONLY"), "{}", e.message());
    // Reads work on the replica.
    assert!(ok(&c, &["GET", "k"]).is_nil());
}

// ---------------------------------------------------------------------------------------------
// Sizes

#[test]
fn eight_mib_binary_value_round_trips() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    let value = binary_value(8 * 1024 * 1024);
    let key: &[u8] = b"big\0key\r\n";

    let set: [&[u8]; 3] = [b"SET", key, &value];
    ok_bytes(&c, &set);
    let strlen: [&[u8]; 2] = [b"STRLEN", key];
    assert_eq!(ok_bytes(&c, &strlen).as_integer(), Some(value.len() as i64));
    let get: [&[u8]; 2] = [b"GET", key];
    let reply = ok_bytes(&c, &get);
    assert_eq!(reply.kind(), ReplyKind::String);
    let got = reply.as_bytes().expect("bytes");
    assert_eq!(got.len(), value.len());
    assert!(got == value.as_slice(), "the value came back different");
}

#[test]
fn mset_and_mget_of_twenty_thousand_keys() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    const N: usize = 20_000;
    let keys: Vec<String> = (0..N).map(|i| format!("key:{i}")).collect();
    let values: Vec<String> = (0..N).map(|i| format!("value:{i}:{}", i * 7)).collect();

    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    for (k, v) in keys.iter().zip(&values) {
        mset.extend([k.as_bytes(), v.as_bytes()]);
    }
    ok_bytes(&c, &mset);
    assert_eq!(ok(&c, &["DBSIZE"]).as_integer(), Some(N as i64));

    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(keys.iter().map(|k| k.as_bytes()));
    let reply = ok_bytes(&c, &mget);
    assert_eq!(reply.kind(), ReplyKind::Array);
    assert_eq!(reply.children().len(), N);
    for (i, got) in reply.children().iter().enumerate() {
        assert_eq!(got.as_str(), Some(values[i].as_str()), "key {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Pipelines and transactions

#[test]
fn pipeline_of_a_thousand_with_an_error_in_the_middle() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    ok(&c, &["SET", "a-string", "x"]);
    const ERROR_AT: usize = 500;

    // Even indexes SET p:i, odd ones GET what the previous one set; one LPUSH hits a string.
    let mut p = c.pipeline();
    for i in 0..1000 {
        if i == ERROR_AT {
            append(&mut p, &["LPUSH", "a-string", "y"]).unwrap();
        } else if i % 2 == 0 {
            append(&mut p, &["SET", &format!("p:{i}"), &format!("v:{i}")]).unwrap();
        } else {
            append(&mut p, &["GET", &format!("p:{}", i - 1)]).unwrap();
        }
    }
    assert_eq!(p.len(), 1000);
    let replies = p.exec().expect("pipeline");
    assert!(p.is_empty());
    let replies = replies.children();
    assert_eq!(replies.len(), 1000);
    for (i, reply) in replies.iter().enumerate() {
        if i == ERROR_AT {
            assert_eq!(reply.kind(), ReplyKind::Error, "index {i}: {reply:?}");
            assert!(reply.as_str().unwrap().starts_with("WRONGTYPE"));
        } else if i == ERROR_AT + 1 {
            assert!(reply.is_nil(), "index {i}: {reply:?}");
        } else if i % 2 == 0 {
            assert_eq!(reply.as_str(), Some("OK"), "index {i}");
        } else {
            assert_eq!(
                reply.as_str(),
                Some(format!("v:{}", i - 1).as_str()),
                "index {i}"
            );
        }
    }

    // Reusable, and an empty pipeline is an empty array without a round trip.
    append(&mut p, &["GET", "p:998"]).unwrap();
    let again = p.exec().unwrap();
    assert_eq!(again.children()[0].as_str(), Some("v:998"));
    let empty = p.exec().unwrap();
    assert_eq!(
        (empty.kind(), empty.children().len()),
        (ReplyKind::Array, 0)
    );
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
}

#[test]
fn transaction_applies_everything_and_returns_each_reply() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    ok(&c, &["SET", "a-string", "x"]);

    let mut t = c.transaction();
    append(&mut t, &["SET", "t", "1"]).unwrap();
    append(&mut t, &["INCR", "t"]).unwrap();
    // Fails when run, which does not abort the others.
    append(&mut t, &["INCR", "a-string"]).unwrap();
    append(&mut t, &["INCRBY", "t", "10"]).unwrap();
    append(&mut t, &["GET", "t"]).unwrap();
    let replies = t.exec().expect("EXEC");
    let replies = replies.children();
    assert_eq!(replies.len(), 5);
    assert_eq!(replies[0].as_str(), Some("OK"));
    assert_eq!(replies[1].as_integer(), Some(2));
    assert_eq!(replies[2].kind(), ReplyKind::Error);
    assert_eq!(replies[3].as_integer(), Some(12));
    assert_eq!(replies[4].as_str(), Some("12"));
    assert!(t.is_empty());
}

#[test]
fn transaction_with_a_rejected_command_is_execabort() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    let mut t = c.transaction();
    append(&mut t, &["SET", "applied", "no"]).unwrap();
    append(&mut t, &["SET", "only-a-key"]).unwrap(); // wrong arity: rejected while queueing
    let e = expect_err(t.exec(), Status::Server);
    assert!(e.message().starts_with("EXECABORT"), "{}", e.message());
    assert!(e.message().contains("command 2"), "{}", e.message());
    assert!(ok(&c, &["GET", "applied"]).is_nil(), "nothing is applied");
    // The connection is clean afterwards (no MULTI left open).
    assert_eq!(ok(&c, &["INCR", "n"]).as_integer(), Some(1));
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
}

// ---------------------------------------------------------------------------------------------
// Sessions and connection state

#[test]
fn session_watch_aborted_by_another_client() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    ok(&c, &["SET", "balance", "100"]);

    let mut s = c.session().unwrap();
    session_cmd(&mut s, &["WATCH", "balance"]).unwrap();
    let balance = session_cmd(&mut s, &["GET", "balance"]).unwrap();
    assert_eq!(text(&balance), "100");
    // Another connection changes the watched key.
    ok(&c, &["SET", "balance", "50"]);
    session_cmd(&mut s, &["MULTI"]).unwrap();
    let queued = session_cmd(&mut s, &["SET", "balance", "90"]).unwrap();
    assert_eq!(text(&queued), "QUEUED");
    let e = expect_err(session_cmd(&mut s, &["EXEC"]), Status::Watch);
    assert!(e.message().contains("WATCH"), "{}", e.message());
    drop(s);
    assert_eq!(text(&ok(&c, &["GET", "balance"])), "50", "nothing applied");
}

#[test]
fn session_watch_succeeds_when_nobody_interferes() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    ok(&c, &["SET", "balance", "100"]);

    let mut s = c.session().unwrap();
    session_cmd(&mut s, &["WATCH", "balance"]).unwrap();
    let balance: i64 = text(&session_cmd(&mut s, &["GET", "balance"]).unwrap())
        .parse()
        .unwrap();
    session_cmd(&mut s, &["MULTI"]).unwrap();
    session_cmd(&mut s, &["SET", "balance", &(balance - 10).to_string()]).unwrap();
    session_cmd(&mut s, &["INCR", "transfers"]).unwrap();
    let exec = session_cmd(&mut s, &["EXEC"]).unwrap();
    assert_eq!(exec.kind(), ReplyKind::Array);
    assert_eq!(exec.children()[0].as_str(), Some("OK"));
    assert_eq!(exec.children()[1].as_integer(), Some(1));
    drop(s);
    assert_eq!(text(&ok(&c, &["GET", "balance"])), "90");
}

#[test]
fn connection_state_commands_need_a_session() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    for args in [
        &["MULTI"][..],
        &["EXEC"],
        &["WATCH", "k"],
        &["SELECT", "2"],
        &["select", "2"],
        &["AUTH", "x"],
        &["HELLO", "2"],
        &["CLIENT", "SETNAME", "x"],
    ] {
        let e = expect_err(cmd(&c, args), Status::InvalidArgument);
        assert!(e.message().contains("session"), "{args:?}: {}", e.message());
    }
    expect_err(cmd(&c, &["SUBSCRIBE", "ch"]), Status::InvalidArgument);
    let mut p = c.pipeline();
    expect_err(append(&mut p, &["SELECT", "2"]), Status::InvalidArgument);
    expect_err(append(&mut p, &["MULTI"]), Status::InvalidArgument);
    assert_eq!(
        c.stat(brisk::stats::Stat::PoolOpen) as usize,
        0,
        "nothing was sent"
    );

    // In a session they run; SELECT's effect ends with the session.
    let mut s = c.session().unwrap();
    session_cmd(&mut s, &["SELECT", "2"]).unwrap();
    session_cmd(&mut s, &["SET", "in-db", "2"]).unwrap();
    session_cmd(&mut s, &["CLIENT", "SETNAME", "session-name"]).unwrap();
    expect_err(
        session_cmd(&mut s, &["SUBSCRIBE", "ch"]),
        Status::InvalidArgument,
    );
    drop(s);
    assert!(ok(&c, &["GET", "in-db"]).is_nil(), "pooled command in db 0");
    assert!(ok(&c, &["CLIENT", "GETNAME"]).is_nil());
    assert_eq!(server.cli(&["-n", "2", "GET", "in-db"]), "2");

    // MULTI in a session, then dropped mid-transaction: the connection comes back clean.
    let mut s = c.session().unwrap();
    session_cmd(&mut s, &["MULTI"]).unwrap();
    session_cmd(&mut s, &["SET", "never", "1"]).unwrap();
    drop(s);
    assert!(ok(&c, &["GET", "never"]).is_nil());
    assert_eq!(text(&ok(&c, &["SET", "after", "1"])), "OK");
}

#[test]
fn pool_exhausted_while_a_session_holds_the_only_connection() {
    let server = RedisServer::start();
    let c = client_for(&format!("{}?pool_size=1&pool_max_wait=200", server.url()));
    let session = c.session().unwrap();

    let started = Instant::now();
    let e = expect_err(c.ping(), Status::PoolExhausted);
    let waited = started.elapsed();
    assert_between(waited, 150, 3000, "the 200 ms max wait");
    for needle in ["max wait of 200 ms", "1 open", "1 busy", "waited"] {
        assert!(
            e.message().contains(needle),
            "{needle:?} in {}",
            e.message()
        );
    }
    expect_err(c.session().map(drop), Status::PoolExhausted);
    let mut p = c.pipeline();
    append(&mut p, &["PING"]).unwrap();
    expect_err(p.exec(), Status::PoolExhausted);

    drop(session);
    c.ping().expect("the connection is free again");
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
}

#[test]
fn one_client_shared_by_threads() {
    let server = RedisServer::start();
    let c = client_for(&format!("{}?pool_size=3", server.url()));
    std::thread::scope(|scope| {
        for t in 0..6 {
            let c = &c;
            scope.spawn(move || {
                for i in 0..200 {
                    let key = format!("thread:{t}");
                    let value = format!("{t}:{i}");
                    ok(c, &["SET", &key, &value]);
                    assert_eq!(text(&ok(c, &["GET", &key])), value);
                    ok(c, &["INCR", "total"]);
                }
            });
        }
    });
    assert_eq!(text(&ok(&c, &["GET", "total"])), "1200");
    assert!(c.stat(brisk::stats::Stat::PoolOpen) as usize <= 3);
}

#[test]
fn closed_client_fails_with_closed() {
    let server = RedisServer::start();
    let c = client_for(&server.url());
    c.ping().unwrap();
    let mut p = c.pipeline();
    append(&mut p, &["PING"]).unwrap();
    c.close();
    expect_err(c.ping(), Status::Closed);
    expect_err(p.exec(), Status::Closed);
    expect_err(c.session().map(drop), Status::Closed);
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 0);
}

#[test]
fn session_replaces_a_broken_connection_unless_a_transaction_was_open() {
    let server = RedisServer::start();
    let c = client_for(&format!("{}?read_timeout=300", server.url()));
    ok(&c, &["SET", "k", "v"]);
    let mut s = c.session().unwrap();

    server.sigstop();
    let result = session_cmd(&mut s, &["GET", "k"]);
    server.sigcont();
    expect_err(result, Status::Timeout);
    // Nothing pinned depended on that connection: the session carries on with a new one.
    assert_eq!(text(&session_cmd(&mut s, &["GET", "k"]).unwrap()), "v");

    session_cmd(&mut s, &["WATCH", "k"]).unwrap();
    server.sigstop();
    let result = session_cmd(&mut s, &["GET", "k"]);
    server.sigcont();
    expect_err(result, Status::Timeout);
    // The WATCH died with the connection: that is reported once, not papered over.
    let e = expect_err(session_cmd(&mut s, &["MULTI"]), Status::Connection);
    assert!(e.message().contains("WATCH"), "{}", e.message());
    assert_eq!(text(&session_cmd(&mut s, &["GET", "k"]).unwrap()), "v");
    drop(s);
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
}

#[test]
fn blocking_commands_extend_the_read_timeout() {
    let server = RedisServer::start();
    let c = client_for(&format!("{}?read_timeout=300", server.url()));
    let started = Instant::now();
    let reply = cmd(&c, &["BLPOP", "empty-list", "1"]);
    let took = started.elapsed();
    let reply =
        reply.unwrap_or_else(|e| panic!("{:?} after {took:?}: {}", e.status(), e.message()));
    assert!(reply.is_nil(), "{reply:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // And the connection is still good afterwards, with the normal timeout back.
    assert_eq!(text(&ok(&c, &["PING"])), "PONG");
    assert_eq!(c.stat(brisk::stats::Stat::PoolOpen) as usize, 1);
}
