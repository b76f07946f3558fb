//! Issue 11, proven against real servers: subscribers on connections of their own, channel,
//! pattern and shard messages with their fields (binary payloads intact, keyspace
//! notifications), unsubscribing, the pull API from a poll loop, freeing under traffic and
//! freeing the client first.
//!
//! Bounds are generous (the machine is small and shared); every wait polls with a deadline.

mod support;

use brisk::pubsub::{Kind, Message, Subscriber};
use brisk::stats::Stat;
use brisk::{Client, Config, Status};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::{RedisServer, binary_value, expect_err, ok, ok_bytes, wait_until};

// ---------------------------------------------------------------------------------------------
// Helpers

/// What a message said, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Received {
    kind: Kind,
    channel: Vec<u8>,
    pattern: Option<Vec<u8>>,
    payload: Vec<u8>,
}

impl Received {
    fn of(m: &Message) -> Received {
        Received {
            kind: m.kind(),
            channel: m.channel().to_vec(),
            pattern: m.pattern().map(<[u8]>::to_vec),
            payload: m.payload().to_vec(),
        }
    }

    fn new(kind: Kind, channel: &str, pattern: Option<&str>, payload: &[u8]) -> Received {
        Received {
            kind,
            channel: channel.as_bytes().to_vec(),
            pattern: pattern.map(|p| p.as_bytes().to_vec()),
            payload: payload.to_vec(),
        }
    }
}

/// Where a callback subscriber's messages go.
#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Received>>,
    arrived: Condvar,
}

impl Inbox {
    fn handler(self: &Arc<Self>) -> brisk::pubsub::MessageHandler {
        let inbox = self.clone();
        Box::new(move |m: &Message| {
            inbox.messages.lock().unwrap().push(Received::of(m));
            inbox.arrived.notify_all();
        })
    }

    /// Waits until at least `n` messages arrived (up to `limit`); all of them.
    fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        let mut messages = self.messages.lock().unwrap();
        while messages.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} of {n} messages arrived within {limit:?}: {:?}",
                messages.len(),
                messages.iter().rev().take(5).collect::<Vec<_>>()
            );
            messages = self.arrived.wait_timeout(messages, left).unwrap().0;
        }
        messages.clone()
    }

    fn len(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

fn publish(client: &Client, command: &str, channel: &str, payload: &[u8]) -> i64 {
    ok_bytes(client, &[command.as_bytes(), channel.as_bytes(), payload])
        .as_integer()
        .expect("an integer reply")
}

fn subscriber(client: &Client, inbox: &Arc<Inbox>) -> Subscriber {
    client
        .subscriber(Some(inbox.handler()))
        .expect("subscriber")
}

const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Messages and their fields

/// Channel, pattern and shard messages arrive with the right kind, channel, pattern and payload
/// (a binary payload intact), over RESP3 and RESP2; unsubscribing stops delivery: the server's
/// PUBLISH count drops to 0.
#[test]
fn channel_pattern_and_shard_messages_arrive_with_their_fields() {
    let server = RedisServer::start();
    for protocol in [3, 2] {
        let mut config = server.config();
        config.set_protocol(protocol).unwrap();
        let client = Client::new(&config).unwrap();
        let inbox = Arc::new(Inbox::default());
        let sub = subscriber(&client, &inbox);
        sub.subscribe(Kind::Channel, &[b"news"]).unwrap();
        sub.subscribe(Kind::Pattern, &[b"n*"]).unwrap();
        sub.subscribe(Kind::Shard, &[b"orders"]).unwrap();
        let binary = binary_value(300);

        // Subscribed once as a channel and once by pattern: two deliveries to one client.
        assert_eq!(publish(&client, "PUBLISH", "news", b"hello"), 2);
        assert_eq!(publish(&client, "SPUBLISH", "orders", &binary), 1);
        assert_eq!(
            publish(&client, "PUBLISH", "nothing-here", b"x"),
            1,
            "n* matches"
        );
        let got = inbox.wait_for(4, LONG);
        let expected = [
            Received::new(Kind::Channel, "news", None, b"hello"),
            Received::new(Kind::Pattern, "news", Some("n*"), b"hello"),
            Received::new(Kind::Shard, "orders", None, &binary),
            Received::new(Kind::Pattern, "nothing-here", Some("n*"), b"x"),
        ];
        // One connection delivers in the server's order.
        assert_eq!(got, expected, "RESP{protocol}");

        sub.unsubscribe(Kind::Channel, &[b"news"]).unwrap();
        sub.unsubscribe(Kind::Pattern, &[b"n*"]).unwrap();
        sub.unsubscribe(Kind::Shard, &[b"orders"]).unwrap();
        assert_eq!(publish(&client, "PUBLISH", "news", b"late"), 0);
        assert_eq!(publish(&client, "SPUBLISH", "orders", b"late"), 0);
        // Unsubscribing what is not subscribed is no error.
        sub.unsubscribe(Kind::Channel, &[b"never"]).unwrap();
        assert_eq!(inbox.len(), 4, "nothing after the unsubscribes");
        assert_eq!(sub.stat(Stat::PubsubMessages), 4);
        assert_eq!(client.stat(Stat::PubsubMessages), 4);
        assert_eq!(sub.stat(Stat::PubsubDropped), 0);
    }
}

/// Several names in one call are one command and one wait; binary channel names work.
#[test]
fn many_names_at_once_and_binary_channel_names() {
    let server = RedisServer::start();
    let client = Client::new(&server.config()).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);
    let names: Vec<Vec<u8>> = (0..2500)
        .map(|i| format!("many:{i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    sub.subscribe(Kind::Channel, &refs).unwrap();
    let odd: &[u8] = b"bin\0chan\r\n";
    sub.subscribe(Kind::Channel, &[odd]).unwrap();
    let numsub = ok(&client, &["PUBSUB", "NUMSUB", "many:0", "many:2499"]);
    assert_eq!(numsub.children()[1].as_integer(), Some(1));
    assert_eq!(numsub.children()[3].as_integer(), Some(1));
    assert_eq!(
        ok_bytes(&client, &[b"PUBLISH", odd, b"payload"]).as_integer(),
        Some(1)
    );
    let got = inbox.wait_for(1, LONG);
    assert_eq!(got[0].channel, odd);
    sub.unsubscribe(Kind::Channel, &refs).unwrap();
    assert_eq!(publish(&client, "PUBLISH", "many:7", b"x"), 0);
    // An empty list is refused.
    expect_err(sub.subscribe(Kind::Channel, &[]), Status::InvalidArgument);
}

/// Keyspace notifications are pattern messages.
#[test]
fn keyspace_notifications_arrive_as_pattern_messages() {
    let server = RedisServer::start();
    let client = Client::new(&server.config()).unwrap();
    ok(&client, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);
    sub.subscribe(Kind::Pattern, &[b"__keyspace@0__:watched*"])
        .unwrap();
    ok(&client, &["SET", "watched:1", "v"]);
    ok(&client, &["DEL", "watched:1"]);
    let got = inbox.wait_for(2, LONG);
    assert_eq!(
        got,
        [
            Received::new(
                Kind::Pattern,
                "__keyspace@0__:watched:1",
                Some("__keyspace@0__:watched*"),
                b"set"
            ),
            Received::new(
                Kind::Pattern,
                "__keyspace@0__:watched:1",
                Some("__keyspace@0__:watched*"),
                b"del"
            ),
        ]
    );
}

/// A server that refuses a subscription (an ACL without that channel) fails the call with the
/// server's status and text, and the subscriber goes on with the others.
#[test]
fn a_refused_subscription_fails_the_call_only() {
    let server = RedisServer::builder()
        .config("user narrow on >pw ~* &allowed* +@all")
        .start();
    let mut config = server.config();
    config.username = Some("narrow".into());
    config.password = Some("pw".to_owned().into());
    let client = Client::new(&config).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);
    sub.subscribe(Kind::Channel, &[b"allowed:1"]).unwrap();
    let e = expect_err(sub.subscribe(Kind::Channel, &[b"forbidden"]), Status::Auth);
    assert!(e.message().contains("NOPERM"), "{}", e.message());
    assert_eq!(publish(&client, "PUBLISH", "allowed:1", b"still"), 1);
    assert_eq!(inbox.wait_for(1, LONG)[0].payload, b"still");
}

// ---------------------------------------------------------------------------------------------
// The pull API

fn readable(fd: i32, timeout_ms: i32) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
    n == 1 && poll.revents & libc::POLLIN != 0
}

fn publish_numbers(client: &Client, channel: &str, numbers: std::ops::Range<usize>) {
    for i in numbers {
        publish(client, "PUBLISH", channel, i.to_string().as_bytes());
    }
}

fn number(message: &Message) -> usize {
    std::str::from_utf8(message.payload())
        .unwrap()
        .parse()
        .unwrap()
}

/// From a poll loop: while messages arrive, readable always means one waits (the loop is the
/// only consumer); once all arrived, the descriptor is readable exactly until the last is
/// taken. `next` takes them in order.
#[test]
fn the_pull_api_from_a_poll_loop() {
    let server = RedisServer::start();
    let client = Arc::new(Client::new(&server.config()).unwrap());
    let sub = client.subscriber(None).unwrap();
    let fd = sub.fd().unwrap();
    assert!(!readable(fd, 0), "nothing waits yet");
    assert!(sub.next(Some(Duration::from_millis(20))).unwrap().is_none());
    sub.subscribe(Kind::Channel, &[b"pull"]).unwrap();
    assert!(!readable(fd, 0), "a confirmation is not a message");

    const N: usize = 1000;
    let publisher = {
        let client = client.clone();
        std::thread::spawn(move || publish_numbers(&client, "pull", 0..N))
    };
    let mut got = 0;
    let deadline = Instant::now() + LONG;
    while got < N {
        assert!(Instant::now() < deadline, "{got} of {N} arrived");
        if !readable(fd, 100) {
            continue;
        }
        let mut drained = 0;
        while let Some(message) = sub.next(Some(Duration::ZERO)).unwrap() {
            assert_eq!(number(&message), got, "in order");
            got += 1;
            drained += 1;
        }
        assert!(drained > 0, "readable, yet nothing waited");
    }
    publisher.join().unwrap();

    publish_numbers(&client, "pull", N..2 * N);
    assert!(wait_until(LONG, || sub.stat(Stat::PubsubMessages) == 2 * N as u64));
    for i in N..2 * N {
        assert!(readable(fd, 0), "message {i} waits: readable");
        let message = sub.next(Some(Duration::ZERO)).unwrap().expect("a message");
        assert_eq!(number(&message), i);
    }
    assert!(!readable(fd, 0), "none waits: not readable");
    assert!(sub.next(Some(Duration::ZERO)).unwrap().is_none());
}

/// A subscriber with a callback refuses the pull API (the messages are the callback's).
#[test]
fn a_callback_subscriber_refuses_the_pull_api() {
    let server = RedisServer::start();
    let client = Client::new(&server.config()).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);
    expect_err(sub.next(Some(Duration::ZERO)), Status::InvalidArgument);
    expect_err(sub.fd(), Status::InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Freeing

/// Freed while messages flow: it returns promptly, and no callback runs after it returned.
#[test]
fn freeing_under_traffic_is_prompt_and_final() {
    let server = RedisServer::start();
    let client = Arc::new(Client::new(&server.config()).unwrap());
    let calls = Arc::new(AtomicU64::new(0));
    let freed = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicU64::new(0));
    let sub = {
        let (calls, freed, late) = (calls.clone(), freed.clone(), late.clone());
        client
            .subscriber(Some(Box::new(move |_m: &Message| {
                calls.fetch_add(1, SeqCst);
                if freed.load(SeqCst) {
                    late.fetch_add(1, SeqCst);
                }
                // A slowish consumer, so the queue is never empty when it is freed.
                std::thread::sleep(Duration::from_micros(200));
            })))
            .unwrap()
    };
    sub.subscribe(Kind::Channel, &[b"flow"]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (client, stop) = (client.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(SeqCst) && sent < 1_000_000 {
                publish(&client, "PUBLISH", "flow", b"tick");
                sent += 1;
            }
        })
    };
    assert!(wait_until(LONG, || calls.load(SeqCst) > 200));
    let started = Instant::now();
    drop(sub);
    freed.store(true, SeqCst);
    let took = started.elapsed();
    let after = calls.load(SeqCst);
    // Traffic goes on for a while: no callback may come of it.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, SeqCst);
    publisher.join().unwrap();
    assert_eq!(calls.load(SeqCst), after, "a callback ran after the free");
    assert_eq!(late.load(SeqCst), 0);
    assert!(took < Duration::from_secs(5), "free took {took:?}");
    assert!(
        wait_until(LONG, || publish(&client, "PUBLISH", "flow", b"x") == 0),
        "the subscriber's connection was not closed"
    );
}

/// Freeing the client first is safe: the subscriber's calls fail with CLOSED, what was queued can
/// still be taken, then CLOSED; the subscriber is freed as usual.
#[test]
fn freeing_the_client_first_closes_the_subscriber() {
    let server = RedisServer::start();
    let client = Client::new(&server.config()).unwrap();
    let sub = client.subscriber(None).unwrap();
    sub.subscribe(Kind::Channel, &[b"c"]).unwrap();
    let publisher = Client::new(&server.config()).unwrap();
    publish(&publisher, "PUBLISH", "c", b"queued");
    assert!(wait_until(LONG, || sub.queued() == 1));
    let fd = sub.fd().unwrap();
    drop(client);
    let message = sub.next(Some(LONG)).unwrap().expect("the queued message");
    assert_eq!(message.payload(), b"queued");
    assert!(
        wait_until(LONG, || readable(fd, 0)),
        "the fd wakes a poll loop"
    );
    expect_err(sub.next(Some(LONG)), Status::Closed);
    expect_err(sub.subscribe(Kind::Channel, &[b"d"]), Status::Closed);
    assert!(
        wait_until(LONG, || publish(&publisher, "PUBLISH", "c", b"x") == 0),
        "the subscriber's connection was not closed"
    );
    drop(sub);
}

/// A subscriber made from a closed client is refused.
#[test]
fn a_closed_client_makes_no_subscriber() {
    let config = Config::default();
    let client = Client::new(&config).unwrap();
    client.close();
    assert_eq!(
        client.subscriber(None).err().map(|e| e.status()),
        Some(Status::Closed)
    );
}
