//! Issue 4's async API, proven against real servers and real faults through the C functions a
//! C program calls (`brisk_command_async` and friends, called from Rust): thousands of commands
//! in flight pipelined onto one connection, callbacks on `brisk-runtime` threads, the server
//! killed and stalled mid-stream, connections killed and cut, the client freed with commands in
//! flight, SAFE versus ALWAYS write retries, blocking commands, error replies, the command
//! deadline and invalid arguments.
//!
//! Every callback lands in its own [`Slot`], which counts its calls: "exactly once" is checked
//! per command, after the client was freed (which waits for every callback). Waiting is always
//! polling or a condvar with a deadline, never a bare sleep. Timing bounds are generous (the
//! machine is small and shared): a lower bound says "it really waited", an upper bound says "it
//! did not wait for something else".

mod support;

use brisk::capi::client::{
    BRISK_STAT_CONNECTS, BRISK_STAT_ERRORS, BRISK_STAT_RECONNECTS, BRISK_STAT_RETRIES,
    BRISK_STAT_TIMEOUTS, brisk_client, brisk_client_free, brisk_client_new, brisk_client_stat,
    brisk_command_async, brisk_stat,
};
use brisk::capi::config::{
    BRISK_RETRY_WRITES_ALWAYS, brisk_config_free, brisk_config_new, brisk_config_set_retry,
    brisk_config_set_retry_writes, brisk_config_set_url,
};
use brisk::capi::reply::{
    BRISK_REPLY_ARRAY, BRISK_REPLY_BOOL, BRISK_REPLY_INTEGER, BRISK_REPLY_NIL,
    BRISK_REPLY_STATUS, BRISK_REPLY_STRING, brisk_reply, brisk_reply_element,
    brisk_reply_free, brisk_reply_integer, brisk_reply_length, brisk_reply_string,
    brisk_reply_type_of,
};
use brisk::capi::retry::{BRISK_BACKOFF_CONSTANT, brisk_retry_free, brisk_retry_new};
use brisk::capi::status::{
    BRISK_ERR_CLOSED, BRISK_ERR_CONNECTION, BRISK_ERR_INVALID_ARGUMENT, BRISK_ERR_SERVER,
    BRISK_ERR_TIMEOUT, BRISK_OK, brisk_last_error_message, brisk_status, brisk_status_name,
};
use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use support::{FaultProxy, RedisServer, wait_until};

// ---------------------------------------------------------------------------------------------
// Harness: a C client and per-command callback slots

/// A reply, copied out of the `brisk_reply` the callback owns.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Nil,
    Int(i64),
    Text(String),
    Array(Vec<Value>),
    Other(u32),
}

/// What one callback received.
#[derive(Clone, Debug)]
struct Outcome {
    status: brisk_status,
    message: String,
    value: Option<Value>,
    thread: Option<String>,
    at: Instant,
}

impl Outcome {
    fn status_name(&self) -> String {
        status_name(self.status)
    }
}

fn status_name(status: brisk_status) -> String {
    // SAFETY: brisk_status_name returns a static string.
    unsafe { CStr::from_ptr(brisk_status_name(status)) }
        .to_string_lossy()
        .into_owned()
}

/// Counts the callbacks of a group of commands and lets a test wait for them.
struct Tally {
    done: Mutex<usize>,
    changed: Condvar,
}

/// One command's callback target: passed as `userdata`, it lives for the rest of the process
/// (leaked), so a late or doubled callback can never touch freed memory.
struct Slot {
    tally: &'static Tally,
    calls: AtomicU32,
    outcome: Mutex<Option<Outcome>>,
}

/// A group of slots sharing one tally.
struct Batch {
    tally: &'static Tally,
    slots: &'static [Slot],
    /// Slots handed to `brisk_command_async` with BRISK_OK (the others must never be called).
    issued: AtomicUsize,
}

impl Batch {
    fn new(n: usize) -> Batch {
        let tally: &'static Tally = Box::leak(Box::new(Tally {
            done: Mutex::new(0),
            changed: Condvar::new(),
        }));
        let slots: Vec<Slot> = (0..n)
            .map(|_| Slot {
                tally,
                calls: AtomicU32::new(0),
                outcome: Mutex::new(None),
            })
            .collect();
        Batch {
            tally,
            slots: Box::leak(slots.into_boxed_slice()),
            issued: AtomicUsize::new(0),
        }
    }

    fn slot(&self, i: usize) -> &'static Slot {
        &self.slots[i]
    }

    /// Callbacks received so far (doubled ones included).
    fn done(&self) -> usize {
        *self.tally.done.lock().unwrap()
    }

    /// Waits until `n` callbacks have arrived or `timeout` passed; true when they did.
    fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut done = self.tally.done.lock().unwrap();
        while *done < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = self.tally.changed.wait_timeout(done, left).unwrap().0;
        }
        true
    }

    fn outcome(&self, i: usize) -> Outcome {
        self.slots[i]
            .outcome
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| panic!("command {i} got no callback"))
    }

    /// Every slot in `range` was called exactly once; returns their outcomes.
    #[track_caller]
    fn exactly_once(&self, range: std::ops::Range<usize>) -> Vec<Outcome> {
        let wrong: Vec<(usize, u32)> = range
            .clone()
            .map(|i| (i, self.slots[i].calls.load(SeqCst)))
            .filter(|(_, calls)| *calls != 1)
            .take(10)
            .collect();
        assert!(
            wrong.is_empty(),
            "commands called back other than once (index, calls): {wrong:?}"
        );
        range.map(|i| self.outcome(i)).collect()
    }

    /// Every slot from `from` on was never called.
    #[track_caller]
    fn never_called(&self, from: usize) {
        let called: Vec<usize> = (from..self.slots.len())
            .filter(|&i| self.slots[i].calls.load(SeqCst) != 0)
            .collect();
        assert!(called.is_empty(), "unexpected callbacks for {called:?}");
    }
}

/// Copies a reply (or an element of one) into a [`Value`].
///
/// # Safety
/// `r` is a live reply or element.
unsafe fn value_of(r: *const brisk_reply) -> Value {
    // SAFETY: per this function's contract.
    unsafe {
        match brisk_reply_type_of(r) {
            BRISK_REPLY_NIL => Value::Nil,
            BRISK_REPLY_INTEGER | BRISK_REPLY_BOOL => Value::Int(brisk_reply_integer(r)),
            BRISK_REPLY_STRING | BRISK_REPLY_STATUS => {
                let mut len = 0usize;
                let p = brisk_reply_string(r, &mut len);
                let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len);
                Value::Text(String::from_utf8_lossy(bytes).into_owned())
            }
            BRISK_REPLY_ARRAY => Value::Array(
                (0..brisk_reply_length(r))
                    .map(|i| value_of(brisk_reply_element(r, i)))
                    .collect(),
            ),
            other => Value::Other(other),
        }
    }
}

/// The callback every test passes to `brisk_command_async`.
unsafe extern "C" fn on_reply(
    userdata: *mut c_void,
    status: brisk_status,
    error_message: *const c_char,
    reply: *mut brisk_reply,
) {
    // SAFETY: userdata is a leaked Slot; the message and the reply are valid for this call and
    // the reply is ours to free.
    let (slot, message, value) = unsafe {
        let slot = &*(userdata as *const Slot);
        let message = if error_message.is_null() {
            "<NULL message>".to_owned()
        } else {
            CStr::from_ptr(error_message).to_string_lossy().into_owned()
        };
        let value = (!reply.is_null()).then(|| value_of(reply));
        brisk_reply_free(reply);
        (slot, message, value)
    };
    let outcome = Outcome {
        status,
        message,
        value,
        thread: std::thread::current().name().map(str::to_owned),
        at: Instant::now(),
    };
    if slot.calls.fetch_add(1, SeqCst) == 0 {
        *slot.outcome.lock().unwrap() = Some(outcome);
    }
    let mut done = slot.tally.done.lock().unwrap();
    *done += 1;
    slot.tally.changed.notify_all();
}

/// How to configure a client beyond its URL.
#[derive(Default, Clone, Copy)]
struct Retry {
    /// A constant-delay policy: (delay ms, retries).
    constant: Option<(u32, u32)>,
    always: bool,
}

/// A `brisk_client` made and used through the C API.
struct CClient {
    ptr: *mut brisk_client,
}

// SAFETY: a brisk_client is thread-safe by contract (every function but free may be called from
// any thread at any time).
unsafe impl Send for CClient {}
unsafe impl Sync for CClient {}

impl CClient {
    /// A client for `url` (which may carry options: `?read_timeout=300&max_retries=0`).
    fn new(url: &str, retry: Retry) -> CClient {
        let url = CString::new(url).unwrap();
        // SAFETY: every pointer comes from the API or outlives the call.
        unsafe {
            let cfg = brisk_config_new();
            assert!(!cfg.is_null());
            assert_eq!(brisk_config_set_url(cfg, url.as_ptr()), BRISK_OK, "{url:?}");
            if let Some((delay, retries)) = retry.constant {
                let mut policy = std::ptr::null_mut();
                assert_eq!(
                    brisk_retry_new(BRISK_BACKOFF_CONSTANT, delay, delay, retries, &mut policy),
                    BRISK_OK
                );
                assert_eq!(brisk_config_set_retry(cfg, policy), BRISK_OK);
                brisk_retry_free(policy);
            }
            if retry.always {
                assert_eq!(
                    brisk_config_set_retry_writes(cfg, BRISK_RETRY_WRITES_ALWAYS),
                    BRISK_OK
                );
            }
            let mut ptr = std::ptr::null_mut();
            let status = brisk_client_new(cfg, &mut ptr);
            brisk_config_free(cfg);
            assert_eq!(status, BRISK_OK, "brisk_client_new: {}", last_error());
            CClient { ptr }
        }
    }

    /// Starts `args` with `slot` as the callback's userdata; returns the call's status.
    fn start(&self, args: &[&[u8]], slot: &'static Slot) -> brisk_status {
        let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
        let argvlen: Vec<usize> = args.iter().map(|a| a.len()).collect();
        // SAFETY: the client is live, argv/argvlen hold args.len() entries, the slot is leaked.
        unsafe {
            brisk_command_async(
                self.ptr,
                args.len(),
                argv.as_ptr(),
                argvlen.as_ptr(),
                Some(on_reply),
                slot as *const Slot as *mut c_void,
            )
        }
    }

    /// Starts `args` on slot `i` of `batch`, which must be accepted.
    #[track_caller]
    fn send(&self, batch: &Batch, i: usize, args: &[&str]) {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let status = self.start(&bytes, batch.slot(i));
        assert_eq!(status, BRISK_OK, "{args:?}: {}", last_error());
        batch.issued.fetch_add(1, SeqCst);
    }

    /// Runs one command async and waits for its outcome (bounded).
    #[track_caller]
    fn call(&self, args: &[&str]) -> Outcome {
        let batch = Batch::new(1);
        self.send(&batch, 0, args);
        assert!(
            batch.wait_for(1, Duration::from_secs(30)),
            "{args:?}: no callback within 30 s"
        );
        batch.outcome(0)
    }

    fn stat(&self, which: brisk_stat) -> u64 {
        // SAFETY: the client is live.
        unsafe { brisk_client_stat(self.ptr, which) }
    }

    /// Frees the client; returns how long `brisk_client_free` took.
    fn free(mut self) -> Duration {
        let started = Instant::now();
        // SAFETY: the client is live and no other thread uses it any more.
        unsafe { brisk_client_free(std::mem::replace(&mut self.ptr, std::ptr::null_mut())) };
        started.elapsed()
    }
}

impl Drop for CClient {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the client is live; the test that owned it is over.
            unsafe { brisk_client_free(self.ptr) };
        }
    }
}

fn last_error() -> String {
    // SAFETY: a thread-local string, valid until the next brisk call on this thread.
    unsafe { CStr::from_ptr(brisk_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// The outcome must be BRISK_OK; returns its value.
#[track_caller]
fn ok_value(o: &Outcome) -> Value {
    assert_eq!(
        o.status,
        BRISK_OK,
        "expected OK, got {}: {}",
        o.status_name(),
        o.message
    );
    assert_eq!(o.message, "", "a success carries an empty message");
    o.value.clone().expect("a success carries a reply")
}

#[track_caller]
fn int(o: &Outcome) -> i64 {
    match ok_value(o) {
        Value::Int(n) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

#[track_caller]
fn text(o: &Outcome) -> String {
    match ok_value(o) {
        Value::Text(s) => s,
        other => panic!("expected text, got {other:?}"),
    }
}

/// The outcome must have failed with `status` and a message; returns the message.
#[track_caller]
fn failed(o: &Outcome, status: brisk_status) -> String {
    assert_eq!(
        o.status,
        status,
        "expected {}, got {}: {} ({:?})",
        status_name(status),
        o.status_name(),
        o.message,
        o.value
    );
    assert!(o.value.is_none(), "a failure carries no reply");
    assert!(!o.message.is_empty(), "a failure carries a message");
    o.message.clone()
}

/// Every callback ran on a brisk runtime thread.
#[track_caller]
fn all_on_runtime_threads(outcomes: &[Outcome]) {
    let elsewhere: Vec<&Option<String>> = outcomes
        .iter()
        .map(|o| &o.thread)
        .filter(|t| t.as_deref() != Some("brisk-runtime"))
        .take(5)
        .collect();
    assert!(
        elsewhere.is_empty(),
        "callbacks on other threads: {elsewhere:?}"
    );
}

#[track_caller]
fn assert_between(took: Duration, low_ms: u64, high_ms: u64, what: &str) {
    assert!(
        took >= Duration::from_millis(low_ms) && took <= Duration::from_millis(high_ms),
        "{what}: took {took:?}, expected {low_ms}..={high_ms} ms"
    );
}

/// The value of `key` on the server (0 when missing), read with redis-cli.
fn counter(server: &RedisServer, key: &str) -> i64 {
    let value = server.cli(&["GET", key]);
    if value.is_empty() {
        0
    } else {
        value.parse().expect("an integer value")
    }
}

/// Normal clients connected to the server, not counting the redis-cli asking.
fn server_clients(server: &RedisServer) -> usize {
    server
        .cli(&["CLIENT", "LIST", "TYPE", "normal"])
        .lines()
        .filter(|l| !l.contains("cmd=client"))
        .count()
}

fn proxy_for(server: &RedisServer) -> FaultProxy {
    FaultProxy::start(format!("127.0.0.1:{}", server.port()).parse().unwrap())
}

/// Sets the flag when dropped, so that a failing assertion also stops a feeder thread.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// Many commands in flight

#[test]
fn ten_thousand_commands_in_flight_share_one_connection() {
    const INCRS: usize = 10_000;
    const KEYS: usize = 2_000;
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());

    // 10,000 INCRs of one key started at once from four threads: each INCR's reply is a
    // different number, and together they are exactly 1..=10,000.
    let incrs = Batch::new(INCRS);
    let caller_threads: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (c, incrs) = (&c, &incrs);
                s.spawn(move || {
                    for i in (t..INCRS).step_by(4) {
                        c.send(incrs, i, &["INCR", "n"]);
                    }
                    format!("{:?}", std::thread::current().id())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(caller_threads.len(), 4);
    assert!(
        incrs.wait_for(INCRS, Duration::from_secs(60)),
        "{} of {INCRS} callbacks",
        incrs.done()
    );
    let outcomes = incrs.exactly_once(0..INCRS);
    all_on_runtime_threads(&outcomes);
    let mut seen: Vec<i64> = outcomes.iter().map(int).collect();
    seen.sort_unstable();
    assert!(
        seen.iter().copied().eq(1..=INCRS as i64),
        "INCR replies are not exactly 1..=10000"
    );
    assert_eq!(counter(&server, "n"), INCRS as i64);

    // SET of 2,000 keys in flight at once, then GET of all of them in flight at once.
    let sets = Batch::new(KEYS);
    for i in 0..KEYS {
        c.send(&sets, i, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    assert!(sets.wait_for(KEYS, Duration::from_secs(60)));
    for o in sets.exactly_once(0..KEYS) {
        assert_eq!(text(&o), "OK");
    }
    let gets = Batch::new(KEYS + 1);
    for i in 0..KEYS {
        c.send(&gets, i, &["GET", &format!("k{i}")]);
    }
    c.send(&gets, KEYS, &["GET", "missing"]);
    assert!(gets.wait_for(KEYS + 1, Duration::from_secs(60)));
    let outcomes = gets.exactly_once(0..KEYS + 1);
    all_on_runtime_threads(&outcomes);
    for (i, o) in outcomes[..KEYS].iter().enumerate() {
        assert_eq!(text(o), format!("v{i}"));
    }
    assert_eq!(ok_value(&outcomes[KEYS]), Value::Nil);

    // All of it went through one connection: auto-pipelining, not a connection per command.
    assert_eq!(c.stat(BRISK_STAT_CONNECTS), 1, "connections opened");
    assert_eq!(server_clients(&server), 1, "connections on the server");
    assert_eq!(c.stat(BRISK_STAT_ERRORS), 0);
    assert_eq!(c.stat(BRISK_STAT_RETRIES), 0);
    c.free();
    // Nothing was called twice, not even late.
    incrs.exactly_once(0..INCRS);
    gets.exactly_once(0..KEYS + 1);
}

#[test]
fn a_callback_may_start_more_async_commands() {
    /// Userdata of the chain: the client and how many links are left.
    struct Chain {
        client: *mut brisk_client,
        left: AtomicU32,
        batch: Batch,
    }
    unsafe extern "C" fn next(
        userdata: *mut c_void,
        status: brisk_status,
        _message: *const c_char,
        reply: *mut brisk_reply,
    ) {
        // SAFETY: userdata is the leaked Chain; the client outlives the chain (the test waits
        // for its end before freeing it).
        unsafe {
            brisk_reply_free(reply);
            let chain = &*(userdata as *const Chain);
            assert_eq!(status, BRISK_OK);
            let left = chain.left.fetch_sub(1, SeqCst) - 1;
            let slot = chain.batch.slot(left as usize);
            if left == 0 {
                on_reply(slot as *const Slot as *mut c_void, status, c"".as_ptr(), std::ptr::null_mut());
                return;
            }
            let args: [&[u8]; 2] = [b"INCR", b"chain"];
            let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
            let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
            let rc = brisk_command_async(chain.client, 2, argv.as_ptr(), lens.as_ptr(), Some(next), userdata);
            assert_eq!(rc, BRISK_OK);
            on_reply(slot as *const Slot as *mut c_void, status, c"".as_ptr(), std::ptr::null_mut());
        }
    }
    const LINKS: u32 = 200;
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    let chain: &'static Chain = Box::leak(Box::new(Chain {
        client: c.ptr,
        left: AtomicU32::new(LINKS),
        batch: Batch::new(LINKS as usize),
    }));
    let args: [&[u8]; 2] = [b"INCR", b"chain"];
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
    // SAFETY: the client is live; the chain is leaked.
    let rc = unsafe {
        brisk_command_async(
            c.ptr,
            2,
            argv.as_ptr(),
            lens.as_ptr(),
            Some(next),
            chain as *const Chain as *mut c_void,
        )
    };
    assert_eq!(rc, BRISK_OK);
    assert!(chain.batch.wait_for(LINKS as usize, Duration::from_secs(30)));
    c.free();
    chain.batch.exactly_once(0..LINKS as usize);
    assert_eq!(counter(&server, "chain"), i64::from(LINKS));
}

// ---------------------------------------------------------------------------------------------
// Connections dying under load

/// Feeds GETs and INCRs (alternately) into `batch` until `stop` is set or the batch is full,
/// keeping at most `window` of them unanswered. Returns how many were started.
fn feed(c: &CClient, batch: &Batch, stop: &AtomicBool, window: usize) -> usize {
    let mut i = 0;
    while i < batch.slots.len() && !stop.load(SeqCst) {
        if i >= batch.done() + window {
            // Bounded: a stuck client fails the test instead of hanging it.
            assert!(
                batch.wait_for(i - window + 1, Duration::from_secs(30)),
                "no callback for 30 s with {window} commands in flight ({} done)",
                batch.done()
            );
            continue;
        }
        if i % 2 == 0 {
            c.send(batch, i, &["GET", "k"]);
        } else {
            c.send(batch, i, &["INCR", "n"]);
        }
        i += 1;
    }
    i
}

#[test]
fn server_killed_mid_stream_every_callback_once() {
    const MAX: usize = 200_000;
    let mut server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=1000&connect_timeout=1000", server.url()),
        Retry {
            constant: Some((20, 3)),
            always: false,
        },
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");

    let batch = Batch::new(MAX);
    let stop = AtomicBool::new(false);
    let (started, killed_at) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let feeder = s.spawn(|| feed(&c, &batch, &stop, 5_000));
        // Kill the server while thousands are in flight, then keep feeding for a while into the
        // dead address.
        assert!(
            batch.wait_for(20_000, Duration::from_secs(60)),
            "only {} done before the kill",
            batch.done()
        );
        server.kill();
        let killed_at = batch.done();
        assert!(
            batch.wait_for(killed_at + 5_000, Duration::from_secs(60)),
            "callbacks stopped after the kill: {} done",
            batch.done()
        );
        stop.store(true, SeqCst);
        (feeder.join().expect("feeder"), killed_at)
    });
    let (all, took) = {
        let t = Instant::now();
        (batch.wait_for(started, Duration::from_secs(30)), t.elapsed())
    };
    assert!(all, "{} of {started} callbacks", batch.done());
    let outcomes = batch.exactly_once(0..started);
    all_on_runtime_threads(&outcomes);
    let mut failures = 0;
    let mut maybe_applied = 0;
    for (i, o) in outcomes.iter().enumerate() {
        if o.status == BRISK_OK {
            if i % 2 == 0 {
                assert_eq!(text(o), "v");
            } else {
                assert!(int(o) > 0);
            }
            continue;
        }
        failures += 1;
        assert!(
            o.status == BRISK_ERR_CONNECTION || o.status == BRISK_ERR_TIMEOUT,
            "command {i}: {}: {}",
            o.status_name(),
            o.message
        );
        assert!(!o.message.is_empty() && o.value.is_none());
        if o.message.contains("may have been applied") {
            assert!(i % 2 == 1, "a GET reported as a write: {}", o.message);
            maybe_applied += 1;
        }
    }
    eprintln!(
        "kill mid-stream: {started} started, {killed_at} done at the kill, {failures} failed \
         ({maybe_applied} writes may have been applied), last ones drained in {took:?}"
    );
    assert!(failures >= 5_000, "the commands after the kill failed");
    assert!(started - killed_at >= 5_000);

    // The server comes back on the same port: new async commands reconnect and succeed.
    server.start_again();
    assert_eq!(text(&c.call(&["SET", "k", "back"])), "OK");
    assert_eq!(text(&c.call(&["GET", "k"])), "back");
    assert!(c.stat(BRISK_STAT_CONNECTS) >= 2);
    c.free();
    batch.exactly_once(0..started);
    batch.never_called(started);
}

#[test]
fn connections_killed_between_commands_are_replaced() {
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    for round in 0..3u64 {
        let batch = Batch::new(1_000);
        for i in 0..1_000 {
            c.send(&batch, i, &["INCR", &format!("round:{round}")]);
        }
        assert!(batch.wait_for(1_000, Duration::from_secs(30)));
        for o in batch.exactly_once(0..1_000) {
            assert!(int(&o) > 0);
        }
        assert_eq!(counter(&server, &format!("round:{round}")), 1_000);
        // Killed while idle: the next commands find out (the read fails, or the write does) and
        // run on a new connection.
        let killed = server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        assert_eq!(killed, "1", "round {round}: the one multiplexed connection");
        assert!(wait_until(Duration::from_secs(5), || server_clients(&server) == 0));
    }
    let o = c.call(&["GET", "round:2"]);
    assert_eq!(text(&o), "1000");
    assert_eq!(c.stat(BRISK_STAT_ERRORS), 0, "no command failed");
    assert_eq!(c.stat(BRISK_STAT_CONNECTS), 4);
    assert_eq!(c.stat(BRISK_STAT_RECONNECTS), 3, "each replacement counted");
    c.free();
}
