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
    BRISK_STAT_CONNECTS, BRISK_STAT_ERRORS, BRISK_STAT_HEALTH_CHECK_FAILURES,
    BRISK_STAT_HEALTH_CHECKS, BRISK_STAT_RECONNECTS, BRISK_STAT_RETRIES, BRISK_STAT_TIMEOUTS,
    brisk_client, brisk_client_free, brisk_client_new, brisk_client_stat, brisk_command,
    brisk_command_async, brisk_stat,
};
use brisk::capi::config::{
    BRISK_RETRY_WRITES_ALWAYS, brisk_config_free, brisk_config_new,
    brisk_config_set_event_callback, brisk_config_set_retry, brisk_config_set_retry_writes,
    brisk_config_set_url,
};
use brisk::capi::event::{
    BRISK_EVENT_COMMAND, BRISK_EVENT_CONNECT, BRISK_EVENT_DISCONNECT, BRISK_EVENT_HEALTH_CHECK,
    brisk_event, brisk_event_fn, brisk_event_kind, brisk_event_kind_of, brisk_event_status,
};
use brisk::capi::reply::{
    BRISK_REPLY_ARRAY, BRISK_REPLY_BOOL, BRISK_REPLY_INTEGER, BRISK_REPLY_NIL, BRISK_REPLY_STATUS,
    BRISK_REPLY_STRING, brisk_reply, brisk_reply_element, brisk_reply_free, brisk_reply_integer,
    brisk_reply_length, brisk_reply_string, brisk_reply_type_of,
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
use support::{FaultProxy, RedisServer, StopOnDrop, assert_at_most, assert_between, wait_until};

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

    /// Waits (up to `timeout`) for a callback to every slot; returns their outcomes, each slot
    /// called exactly once.
    #[track_caller]
    fn all_outcomes(&self, timeout: Duration) -> Vec<Outcome> {
        let n = self.slots.len();
        assert!(
            self.wait_for(n, timeout),
            "{} of {n} callbacks within {timeout:?}",
            self.done()
        );
        self.exactly_once(0..n)
    }

    /// The client was freed (taking `took`) with every command of the batch outstanding:
    /// `brisk_client_free` returned only after each callback ran, exactly once, with CLOSED,
    /// and within `high_ms`. Returns the messages.
    #[track_caller]
    fn closed_by_free(&self, took: Duration, high_ms: u64) -> Vec<String> {
        let n = self.slots.len();
        assert_eq!(self.done(), n, "free returned before every callback ran");
        let messages = self
            .exactly_once(0..n)
            .iter()
            .map(|o| failed(o, BRISK_ERR_CLOSED))
            .collect();
        assert_at_most(took, high_ms, "brisk_client_free");
        messages
    }

    /// Every slot in `range` was never called.
    #[track_caller]
    fn never_called(&self, range: std::ops::Range<usize>) {
        let called: Vec<usize> = range
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

impl Retry {
    /// `retries` retries `delay_ms` apart; writes replayed too when `always` (ALWAYS mode).
    fn constant(delay_ms: u32, retries: u32, always: bool) -> Retry {
        Retry {
            constant: Some((delay_ms, retries)),
            always,
        }
    }
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
        CClient::with_events(url, retry, None, std::ptr::null_mut())
    }

    /// A client with an event callback.
    fn with_events(
        url: &str,
        retry: Retry,
        events: brisk_event_fn,
        userdata: *mut c_void,
    ) -> CClient {
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
            if events.is_some() {
                assert_eq!(
                    brisk_config_set_event_callback(cfg, events, userdata),
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

    /// A batch of `n` commands, `args(i)` started on slot `i`.
    #[track_caller]
    fn start_batch<'a>(&self, n: usize, args: impl Fn(usize) -> &'a [&'a str]) -> Batch {
        let batch = Batch::new(n);
        for i in 0..n {
            self.send(&batch, i, args(i));
        }
        batch
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

/// Command `i` of the mixed workloads: a GET of `k` when `i` is even, an INCR of `n` when odd.
fn get_or_incr(i: usize) -> &'static [&'static str] {
    if i.is_multiple_of(2) {
        &["GET", "k"]
    } else {
        &["INCR", "n"]
    }
}

/// Every outcome is a TIMEOUT naming the command deadline (400 ms), which ended it after
/// `started` within `high_ms`.
#[track_caller]
fn ended_by_the_400_ms_deadline(outcomes: &[Outcome], started: Instant, high_ms: u64) {
    for o in outcomes {
        let message = failed(o, BRISK_ERR_TIMEOUT);
        assert!(message.contains("deadline"), "{message}");
        assert_between(o.at - started, 350, high_ms, "a 400 ms command deadline");
    }
}

/// Stops `server`, runs `start` (which starts a batch of commands), waits up to `timeout` for
/// all of their callbacks and resumes the server. Returns the outcomes (each slot called back
/// exactly once) and when `start` began.
#[track_caller]
fn while_stopped(
    server: &RedisServer,
    timeout: Duration,
    start: impl FnOnce() -> Batch,
) -> (Vec<Outcome>, Instant) {
    server.sigstop();
    let started = Instant::now();
    let batch = start();
    let n = batch.slots.len();
    let all = batch.wait_for(n, timeout);
    server.sigcont();
    assert!(
        all,
        "{} of {n} callbacks while the server was stopped",
        batch.done()
    );
    (batch.exactly_once(0..n), started)
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
    let outcomes = incrs.all_outcomes(Duration::from_secs(60));
    all_on_runtime_threads(&outcomes);
    let mut seen: Vec<i64> = outcomes.iter().map(int).collect();
    seen.sort_unstable();
    assert!(
        seen.iter().copied().eq(1..=INCRS as i64),
        "INCR replies are not exactly 1..=10000"
    );
    assert_eq!(server.counter("n"), INCRS as i64);

    // SET of 2,000 keys in flight at once, then GET of all of them in flight at once.
    let sets = Batch::new(KEYS);
    for i in 0..KEYS {
        c.send(&sets, i, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    for o in sets.all_outcomes(Duration::from_secs(60)) {
        assert_eq!(text(&o), "OK");
    }
    let gets = Batch::new(KEYS + 1);
    for i in 0..KEYS {
        c.send(&gets, i, &["GET", &format!("k{i}")]);
    }
    c.send(&gets, KEYS, &["GET", "missing"]);
    let outcomes = gets.all_outcomes(Duration::from_secs(60));
    all_on_runtime_threads(&outcomes);
    for (i, o) in outcomes[..KEYS].iter().enumerate() {
        assert_eq!(text(o), format!("v{i}"));
    }
    assert_eq!(ok_value(&outcomes[KEYS]), Value::Nil);

    // All of it went through one connection: auto-pipelining, not a connection per command.
    assert_eq!(c.stat(BRISK_STAT_CONNECTS), 1, "connections opened");
    assert_eq!(server.normal_clients(), 1, "connections on the server");
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
                on_reply(
                    slot as *const Slot as *mut c_void,
                    status,
                    c"".as_ptr(),
                    std::ptr::null_mut(),
                );
                return;
            }
            let args: [&[u8]; 2] = [b"INCR", b"chain"];
            let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
            let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
            let rc = brisk_command_async(
                chain.client,
                2,
                argv.as_ptr(),
                lens.as_ptr(),
                Some(next),
                userdata,
            );
            assert_eq!(rc, BRISK_OK);
            on_reply(
                slot as *const Slot as *mut c_void,
                status,
                c"".as_ptr(),
                std::ptr::null_mut(),
            );
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
    assert!(
        chain
            .batch
            .wait_for(LINKS as usize, Duration::from_secs(30))
    );
    c.free();
    chain.batch.exactly_once(0..LINKS as usize);
    assert_eq!(server.counter("chain"), i64::from(LINKS));
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
        c.send(batch, i, get_or_incr(i));
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
        Retry::constant(20, 3, false),
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
        (
            batch.wait_for(started, Duration::from_secs(30)),
            t.elapsed(),
        )
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
    assert!(failures >= 1_000, "the commands after the kill failed");
    assert!(started - killed_at >= 5_000);

    // The server comes back on the same port: new async commands reconnect and succeed.
    server.start_again();
    assert_eq!(text(&c.call(&["SET", "k", "back"])), "OK");
    assert_eq!(text(&c.call(&["GET", "k"])), "back");
    assert!(c.stat(BRISK_STAT_CONNECTS) >= 2);
    c.free();
    batch.exactly_once(0..started);
    batch.never_called(started..MAX);
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
        for o in batch.all_outcomes(Duration::from_secs(30)) {
            assert!(int(&o) > 0);
        }
        assert_eq!(server.counter(&format!("round:{round}")), 1_000);
        // Killed while idle: the next commands find out (the read fails, or the write does) and
        // run on a new connection.
        let killed = server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        assert_eq!(killed, "1", "round {round}: the one multiplexed connection");
        assert!(wait_until(Duration::from_secs(5), || server
            .normal_clients()
            == 0));
    }
    let o = c.call(&["GET", "round:2"]);
    assert_eq!(text(&o), "1000");
    assert_eq!(c.stat(BRISK_STAT_ERRORS), 0, "no command failed");
    assert_eq!(c.stat(BRISK_STAT_CONNECTS), 4);
    assert_eq!(c.stat(BRISK_STAT_RECONNECTS), 3, "each replacement counted");
    c.free();
}

// ---------------------------------------------------------------------------------------------
// Freeing the client with commands in flight

#[test]
fn client_freed_mid_stream_completes_everything_first() {
    const N: usize = 20_000;
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");
    let batch = c.start_batch(N, get_or_incr);
    // Freed at once: whatever had not finished is completed (CLOSED) before free returns.
    let took = c.free();
    assert_eq!(batch.done(), N, "free returned before every callback ran");
    let outcomes = batch.exactly_once(0..N);
    all_on_runtime_threads(&outcomes);
    let closed = outcomes
        .iter()
        .filter(|o| o.status == BRISK_ERR_CLOSED)
        .count();
    let mut incrs_ok = 0;
    for (i, o) in outcomes.iter().enumerate() {
        match o.status {
            BRISK_OK if i % 2 == 0 => assert_eq!(text(o), "v"),
            BRISK_OK => {
                int(o);
                incrs_ok += 1;
            }
            _ => {
                failed(o, BRISK_ERR_CLOSED);
            }
        }
    }
    eprintln!("freed mid-stream after {took:?}: {closed} of {N} CLOSED");
    assert_at_most(took, 10_000, "brisk_client_free");
    // The INCRs that succeeded were applied; a CLOSED one may or may not have been.
    let n = server.counter("n");
    assert!(n >= incrs_ok && n <= (N / 2) as i64, "{n} vs {incrs_ok}");
}

#[test]
fn client_freed_with_commands_stuck_in_a_stalled_proxy() {
    const N: usize = 2_000;
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let c = CClient::new(
        &format!("{}?read_timeout=20000", proxy.url()),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");

    // The requests leave the client (40 KB: all written, into the proxy or the socket buffers
    // in front of it) and stay unanswered.
    proxy.stall();
    let before = proxy.client_bytes();
    let batch = c.start_batch(N, |_| &["GET", "k"]);
    assert!(
        wait_until(Duration::from_secs(10), || proxy.client_bytes() > before),
        "no request reached the proxy"
    );
    assert_eq!(batch.done(), 0);

    let took = c.free();
    for message in batch.closed_by_free(took, 5000) {
        assert!(message.contains("closed"), "{message}");
    }
    proxy.heal();
}

#[test]
fn client_freed_during_retry_backoffs() {
    // Nothing listens: every command is in a retry backoff (10 s) when the client is freed.
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let c = CClient::new(
        &format!("{url}?connect_timeout=1000"),
        Retry::constant(10_000, 5, false),
    );
    let batch = c.start_batch(100, |_| &["GET", "k"]);
    assert!(
        wait_until(Duration::from_secs(10), || c.stat(BRISK_STAT_RETRIES)
            >= 100),
        "{} retries",
        c.stat(BRISK_STAT_RETRIES)
    );
    let took = c.free();
    // Not waiting for the backoff.
    batch.closed_by_free(took, 3000);
}

// ---------------------------------------------------------------------------------------------
// A stalled server (SIGSTOP): read timeout, retries, SAFE and ALWAYS

#[test]
fn a_stalled_server_times_out_within_the_read_timeout() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=300&max_retries=0", server.url()),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");

    let (outcomes, started) = while_stopped(&server, Duration::from_secs(10), || {
        c.start_batch(1_000, |_| &["GET", "k"])
    });
    for o in outcomes {
        let message = failed(&o, BRISK_ERR_TIMEOUT);
        assert!(message.contains("read timeout"), "{message}");
        assert_between(o.at - started, 250, 3_000, "a read timeout of 300 ms");
    }
    assert!(c.stat(BRISK_STAT_TIMEOUTS) >= 1);
    // Resumed: the connection that timed out was dropped; a new one works (once the server has
    // worked through the backlog, which may take longer than 300 ms on a busy machine).
    assert!(wait_until(Duration::from_secs(20), || c
        .call(&["GET", "k"])
        .status
        == BRISK_OK));
    c.free();
}

#[test]
fn reads_on_a_stalled_server_are_retried_and_succeed() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=300", server.url()),
        Retry::constant(20, 5, false),
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");

    server.sigstop();
    let started = Instant::now();
    let batch = c.start_batch(500, |_| &["GET", "k"]);
    let timed_out = wait_until(Duration::from_secs(10), || c.stat(BRISK_STAT_TIMEOUTS) >= 1);
    server.sigcont();
    assert!(timed_out, "the reads never timed out");
    for o in batch.all_outcomes(Duration::from_secs(20)) {
        assert_eq!(text(&o), "v");
        assert_between(o.at - started, 250, 5_000, "one read timeout, then a retry");
    }
    assert!(c.stat(BRISK_STAT_RETRIES) >= 1);
    assert_eq!(c.stat(BRISK_STAT_ERRORS), 0);
    c.free();
}

/// One INCR, the server stalled until the client has seen it time out.
fn incr_across_one_stall(server: &RedisServer, c: &CClient, key: &str) -> Outcome {
    server.sigstop();
    let batch = Batch::new(1);
    c.send(&batch, 0, &["INCR", key]);
    let timed_out = wait_until(Duration::from_secs(10), || c.stat(BRISK_STAT_TIMEOUTS) >= 1);
    server.sigcont();
    assert!(timed_out, "the INCR never timed out");
    assert!(batch.wait_for(1, Duration::from_secs(20)));
    batch.exactly_once(0..1).remove(0)
}

#[test]
fn one_incr_across_a_stall_safe_versus_always() {
    let server = RedisServer::start();
    let url = format!("{}?read_timeout=300", server.url());

    // SAFE: reported, not replayed, and the server did apply it exactly once.
    let safe = CClient::new(&url, Retry::constant(20, 3, false));
    assert_eq!(text(&safe.call(&["PING"])), "PONG");
    let o = incr_across_one_stall(&server, &safe, "one:safe");
    let message = failed(&o, BRISK_ERR_TIMEOUT);
    assert!(message.contains("may have been applied"), "{message}");
    assert!(message.contains("not retried"), "{message}");
    assert_eq!(safe.stat(BRISK_STAT_RETRIES), 0);
    assert!(
        wait_until(Duration::from_secs(5), || server.counter("one:safe") == 1),
        "the stalled INCR was applied once the server resumed: {}",
        server.counter("one:safe")
    );

    // ALWAYS: the caller sees one success, the server applied it twice.
    let always = CClient::new(&url, Retry::constant(20, 3, true));
    assert_eq!(text(&always.call(&["PING"])), "PONG");
    let o = incr_across_one_stall(&server, &always, "one:always");
    assert!((1..=2).contains(&int(&o)), "{o:?}");
    assert!(always.stat(BRISK_STAT_RETRIES) >= 1);
    assert!(
        wait_until(Duration::from_secs(5), || server.counter("one:always") == 2),
        "at least once: the stalled INCR and its replay were both applied: {}",
        server.counter("one:always")
    );
    assert_eq!(server.counter("one:safe"), 1);
    safe.free();
    always.free();
}

/// INCRs in flight (a window of 200) while the server is stalled `cycles` times, each stall
/// lasting until a read timed out. Returns the outcomes and the final counter.
fn incr_stream_under_stalls(
    server: &RedisServer,
    c: &CClient,
    key: &str,
    cycles: usize,
) -> (Vec<Outcome>, i64) {
    const MAX: usize = 100_000;
    let batch = Batch::new(MAX);
    let stop = AtomicBool::new(false);
    let started = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let feeder = s.spawn(|| {
            let mut i = 0;
            while i < MAX && !stop.load(SeqCst) {
                if i >= batch.done() + 200 {
                    assert!(batch.wait_for(i - 199, Duration::from_secs(30)), "stuck");
                    continue;
                }
                c.send(&batch, i, &["INCR", key]);
                i += 1;
            }
            i
        });
        for _ in 0..cycles {
            let done = batch.done();
            assert!(
                batch.wait_for(done + 500, Duration::from_secs(30)),
                "no progress"
            );
            let timeouts = c.stat(BRISK_STAT_TIMEOUTS);
            server.sigstop();
            let timed_out = wait_until(Duration::from_secs(10), || {
                c.stat(BRISK_STAT_TIMEOUTS) > timeouts
            });
            server.sigcont();
            assert!(timed_out, "no timeout during the stall");
        }
        let done = batch.done();
        assert!(
            batch.wait_for(done + 500, Duration::from_secs(30)),
            "no progress after the last stall"
        );
        stop.store(true, SeqCst);
        feeder.join().expect("feeder")
    });
    assert!(batch.wait_for(started, Duration::from_secs(30)));
    let outcomes = batch.exactly_once(0..started);
    // Whatever the stalled connections had sent has been worked through: the server answers
    // this client only after it.
    assert!(wait_until(Duration::from_secs(5), || {
        let a = server.counter(key);
        std::thread::sleep(Duration::from_millis(50));
        a == server.counter(key)
    }));
    (outcomes, server.counter(key))
}

#[test]
fn safe_mode_never_replays_incrs_that_timed_out_after_sending() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=300", server.url()),
        Retry::constant(50, 3, false),
    );
    let (outcomes, value) = incr_stream_under_stalls(&server, &c, "safe:n", 3);
    let succeeded = outcomes.iter().filter(|o| o.status == BRISK_OK).count() as i64;
    let mut maybe_applied = 0i64;
    for o in outcomes.iter().filter(|o| o.status != BRISK_OK) {
        let message = failed(o, BRISK_ERR_TIMEOUT);
        assert!(message.contains("may have been applied"), "{message}");
        maybe_applied += 1;
    }
    eprintln!(
        "SAFE: {} INCRs, {succeeded} succeeded, {maybe_applied} may have been applied; counter {value}",
        outcomes.len()
    );
    assert!(maybe_applied >= 3, "every stall caught INCRs after sending");
    assert!(value >= succeeded, "{value} < {succeeded}");
    assert!(
        value <= succeeded + maybe_applied,
        "{value}: a write was replayed"
    );
    // Never replayed: the server saw each INCR at most once, so the successes are distinct.
    let mut replies: Vec<i64> = outcomes
        .iter()
        .filter(|o| o.status == BRISK_OK)
        .map(int)
        .collect();
    replies.sort_unstable();
    replies.dedup();
    assert_eq!(replies.len() as i64, succeeded);
    c.free();
}

#[test]
fn always_mode_replays_incrs_that_timed_out_after_sending() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=300", server.url()),
        Retry::constant(50, 3, true),
    );
    let (outcomes, value) = incr_stream_under_stalls(&server, &c, "always:n", 3);
    let succeeded = outcomes.iter().filter(|o| o.status == BRISK_OK).count() as i64;
    let failures = outcomes.len() as i64 - succeeded;
    let retries = c.stat(BRISK_STAT_RETRIES) as i64;
    eprintln!(
        "ALWAYS: {} INCRs, {succeeded} succeeded, {failures} failed, {retries} retries; counter {value}",
        outcomes.len()
    );
    assert_eq!(
        failures, 0,
        "ALWAYS retried every timed-out INCR (3 retries of 300 ms stalls)"
    );
    assert!(retries >= 3, "{retries} retries");
    // At least once: never fewer than succeeded, and more: the timed-out ones were applied and
    // then replayed.
    assert!(
        value > succeeded,
        "{value} <= {succeeded}: nothing was replayed"
    );
    assert!(
        value <= succeeded + retries,
        "{value} > {succeeded} + {retries}"
    );
    c.free();
}

// ---------------------------------------------------------------------------------------------
// The fault proxy: streams cut mid-reply and reset

#[test]
fn proxy_cut_mid_reply_every_pending_callback_once() {
    const N: usize = 1_000;
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let c = CClient::new(&format!("{}?max_retries=0", proxy.url()), Retry::default());
    let value = "x".repeat(1000);
    assert_eq!(text(&c.call(&["SET", "big", &value])), "OK");

    // About five and a half replies get through, then the stream is cut in the middle of one.
    proxy.cut_after(5_555);
    let batch = c.start_batch(N, |_| &["GET", "big"]);
    let outcomes = batch.all_outcomes(Duration::from_secs(20));
    all_on_runtime_threads(&outcomes);
    let succeeded = outcomes.iter().filter(|o| o.status == BRISK_OK).count();
    for o in &outcomes {
        if o.status == BRISK_OK {
            assert_eq!(text(o), value);
        } else {
            failed(o, BRISK_ERR_CONNECTION);
        }
    }
    // At most five whole replies fit the budget. (Fewer when the proxy's close turns into a
    // reset, because requests it had not read yet were still arriving: the client's kernel then
    // drops what it had received.)
    assert!(
        succeeded <= 5,
        "{succeeded} replies made it through a 5,555-byte budget"
    );
    assert!(succeeded < N);

    // Healed: the next commands run on a new connection. (Polled: a pump of a cut connection
    // may still be finishing and can put back a spent budget once.)
    proxy.heal();
    assert!(wait_until(Duration::from_secs(10), || {
        proxy.heal();
        c.call(&["GET", "big"]).status == BRISK_OK
    }));
    assert_eq!(text(&c.call(&["GET", "big"])), value);
    assert!(c.stat(BRISK_STAT_RECONNECTS) >= 1);
    c.free();
    batch.exactly_once(0..N);
}

#[test]
fn proxy_reset_with_requests_in_flight() {
    const N: usize = 2_000;
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let c = CClient::new(&proxy.url(), Retry::constant(20, 3, false));
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");

    // The requests are held by the proxy's delay when every connection is reset: reads are
    // retried on a new connection, writes are reported as possibly applied.
    proxy.set_delay(Duration::from_millis(500));
    let before = proxy.client_bytes();
    let batch = c.start_batch(N, get_or_incr);
    let in_flight = wait_until(Duration::from_secs(5), || proxy.client_bytes() > before);
    proxy.reset_all();
    proxy.heal();
    assert!(in_flight, "the requests never reached the proxy");
    let outcomes = batch.all_outcomes(Duration::from_secs(20));
    let mut maybe_applied = 0;
    for (i, o) in outcomes.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(text(o), "v", "GET {i} was retried");
        } else if o.status != BRISK_OK {
            let message = failed(o, BRISK_ERR_CONNECTION);
            assert!(message.contains("may have been applied"), "{message}");
            maybe_applied += 1;
        }
    }
    let succeeded = (N / 2 - maybe_applied) as i64;
    let n = server.counter("n");
    eprintln!("reset: {maybe_applied} INCRs may have been applied, counter {n}");
    assert!(maybe_applied >= 1, "the reset caught writes in flight");
    assert!(c.stat(BRISK_STAT_RETRIES) >= 1);
    assert!(
        n >= succeeded && n <= (N / 2) as i64,
        "{n}, {succeeded} succeeded"
    );
    c.free();
}

// ---------------------------------------------------------------------------------------------
// Blocking commands, error replies, the command deadline

#[test]
fn a_blocking_command_does_not_hold_up_other_async_commands() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=300", server.url()),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");

    // BLPOP waiting 20 s, far longer than the read timeout.
    let blpop = Batch::new(2);
    let started = Instant::now();
    c.send(&blpop, 0, &["BLPOP", "queue", "20"]);
    assert!(wait_until(Duration::from_secs(10), || {
        server
            .cli(&["INFO", "clients"])
            .contains("blocked_clients:1")
    }));
    // Meanwhile 1,000 other async commands complete.
    let others = c.start_batch(1_000, |_| &["GET", "k"]);
    for o in others.all_outcomes(Duration::from_secs(10)) {
        assert_eq!(text(&o), "v");
    }
    assert_eq!(blpop.done(), 0, "BLPOP is still waiting");
    // A push (async too) wakes it with the value.
    c.send(&blpop, 1, &["RPUSH", "queue", "job"]);
    let outcomes = blpop.all_outcomes(Duration::from_secs(10));
    all_on_runtime_threads(&outcomes);
    assert_eq!(
        ok_value(&outcomes[0]),
        Value::Array(vec![Value::Text("queue".into()), Value::Text("job".into())])
    );
    assert_eq!(int(&outcomes[1]), 1);
    // Woken by the push, not BLPOP's own 20 s.
    assert_at_most(started.elapsed(), 9_000, "BLPOP woken by RPUSH");
    c.free();
}

#[test]
fn many_blocking_commands_each_wait_without_starving_the_others() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?pool_size=40&read_timeout=300", server.url()),
        Retry::default(),
    );
    // More BLPOP 0s than the runtime has blocking threads (8): every one reaches the server.
    let n = 20;
    let waiting = Batch::new(n);
    for i in 0..n {
        c.send(&waiting, i, &["BLPOP", &format!("queue:{i}"), "0"]);
    }
    assert!(
        wait_until(Duration::from_secs(10), || server
            .cli(&["INFO", "clients"])
            .contains(&format!("blocked_clients:{n}"))),
        "{}",
        server.cli(&["INFO", "clients"])
    );
    // One more, with a timeout, is not queued behind them.
    let started = Instant::now();
    let o = c.call(&["BLPOP", "empty", "0.5"]);
    assert_eq!(ok_value(&o), Value::Nil);
    assert_between(o.at - started, 400, 5_000, "BLPOP's 0.5 s");
    // Half are woken by pushes; the client is freed with the other half still blocked, which
    // completes them with CLOSED instead of waiting for pushes that never come.
    for i in 0..n / 2 {
        assert_eq!(int(&c.call(&["RPUSH", &format!("queue:{i}"), "job"])), 1);
    }
    assert!(waiting.wait_for(n / 2, Duration::from_secs(10)));
    let took = c.free();
    assert_at_most(took, 5000, "brisk_client_free");
    let outcomes = waiting.exactly_once(0..n);
    for (i, o) in outcomes.iter().enumerate() {
        if i < n / 2 {
            assert_eq!(
                ok_value(o),
                Value::Array(vec![
                    Value::Text(format!("queue:{i}")),
                    Value::Text("job".into())
                ])
            );
        } else {
            failed(o, BRISK_ERR_CLOSED);
        }
    }
    all_on_runtime_threads(&outcomes);
}

/// Freeing the client from a blocking command's callback (which the header forbids, but which
/// must not hang): `brisk_client_free` returns instead of waiting for the callback it runs in.
#[test]
fn a_blocking_commands_callback_that_frees_the_client_does_not_hang() {
    static FREED: AtomicBool = AtomicBool::new(false);
    unsafe extern "C" fn free_client(
        userdata: *mut c_void,
        _status: brisk_status,
        _message: *const c_char,
        reply: *mut brisk_reply,
    ) {
        // SAFETY: userdata is the client, which nothing else uses any more.
        unsafe {
            brisk_reply_free(reply);
            brisk_client_free(userdata.cast());
        }
        FREED.store(true, SeqCst);
    }
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    let client = std::mem::replace(&mut { c }.ptr, std::ptr::null_mut());
    let args: [&[u8]; 3] = [b"BLPOP", b"nothing", b"0.1"];
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    let lens: Vec<usize> = args.iter().map(|a| a.len()).collect();
    // SAFETY: the client is live; the callback takes it over.
    let rc = unsafe {
        brisk_command_async(
            client,
            3,
            argv.as_ptr(),
            lens.as_ptr(),
            Some(free_client),
            client.cast(),
        )
    };
    assert_eq!(rc, BRISK_OK);
    assert!(
        wait_until(Duration::from_secs(10), || FREED.load(SeqCst)),
        "the callback's brisk_client_free returned"
    );
}

#[test]
fn blpop_timeout_is_its_own_not_the_read_timeout() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=300", server.url()),
        Retry::default(),
    );
    let started = Instant::now();
    let o = c.call(&["BLPOP", "empty", "0.8"]);
    assert_eq!(ok_value(&o), Value::Nil);
    assert_between(o.at - started, 700, 5_000, "BLPOP's 0.8 s");
    c.free();
}

#[test]
fn error_replies_reach_the_callback_as_server_errors() {
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    assert_eq!(text(&c.call(&["SET", "s", "v"])), "OK");
    let batch = Batch::new(300);
    for i in 0..100 {
        c.send(&batch, 3 * i, &["LPUSH", "s", "x"]);
        c.send(&batch, 3 * i + 1, &["GET", "s"]);
        c.send(&batch, 3 * i + 2, &["NOSUCHCOMMAND", "a"]);
    }
    let outcomes = batch.all_outcomes(Duration::from_secs(10));
    all_on_runtime_threads(&outcomes);
    for i in 0..100 {
        let message = failed(&outcomes[3 * i], BRISK_ERR_SERVER);
        assert!(
            message
                .starts_with("WRONGTYPE Operation against a key holding the wrong kind of value"),
            "{message}"
        );
        assert_eq!(text(&outcomes[3 * i + 1]), "v");
        let message = failed(&outcomes[3 * i + 2], BRISK_ERR_SERVER);
        assert!(message.contains("unknown command"), "{message}");
    }
    // Error replies are answers: no retry, the connection stays.
    assert_eq!(c.stat(BRISK_STAT_RETRIES), 0);
    assert_eq!(c.stat(BRISK_STAT_CONNECTS), 1);
    assert_eq!(c.stat(BRISK_STAT_ERRORS), 200);
    c.free();
}

#[test]
fn command_deadline_bounds_async_commands() {
    let server = RedisServer::start();
    // Retries on, a long read timeout: only the 400 ms deadline can end these commands early.
    let c = CClient::new(
        &format!("{}?read_timeout=10000&command_deadline=400", server.url()),
        Retry::constant(20, 10, true),
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");

    let (outcomes, started) = while_stopped(&server, Duration::from_secs(10), || {
        c.start_batch(200, get_or_incr)
    });
    ended_by_the_400_ms_deadline(&outcomes, started, 3_000);
    // Resumed: commands work again.
    assert_eq!(text(&c.call(&["GET", "k"])), "v");
    c.free();
}

#[test]
fn command_deadline_bounds_a_command_waiting_for_a_connection() {
    let server = RedisServer::start();
    // A new client: its first command must connect, and the server does not answer the
    // handshake. The deadline (400 ms) ends it, not the connect or read timeout (10 s).
    let c = CClient::new(
        &format!(
            "{}?read_timeout=10000&connect_timeout=10000&command_deadline=400",
            server.url()
        ),
        Retry::default(),
    );
    let (outcomes, started) = while_stopped(&server, Duration::from_secs(20), || {
        c.start_batch(10, |_| &["GET", "k"])
    });
    ended_by_the_400_ms_deadline(&outcomes, started, 3_000);
    c.free();

    // The blocking path, for comparison: the same bound.
    let url = CString::new(format!(
        "{}?read_timeout=10000&connect_timeout=10000&command_deadline=400",
        server.url()
    ))
    .unwrap();
    server.sigstop();
    let (rc, took) = bounded(&server, Duration::from_secs(20), "brisk_command", || {
        // SAFETY: pointers from the API, or alive for the calls.
        unsafe {
            let cfg = brisk_config_new();
            assert_eq!(brisk_config_set_url(cfg, url.as_ptr()), BRISK_OK);
            let mut client = std::ptr::null_mut();
            assert_eq!(brisk_client_new(cfg, &mut client), BRISK_OK);
            brisk_config_free(cfg);
            let argv = [c"GET".as_ptr(), c"k".as_ptr()];
            let started = Instant::now();
            let rc = brisk_command(
                client,
                2,
                argv.as_ptr(),
                std::ptr::null(),
                std::ptr::null_mut(),
            );
            let took = started.elapsed();
            brisk_client_free(client);
            (rc, took)
        }
    });
    server.sigcont();
    assert_eq!(rc, BRISK_ERR_TIMEOUT);
    assert_between(
        took,
        350,
        3_000,
        "the blocking path's 400 ms command deadline",
    );
}

// ---------------------------------------------------------------------------------------------
// Invalid arguments

#[test]
fn invalid_arguments_are_refused_and_never_called_back() {
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    let batch = Batch::new(8);
    let get: [&[u8]; 2] = [b"GET", b"k"];
    let argv: Vec<*const c_char> = get.iter().map(|a| a.as_ptr().cast()).collect();
    let lens: Vec<usize> = get.iter().map(|a| a.len()).collect();
    let userdata = |i: usize| batch.slot(i) as *const Slot as *mut c_void;
    // SAFETY: the client is live (or NULL on purpose); argv/lens hold two entries.
    unsafe {
        // A NULL callback.
        let rc = brisk_command_async(c.ptr, 2, argv.as_ptr(), lens.as_ptr(), None, userdata(0));
        assert_eq!(rc, BRISK_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("fn"), "{}", last_error());
        // No arguments.
        let rc = brisk_command_async(
            c.ptr,
            0,
            argv.as_ptr(),
            lens.as_ptr(),
            Some(on_reply),
            userdata(1),
        );
        assert_eq!(rc, BRISK_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("argc"), "{}", last_error());
        // argc 0 with NULL argv.
        let rc = brisk_command_async(
            c.ptr,
            0,
            std::ptr::null(),
            std::ptr::null(),
            Some(on_reply),
            userdata(2),
        );
        assert_eq!(rc, BRISK_ERR_INVALID_ARGUMENT);
        // NULL argv with arguments announced.
        let rc = brisk_command_async(
            c.ptr,
            2,
            std::ptr::null(),
            std::ptr::null(),
            Some(on_reply),
            userdata(3),
        );
        assert_eq!(rc, BRISK_ERR_INVALID_ARGUMENT);
        // A NULL client.
        let rc = brisk_command_async(
            std::ptr::null_mut(),
            2,
            argv.as_ptr(),
            lens.as_ptr(),
            Some(on_reply),
            userdata(4),
        );
        assert_eq!(rc, BRISK_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("client"), "{}", last_error());
    }
    // Commands that would change a pooled connection's state.
    let multi: [&[u8]; 1] = [b"MULTI"];
    assert_eq!(c.start(&multi, batch.slot(5)), BRISK_ERR_INVALID_ARGUMENT);
    let select: [&[u8]; 2] = [b"SELECT", b"1"];
    assert_eq!(c.start(&select, batch.slot(6)), BRISK_ERR_INVALID_ARGUMENT);
    // A valid one, to show the client works and to flush anything queued.
    c.send(&batch, 7, &["GET", "k"]);
    assert!(batch.wait_for(1, Duration::from_secs(10)));
    assert_eq!(ok_value(&batch.outcome(7)), Value::Nil);
    c.free();
    assert_eq!(batch.done(), 1);
    batch.never_called(0..7);
}

// ---------------------------------------------------------------------------------------------
// A connection that cannot be written to, a connect that hangs

/// Runs `f` on a thread; if it has not returned within `timeout`, resumes the stopped `server`
/// (so that the thread can finish) and fails the test.
fn bounded<T: Send>(
    server: &RedisServer,
    timeout: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|s| {
        let worker = s.spawn(f);
        let finished = wait_until(timeout, || worker.is_finished());
        if !finished {
            server.sigcont();
        }
        let value = worker.join().expect("worker");
        assert!(
            finished,
            "{what} did not finish within {timeout:?} while the server was stopped"
        );
        value
    })
}

/// Starts `n` SETs of 1 MB values (on a stopped server: far more than the socket buffers take,
/// so the connection's writes block).
fn big_writes(c: &CClient, n: usize) -> Batch {
    let value = "x".repeat(1 << 20);
    let batch = Batch::new(n);
    for i in 0..n {
        c.send(&batch, i, &["SET", &format!("big:{i}"), &value]);
    }
    batch
}

#[test]
fn writes_blocked_by_a_stalled_server_still_time_out() {
    const N: usize = 64;
    let server = RedisServer::start();
    let c = CClient::new(
        &format!(
            "{}?read_timeout=500&write_timeout=20000&max_retries=0",
            server.url()
        ),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["PING"])), "PONG");
    let (outcomes, started) = while_stopped(&server, Duration::from_secs(10), || big_writes(&c, N));
    for o in outcomes {
        failed(&o, BRISK_ERR_TIMEOUT);
        // The write timeout (20 s) is out of reach, even widened: the read timeout ended them.
        // (Encoding the 64 MB of requests takes a while on a loaded machine, within `took`.)
        assert_between(o.at - started, 400, 5_000, "a 500 ms read timeout");
    }
    // Resumed (the server first works through the megabytes it had taken in, which can take
    // longer than the 500 ms read timeout on a busy machine): PING works again.
    assert!(wait_until(Duration::from_secs(20), || c
        .call(&["PING"])
        .status
        == BRISK_OK));
    c.free();

    // Without a read timeout, the write timeout alone ends the ones in flight: a write that
    // makes no progress for 500 ms fails the connection and everything written on it. (The
    // others wait for the next connection, whose handshake has no read timeout either, as on
    // the blocking path: they finish once the server resumes.)
    let c = CClient::new(
        &format!(
            "{}?read_timeout=0&write_timeout=500&max_retries=0",
            server.url()
        ),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["PING"])), "PONG");
    let started = Instant::now();
    server.sigstop();
    let batch = big_writes(&c, N);
    let some = batch.wait_for(1, Duration::from_secs(10));
    server.sigcont();
    assert!(some, "no callback while the writes were blocked");
    let outcomes = batch.all_outcomes(Duration::from_secs(30));
    let timed_out: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != BRISK_OK).collect();
    assert!(!timed_out.is_empty());
    for o in timed_out {
        let message = failed(o, BRISK_ERR_TIMEOUT);
        assert!(message.contains("write"), "{message}");
        assert_between(o.at - started, 400, 8_000, "a 500 ms write timeout");
    }
    c.free();
}

#[test]
fn client_freed_while_its_writes_are_blocked() {
    const N: usize = 64;
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=20000", server.url()),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["PING"])), "PONG");
    server.sigstop();
    let batch = big_writes(&c, N);
    let took = bounded(
        &server,
        Duration::from_secs(10),
        "brisk_client_free",
        || c.free(),
    );
    server.sigcont();
    batch.closed_by_free(took, 5000);
}

#[test]
fn client_freed_while_its_first_connection_hangs() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?read_timeout=20000&connect_timeout=20000", server.url()),
        Retry::default(),
    );
    server.sigstop();
    let batch = c.start_batch(100, |_| &["GET", "k"]);
    let took = bounded(
        &server,
        Duration::from_secs(10),
        "brisk_client_free",
        || c.free(),
    );
    server.sigcont();
    batch.closed_by_free(took, 5000);
}

// ---------------------------------------------------------------------------------------------
// Health checks

/// Lets `d` pass. Only where the passing of time is itself the condition under test (a
/// connection idle for longer than the health-check interval), never to wait for something.
fn let_time_pass(d: Duration) {
    std::thread::sleep(d);
}

/// `calls` of a command in `INFO commandstats` (0 when never called).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .map_or(0, |rest| {
            rest.split(',').next().unwrap().parse().expect("a number")
        })
}

#[test]
fn an_idle_connection_is_pinged_once_before_the_next_commands() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!("{}?health_check_interval=200", server.url()),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");
    assert_eq!(text(&c.call(&["GET", "k"])), "v");
    assert_eq!(
        c.stat(BRISK_STAT_HEALTH_CHECKS),
        0,
        "used within the interval"
    );
    let pings = calls(&server, "ping");

    let_time_pass(Duration::from_millis(350)); // idle beyond the interval
    let batch = c.start_batch(500, |_| &["GET", "k"]);
    for o in batch.all_outcomes(Duration::from_secs(10)) {
        assert_eq!(text(&o), "v");
    }
    // One PING for the whole burst, seen by the server.
    assert_eq!(c.stat(BRISK_STAT_HEALTH_CHECKS), 1);
    assert_eq!(c.stat(BRISK_STAT_HEALTH_CHECK_FAILURES), 0);
    assert_eq!(calls(&server, "ping"), pings + 1);
    assert_eq!(c.stat(BRISK_STAT_CONNECTS), 1);
    c.free();
}

/// Userdata of [`resume_on_failed_check`]: the stopped server to resume, and the events seen.
struct Resumer {
    pid: i32,
    seen: Mutex<Vec<(brisk_event_kind, brisk_status)>>,
}

/// Records every event; resumes the server when a health check has failed, so that the
/// replacement connection works (as production.rs does from its event handler).
unsafe extern "C" fn resume_on_failed_check(userdata: *mut c_void, event: *const brisk_event) {
    // SAFETY: userdata is a leaked Resumer; the event is live for the call.
    unsafe {
        let resumer = &*(userdata as *const Resumer);
        let (kind, status) = (brisk_event_kind_of(event), brisk_event_status(event));
        if kind == BRISK_EVENT_HEALTH_CHECK && status != BRISK_OK {
            // A signal to the test's own child, alive while the test holds it.
            libc::kill(resumer.pid, libc::SIGCONT);
        }
        resumer.seen.lock().unwrap().push((kind, status));
    }
}

#[test]
fn a_health_check_that_times_out_replaces_the_connection() {
    let server = RedisServer::start();
    let resumer: &'static Resumer = Box::leak(Box::new(Resumer {
        pid: server.pid(),
        seen: Mutex::default(),
    }));
    // No retries: the replacement connection alone must save the commands.
    let c = CClient::with_events(
        &format!(
            "{}?health_check_interval=200&read_timeout=300&max_retries=0",
            server.url()
        ),
        Retry::default(),
        Some(resume_on_failed_check),
        resumer as *const Resumer as *mut c_void,
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");
    let_time_pass(Duration::from_millis(350));
    let (outcomes, started) = while_stopped(&server, Duration::from_secs(10), || {
        c.start_batch(100, |_| &["GET", "k"])
    });
    for o in outcomes {
        assert_eq!(text(&o), "v");
        assert_between(o.at - started, 250, 5_000, "the PING timed out first");
    }
    assert_eq!(c.stat(BRISK_STAT_HEALTH_CHECKS), 1);
    assert_eq!(c.stat(BRISK_STAT_HEALTH_CHECK_FAILURES), 1);
    assert_eq!(c.stat(BRISK_STAT_RECONNECTS), 1);
    assert_eq!(c.stat(BRISK_STAT_RETRIES), 0);
    assert_eq!(c.stat(BRISK_STAT_ERRORS), 0);
    c.free();
    let seen = resumer.seen.lock().unwrap().clone();
    // After the SET's CONNECT and COMMAND: the failed check (with the PING's own status), the
    // lost connection, its replacement, then the commands, all successful on their first attempt.
    let mut expected = vec![
        (BRISK_EVENT_CONNECT, BRISK_OK),
        (BRISK_EVENT_COMMAND, BRISK_OK),
        (BRISK_EVENT_HEALTH_CHECK, BRISK_ERR_TIMEOUT),
        (BRISK_EVENT_DISCONNECT, BRISK_ERR_TIMEOUT),
        (BRISK_EVENT_CONNECT, BRISK_OK),
    ];
    expected.extend([(BRISK_EVENT_COMMAND, BRISK_OK); 100]);
    // And the connection closed with the client, reported before brisk_client_free returned
    // (after it, the event handler's userdata may be gone).
    expected.push((BRISK_EVENT_DISCONNECT, BRISK_OK));
    assert_eq!(seen, expected);
}

/// The command deadline bounds a command whose connection is being health-checked, as on the
/// blocking path (production.rs: "the deadline during a health check"): the PING to a stalled
/// server would otherwise hold it for the whole read timeout (10 s).
#[test]
fn command_deadline_bounds_a_command_waiting_for_a_health_check() {
    let server = RedisServer::start();
    let c = CClient::new(
        &format!(
            "{}?health_check_interval=200&read_timeout=10000&command_deadline=400",
            server.url()
        ),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");
    let_time_pass(Duration::from_millis(350)); // idle beyond the interval
    let (outcomes, started) = while_stopped(&server, Duration::from_secs(20), || {
        c.start_batch(10, |_| &["GET", "k"])
    });
    ended_by_the_400_ms_deadline(&outcomes, started, 3_000);
    assert_eq!(c.stat(BRISK_STAT_HEALTH_CHECKS), 1);
    c.free();
}

// ---------------------------------------------------------------------------------------------
// Blocking commands in numbers, and freed while waiting

#[test]
fn more_blocking_commands_than_runtime_threads_all_complete() {
    const N: usize = 16;
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    let pops = Batch::new(N);
    for i in 0..N {
        c.send(&pops, i, &["BLPOP", &format!("q{i}"), "0"]);
    }
    // Meanwhile other async commands are not held up.
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");
    let pushes = Batch::new(N);
    for i in 0..N {
        c.send(&pushes, i, &["RPUSH", &format!("q{i}"), &format!("job{i}")]);
    }
    assert!(pushes.wait_for(N, Duration::from_secs(10)));
    for (i, o) in pops
        .all_outcomes(Duration::from_secs(30))
        .iter()
        .enumerate()
    {
        assert_eq!(
            ok_value(o),
            Value::Array(vec![
                Value::Text(format!("q{i}")),
                Value::Text(format!("job{i}"))
            ])
        );
    }
    c.free();
}

#[test]
fn client_freed_while_blocking_commands_wait_forever() {
    const N: usize = 12;
    let server = RedisServer::start();
    let c = CClient::new(&server.url(), Retry::default());
    let pops = Batch::new(N);
    for i in 0..N {
        c.send(&pops, i, &["BLPOP", "never", "0"]);
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            server
                .cli(&["INFO", "clients"])
                .contains("blocked_clients:")
                && !server
                    .cli(&["INFO", "clients"])
                    .contains("blocked_clients:0")
        }),
        "no BLPOP reached the server"
    );
    let took = c.free();
    pops.closed_by_free(took, 5000);
}

// ---------------------------------------------------------------------------------------------
// No event after brisk_client_free

/// Userdata of [`count_events`]: events seen, and those seen after the client was freed.
#[derive(Default)]
struct LateEvents {
    freed: AtomicBool,
    seen: AtomicUsize,
    late: AtomicUsize,
}

unsafe extern "C" fn count_events(userdata: *mut c_void, _event: *const brisk_event) {
    // SAFETY: userdata is a leaked LateEvents.
    let events = unsafe { &*(userdata as *const LateEvents) };
    events.seen.fetch_add(1, SeqCst);
    if events.freed.load(SeqCst) {
        events.late.fetch_add(1, SeqCst);
    }
}

#[test]
fn no_event_is_reported_after_the_client_was_freed() {
    let server = RedisServer::start();
    for round in 0..20 {
        let events: &'static LateEvents = Box::leak(Box::default());
        let c = CClient::with_events(
            &server.url(),
            Retry::default(),
            Some(count_events),
            events as *const LateEvents as *mut c_void,
        );
        let batch = c.start_batch(100, |_| &["INCR", "n"]);
        // Half the rounds free the client with commands in flight, half once it is idle.
        if round % 2 == 0 {
            assert!(batch.wait_for(100, Duration::from_secs(10)));
        }
        c.free();
        events.freed.store(true, SeqCst);
        assert_eq!(batch.done(), 100);
        // Whatever the runtime still had to do for this client would report within this.
        let_time_pass(Duration::from_millis(100));
        assert_eq!(
            events.late.load(SeqCst),
            0,
            "round {round}: events after brisk_client_free returned ({} in all)",
            events.seen.load(SeqCst)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A connection closed by the server is found before the next request is written to it

/// Userdata of [`hold_one_command_event`]: while `hold` is set, the next COMMAND event blocks
/// (on the runtime thread reading the connection, so that reader cannot see anything else)
/// until `release` is set (bounded: 20 s).
#[derive(Default)]
struct Holder {
    hold: AtomicBool,
    holding: AtomicBool,
    release: AtomicBool,
}

unsafe extern "C" fn hold_one_command_event(userdata: *mut c_void, event: *const brisk_event) {
    // SAFETY: userdata is a leaked Holder; the event is live for the call.
    let (holder, kind) = unsafe { (&*(userdata as *const Holder), brisk_event_kind_of(event)) };
    if kind == BRISK_EVENT_COMMAND && holder.hold.swap(false, SeqCst) {
        holder.holding.store(true, SeqCst);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !holder.release.load(SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        holder.holding.store(false, SeqCst);
    }
}

#[test]
fn a_connection_closed_by_the_server_is_not_written_to_before_the_reader_sees_it() {
    let server = RedisServer::start();
    let holder: &'static Holder = Box::leak(Box::default());
    let c = CClient::with_events(
        &server.url(),
        Retry::default(),
        Some(hold_one_command_event),
        holder as *const Holder as *mut c_void,
    );
    assert_eq!(int(&c.call(&["INCR", "n"])), 1);

    // The reader of the connection is held inside the next command's completion...
    holder.hold.store(true, SeqCst);
    let first = Batch::new(1);
    c.send(&first, 0, &["INCR", "n"]);
    assert!(wait_until(Duration::from_secs(10), || holder
        .holding
        .load(SeqCst)));
    // ... when the server closes the connection. The next write must not go to it: the close
    // is found (as the pool's peek finds it) and the INCR runs on a new connection, unsent on
    // the old one, so it succeeds even in SAFE mode.
    assert_eq!(server.cli(&["CLIENT", "KILL", "TYPE", "normal"]), "1");
    let second = Batch::new(1);
    c.send(&second, 0, &["INCR", "n"]);
    let replaced = wait_until(Duration::from_secs(5), || c.stat(BRISK_STAT_CONNECTS) == 2);
    holder.release.store(true, SeqCst);
    assert!(first.wait_for(1, Duration::from_secs(10)));
    assert!(second.wait_for(1, Duration::from_secs(10)));
    assert_eq!(int(&first.outcome(0)), 2);
    assert_eq!(int(&second.outcome(0)), 3, "{:?}", second.outcome(0));
    assert!(replaced, "no new connection while the old reader was held");
    assert_eq!(c.stat(BRISK_STAT_RECONNECTS), 1);
    assert_eq!(server.counter("n"), 3);
    c.free();
}

// ---------------------------------------------------------------------------------------------
// The Rust API: a callback that panics

#[test]
fn a_panicking_callback_does_not_break_the_client() {
    use std::sync::Arc;
    let server = RedisServer::start();
    let config = server.config();
    // On a thread of its own: if the client hung, the test fails instead of hanging too.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let client = brisk::Client::new(&config).expect("Client::new");
        let incr: [&[u8]; 2] = [b"INCR", b"n"];
        client
            .command_async(
                &brisk::Args::from_slices(&incr),
                Box::new(|_| panic!("a callback that panics (on purpose)")),
            )
            .expect("command_async");
        // Later commands on the same connection still complete, and closing does not hang.
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let done = done.clone();
            client
                .command_async(
                    &brisk::Args::from_slices(&incr),
                    Box::new(move |result| {
                        if result.is_ok() {
                            done.fetch_add(1, SeqCst);
                        }
                    }),
                )
                .expect("command_async");
        }
        let completed = wait_until(Duration::from_secs(10), || done.load(SeqCst) == 100);
        let _ = tx.send(format!(
            "{} of 100 callbacks after a panicking one",
            done.load(SeqCst)
        ));
        let _ = completed;
        drop(client);
        let _ = tx.send("closed".to_owned());
    });
    let first = rx.recv_timeout(Duration::from_secs(30));
    assert_eq!(
        first.as_deref(),
        Ok("100 of 100 callbacks after a panicking one")
    );
    let closed = rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(
        closed.as_deref(),
        Ok("closed"),
        "closing the client hung after a panicking callback"
    );
    assert_eq!(server.counter("n"), 101);
}

#[test]
fn command_deadline_bounds_commands_queued_behind_a_blocked_write() {
    const N: usize = 64;
    let server = RedisServer::start();
    // Only the 400 ms deadline can end these early: read and write timeouts are 20 s.
    let c = CClient::new(
        &format!(
            "{}?read_timeout=20000&write_timeout=20000&command_deadline=400",
            server.url()
        ),
        Retry::default(),
    );
    assert_eq!(text(&c.call(&["PING"])), "PONG");
    let (outcomes, started) = while_stopped(&server, Duration::from_secs(10), || big_writes(&c, N));
    ended_by_the_400_ms_deadline(&outcomes, started, 5_000);
    c.free();
}
