//! Test support: real `redis-server` processes and small fake servers, all on loopback.
//!
//! Each test file includes this with `mod support;`. Everything here owns what it starts and
//! cleans it up in `Drop` (also while a failing test unwinds):
//!
//! - [`RedisServer`]: a `redis-server` on a fresh port and in a fresh directory, optionally with
//!   a password, ACL users, extra config lines and TLS (certificates made with `openssl`).
//! - [`SilentServer`], [`ScriptedServer`], [`ClosedPort`]: a listener that never answers, one
//!   that answers every request with fixed bytes, and a port nothing listens on.
//!
//! - [`RedisCluster`]: six `redis-server`s made into a 3-primary/3-replica cluster.
//!
//! Waiting is always polling with a deadline, never a bare sleep.

// Each test crate uses a different part of this module.
#![allow(dead_code, unused_imports)]

mod cluster;
mod fake;
mod proxy;
mod server;
mod tls;

pub use cluster::{NodeInfo, RedisCluster};
pub use fake::{ClosedPort, FullBacklog, ScriptedServer, SilentServer, closed_port};
pub use proxy::FaultProxy;
pub use server::{RedisServer, RedisServerBuilder};
pub use tls::TlsFiles;

use brisk::{Args, Client, Error, Pipeline, Reply, Result, Session, Status};
use std::time::{Duration, Instant};

/// Runs a command given as text arguments on a pooled connection.
pub fn cmd(client: &Client, args: &[&str]) -> Result<Reply> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    client.command(&Args::from_slices(&args))
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
