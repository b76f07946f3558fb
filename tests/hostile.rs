//! Issue 15: bounds that hold against any peer. A scripted server ([`HostilePeer`]) answers the
//! handshake like Redis, then misbehaves on the first real command; every case runs through the
//! blocking path (`Client::command`), the async path (`Client::command_async`) and the async path
//! with caller dispatch (the test's thread reads the connection when it dispatches).
//!
//! - A reply trickled forever (a streamed array, a bulk string one byte at a time) or a flood of
//!   RESP3 pushes with no reply: the command deadline (1000 ms) ends the command, and so does
//!   the read timeout (500 ms) alone, which bounds the whole reply from the moment the request
//!   was written, not each read.
//! - `-LOADING` is a refusal: the server ran nothing, so even a write is retried under
//!   retry_writes SAFE, and when the retries run out the message does not say "may have been
//!   applied".
//! - Garbage after a valid prefix: PROTOCOL, the connection dropped, the next command served on
//!   a new one; the same after a timeout cut a reply short.
//! - A reply nobody asked for after a valid one: the command gets the valid one, and the
//!   connection is dropped, never read again (the stray reply would answer the next command).
//!
//! The memory bomb (a streamed array of 120 MiB of nulls) is in `hostile_memory.rs`: it measures
//! the peak memory of the process, which other tests running in parallel would disturb.
//!
//! Time bounds are generous for a loaded machine: the 1000 ms deadline must end a command within
//! 3 s, the 500 ms read timeout within 2.5 s; a timeout coming sooner than 450 ms did not wait
//! for what it claims. The peer gives up after 20 s, so a client that waits for it still ends
//! its test, failing.

mod support;

use brisk::{Config, Error, Reply, Result, Status};
use std::time::Duration;
use support::{
    Behaviour, HostilePeer, Path, client_on, constant_retry, timed_call, wait_until, within,
};

const DEADLINE_MS: u32 = 1000;
const READ_TIMEOUT_MS: u32 = 500;
/// The 1000 ms command deadline, with room for a loaded machine (widened further with the load,
/// at most twice: still well short of the peer giving up after 20 s).
const DEADLINE_BOUND: Duration = Duration::from_millis(3000);
/// The 500 ms read timeout (no deadline, no retries), with room for a loaded machine.
const READ_TIMEOUT_BOUND: Duration = Duration::from_millis(2500);
/// No timeout can honestly come sooner than this (the read timeout is 500 ms).
const TIMEOUT_FLOOR: Duration = Duration::from_millis(450);

// ---------------------------------------------------------------------------------------------
// Helpers

/// The configuration: a 1000 ms command deadline and a 500 ms read timeout; default
/// retries (a read that times out is retried within the deadline).
fn deadline_config(peer: &HostilePeer, protocol: u32) -> Config {
    let mut config = peer.config();
    config.set_protocol(protocol).expect("protocol");
    config.command_deadline_ms = DEADLINE_MS;
    config.read_timeout_ms = READ_TIMEOUT_MS;
    config
}

/// A 500 ms read timeout alone: no command deadline, no retries.
fn read_timeout_config(peer: &HostilePeer) -> Config {
    let mut config = peer.config();
    config.command_deadline_ms = 0;
    config.read_timeout_ms = READ_TIMEOUT_MS;
    config.retry.max_retries = Some(0);
    config
}

fn describe(outcome: &Result<Reply>) -> String {
    match outcome {
        Ok(reply) => format!("Ok({reply:?})"),
        Err(e) => format!("{:?}: {}", e.status(), e.message()),
    }
}

fn peer_summary(peer: &HostilePeer) -> String {
    let log = peer.log();
    format!(
        "peer: {} connections, behaviour played on {}, peer gave up on {}, client closed {}, \
         {} bytes sent, commands {:?}",
        log.connections,
        log.played,
        log.gave_up,
        log.closed_by_client,
        log.bytes_sent,
        log.commands
    )
}

/// Asserts that `outcome` failed with `status` after `low..=high`; returns the error.
#[track_caller]
fn expect_failure(
    peer: &HostilePeer,
    what: &str,
    (outcome, took): (Result<Reply>, Duration),
    status: Status,
    low: Duration,
    high: Duration,
) -> Error {
    let (in_time, bounds) = within(took, low, high, what);
    let fits = matches!(&outcome, Err(e) if e.status() == status) && in_time;
    let seen = format!(
        "got {} after {took:.2?} ({})",
        describe(&outcome),
        peer_summary(peer)
    );
    eprintln!("{what}: {seen}");
    assert!(fits, "{what}: expected {status:?} after {bounds}; {seen}");
    outcome.expect_err("checked above")
}

/// Asserts that `outcome` succeeded within `high`; returns the reply.
#[track_caller]
fn expect_success(
    peer: &HostilePeer,
    what: &str,
    (outcome, took): (Result<Reply>, Duration),
    high: Duration,
) -> Reply {
    let seen = format!(
        "got {} after {took:.2?} ({})",
        describe(&outcome),
        peer_summary(peer)
    );
    eprintln!("{what}: {seen}");
    let (in_time, bounds) = within(took, Duration::ZERO, high, what);
    assert!(
        outcome.is_ok() && in_time,
        "{what}: expected success after {bounds}; {seen}"
    );
    outcome.expect("checked above")
}

/// The next `GET` succeeds with the peer's `hello`, which it sends only on a connection it has
/// not misbehaved on.
#[track_caller]
fn next_command_is_answered_anew(peer: &HostilePeer, c: &brisk::Client, path: Path, what: &str) {
    let reply = expect_success(
        peer,
        &format!("{what}: the next command"),
        timed_call(c, path, &["GET", "k"]),
        DEADLINE_BOUND,
    );
    assert_eq!(reply.as_bytes(), Some(&b"hello"[..]), "{what}: {reply:?}");
}

/// A `GET` fails with PROTOCOL, within the deadline bound; returns the error.
#[track_caller]
fn get_is_a_protocol_error(peer: &HostilePeer, c: &brisk::Client, path: Path, what: &str) -> Error {
    let outcome = timed_call(c, path, &["GET", "k"]);
    expect_failure(
        peer,
        what,
        outcome,
        Status::Protocol,
        Duration::ZERO,
        DEADLINE_BOUND,
    )
}

/// The client closes the connection the peer misbehaved on, and the next `GET` is answered on
/// a second one.
#[track_caller]
fn connection_is_replaced(peer: &HostilePeer, c: &brisk::Client, path: Path, what: &str) {
    assert!(
        wait_until(Duration::from_secs(5), || peer.log().closed_by_client >= 1),
        "{what}: the client kept the connection ({})",
        peer_summary(peer)
    );
    next_command_is_answered_anew(peer, c, path, what);
    assert_eq!(peer.log().connections, 2, "{what}: {}", peer_summary(peer));
}

// ---------------------------------------------------------------------------------------------
// The command deadline bounds the whole command, whatever the peer sends.

/// `GET` against `behaviour` with the configuration: TIMEOUT within the deadline.
fn deadline_holds(behaviour: Behaviour, protocol: u32, path: Path) {
    let peer = HostilePeer::start(behaviour);
    let c = client_on(path, &deadline_config(&peer, protocol));
    let outcome = timed_call(&c, path, &["GET", "k"]);
    expect_failure(
        &peer,
        &format!("{behaviour:?}, {path:?}, RESP{protocol}, a {DEADLINE_MS} ms command deadline"),
        outcome,
        Status::Timeout,
        TIMEOUT_FLOOR,
        DEADLINE_BOUND,
    );
}

on_every_path! {
    deadline_bounds_a_trickled_array => deadline_holds(Behaviour::TrickleArray, 3);
    deadline_bounds_a_trickled_bulk => deadline_holds(Behaviour::TrickleBulk, 3);
    deadline_bounds_a_trickled_bulk_resp2 => deadline_holds(Behaviour::TrickleBulk, 2);
    deadline_bounds_a_push_flood => deadline_holds(Behaviour::PushFlood, 3);
}

/// The handshake is bounded too: HELLO's reply trickled one byte every 100 ms.
fn deadline_holds_in_the_handshake(path: Path) {
    let peer = HostilePeer::in_handshake(Behaviour::TrickleBulk);
    let c = client_on(path, &deadline_config(&peer, 3));
    let outcome = timed_call(&c, path, &["GET", "k"]);
    expect_failure(
        &peer,
        &format!("HELLO trickled, {path:?}, a {DEADLINE_MS} ms command deadline"),
        outcome,
        Status::Timeout,
        TIMEOUT_FLOOR,
        DEADLINE_BOUND,
    );
}

on_every_path! {
    deadline_bounds_a_trickled_handshake => deadline_holds_in_the_handshake();
}

/// A connection left holding the rest of a reply cut short is not used again: the peer trickles
/// on its first connection only, the command fails (no retries), and the next one is answered
/// on a new connection (the peer says `hello` only there).
fn cut_reply_is_not_waited_for_again(path: Path) {
    let peer = HostilePeer::once(Behaviour::TrickleArray);
    let mut config = deadline_config(&peer, 3);
    config.retry.max_retries = Some(0);
    let c = client_on(path, &config);
    let what = format!("TrickleArray on the first connection, {path:?}, no retries");
    expect_failure(
        &peer,
        &what,
        timed_call(&c, path, &["GET", "k"]),
        Status::Timeout,
        TIMEOUT_FLOOR,
        DEADLINE_BOUND,
    );
    next_command_is_answered_anew(&peer, &c, path, &what);
}

on_every_path! {
    a_connection_with_a_reply_cut_short_is_dropped => cut_reply_is_not_waited_for_again();
}

// ---------------------------------------------------------------------------------------------
// The read timeout alone bounds a whole reply, from the moment the request was written.

fn read_timeout_holds(behaviour: Behaviour, path: Path) {
    let peer = HostilePeer::start(behaviour);
    let c = client_on(path, &read_timeout_config(&peer));
    let outcome = timed_call(&c, path, &["GET", "k"]);
    expect_failure(
        &peer,
        &format!("{behaviour:?}, {path:?}, a {READ_TIMEOUT_MS} ms read timeout, no deadline"),
        outcome,
        Status::Timeout,
        TIMEOUT_FLOOR,
        READ_TIMEOUT_BOUND,
    );
}

on_every_path! {
    read_timeout_bounds_a_trickled_array => read_timeout_holds(Behaviour::TrickleArray);
    read_timeout_bounds_a_trickled_bulk => read_timeout_holds(Behaviour::TrickleBulk);
    read_timeout_bounds_a_push_flood => read_timeout_holds(Behaviour::PushFlood);
}

// ---------------------------------------------------------------------------------------------
// Refusals are not executions.

/// `args` against a server that refuses the first `refusals` commands with LOADING, three
/// retries allowed.
fn against_loading(
    refusals: u32,
    protocol: u32,
    path: Path,
    args: &[&str],
) -> (HostilePeer, (Result<Reply>, Duration)) {
    let peer = HostilePeer::start(Behaviour::Loading { refusals });
    let mut config = deadline_config(&peer, protocol);
    config.retry = constant_retry(20, 3); // writes under SAFE (the default)
    let c = client_on(path, &config);
    let outcome = timed_call(&c, path, args);
    drop(c);
    (peer, outcome)
}

/// A write refused twice with LOADING is retried and succeeds on the third attempt.
fn loading_write_is_retried(protocol: u32, path: Path) {
    let (peer, outcome) = against_loading(2, protocol, path, &["INCR", "n"]);
    let what = format!("INCR refused twice with LOADING, {path:?}, RESP{protocol}, SAFE");
    let reply = expect_success(&peer, &what, outcome, DEADLINE_BOUND);
    assert_eq!(reply.as_integer(), Some(1), "{what}: {reply:?}");
    assert_eq!(
        peer.log().count("INCR"),
        3,
        "{what}: {}",
        peer_summary(&peer)
    );
}

on_every_path! {
    loading_refusal_of_a_write_is_retried => loading_write_is_retried(3);
    loading_refusal_of_a_write_is_retried_resp2 => loading_write_is_retried(2);
}

/// The control: a read refused twice is retried (it always was); the peer's refusals work.
fn loading_read_is_retried(path: Path) {
    let (peer, outcome) = against_loading(2, 3, path, &["GET", "k"]);
    let what = format!("GET refused twice with LOADING, {path:?}");
    expect_success(&peer, &what, outcome, DEADLINE_BOUND);
    assert_eq!(
        peer.log().count("GET"),
        3,
        "{what}: {}",
        peer_summary(&peer)
    );
}

on_every_path! {
    loading_refusal_of_a_read_is_retried => loading_read_is_retried();
}

/// A write refused on every attempt: BUSY_LOADING after all four attempts, and the message
/// does not claim the write may have been applied.
fn loading_to_the_end(path: Path) {
    let (peer, outcome) = against_loading(u32::MAX, 3, path, &["INCR", "n"]);
    let what = format!("INCR always refused with LOADING, {path:?}, SAFE, 3 retries");
    let error = expect_failure(
        &peer,
        &what,
        outcome,
        Status::BusyLoading,
        Duration::ZERO,
        DEADLINE_BOUND,
    );
    assert!(
        !error.message().contains("may have been applied"),
        "{what}: the server refused the write, yet: {}",
        error.message()
    );
    assert_eq!(
        peer.log().count("INCR"),
        4,
        "{what}: {}",
        peer_summary(&peer)
    );
}

on_every_path! {
    loading_refusals_to_the_end => loading_to_the_end();
}

// ---------------------------------------------------------------------------------------------
// Garbage after a valid prefix.

/// `$5\r\nhel` then bytes that are not RESP: PROTOCOL, the client closes that connection, and
/// the next command is answered on a new one (the peer answers `hello` only there: the first
/// connection never answers again).
fn garbage_drops_the_connection(protocol: u32, path: Path) {
    let peer = HostilePeer::once(Behaviour::Garbage);
    let c = client_on(path, &deadline_config(&peer, protocol));
    let what = format!("garbage after $5\\r\\nhel, {path:?}, RESP{protocol}");
    get_is_a_protocol_error(&peer, &c, path, &what);
    connection_is_replaced(&peer, &c, path, &what);
}

on_every_path! {
    garbage_after_a_valid_prefix => garbage_drops_the_connection(3);
    garbage_after_a_valid_prefix_resp2 => garbage_drops_the_connection(2);
}

// ---------------------------------------------------------------------------------------------
// A reply nobody asked for.

/// The first `GET` is answered twice, in one write: the command gets the first answer; the
/// connection, whose replies no longer match its requests, is dropped; the next command is
/// answered on a new one (a client that kept it would take `stray` as that command's reply).
fn stray_reply_drops_the_connection(protocol: u32, path: Path) {
    let peer = HostilePeer::once(Behaviour::StrayReply);
    let c = client_on(path, &deadline_config(&peer, protocol));
    let what = format!("a stray reply after the first, {path:?}, RESP{protocol}");
    let reply = expect_success(
        &peer,
        &what,
        timed_call(&c, path, &["GET", "k"]),
        DEADLINE_BOUND,
    );
    assert_eq!(reply.as_bytes(), Some(&b"first"[..]), "{what}: {reply:?}");
    connection_is_replaced(&peer, &c, path, &what);
}

on_every_path! {
    stray_reply => stray_reply_drops_the_connection(3);
    stray_reply_resp2 => stray_reply_drops_the_connection(2);
}

/// HELLO's reply comes with a reply nobody asked for after it, on every connection: the
/// handshake fails (PROTOCOL) and no connection carries the `GET`, whose reply would have been
/// the stray one (or the reply to brisk's own `COMMAND` behind it).
fn stray_reply_after_the_handshake(path: Path) {
    let peer = HostilePeer::in_handshake(Behaviour::HelloThenStray);
    let c = client_on(path, &deadline_config(&peer, 3));
    let what = format!("a stray reply after HELLO's, {path:?}");
    let error = get_is_a_protocol_error(&peer, &c, path, &what);
    assert!(error.message().contains("handshake"), "{what}: {error}");
    assert_eq!(
        peer.log().count("GET"),
        0,
        "{what}: {}",
        peer_summary(&peer)
    );
}

on_every_path! {
    stray_reply_after_hello => stray_reply_after_the_handshake();
}
