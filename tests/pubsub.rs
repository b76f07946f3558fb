//! Issue 11, proven against real servers: subscribers on connections of their own, channel,
//! pattern and shard messages with their fields (binary payloads intact, keyspace
//! notifications), unsubscribing, the pull API from a poll loop, freeing under traffic and
//! freeing the client first.
//!
//! Bounds are generous (the machine is small and shared); every wait polls with a deadline.

mod support;

use brisk::events::{Event, EventKind, HandlerSlot};
use brisk::pubsub::{Kind, Message, Overflow, Subscriber};
use brisk::stats::Stat;
use brisk::{Client, Config, Status};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::{RedisServer, binary_value, expect_err, ok, ok_bytes, readable, wait_until};

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

/// A subscriber's connections are made like the client's: over TLS and over a Unix socket, with
/// the password the server requires (each link does its own handshake, AUTH included); and after
/// CLIENT KILL the new connection authenticates again.
#[test]
fn over_tls_and_a_unix_socket_with_a_password() {
    const PASSWORD: &str = "pubsub-secret";
    let server = RedisServer::builder().tls().password(PASSWORD).start();
    let mut tls = server.config();
    tls.password = Some(PASSWORD.to_owned().into());
    let mut unix = Config::default();
    unix.set_unix_path(server.unix_path().to_str().unwrap())
        .unwrap();
    unix.password = Some(PASSWORD.to_owned().into());
    let publisher = Client::new(&unix).unwrap();
    for (what, config) in [("TLS", &tls), ("Unix socket", &unix)] {
        let client = Client::new(config).unwrap();
        let inbox = Arc::new(Inbox::default());
        let sub = subscriber(&client, &inbox);
        sub.subscribe(Kind::Channel, &[b"secure"]).unwrap();
        assert_eq!(
            publish(&publisher, "PUBLISH", "secure", b"one"),
            1,
            "{what}"
        );
        assert_eq!(inbox.wait_for(1, LONG)[0].payload, b"one", "{what}");
        ok(&publisher, &["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert!(
            wait_until(LONG, || sub.stat(Stat::PubsubResubscribes) >= 1
                && publish(&publisher, "PUBLISH", "secure", b"two") == 1),
            "{what}: not back after CLIENT KILL"
        );
        assert!(
            inbox.wait_for(2, LONG).iter().any(|m| m.payload == b"two"),
            "{what}"
        );
    }
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
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (client, stop, sent) = (client.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop.load(SeqCst) && sent.load(SeqCst) < 1_000_000 {
                publish(&client, "PUBLISH", "flow", b"tick");
                sent.fetch_add(1, SeqCst);
            }
        })
    };
    assert!(wait_until(LONG, || calls.load(SeqCst) > 200));
    let started = Instant::now();
    drop(sub);
    freed.store(true, SeqCst);
    let took = started.elapsed();
    let after = calls.load(SeqCst);
    // Traffic goes on for a while (a thousand more publishes): no callback may come of it.
    let sent_at_free = sent.load(SeqCst);
    assert!(wait_until(LONG, || sent.load(SeqCst) >= sent_at_free + 1_000));
    stop.store(true, SeqCst);
    publisher.join().unwrap();
    assert_eq!(calls.load(SeqCst), after, "a callback ran after the free");
    assert_eq!(late.load(SeqCst), 0);
    support::assert_at_most(took, 5_000, "free under traffic");
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

// ---------------------------------------------------------------------------------------------
// Faults: the subscriber comes back, subscribed to everything

/// Records the events of a client.
#[derive(Default)]
struct Events(Mutex<Vec<(EventKind, Status, u32, Duration)>>);

impl Events {
    fn install(self: &Arc<Self>, config: &mut Config) {
        let events = self.clone();
        config.events = HandlerSlot(Some(Arc::new(move |e: &Event<'_>| {
            events
                .0
                .lock()
                .unwrap()
                .push((e.kind, e.status, e.batch_size, e.duration));
        })));
    }

    fn of(&self, kind: EventKind) -> Vec<(Status, u32, Duration)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.0 == kind)
            .map(|e| (e.1, e.2, e.3))
            .collect()
    }
}

/// Whether the server has the subscriber's channel, pattern and shard channel subscribed.
fn subscribed_to_everything(client: &Client) -> bool {
    let counts = |args: &[&str]| {
        support::cmd(client, args)
            .ok()
            .and_then(|r| r.children().get(1).and_then(|n| n.as_integer()))
    };
    let numpat = support::cmd(client, &["PUBSUB", "NUMPAT"])
        .ok()
        .and_then(|r| r.as_integer());
    counts(&["PUBSUB", "NUMSUB", "chan"]) == Some(1)
        && counts(&["PUBSUB", "SHARDNUMSUB", "shard"]) == Some(1)
        && numpat == Some(1)
}

/// Subscribes a callback subscriber to `chan`, `pat*` and shard channel `shard`, checks that
/// messages arrive, applies `fault`, and checks that the subscriber is back within a bounded
/// time, subscribed to all three (the server says so), with a RESUBSCRIBE event and count, and
/// that messages published afterwards arrive. Returns how long the comeback took after `fault`
/// returned, and the subscriber's client.
fn comes_back_after(
    server: &mut RedisServer,
    mut config: Config,
    publisher_config: &Config,
    fault: impl FnOnce(&mut RedisServer, &Client),
) -> (Duration, Client) {
    let events = Arc::new(Events::default());
    events.install(&mut config);
    let client = Client::new(&config).unwrap();
    let publisher = Client::new(publisher_config).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);
    sub.subscribe(Kind::Channel, &[b"chan"]).unwrap();
    sub.subscribe(Kind::Pattern, &[b"pat*"]).unwrap();
    sub.subscribe(Kind::Shard, &[b"shard"]).unwrap();
    assert_eq!(publish(&publisher, "PUBLISH", "chan", b"before"), 1);
    inbox.wait_for(1, LONG);

    fault(server, &publisher);
    let started = Instant::now();
    let back = wait_until(Duration::from_secs(60), || {
        sub.stat(Stat::PubsubResubscribes) >= 1 && subscribed_to_everything(&publisher)
    });
    let took = started.elapsed();
    assert!(
        back,
        "not resubscribed within 60 s (resubscribes {}, events {:?})",
        sub.stat(Stat::PubsubResubscribes),
        events.0.lock().unwrap()
    );
    assert_eq!(publish(&publisher, "PUBLISH", "chan", b"after"), 1);
    assert_eq!(publish(&publisher, "PUBLISH", "other", b"x"), 0);
    assert_eq!(publish(&publisher, "PUBLISH", "pat1", b"after"), 1);
    assert_eq!(publish(&publisher, "SPUBLISH", "shard", b"after"), 1);
    let got = inbox.wait_for(4, LONG);
    let after: Vec<&Received> = got.iter().filter(|r| r.payload == b"after").collect();
    assert_eq!(after.len(), 3, "{got:?}");
    assert_eq!(
        client.stat(Stat::PubsubResubscribes),
        sub.stat(Stat::PubsubResubscribes)
    );
    let resubscribes = events.of(EventKind::Resubscribe);
    assert!(!resubscribes.is_empty());
    assert!(
        resubscribes
            .iter()
            .all(|(status, batch, _)| *status == Status::Ok && *batch == 3),
        "{resubscribes:?}"
    );
    drop(sub);
    (took, client)
}

/// CLIENT KILL TYPE pubsub: the subscriber reconnects at once and subscribes to everything again.
#[test]
fn comes_back_after_client_kill_type_pubsub() {
    let mut server = RedisServer::start();
    let config = server.config();
    let (took, _) = comes_back_after(&mut server, config.clone(), &config, |_, publisher| {
        let killed = ok(publisher, &["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert_eq!(killed.as_integer(), Some(1));
    });
    eprintln!("CLIENT KILL TYPE pubsub: resubscribed in {took:?}");
    support::assert_at_most(took, 10_000, "resubscribed after CLIENT KILL TYPE pubsub");
}

/// A server restart (killed, then started again on the same port): the subscriber retries until
/// it is back.
#[test]
fn comes_back_after_a_server_restart() {
    let mut server = RedisServer::start();
    let config = server.config();
    let (took, client) = comes_back_after(&mut server, config.clone(), &config, |server, _| {
        server.kill();
        // Down for a while: several reconnects fail (refused) before it is back.
        std::thread::sleep(Duration::from_millis(1500));
        server.start_again();
    });
    eprintln!("restart: resubscribed {took:?} after the server was back");
    support::assert_at_most(took, 20_000, "resubscribed after the restart");
    assert!(client.stat(Stat::Reconnects) >= 1);
}

/// SIGSTOP, with the default health check (PING after 3 s idle, 5 s to answer): the frozen
/// server's connection is given up, and once the server runs again the subscriber is back.
#[test]
fn comes_back_after_sigstop_and_sigcont_with_the_default_health_check() {
    let mut server = RedisServer::start();
    let config = server.config();
    let (took, client) = comes_back_after(&mut server, config.clone(), &config, |server, _| {
        server.sigstop();
        // Frozen longer than 3 s idle + 5 s for the PING: the connection must be given up.
        // (Time itself is the point here: the health check's own interval and deadline.)
        std::thread::sleep(Duration::from_secs(10));
        server.sigcont();
    });
    eprintln!("SIGSTOP 10 s then SIGCONT: resubscribed {took:?} after SIGCONT");
    support::assert_at_most(took, 20_000, "resubscribed after SIGCONT");
    assert!(client.stat(Stat::HealthChecks) >= 1);
    assert!(
        client.stat(Stat::HealthCheckFailures) >= 1,
        "the unanswered PING gave the connection up"
    );
}

/// A network cut (a proxy that silently stops forwarding): the health PING finds it, the
/// subscriber reconnects once the network is back.
#[test]
fn comes_back_after_a_silent_network_cut() {
    let mut server = RedisServer::start();
    let proxy = support::FaultProxy::start(format!("127.0.0.1:{}", server.port()).parse().unwrap());
    let mut config = Config::default();
    config.set_url(&proxy.url()).unwrap();
    config.pubsub.set_health_check(300, 700).unwrap();
    config.read_timeout_ms = 1000;
    let direct = server.config();
    let (took, client) = comes_back_after(&mut server, config, &direct, |_, _| {
        proxy.stall();
        // Until the subscriber has given up the connection (a health check failed).
        let gave_up = wait_until(LONG, || proxy.accepted() >= 2);
        assert!(gave_up, "no reconnect attempt through the stalled proxy");
        proxy.resume();
    });
    eprintln!("silent network cut: resubscribed {took:?} after the network was back");
    support::assert_at_most(took, 20_000, "resubscribed after the network came back");
    assert!(client.stat(Stat::HealthCheckFailures) >= 1);
}

// ---------------------------------------------------------------------------------------------
// Bursts: the queue and its policies

const BURST: usize = 100_000;

/// Publishes `0..count` to `channel` as fast as the server takes them (pipelines of 1,000);
/// returns how many subscribers each reached (summed).
fn publish_burst(client: &Client, channel: &str, count: usize) -> i64 {
    let mut reached = 0;
    let mut next = 0;
    while next < count {
        let mut pipeline = client.pipeline();
        let end = (next + 1000).min(count);
        for i in next..end {
            let payload = i.to_string();
            let args: [&[u8]; 3] = [b"PUBLISH", channel.as_bytes(), payload.as_bytes()];
            pipeline.append(&brisk::Args::from_slices(&args)).unwrap();
        }
        let replies = pipeline.exec().unwrap();
        reached += replies
            .children()
            .iter()
            .map(|r| r.as_integer().unwrap())
            .sum::<i64>();
        next = end;
    }
    reached
}

fn config_with_queue(server: &RedisServer, capacity: u32, overflow: Overflow) -> Config {
    let mut config = server.config();
    config.pubsub.set_queue(capacity, overflow).unwrap();
    config
}

/// What a consumer saw of a burst: the numbers delivered, in delivery order.
#[derive(Default)]
struct Tally {
    numbers: Mutex<Vec<usize>>,
}

impl Tally {
    fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.numbers.lock().unwrap())
    }

    fn len(&self) -> usize {
        self.numbers.lock().unwrap().len()
    }
}

fn assert_increasing(numbers: &[usize], what: &str) {
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "{what}: delivered out of order"
    );
}

/// A fast consumer gets a 100,000-message burst whole and in order: with BLOCK (the default
/// queue size; the reader waits rather than drop), and pulled with a queue that holds the burst.
/// With the default policy (DROP_OLDEST, 10,000) what arrived plus what was dropped is the
/// burst, in order (a busy machine may descheduled the consumer long enough to drop some).
#[test]
fn a_burst_to_a_fast_consumer_arrives_whole_and_in_order() {
    let server = RedisServer::start();
    let publisher = Client::new(&server.config()).unwrap();
    for (style, capacity, overflow) in [
        ("callback", 10_000, Overflow::Block),
        ("pull", BURST as u32, Overflow::DropOldest),
        ("callback, default policy", 10_000, Overflow::DropOldest),
    ] {
        let client = Client::new(&config_with_queue(&server, capacity, overflow)).unwrap();
        let tally = Arc::new(Tally::default());
        let sub = if style == "pull" {
            client.subscriber(None).unwrap()
        } else {
            let tally = tally.clone();
            client
                .subscriber(Some(Box::new(move |m: &Message| {
                    tally.numbers.lock().unwrap().push(number(m));
                })))
                .unwrap()
        };
        sub.subscribe(Kind::Channel, &[b"burst"]).unwrap();
        let started = Instant::now();
        let puller = (style == "pull").then(|| {
            let mut numbers = Vec::with_capacity(BURST);
            move |sub: &Subscriber| {
                let deadline = Instant::now() + Duration::from_secs(120);
                while numbers.len() < BURST && Instant::now() < deadline {
                    if let Some(m) = sub.next(Some(Duration::from_millis(100))).unwrap() {
                        numbers.push(number(&m));
                    }
                }
                numbers
            }
        });
        let reached = std::thread::scope(|scope| {
            let publishing = scope.spawn(|| publish_burst(&publisher, "burst", BURST));
            if let Some(pull) = puller {
                let numbers = pull(&sub);
                tally.numbers.lock().unwrap().extend(numbers);
            }
            publishing.join().unwrap()
        });
        assert_eq!(reached, BURST as i64);
        let whole = style != "callback, default policy";
        let done = wait_until(Duration::from_secs(120), || {
            tally.len() as u64 + sub.stat(Stat::PubsubDropped) == BURST as u64
        });
        let took = started.elapsed();
        let numbers = tally.take();
        let dropped = sub.stat(Stat::PubsubDropped);
        assert!(
            done,
            "{style}: {} arrived, {dropped} dropped",
            numbers.len()
        );
        assert_eq!(sub.stat(Stat::PubsubMessages), BURST as u64, "{style}");
        assert_increasing(&numbers, style);
        if whole {
            assert_eq!(dropped, 0, "{style}");
            assert_eq!(numbers.len(), BURST, "{style}");
            assert_eq!(numbers.last(), Some(&(BURST - 1)));
        }
        eprintln!(
            "{style} ({overflow:?}, queue {capacity}): {} of {BURST} delivered, {dropped} dropped, \
             {:.0} messages/s end to end",
            numbers.len(),
            BURST as f64 / took.as_secs_f64()
        );
    }
}

/// A slow consumer (stuck in its callback until the burst is over): for each policy, what was
/// delivered plus what was dropped is exactly what was published, delivery stays in order, and
/// each policy keeps what it says: DROP_OLDEST the newest, DROP_NEWEST the oldest, BLOCK
/// everything (the reader stops reading; the server holds the rest).
#[test]
fn a_burst_to_a_slow_consumer_is_accounted_for_exactly_per_policy() {
    const CAPACITY: usize = 1000;
    let server = RedisServer::start();
    let publisher = Client::new(&server.config()).unwrap();
    for overflow in [Overflow::DropOldest, Overflow::DropNewest, Overflow::Block] {
        let client = Client::new(&config_with_queue(&server, CAPACITY as u32, overflow)).unwrap();
        let tally = Arc::new(Tally::default());
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sub = {
            let (tally, gate) = (tally.clone(), gate.clone());
            client
                .subscriber(Some(Box::new(move |m: &Message| {
                    tally.numbers.lock().unwrap().push(number(m));
                    let (open, opened) = &*gate;
                    let open = open.lock().unwrap();
                    // Stuck until the gate opens (bounded: the test fails before this ends).
                    drop(opened.wait_timeout_while(open, Duration::from_secs(120), |o| !*o));
                })))
                .unwrap()
        };
        sub.subscribe(Kind::Channel, &[b"slow"]).unwrap();
        assert_eq!(publish_burst(&publisher, "slow", BURST), BURST as i64);
        match overflow {
            // The reader goes on reading and dropping: all of it is received.
            Overflow::DropOldest | Overflow::DropNewest => assert!(
                wait_until(Duration::from_secs(120), || sub.stat(Stat::PubsubMessages)
                    == BURST as u64),
                "{overflow:?}: {} received",
                sub.stat(Stat::PubsubMessages)
            ),
            // The reader has stopped reading: the queue is full and the rest waits in the server.
            Overflow::Block => {
                assert!(wait_until(LONG, || sub.queued() == CAPACITY));
                assert!(sub.stat(Stat::PubsubMessages) < BURST as u64);
                assert_eq!(sub.stat(Stat::PubsubDropped), 0);
            }
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        let dropped = || sub.stat(Stat::PubsubDropped);
        let accounted = wait_until(Duration::from_secs(120), || {
            tally.len() as u64 + dropped() == BURST as u64
        });
        let numbers = tally.take();
        assert!(
            accounted,
            "{overflow:?}: {} delivered + {} dropped != {BURST}",
            numbers.len(),
            dropped()
        );
        assert_eq!(sub.stat(Stat::PubsubMessages), BURST as u64);
        assert_increasing(&numbers, &format!("{overflow:?}"));
        match overflow {
            Overflow::DropOldest | Overflow::DropNewest => {
                // One message in the stuck callback's hands, a full queue behind it.
                assert_eq!(numbers.len(), CAPACITY + 1, "{overflow:?}");
            }
            Overflow::Block => assert_eq!(numbers.len(), BURST),
        }
        match overflow {
            Overflow::DropOldest => assert_eq!(numbers.last(), Some(&(BURST - 1)), "newest kept"),
            Overflow::DropNewest => {
                // The first CAPACITY always find room: they are never the ones dropped.
                assert_eq!(
                    numbers[..CAPACITY],
                    (0..CAPACITY).collect::<Vec<_>>(),
                    "oldest kept"
                );
            }
            Overflow::Block => assert_eq!(dropped(), 0),
        }
        eprintln!(
            "slow consumer, {overflow:?}, queue {CAPACITY}: {} delivered + {} dropped = {BURST}",
            numbers.len(),
            dropped()
        );
    }
}

/// BLOCK past the server's output-buffer limit: the subscriber stops reading while its queue is
/// full, messages pile up in the server until its limit for Pub/Sub clients (1 MB here) closes
/// the connection; once the consumer takes messages again the subscriber reads what had arrived,
/// finds the connection closed, reconnects and subscribes again. brisk dropped nothing (its
/// counter says 0), what arrived is in order, and what the server threw away is simply missing
/// (at most once); messages published after the resubscription arrive.
#[test]
fn block_past_the_servers_output_buffer_limit_comes_back() {
    // Far less than the socket buffers hold when the server gives up (hundreds of KB of 1 KiB
    // messages): the queue is full before the reader could reach the end of the connection.
    const CAPACITY: usize = 20;
    const MOST: usize = 100_000;
    let server = RedisServer::builder()
        .config("client-output-buffer-limit pubsub 1mb 0 0")
        .start();
    let publisher = Client::new(&server.config()).unwrap();
    let client = Client::new(&config_with_queue(
        &server,
        CAPACITY as u32,
        Overflow::Block,
    ))
    .unwrap();
    let sub = client.subscriber(None).unwrap();
    sub.subscribe(Kind::Channel, &[b"full"]).unwrap();
    let subscribed = || {
        support::cmd(&publisher, &["PUBSUB", "NUMSUB", "full"])
            .ok()
            .and_then(|r| r.children().get(1).and_then(|n| n.as_integer()))
    };
    // 1 KiB messages, numbered, until the server has closed the subscriber's connection (the
    // socket buffers of a loopback connection hold a few MB, the server 1 MB more).
    let padding = "x".repeat(1024);
    let mut published = 0;
    while subscribed() == Some(1) {
        assert!(
            published < MOST,
            "the server never applied its output-buffer limit"
        );
        let mut pipeline = publisher.pipeline();
        for i in published..published + 100 {
            let payload = format!("{i}:{padding}");
            let args: [&[u8]; 3] = [b"PUBLISH", b"full", payload.as_bytes()];
            pipeline.append(&brisk::Args::from_slices(&args)).unwrap();
        }
        pipeline.exec().unwrap();
        published += 100;
    }
    assert!(wait_until(LONG, || sub.queued() == CAPACITY));
    assert_eq!(sub.stat(Stat::PubsubDropped), 0);
    assert_eq!(sub.stat(Stat::PubsubResubscribes), 0, "it was not reading");

    let numbered = |m: &Message| -> usize {
        let payload = std::str::from_utf8(m.payload()).unwrap();
        payload.split(':').next().unwrap().parse().unwrap()
    };
    let mut numbers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sub.stat(Stat::PubsubResubscribes) == 0 || subscribed() != Some(1) {
        assert!(Instant::now() < deadline, "not back within 60 s");
        if let Some(m) = sub.next(Some(Duration::from_millis(100))).unwrap() {
            numbers.push(numbered(&m));
        }
    }
    while let Some(m) = sub.next(Some(Duration::ZERO)).unwrap() {
        numbers.push(numbered(&m));
    }
    assert_increasing(&numbers, "BLOCK past the output-buffer limit");
    assert!(numbers.len() >= CAPACITY);
    assert!(numbers.len() < published, "the server threw some away");
    assert_eq!(sub.stat(Stat::PubsubMessages), numbers.len() as u64);
    assert_eq!(sub.stat(Stat::PubsubDropped), 0, "brisk dropped nothing");
    assert!(client.stat(Stat::Reconnects) >= 1);
    eprintln!(
        "BLOCK past a 1 MB output-buffer limit: {} of {published} arrived, then resubscribed",
        numbers.len()
    );

    assert_eq!(publish(&publisher, "PUBLISH", "full", b"0:after"), 1);
    let after = sub
        .next(Some(LONG))
        .unwrap()
        .expect("a message after the resubscription");
    assert_eq!(after.payload(), b"0:after");
}

/// Subscribing while the server is down fails by the retry policy (CONNECTION) and leaves
/// nothing behind; what was subscribed before comes back with the server, the failed name not.
#[test]
fn a_subscribe_while_the_server_is_down_fails_and_leaves_nothing_behind() {
    let mut server = RedisServer::start();
    let client = Client::new(&server.config()).unwrap();
    let publisher = Client::new(&server.config()).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);
    sub.subscribe(Kind::Channel, &[b"kept"]).unwrap();
    server.kill();
    let started = Instant::now();
    let e = expect_err(
        sub.subscribe(Kind::Channel, &[b"failed"]),
        Status::Connection,
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}: {}", e.message());
    server.start_again();
    assert!(wait_until(Duration::from_secs(60), || sub
        .stat(Stat::PubsubResubscribes)
        >= 1));
    assert_eq!(publish(&publisher, "PUBLISH", "kept", b"k"), 1);
    assert_eq!(publish(&publisher, "PUBLISH", "failed", b"f"), 0);
    assert_eq!(inbox.wait_for(1, LONG)[0].channel, b"kept");
    // And subscribing works again.
    sub.subscribe(Kind::Channel, &[b"failed"]).unwrap();
    assert_eq!(publish(&publisher, "PUBLISH", "failed", b"f"), 1);
}

/// A subscribe waiting for its confirmation (here: held by a stalled network) is ended by an
/// unsubscribe of the same name from another thread: it returns OK at once, not when the server
/// answers, and once the network is back the name is not subscribed (what was is still).
#[test]
fn an_unsubscribe_ends_another_threads_pending_subscribe() {
    let server = RedisServer::start();
    let proxy = support::FaultProxy::in_front_of(&server);
    let mut config = Config::default();
    config.set_url(&proxy.url()).unwrap();
    // Neither the health check nor the read timeout may end the stalled connection meanwhile.
    config.pubsub.set_health_check(0, 0).unwrap();
    config.read_timeout_ms = 120_000;
    let client = Client::new(&config).unwrap();
    let publisher = Client::new(&server.config()).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = Arc::new(subscriber(&client, &inbox));
    sub.subscribe(Kind::Channel, &[b"kept"]).unwrap();

    proxy.stall();
    let before = proxy.client_bytes();
    let pending = {
        let sub = sub.clone();
        std::thread::spawn(move || sub.subscribe(Kind::Channel, &[b"pending"]))
    };
    // Its SUBSCRIBE has left the client: the call waits for the server's confirmation.
    assert!(wait_until(LONG, || proxy.client_bytes() > before));
    assert!(
        !pending.is_finished(),
        "confirmed through a stalled network"
    );
    let unsubscribing = {
        let sub = sub.clone();
        std::thread::spawn(move || sub.unsubscribe(Kind::Channel, &[b"pending"]))
    };
    let (ended, took) = support::timed(|| wait_until(LONG, || pending.is_finished()));
    assert!(ended, "the pending subscribe did not return");
    support::assert_at_most(took, 5_000, "a pending subscribe ended by an unsubscribe");
    assert!(proxy.is_stalled(), "it returned without the server");
    pending.join().unwrap().unwrap();
    assert!(
        !unsubscribing.is_finished(),
        "unsubscribed through a stalled network"
    );

    proxy.resume();
    unsubscribing.join().unwrap().unwrap();
    assert_eq!(publish(&publisher, "PUBLISH", "pending", b"p"), 0);
    assert_eq!(publish(&publisher, "PUBLISH", "kept", b"k"), 1);
    assert_eq!(inbox.wait_for(1, LONG)[0].channel, b"kept");
}

// ---------------------------------------------------------------------------------------------
// Cluster: shard channels at their slots' owners, through a slot move and failovers

fn slot_of(name: &str) -> u16 {
    brisk::core::cluster::key_slot(name.as_bytes())
}

/// Moves `slot` from primary `from` to primary `to` the way `redis-cli --cluster reshard` does
/// (IMPORTING, MIGRATING, then SETSLOT NODE on every primary; a shard channel has no keys).
fn move_slot(cluster: &support::RedisCluster, slot: u16, from: usize, to: usize) {
    let slot = slot.to_string();
    let id = |i: usize| cluster.nodes[i].cli(&["CLUSTER", "MYID"]);
    let (from_id, to_id) = (id(from), id(to));
    cluster.nodes[to].cli(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    cluster.nodes[from].cli(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    for i in 0..cluster.nodes.len() {
        if cluster.is_primary(i) {
            cluster.nodes[i].cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        }
    }
}

/// Publishes `tag` to every shard channel (SPUBLISH through the client, routed to the slot's
/// owner) and to the plain channel, again every few seconds, until one round arrives whole
/// (messages published while a subscription moves may be lost: delivery is at most once).
/// Returns how long it took.
fn a_round_arrives(
    client: &Client,
    inbox: &Inbox,
    shard_channels: &[String],
    tag: &str,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    for attempt in 0.. {
        assert!(
            started.elapsed() < limit,
            "no whole round {tag} within {limit:?} ({attempt} rounds)"
        );
        let payload = format!("{tag}#{attempt}");
        for channel in shard_channels {
            publish(client, "SPUBLISH", channel, payload.as_bytes());
        }
        publish(client, "PUBLISH", "everyone", payload.as_bytes());
        let whole = wait_until(Duration::from_secs(3), || {
            let messages = inbox.messages.lock().unwrap();
            let of_round = messages
                .iter()
                .filter(|m| m.payload == payload.as_bytes())
                .collect::<Vec<_>>();
            // Every shard channel once, the channel and its pattern.
            of_round.len() == shard_channels.len() + 2
        });
        if whole {
            return started.elapsed();
        }
    }
    unreachable!()
}

/// Whether every shard channel is subscribed at the primary that owns its slot now.
fn subscribed_at_the_owners(cluster: &support::RedisCluster, shard_channels: &[String]) -> bool {
    shard_channels.iter().all(|channel| {
        let owner = cluster.primary_of_slot(0, slot_of(channel));
        let answer = cluster.nodes[owner].cli(&["PUBSUB", "SHARDNUMSUB", channel]);
        answer.lines().nth(1) == Some("1")
    })
}

/// 50 shard channels over all three primaries (one call subscribes them all, each SSUBSCRIBE
/// going to its slot's owner), a channel and a pattern (on any one node): SPUBLISH through the
/// normal client reaches each. `CLUSTER SETSLOT` moves one channel's slot: the old owner drops
/// the subscription on its own (an unsolicited `sunsubscribe`), the subscriber reads the slot map
/// again and subscribes at the new owner. A primary fails over (`CLUSTER FAILOVER`), and another
/// is killed: each time the shard channels end up subscribed at their slots' owners, and a round
/// of SPUBLISH arrives whole.
#[test]
fn cluster_shard_channels_follow_a_slot_move_and_failovers() {
    let mut cluster = support::RedisCluster::start();
    let mut config = cluster.config();
    config.pubsub.set_health_check(500, 2000).unwrap();
    config.read_timeout_ms = 2000;
    let events = Arc::new(Events::default());
    events.install(&mut config);
    let client = Client::new(&config).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);

    let channels: Vec<String> = (0..50).map(|i| format!("shard:{i}")).collect();
    let owners: std::collections::BTreeSet<usize> = channels
        .iter()
        .map(|c| cluster.primary_of_slot(0, slot_of(c)))
        .collect();
    assert_eq!(owners.len(), 3, "the channels span every primary");
    let names: Vec<&[u8]> = channels.iter().map(|c| c.as_bytes()).collect();
    sub.subscribe(Kind::Shard, &names).unwrap();
    sub.subscribe(Kind::Channel, &[b"everyone"]).unwrap();
    sub.subscribe(Kind::Pattern, &[b"every*"]).unwrap();
    assert!(subscribed_at_the_owners(&cluster, &channels));
    let took = a_round_arrives(&client, &inbox, &channels, "start", LONG);
    eprintln!("cluster: first round in {took:?}");

    // A slot moves.
    let moved = &channels[0];
    let from = cluster.primary_of_slot(0, slot_of(moved));
    let to = *owners.iter().find(|&&o| o != from).unwrap();
    let resubscribes = sub.stat(Stat::PubsubResubscribes);
    move_slot(&cluster, slot_of(moved), from, to);
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || {
            sub.stat(Stat::PubsubResubscribes) > resubscribes
                && subscribed_at_the_owners(&cluster, &channels)
        }),
        "{moved} not subscribed at its new owner:\n{}",
        cluster.describe()
    );
    eprintln!(
        "slot move: resubscribed at the new owner in {:?}",
        started.elapsed()
    );
    a_round_arrives(&client, &inbox, &channels, "after-move", LONG);

    // A manual failover of the primary of another channel.
    let primary = cluster.primary_of_slot(0, slot_of(&channels[1]));
    let replica = cluster.replica_of(primary);
    cluster.nodes[replica].cli(&["CLUSTER", "FAILOVER"]);
    assert!(wait_until(Duration::from_secs(30), || cluster
        .is_primary(replica)
        && !cluster.is_primary(primary)));
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || subscribed_at_the_owners(
            &cluster, &channels
        )),
        "not subscribed at the owners after the failover:\n{}",
        cluster.describe()
    );
    eprintln!(
        "manual failover: subscribed at the new primary in {:?}",
        started.elapsed()
    );
    a_round_arrives(&client, &inbox, &channels, "after-failover", LONG);

    // A primary killed: its replica is promoted.
    let victim = *owners
        .iter()
        .find(|&&o| o != replica && cluster.is_primary(o))
        .unwrap();
    let heir = cluster.replica_of(victim);
    cluster.nodes[victim].kill();
    assert!(wait_until(Duration::from_secs(60), || cluster.is_primary(heir)));
    let started = Instant::now();
    let took = a_round_arrives(
        &client,
        &inbox,
        &channels,
        "after-kill",
        Duration::from_secs(60),
    );
    eprintln!(
        "killed primary: a whole round {took:?} after the promotion ({:?} since)",
        started.elapsed()
    );
    let live: Vec<String> = channels.clone();
    assert!(wait_until(Duration::from_secs(60), || {
        live.iter().all(|channel| {
            let owner = cluster.primary_of_slot(heir, slot_of(channel));
            cluster.nodes[owner]
                .cli(&["PUBSUB", "SHARDNUMSUB", channel])
                .lines()
                .nth(1)
                == Some("1")
        })
    }));
    assert!(sub.stat(Stat::PubsubResubscribes) >= 2);
    let resubscribe_events = events.of(EventKind::Resubscribe);
    assert!(!resubscribe_events.is_empty());
    eprintln!(
        "cluster: {} resubscriptions, {} topology refreshes, {} redirects",
        sub.stat(Stat::PubsubResubscribes),
        client.stat(Stat::TopologyRefreshes),
        client.stat(Stat::Redirects)
    );
    drop(sub);
    cluster.nodes[victim].start_again();
}

/// Which node of `cluster` (`dead` left out) has `channel` subscribed, if one has.
fn node_with_channel(
    cluster: &support::RedisCluster,
    channel: &str,
    dead: Option<usize>,
) -> Option<usize> {
    (0..cluster.nodes.len())
        .filter(|&i| Some(i) != dead)
        .find(|&i| {
            cluster.nodes[i]
                .cli(&["PUBSUB", "NUMSUB", channel])
                .lines()
                .nth(1)
                == Some("1")
        })
}

/// On a cluster, channels and patterns live on one node (PUBLISH reaches every node): when that
/// node is killed, the subscriber takes them to another node, and messages published
/// afterwards (on any node) arrive again, through the channel and the pattern. The first
/// subscribe comes right after the client is made, before it has read the slot map (it once
/// waited for ever there: the read it waited for was never started).
#[test]
fn cluster_channels_and_patterns_move_when_their_node_dies() {
    let mut cluster = support::RedisCluster::start();
    let mut config = cluster.config();
    config.pubsub.set_health_check(500, 2000).unwrap();
    config.read_timeout_ms = 2000;
    // A subscribe that hangs fails the test instead.
    config.command_deadline_ms = 30_000;
    let client = Client::new(&config).unwrap();
    let inbox = Arc::new(Inbox::default());
    let sub = subscriber(&client, &inbox);
    sub.subscribe(Kind::Channel, &[b"everyone"]).unwrap();
    sub.subscribe(Kind::Pattern, &[b"every*"]).unwrap();
    let holder = node_with_channel(&cluster, "everyone", None).expect("subscribed on some node");

    let was_primary = cluster.is_primary(holder);
    let heir = was_primary.then(|| cluster.replica_of(holder));
    cluster.nodes[holder].kill();
    if let Some(heir) = heir {
        assert!(wait_until(Duration::from_secs(60), || cluster.is_primary(heir)));
    }
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || {
            sub.stat(Stat::PubsubResubscribes) >= 1
                && node_with_channel(&cluster, "everyone", Some(holder)).is_some()
        }),
        "not subscribed on another node after node {holder} died:\n{}",
        cluster.describe()
    );
    let took = started.elapsed();
    let now_at = node_with_channel(&cluster, "everyone", Some(holder)).unwrap();
    assert_ne!(now_at, holder);
    // Published on a node other than the one holding the subscription: the cluster bus
    // carries it.
    let elsewhere = (0..cluster.nodes.len())
        .find(|&i| i != holder && i != now_at)
        .unwrap();
    let publisher = Client::new(&cluster.nodes[elsewhere].config()).unwrap();
    let round = |tag: &str| {
        let payload = tag.as_bytes();
        publish(&publisher, "PUBLISH", "everyone", payload);
        wait_until(Duration::from_secs(3), || {
            let messages = inbox.messages.lock().unwrap();
            messages.iter().filter(|m| m.payload == payload).count() == 2
        })
    };
    let deadline = Instant::now() + LONG;
    let mut attempt = 0;
    while !round(&format!("after-{attempt}")) {
        assert!(Instant::now() < deadline, "no message through the new node");
        attempt += 1;
    }
    eprintln!(
        "cluster: channel and pattern moved from node {holder} ({}) to node {now_at} in {took:?}",
        if was_primary {
            "a primary"
        } else {
            "a replica"
        }
    );
    drop(sub);
    cluster.nodes[holder].start_again();
}

/// A subscribe on a cluster client none of whose nodes answers fails by the retry policy
/// (CONNECTION, after its retries' backoff), rather than waiting for a slot map that never
/// comes; a subscriber whose cluster comes up is the other tests' business.
#[test]
fn a_subscribe_on_an_unreachable_cluster_fails_by_the_retry_policy() {
    let closed = support::closed_port();
    let mut config = Config::default();
    config.set_mode(brisk::config::Mode::Cluster);
    config.add_node("127.0.0.1", closed.port()).unwrap();
    config.retry = support::constant_retry(50, 3);
    let client = match Client::new(&config) {
        Ok(client) => client,
        // Refused at once is as good: nothing waits for ever.
        Err(e) => {
            assert_eq!(e.status(), Status::Connection, "{e:?}");
            return;
        }
    };
    let sub = client.subscriber(None).unwrap();
    for kind in [Kind::Channel, Kind::Shard] {
        let (result, took) = support::timed(|| sub.subscribe(kind, &[b"nowhere"]));
        let e = expect_err(result, Status::Connection);
        eprintln!(
            "{kind:?} on an unreachable cluster: {took:?}: {}",
            e.message()
        );
        // Three retries 50 ms apart, each after a failed read of the slot map.
        support::assert_between(took, 150, 10_000, "a subscribe on an unreachable cluster");
    }
}
