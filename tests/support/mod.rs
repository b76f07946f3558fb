//! Test support: real `redis-server` processes and small fake servers, all on loopback.
//!
//! Each test file includes this with `mod support;`. Everything here owns what it starts and
//! cleans it up in `Drop` (also while a failing test unwinds):
//!
//! - [`RedisServer`]: a `redis-server` on a fresh port and in a fresh directory, optionally with
//!   a password, ACL users, extra config lines and TLS (certificates made with `openssl`).
//! - [`SilentServer`], [`ScriptedServer`], [`ClosedPort`]: a listener that never answers, one
//!   that answers every request with fixed bytes, and a port nothing listens on.
//! - [`HostilePeer`]: a RESP server that answers the handshake, then misbehaves on purpose
//!   (trickles, push floods, memory bombs, refusals, garbage); [`timed_call`] measures a command
//!   through the blocking or the async path.
//!
//! - [`RedisCluster`]: six `redis-server`s made into a 3-primary/3-replica cluster.
//! - [`SentinelSetup`]: a master, a replica and three sentinels (`redis-server --sentinel`).
//!
//! The server flavour is chosen by the environment: `BRISK_TEST_SERVER` and `BRISK_TEST_CLI`
//! (e.g. `valkey-server` and `valkey-cli`, a name in `PATH` or a path) instead of Debian's
//! `redis-server` and `redis-cli`; `scripts/test` runs the suites once with each.
//!
//! Waiting is always polling with a deadline, never a bare sleep. Time bounds go through
//! [`assert_between`] and friends (`timing`): their upper bounds widen on a loaded machine, up
//! to a cap, so a test holds under load and still fails on a hang.

// Each test crate uses a different part of this module.
#![allow(dead_code, unused_imports)]

mod cluster;
mod fake;
mod hostile;
mod otlp;
mod proxy;
mod sentinel;
mod server;
mod timing;
mod tls;

pub use cluster::{NodeInfo, RedisCluster};
pub use fake::{ClosedPort, FullBacklog, ScriptedServer, SilentServer, closed_port};
pub use hostile::{Behaviour, GIVE_UP, HostilePeer, Path, PeerLog, client_on, timed_call};
pub use otlp::{OtlpReceiver, Posted};
pub use proxy::FaultProxy;
pub use sentinel::{
    MASTER_NAME, SentinelSetup, SetupOptions, Switch, cli_through_reconfiguration, command_calls,
};
pub use server::{RedisServer, RedisServerBuilder, cli_program, server_program};
pub use timing::{MAX_WIDENING, Widening, assert_at_most, assert_between, timed, within};
pub use tls::TlsFiles;

use brisk::core::retry::{Backoff, RetryPolicy, RetrySettings};
use brisk::{Args, Client, Config, Error, Pipeline, Reply, Result, Session, Status};
use std::time::{Duration, Instant};

/// A client for `config`; panics when it cannot be made.
pub fn client(config: &Config) -> Client {
    Client::new(config).expect("Client::new")
}

/// The default configuration with `url` applied (which may carry options:
/// `redis://127.0.0.1:6379?read_timeout=300`).
pub fn config_for(url: &str) -> Config {
    let mut config = Config::default();
    config.set_url(url).expect("valid URL");
    config
}

/// A client for `url`.
pub fn client_for(url: &str) -> Client {
    client(&config_for(url))
}

/// Retries `retries` times, `delay_ms` apart (writes under the default SAFE rules).
pub fn constant_retry(delay_ms: u32, retries: u32) -> RetrySettings {
    RetrySettings {
        policy: Some(RetryPolicy {
            backoff: Backoff::Constant,
            base_ms: delay_ms,
            cap_ms: delay_ms,
            retries,
        }),
        ..RetrySettings::default()
    }
}

/// Runs a command given as text arguments on a pooled connection.
pub fn cmd(client: &Client, args: &[&str]) -> Result<Reply> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    client.command(&Args::from_slices(&args))
}

/// A setup command on a client whose short timeouts (300 ms, say: the subject of the test) a
/// loaded machine can outrun before the test has even begun, in the handshake or the command:
/// tried again (up to 5 attempts) while it times out. Panics on any other failure.
#[track_caller]
pub fn setup_ok(client: &Client, args: &[&str]) -> Reply {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match cmd(client, args) {
            Ok(reply) => return reply,
            Err(e) if e.status() == Status::Timeout && attempts < 5 => continue,
            Err(e) => panic!(
                "{args:?} failed (attempt {attempts}): {:?}: {}",
                e.status(),
                e.message()
            ),
        }
    }
}

/// Runs a command given as text arguments in a session.
pub fn session_cmd(session: &mut Session, args: &[&str]) -> Result<Reply> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    session.command(&Args::from_slices(&args))
}

/// Appends a command given as text arguments to a pipeline or transaction.
pub fn append(pipeline: &mut Pipeline, args: &[&str]) -> Result<()> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    pipeline.append(&Args::from_slices(&args))
}

/// Runs a command that must succeed and returns its reply.
#[track_caller]
pub fn ok(client: &Client, args: &[&str]) -> Reply {
    match cmd(client, args) {
        Ok(reply) => reply,
        Err(e) => panic!("{args:?} failed: {:?}: {}", e.status(), e.message()),
    }
}

/// The reply as UTF-8 text (strings, statuses, verbatim strings); panics otherwise.
#[track_caller]
pub fn text(reply: &Reply) -> String {
    match reply.as_str() {
        Some(s) => s.to_owned(),
        None => panic!("expected a text reply, got {reply:?}"),
    }
}

/// Unwraps the error of `result`, checking its status.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: Result<T>, status: Status) -> Error {
    match result {
        Ok(value) => panic!("expected {status:?}, got Ok({value:?})"),
        Err(e) => {
            assert_eq!(
                e.status(),
                status,
                "expected {status:?}, got {:?}: {}",
                e.status(),
                e.message()
            );
            e
        }
    }
}

/// Whether `fd` becomes readable within `timeout_ms` (0: now) (a client's async descriptor, a
/// subscriber's).
pub fn readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
    n == 1 && poll.revents & libc::POLLIN != 0
}

/// Polls `check` every 10 ms until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The file descriptors this process has open now (entries of `/proc/self/fd`, not counting
/// the one used to list them).
pub fn open_fds() -> usize {
    let entries = std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd");
    // The directory handle being read is itself one of the entries.
    entries.count().saturating_sub(1)
}

/// Sets its flag when dropped, so that a failing assertion also stops the threads watching it.
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `len` pseudo-random bytes (xorshift, fixed seed) with NULs and RESP-looking bytes planted at
/// the start, the middle and the end: a value that only survives a binary-safe round trip.
pub fn binary_value(len: usize) -> Vec<u8> {
    assert!(len >= 32);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut value: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let middle = len / 2;
    value[..6].copy_from_slice(b"\0\r\n$5\r");
    value[middle..middle + 8].copy_from_slice(b"\r\n*2\r\n\0\0");
    value[len - 3..].copy_from_slice(b"\0\r\n");
    value
}

/// Runs a command given as byte arguments; panics on failure.
#[track_caller]
pub fn ok_bytes(client: &Client, args: &[&[u8]]) -> Reply {
    match client.command(&Args::from_slices(args)) {
        Ok(reply) => reply,
        Err(e) => panic!("command failed: {:?}: {}", e.status(), e.message()),
    }
}

/// A field of `CLIENT INFO` / `CLIENT LIST` output (`"db"` -> `"3"`).
#[track_caller]
pub fn client_info_field(info: &str, field: &str) -> String {
    let prefix = format!("{field}=");
    info.split_ascii_whitespace()
        .find_map(|kv| kv.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field}= in CLIENT INFO: {info}"))
        .to_owned()
}

/// Keeps up to `window` async commands in flight on `client` until `stop` is set (or `limit`
/// commands were started), then waits for the rest. `next(i)` makes command `i`; `seen(i,
/// outcome)` receives each outcome on the calling thread. Panics if a callback is called twice
/// or not within 60 s.
pub fn pump_async(
    client: &Client,
    window: usize,
    limit: u64,
    stop: &std::sync::atomic::AtomicBool,
    mut next: impl FnMut(u64) -> Vec<String>,
    mut seen: impl FnMut(u64, Result<Reply>),
) -> u64 {
    use std::sync::atomic::Ordering;
    let (tx, rx) = std::sync::mpsc::channel::<(u64, Result<Reply>)>();
    let mut started = 0u64;
    let mut done = std::collections::HashSet::new();
    loop {
        while started - (done.len() as u64) < window as u64
            && started < limit
            && !stop.load(Ordering::Relaxed)
        {
            let args = next(started);
            let words: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let tx = tx.clone();
            let i = started;
            client
                .command_async(
                    &Args::from_slices(&words),
                    Box::new(move |outcome| {
                        let _ = tx.send((i, outcome));
                    }),
                )
                .unwrap_or_else(|e| panic!("command_async refused {args:?}: {}", e.message()));
            started += 1;
        }
        if done.len() as u64 == started && (started == limit || stop.load(Ordering::Relaxed)) {
            return started;
        }
        let (i, outcome) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{} callbacks never came", started - done.len() as u64));
        assert!(done.insert(i), "callback {i} called twice");
        seen(i, outcome);
    }
}

/// One async command, waited for.
pub fn call_async(client: &Client, args: &[&str]) -> Result<Reply> {
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut outcome = None;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    pump_async(
        client,
        1,
        1,
        &never,
        |_| args.clone(),
        |_, o| outcome = Some(o),
    );
    outcome.expect("one outcome")
}
