//! RESP3 push frames are routed out of every connection (blocking and async) to the consumers
//! registered for their kind, never taken for a reply; consumers hear when a connection closes.

mod support;

use brisk::net::push::{PushConsumer, PushOrigin};
use brisk::{Client, Config, Reply};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{
    Behaviour, HostilePeer, Path, RedisServer, assert_at_most, client_on, cmd, ok, session_cmd,
    timed_call, wait_until,
};

/// Records what it is given.
#[derive(Default)]
struct Recorder {
    pushes: Mutex<Vec<(u64, Vec<String>)>>,
    closed: Mutex<Vec<u64>>,
}

impl PushConsumer for Recorder {
    fn push(&self, origin: &PushOrigin, frame: &Reply) {
        let words = frame
            .children()
            .iter()
            .map(|n| match n.as_bytes() {
                Some(b) => String::from_utf8_lossy(b).into_owned(),
                None => format!("{:?}", n.kind()),
            })
            .collect();
        self.pushes.lock().unwrap().push((origin.connection, words));
    }

    fn connection_closed(&self, origin: &PushOrigin) {
        self.closed.lock().unwrap().push(origin.connection);
    }
}

impl Recorder {
    fn pushes(&self) -> Vec<(u64, Vec<String>)> {
        self.pushes.lock().unwrap().clone()
    }
}

/// A real server's client-side-caching invalidation reaches the consumer, and the command it
/// arrived before still gets its own reply.
#[test]
fn invalidations_reach_the_consumer_and_never_a_caller() {
    let server = RedisServer::start();
    let client = Client::new(&server.config()).unwrap();
    let recorder = Arc::new(Recorder::default());
    let registration = client.register_push_consumer(&[b"invalidate"], recorder.clone());
    let mut session = client.session().unwrap();
    assert_eq!(
        session_cmd(&mut session, &["CLIENT", "TRACKING", "ON"])
            .unwrap()
            .as_str(),
        Some("OK")
    );
    ok(&client, &["SET", "tracked", "1"]);
    session_cmd(&mut session, &["GET", "tracked"]).unwrap();
    // Another connection changes the key: the server queues an invalidation on the session's
    // connection, ahead of the next reply there.
    ok(&client, &["SET", "tracked", "2"]);
    let pong = session_cmd(&mut session, &["PING"]).unwrap();
    assert_eq!(
        pong.as_str(),
        Some("PONG"),
        "the push was not taken for PING's reply"
    );
    let pushes = recorder.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].1, ["invalidate", "Array"]);
    let connection = pushes[0].0;

    // The session changed its connection's state (tracking), so ending it closes the
    // connection, and the consumer hears of it.
    drop(session);
    assert!(
        wait_until(Duration::from_secs(5), || recorder
            .closed
            .lock()
            .unwrap()
            .contains(&connection)),
        "connection_closed for #{connection}"
    );

    // Unregistered: nothing more arrives.
    drop(registration);
    let mut session = client.session().unwrap();
    session_cmd(&mut session, &["CLIENT", "TRACKING", "ON"]).unwrap();
    session_cmd(&mut session, &["GET", "tracked"]).unwrap();
    ok(&client, &["SET", "tracked", "3"]);
    session_cmd(&mut session, &["PING"]).unwrap();
    assert_eq!(recorder.pushes().len(), 1);
    assert!(cmd(&client, &["GET", "tracked"]).is_ok());
}

/// Pushes on a connection of either driver go to the consumer while the command waiting there
/// gets no reply from them (the peer never answers, so the command times out).
fn pushes_are_routed(path: Path) {
    let peer = HostilePeer::start(Behaviour::PushFlood);
    let mut config: Config = peer.config();
    config.command_deadline_ms = 600;
    config.retry.max_retries = Some(0);
    let client = client_on(path, &config);
    let recorder = Arc::new(Recorder::default());
    let _registration = client.register_push_consumer(&[b"message"], recorder.clone());
    let (result, elapsed) = timed_call(&client, path, &["GET", "k"]);
    let error = result.expect_err("the peer never answers GET");
    assert_eq!(
        error.status(),
        brisk::Status::Timeout,
        "{}",
        error.message()
    );
    // The 600 ms deadline, not the peer giving up after 20 s.
    assert_at_most(elapsed, 5000, "a GET under a push flood");
    let pushes = recorder.pushes();
    assert!(!pushes.is_empty(), "{path:?}: no push reached the consumer");
    assert!(
        pushes
            .iter()
            .all(|(_, words)| words == &["message", "news", "x"]),
        "{pushes:?}"
    );
}

// Pooled connections (blocking) and multiplexed ones (async; read by the dispatching thread
// with caller dispatch).
on_every_path! {
    pushes_are_routed_out_of_connections => pushes_are_routed();
}
