//! The batch-end hook of runtime dispatch (`brisk_config_set_async_batch_end`), through the C
//! functions a C program calls: every callback is followed by a call on the thread that ran
//! it; the replies one read brings cost one call, not one each; a failure's callback is
//! followed by one too; `brisk_client_free` returns only after the last call; caller dispatch
//! never calls it.
//!
//! Replies are made to arrive together by stopping the server (SIGSTOP) while the commands are
//! sent: the kernel buffers them, the resumed server reads them in one go, and their replies
//! leave in one write.

mod support;

use brisk::capi::client::{brisk_client, brisk_client_free, brisk_client_new, brisk_command_async};
use brisk::capi::config::{
    BRISK_ASYNC_DISPATCH_CALLER, brisk_config_free, brisk_config_new,
    brisk_config_set_async_batch_end, brisk_config_set_async_dispatch, brisk_config_set_url,
};
use brisk::capi::reply::{brisk_reply, brisk_reply_free};
use brisk::capi::status::{BRISK_OK, brisk_status};
use std::ffi::{CString, c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use support::{RedisServer, wait_until};

/// What the callbacks and the hook saw, shared with them through `userdata`.
#[derive(Default)]
struct Seen {
    /// Callbacks run.
    done: AtomicU64,
    /// Callbacks that got an error.
    failed: AtomicU64,
    /// Hook calls.
    hooks: AtomicU64,
    /// The most callbacks the hook has seen done (every callback is followed by a call: this
    /// reaches `done`).
    covered: AtomicU64,
    /// Set once `brisk_client_free` returned: a call after that is a bug.
    freed: AtomicBool,
    late_calls: AtomicU64,
}

unsafe extern "C" fn on_reply(
    userdata: *mut c_void,
    status: brisk_status,
    _error: *const c_char,
    reply: *mut brisk_reply,
) {
    // SAFETY: `userdata` is the test's `Seen`, alive until after the client is freed.
    let seen = unsafe { &*(userdata as *const Seen) };
    if status != BRISK_OK {
        seen.failed.fetch_add(1, SeqCst);
    }
    // SAFETY: the callback owns the reply (NULL on failure, which free accepts).
    unsafe { brisk_reply_free(reply) };
    seen.done.fetch_add(1, SeqCst);
}

unsafe extern "C" fn on_batch_end(userdata: *mut c_void) {
    // SAFETY: as in `on_reply`.
    let seen = unsafe { &*(userdata as *const Seen) };
    if seen.freed.load(SeqCst) {
        seen.late_calls.fetch_add(1, SeqCst);
    }
    seen.hooks.fetch_add(1, SeqCst);
    seen.covered.fetch_max(seen.done.load(SeqCst), SeqCst);
}

/// A client of `url` with the hook installed (and caller dispatch when asked).
fn client(url: &str, seen: &Seen, caller_dispatch: bool) -> *mut brisk_client {
    let url = CString::new(url).unwrap();
    // SAFETY: a fresh config, freed below; `seen` outlives the client (each test frees the
    // client before `seen` goes).
    unsafe {
        let cfg = brisk_config_new();
        assert_eq!(brisk_config_set_url(cfg, url.as_ptr()), BRISK_OK);
        let userdata = seen as *const Seen as *mut c_void;
        assert_eq!(
            brisk_config_set_async_batch_end(cfg, Some(on_batch_end), userdata),
            BRISK_OK
        );
        if caller_dispatch {
            assert_eq!(
                brisk_config_set_async_dispatch(cfg, BRISK_ASYNC_DISPATCH_CALLER),
                BRISK_OK
            );
        }
        let mut client = std::ptr::null_mut();
        assert_eq!(brisk_client_new(cfg, &mut client), BRISK_OK);
        brisk_config_free(cfg);
        client
    }
}

/// `brisk_command_async(client, args...)` with `seen` as the userdata.
fn send(client: *mut brisk_client, seen: &Seen, args: &[&str]) {
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
    // SAFETY: argv/lens describe `args`, alive during the call; `seen` outlives the client.
    let status = unsafe {
        brisk_command_async(
            client,
            args.len(),
            argv.as_ptr(),
            lens.as_ptr(),
            Some(on_reply),
            seen as *const Seen as *mut c_void,
        )
    };
    assert_eq!(status, BRISK_OK);
}

fn free(client: *mut brisk_client, seen: &Seen) {
    // SAFETY: a live client, freed once.
    unsafe { brisk_client_free(client) };
    seen.freed.store(true, SeqCst);
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn replies_read_together_cost_one_call_and_every_callback_is_followed_by_one() {
    let server = RedisServer::start();
    let seen = Seen::default();
    let client = client(&server.url(), &seen, false);
    // Connected, and the first hook seen.
    send(client, &seen, &["PING"]);
    assert!(wait_until(WAIT, || seen.covered.load(SeqCst) == 1));
    let hooks_before = seen.hooks.load(SeqCst);
    server.sigstop();
    const N: u64 = 200;
    for i in 0..N {
        let key = format!("k{i}");
        send(client, &seen, &["GET", &key]);
    }
    server.sigcont();
    assert!(wait_until(WAIT, || seen.covered.load(SeqCst) == N + 1));
    let hooks = seen.hooks.load(SeqCst) - hooks_before;
    assert_eq!(seen.failed.load(SeqCst), 0);
    // One write from the server is one read here, or a few on a busy machine: far fewer calls
    // than callbacks.
    assert!(
        (1..=N / 10).contains(&hooks),
        "{hooks} hook calls for {N} replies that arrived together"
    );
    free(client, &seen);
    assert_eq!(seen.late_calls.load(SeqCst), 0);
}

#[test]
fn a_failures_callback_is_followed_by_a_call_too() {
    let mut server = RedisServer::start();
    let seen = Seen::default();
    let client = client(&server.url(), &seen, false);
    send(client, &seen, &["PING"]);
    assert!(wait_until(WAIT, || seen.covered.load(SeqCst) == 1));
    server.kill();
    for _ in 0..3 {
        send(client, &seen, &["GET", "k"]);
    }
    assert!(wait_until(WAIT, || seen.covered.load(SeqCst) == 4));
    assert_eq!(seen.failed.load(SeqCst), 3);
    free(client, &seen);
    assert_eq!(seen.late_calls.load(SeqCst), 0);
}

#[test]
fn freeing_the_client_waits_for_the_last_call() {
    let server = RedisServer::start();
    for _ in 0..5 {
        let seen = Seen::default();
        let client = client(&server.url(), &seen, false);
        for i in 0..500 {
            let key = format!("k{i}");
            send(client, &seen, &["GET", &key]);
        }
        free(client, &seen);
        // Every callback ran before the free returned (CLOSED for those it cut short), and the
        // last one's call too.
        assert_eq!(seen.done.load(SeqCst), 500);
        assert_eq!(seen.covered.load(SeqCst), 500);
        assert_eq!(seen.late_calls.load(SeqCst), 0);
    }
}

#[test]
fn caller_dispatch_never_calls_it() {
    let server = RedisServer::start();
    let seen = Seen::default();
    let client = client(&server.url(), &seen, true);
    for _ in 0..20 {
        send(client, &seen, &["PING"]);
    }
    assert!(wait_until(WAIT, || {
        // SAFETY: a live client; the callbacks run here.
        unsafe { brisk::capi::client::brisk_client_async_dispatch(client, 0) };
        seen.done.load(SeqCst) == 20
    }));
    free(client, &seen);
    assert_eq!(seen.hooks.load(SeqCst), 0);
}
