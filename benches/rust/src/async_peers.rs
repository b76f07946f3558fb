//! The async side: brisk's `Client::command_async` against redis-rs's multiplexed connection on
//! tokio, in the two harness styles of bench.c (see its async_drive):
//! - caller: the submitting thread keeps ASYNC_IN_FLIGHT commands in flight, sleeping on a
//!   semaphore that each completion posts;
//! - chains: ASYNC_IN_FLIGHT chains, each completion issuing its chain's next command (brisk:
//!   from the callback; redis-rs: a tokio task per chain awaiting its commands in a loop, the
//!   idiomatic form), the semaphore posted once per chain that ends.
//!
//! Command i is a SET (even) or GET (odd) of key (i / 2) % NKEYS, every reply checked.

use crate::data::{ASYNC_IN_FLIGHT, Keys, VALUE, async_command};
use brisk::{Args, Client, Reply, ReplyKind};
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

static KEYS: LazyLock<Keys> = LazyLock::new(Keys::new);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Style {
    Caller,
    Chains,
}

/// libc's counting semaphore, the primitive bench.c's brisk harness waits on, so that both
/// harnesses pay the same for a wake-up.
pub struct Sem(Box<UnsafeCell<libc::sem_t>>);

// SAFETY: a sem_t is made to be shared between threads; it is only used through sem_* calls.
unsafe impl Send for Sem {}
unsafe impl Sync for Sem {}

impl Sem {
    fn new() -> Sem {
        // SAFETY: sem_t is plain data until sem_init initialises it in place (boxed: it must
        // not move).
        let sem = Sem(Box::new(UnsafeCell::new(unsafe { std::mem::zeroed() })));
        // SAFETY: a valid, unshared sem_t.
        if unsafe { libc::sem_init(sem.0.get(), 0, 0) } != 0 {
            crate::die("sem_init failed");
        }
        sem
    }

    fn post(&self) {
        // SAFETY: initialised in `new`, destroyed only in `drop`.
        unsafe { libc::sem_post(self.0.get()) };
    }

    fn wait(&self) {
        // SAFETY: as in `post`. EINTR is retried.
        while unsafe { libc::sem_wait(self.0.get()) } != 0 {}
    }
}

impl Drop for Sem {
    fn drop(&mut self) {
        // SAFETY: nobody waits any more: the run is over.
        unsafe { libc::sem_destroy(self.0.get()) };
    }
}

/// One run: its budget, its counters and the semaphore the completions post.
pub struct Run {
    style: Style,
    end: Option<Instant>,
    max_cmds: u64,
    claimed: AtomicU64,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    wake: Sem,
}

impl Run {
    /// A run of at most `max_cmds` commands, none started at or after `end`.
    pub fn new(style: Style, end: Option<Instant>, max_cmds: u64) -> Arc<Run> {
        Arc::new(Run {
            style,
            end,
            max_cmds,
            claimed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            wake: Sem::new(),
        })
    }

    /// The index of the next command, or None when the budget is spent (or a command failed).
    #[inline]
    fn claim(&self) -> Option<u64> {
        if self.end.is_some_and(|end| Instant::now() >= end) || self.failed.load(Relaxed) != 0 {
            return None;
        }
        let i = self.claimed.fetch_add(1, Relaxed);
        (i < self.max_cmds).then_some(i)
    }

    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(what);
    }

    #[inline]
    fn check_brisk(&self, outcome: brisk::Result<Reply>) {
        match outcome {
            Ok(r) if r.kind() == ReplyKind::Status => {}
            Ok(r) if r.as_bytes().is_some_and(|b| b.len() == VALUE.len()) => {}
            Ok(r) => self.fail(format!("unexpected reply {r:?}")),
            Err(e) => self.fail(e.to_string()),
        }
    }

    #[inline]
    fn check_redis(&self, outcome: redis::RedisResult<Value>) {
        match outcome {
            Ok(Value::Okay) => {}
            Ok(Value::BulkString(b)) if b.len() == VALUE.len() => {}
            Ok(v) => self.fail(format!("unexpected reply {v:?}")),
            Err(e) => self.fail(e.to_string()),
        }
    }
}

/// One client's async API, as the two styles use it.
pub trait AsyncPeer: Send + Sync + 'static {
    /// Starts command `index`; its completion counts itself and posts the run's semaphore.
    fn issue(self: &Arc<Self>, run: &Arc<Run>, index: u64);
    /// Starts a chain with command `index`: each completion starts the next command the run
    /// grants, and the chain's end posts the run's semaphore.
    fn start_chain(self: Arc<Self>, run: &Arc<Run>, index: u64);
}

/// The submitting thread's side of a run: returns when every command it started completed.
pub fn drive<P: AsyncPeer>(peer: &Arc<P>, run: &Arc<Run>) {
    match run.style {
        Style::Caller => {
            let (mut issued, mut completed, mut more) = (0u64, 0u64, true);
            loop {
                while more && issued - completed < ASYNC_IN_FLIGHT {
                    match run.claim() {
                        Some(i) => {
                            peer.issue(run, i);
                            issued += 1;
                        }
                        None => more = false,
                    }
                }
                if !more {
                    break;
                }
                run.wake.wait();
                completed += 1;
            }
            while completed < issued {
                run.wake.wait();
                completed += 1;
            }
        }
        Style::Chains => {
            let mut chains = 0;
            while chains < ASYNC_IN_FLIGHT {
                let Some(i) = run.claim() else { break };
                chains += 1;
                peer.clone().start_chain(run, i);
            }
            for _ in 0..chains {
                run.wake.wait();
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// brisk: Client::command_async, callbacks on brisk's runtime threads

pub struct BriskAsync {
    pub client: Client,
}

impl BriskAsync {
    #[inline]
    fn start(&self, index: u64, callback: brisk::client::Callback) {
        let (get, key) = async_command(&KEYS, index);
        let set: [&[u8]; 3] = [b"SET", key, VALUE];
        let get_args: [&[u8]; 2] = [b"GET", key];
        let args: &[&[u8]] = if get { &get_args } else { &set };
        if let Err(e) = self
            .client
            .command_async(&Args::from_slices(args), callback)
        {
            crate::die(&format!("brisk-rust command_async: {e}"));
        }
    }
}

impl AsyncPeer for BriskAsync {
    fn issue(self: &Arc<Self>, run: &Arc<Run>, index: u64) {
        let run = run.clone();
        self.start(
            index,
            Box::new(move |outcome| {
                run.check_brisk(outcome);
                run.done.fetch_add(1, Relaxed);
                run.wake.post();
            }),
        );
    }

    fn start_chain(self: Arc<Self>, run: &Arc<Run>, index: u64) {
        let me = self.clone();
        let run = run.clone();
        self.start(
            index,
            Box::new(move |outcome| {
                run.check_brisk(outcome);
                run.done.fetch_add(1, Relaxed);
                match run.claim() {
                    // `me` moves on with the chain: the client's last reference is always the
                    // submitting thread's, so the client is never dropped on a runtime thread.
                    Some(next) => me.start_chain(&run, next),
                    None => {
                        drop(me);
                        run.wake.post();
                    }
                }
            }),
        );
    }
}

// -------------------------------------------------------------------------------------------
// redis-rs: a MultiplexedConnection on a tokio runtime (two worker threads, as brisk's)

pub struct RedisAsync {
    pub con: MultiplexedConnection,
    pub runtime: tokio::runtime::Handle,
}

#[inline]
fn redis_command(index: u64) -> redis::Cmd {
    let (get, key) = async_command(&KEYS, index);
    if get {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        cmd
    } else {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(&VALUE[..]);
        cmd
    }
}

impl AsyncPeer for RedisAsync {
    /// A task per command, spawned from the submitting thread (the closest form of a callback).
    fn issue(self: &Arc<Self>, run: &Arc<Run>, index: u64) {
        let run = run.clone();
        let mut con = self.con.clone();
        self.runtime.spawn(async move {
            let outcome = redis_command(index).query_async::<Value>(&mut con).await;
            run.check_redis(outcome);
            run.done.fetch_add(1, Relaxed);
            run.wake.post();
        });
    }

    /// A task per chain, awaiting its commands one after the other.
    fn start_chain(self: Arc<Self>, run: &Arc<Run>, index: u64) {
        let run = run.clone();
        let mut con = self.con.clone();
        self.runtime.spawn(async move {
            let mut index = index;
            loop {
                let outcome = redis_command(index).query_async::<Value>(&mut con).await;
                run.check_redis(outcome);
                run.done.fetch_add(1, Relaxed);
                match run.claim() {
                    Some(next) => index = next,
                    None => break,
                }
            }
            run.wake.post();
        });
    }
}

/// What failed in `run`, if anything.
pub fn failures(run: &Run) -> Option<String> {
    let failed = run.failed.load(Relaxed);
    (failed > 0).then(|| {
        let first = run.first_error.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "{failed} of {} commands failed (first: {})",
            run.done.load(Relaxed),
            first.as_deref().unwrap_or("?")
        )
    })
}
