//! A pooled connection given back moments ago is lent again without the non-blocking peek (one
//! system call per command saved). These tests kill it on the server right before the next
//! command, faster than the peek threshold, and check that nothing shows: the command runs once,
//! on a new connection, with no error, no retry and the same events as when the peek finds it.

mod support;

use brisk::events::{Event, EventKind, HandlerSlot};
use brisk::stats::Stat;
use brisk::{Client, Config, Reply};
use std::sync::{Arc, Mutex};
use support::{RedisServer, append, ok, text};

/// Kills `victim`'s only pooled connection from `killer`, right away.
fn kill_pooled_connection(victim: &Client, killer: &Client) {
    let id = ok(victim, &["CLIENT", "ID"])
        .as_integer()
        .expect("CLIENT ID");
    let killed = ok(killer, &["CLIENT", "KILL", "ID", &id.to_string()]);
    assert_eq!(killed.as_integer(), Some(1));
}

fn integer(reply: &Reply) -> i64 {
    reply.as_integer().expect("an integer")
}

type Seen = Arc<Mutex<Vec<(EventKind, bool)>>>;

fn recording_client(server: &RedisServer) -> (Client, Seen) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let mut config: Config = server.config();
    config.events = HandlerSlot(Some(Arc::new(move |e: &Event<'_>| {
        sink.lock()
            .unwrap()
            .push((e.kind, e.status == brisk::Status::Ok));
    })));
    (Client::new(&config).expect("client"), events)
}

#[test]
fn a_write_right_after_its_connection_was_killed_runs_once_on_a_new_one() {
    let server = RedisServer::start();
    let (c, events) = recording_client(&server);
    let killer = Client::new(&server.config()).expect("killer");
    ok(&c, &["SET", "reuse:n", "0"]);
    for round in 1..=20 {
        kill_pooled_connection(&c, &killer);
        events.lock().unwrap().clear();
        assert_eq!(integer(&ok(&c, &["INCR", "reuse:n"])), round);
        // As when the peek finds the close: the lost connection, a new one, the command.
        let kinds: Vec<_> = events.lock().unwrap().iter().map(|e| e.0).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Disconnect,
                EventKind::Connect,
                EventKind::Command
            ],
            "round {round}"
        );
    }
    assert_eq!(c.stat(Stat::Errors), 0);
    assert_eq!(c.stat(Stat::Retries), 0);
    assert_eq!(c.stat(Stat::Reconnects), 20);
    assert_eq!(text(&ok(&c, &["GET", "reuse:n"])), "20");
}

#[test]
fn a_pipeline_and_a_transaction_right_after_a_kill_run_once() {
    let server = RedisServer::start();
    let (c, _) = recording_client(&server);
    let killer = Client::new(&server.config()).expect("killer");
    ok(&c, &["SET", "reuse:p", "0"]);
    kill_pooled_connection(&c, &killer);
    let mut p = c.pipeline();
    append(&mut p, &["INCR", "reuse:p"]).unwrap();
    append(&mut p, &["INCR", "reuse:p"]).unwrap();
    assert_eq!(p.exec().expect("pipeline").children().len(), 2);
    kill_pooled_connection(&c, &killer);
    let mut t = c.transaction();
    append(&mut t, &["INCR", "reuse:p"]).unwrap();
    assert_eq!(t.exec().expect("transaction").children().len(), 1);
    assert_eq!(text(&ok(&c, &["GET", "reuse:p"])), "3");
    assert_eq!(c.stat(Stat::Errors), 0);
    assert_eq!(c.stat(Stat::Retries), 0);
}

#[test]
fn without_retries_the_replacement_alone_saves_the_command() {
    let server = RedisServer::start();
    let mut config = server.config();
    config.retry.max_retries = Some(0);
    let c = Client::new(&config).expect("client");
    let killer = Client::new(&server.config()).expect("killer");
    for _ in 0..10 {
        kill_pooled_connection(&c, &killer);
        ok(&c, &["INCR", "reuse:r"]);
    }
    assert_eq!(text(&ok(&c, &["GET", "reuse:r"])), "10");
    assert_eq!(c.stat(Stat::Errors), 0);
}
