//! Issue 15's fault matrix, against a real redis-server: eight threads share one `Client`
//! (retry_writes SAFE) and each loops `SET key:<thread>:<n> <n> GET` and `INCR counter`,
//! recording every outcome, while a driver hits the server with, in turn:
//!
//! 1. `CLIENT KILL TYPE normal` every 100 ms;
//! 2. SIGSTOP for longer than the read timeout, then SIGCONT;
//! 3. kill -9 and a restart on the same port (`appendonly yes`, `appendfsync always`, so every
//!    acknowledged write survives; the restart replays the AOF and answers `-LOADING` meanwhile);
//! 4. through the fault proxy the client always connects through: added delay, a stall longer
//!    than the read timeout, every connection reset (RST) with a reply part-way through, every
//!    stream cut (FIN) part-way through a reply.
//!
//! A failed write counts as "may have been applied" when its error says so (it was sent), and
//! as certainly not applied when nothing was sent or the server refused it with an error reply.
//! Then, with the writers joined, the faults over and the server up, the server's data is checked
//! against what the callers were told:
//! - every acknowledged SET is there with its value, no SET reported as not applied is there,
//!   and nothing else is in the database;
//! - no SET was applied twice: `GET` makes SET return the key's old value, nil the first time,
//!   so a SET sent again after it was applied answers with its own value;
//! - acknowledged INCRs <= counter <= acknowledged INCRs + those that "may have been applied";
//!   the replies of acknowledged INCRs are distinct and none is above the counter;
//! - no call took longer than the command deadline plus a margin for a busy machine;
//! - once the client is dropped, the process has no more file descriptors than before it;
//! - no error contradicts itself (says "may have been applied" but was not sent, or was sent
//!   and lost without saying so) and no reply has the wrong type.
//!
//! Every check is printed with the accounting (`-- --nocapture` shows them for a passing run
//! too), then the test fails if any failed.
//!
//! The default run does one round of every fault, about 10-15 s. A soak repeats the rounds until
//! `BRISK_SOAK_SECS` seconds have passed (at least one round):
//!
//! ```sh
//! BRISK_SOAK_SECS=600 cargo test --release --test fault_matrix -- --nocapture
//! ```

mod support;

use brisk::core::retry::{Backoff, RetryPolicy, RetrySettings, RetryWrites};
use brisk::{Client, Config, Error, Reply, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use support::{FaultProxy, RedisServer, StopOnDrop, cmd, ok, open_fds, text, wait_until};

const WRITERS: usize = 8;
const READ_TIMEOUT_MS: u32 = 1000;
const COMMAND_DEADLINE_MS: u32 = 5000;
/// Slightly longer than the default policy (full jitter from 10 ms, 3 retries), so that a
/// command can outlast a restart: full jitter from 50 ms, capped at 1 s, 6 retries.
const RETRY: RetryPolicy = RetryPolicy {
    backoff: Backoff::FullJitter,
    base_ms: 50,
    cap_ms: 1000,
    retries: 6,
};
/// What a busy machine may add to a call bounded by the command deadline.
const LATENCY_MARGIN: Duration = Duration::from_secs(3);
/// Descriptors that may differ for reasons other than the client: test support closing a proxied
/// socket a moment late. A leak per reconnect would be hundreds.
const FD_MARGIN: usize = 4;
/// How long the writers may take to acknowledge [`PROGRESS`] more writes after a fault.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(30);
const PROGRESS: u64 = 200;
/// Keys per MGET when reading the data back.
const MGET_BATCH: usize = 500;

// ---------------------------------------------------------------------------------------------
// What the writers saw

/// What a caller can conclude about a write from the result it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Acknowledged,
    /// Failed after the request was sent; the error says it may have been applied.
    MayHaveBeenApplied,
    /// Failed before anything was sent, or refused with an error reply (neither SET nor INCR
    /// changes anything before replying with an error).
    NotApplied,
}

impl Fate {
    fn label(self) -> &'static str {
        match self {
            Fate::Acknowledged => "acknowledged",
            Fate::MayHaveBeenApplied => "may have been applied",
            Fate::NotApplied => "not applied",
        }
    }
}

/// The fate of a failed write, or why its error contradicts itself.
fn judge(e: &Error) -> std::result::Result<Fate, &'static str> {
    let says_maybe = e.message().contains("may have been applied");
    match (says_maybe, e.is_sent(), e.server_kind().is_some()) {
        // Also a refusal reported as "may have been applied" (`-LOADING` today): that only
        // widens the upper bound.
        (true, true, _) => Ok(Fate::MayHaveBeenApplied),
        (true, false, _) => Err("says \"may have been applied\" but is_sent() is false"),
        (false, _, true) | (false, false, false) => Ok(Fate::NotApplied),
        (false, true, false) => Err("sent and lost without \"may have been applied\" (SAFE)"),
    }
}

/// Counts of one command's outcomes.
#[derive(Default, Clone, Copy)]
struct Counts {
    acknowledged: u64,
    may_have_been_applied: u64,
    not_applied: u64,
}

impl Counts {
    fn add(&mut self, fate: Fate) {
        match fate {
            Fate::Acknowledged => self.acknowledged += 1,
            Fate::MayHaveBeenApplied => self.may_have_been_applied += 1,
            Fate::NotApplied => self.not_applied += 1,
        }
    }

    fn merge(&mut self, other: Counts) {
        self.acknowledged += other.acknowledged;
        self.may_have_been_applied += other.may_have_been_applied;
        self.not_applied += other.not_applied;
    }

    fn calls(&self) -> u64 {
        self.acknowledged + self.may_have_been_applied + self.not_applied
    }
}

/// Everything one writer saw; merged over writers for the checks.
#[derive(Default)]
struct Record {
    /// `sets[t][n]`: the fate of `SET key:<t>:<n> <n>`.
    sets: Vec<Vec<Fate>>,
    set: Counts,
    incr: Counts,
    /// The replies of acknowledged INCRs.
    incr_values: Vec<i64>,
    /// "INCR BRISK_ERR_TIMEOUT, may have been applied" -> (count, first message).
    failures: BTreeMap<String, (u64, String)>,
    slowest: Duration,
    slowest_what: String,
    /// Acknowledged SETs whose GET found their own value, with the driver's phase then.
    sets_applied_twice: Vec<(usize, String)>,
    anomalies: Vec<String>,
}

impl Record {
    /// Runs one write, times it, counts it, and returns its fate and, when acknowledged, its
    /// reply.
    fn call(&mut self, name: &str, run: impl FnOnce() -> Result<Reply>) -> (Fate, Option<Reply>) {
        let started = Instant::now();
        let result = run();
        let took = started.elapsed();
        if took > self.slowest {
            self.slowest = took;
            self.slowest_what = match &result {
                Ok(_) => format!("{name}, acknowledged"),
                Err(e) => format!("{name}: {:?}: {}", e.status(), e.message()),
            };
        }
        let e = match result {
            Ok(reply) => return (Fate::Acknowledged, Some(reply)),
            Err(e) => e,
        };
        let fate = judge(&e).unwrap_or_else(|why| {
            self.anomaly(format!("{name}: {why}: {:?}: {}", e.status(), e.message()));
            // The widest bound: counted as possibly applied.
            Fate::MayHaveBeenApplied
        });
        let key = format!("{name} {}, {}", e.status().name(), fate.label());
        self.failures
            .entry(key)
            .or_insert_with(|| (0, e.message().to_owned()))
            .0 += 1;
        (fate, None)
    }

    fn anomaly(&mut self, what: String) {
        self.anomalies.push(what);
    }

    fn merge(&mut self, other: Record) {
        self.sets.extend(other.sets);
        self.set.merge(other.set);
        self.incr.merge(other.incr);
        self.incr_values.extend(other.incr_values);
        for (key, (count, message)) in other.failures {
            self.failures.entry(key).or_insert((0, message)).0 += count;
        }
        if other.slowest > self.slowest {
            self.slowest = other.slowest;
            self.slowest_what = other.slowest_what;
        }
        self.sets_applied_twice.extend(other.sets_applied_twice);
        self.anomalies.extend(other.anomalies);
    }
}

/// Progress shared with the driver, which reports it per fault.
#[derive(Default)]
struct Live {
    /// The driver's current phase (an index into its log).
    phase: AtomicUsize,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    may_have_been_applied: AtomicU64,
}

impl Live {
    fn count(&self, fate: Fate) {
        let counter = match fate {
            Fate::Acknowledged => &self.acknowledged,
            Fate::MayHaveBeenApplied => {
                self.failed.fetch_add(1, SeqCst);
                &self.may_have_been_applied
            }
            Fate::NotApplied => &self.failed,
        };
        counter.fetch_add(1, SeqCst);
    }

    fn snapshot(&self) -> [u64; 3] {
        [
            self.acknowledged.load(SeqCst),
            self.failed.load(SeqCst),
            self.may_have_been_applied.load(SeqCst),
        ]
    }
}

/// Writer `t`: SET then INCR until told to stop (or `until`, should the driver never say so).
fn write_loop(t: usize, c: &Client, stop: &AtomicBool, live: &Live, until: Instant) -> Record {
    let mut record = Record::default();
    let mut sets = Vec::new();
    while !stop.load(SeqCst) && Instant::now() < until {
        let n = sets.len();
        let key = format!("key:{t}:{n}");
        let value = n.to_string();
        // With GET the old value comes back: nil for a key never written, so a SET applied
        // twice (sent again after it was applied) shows in its own reply.
        let (fate, reply) = record.call("SET", || cmd(c, &["SET", &key, &value, "GET"]));
        match reply {
            Some(r) if r.is_nil() => {}
            Some(r) if r.as_str() == Some(value.as_str()) => {
                record
                    .sets_applied_twice
                    .push((live.phase.load(SeqCst), key));
            }
            Some(r) => record.anomaly(format!("SET {key} GET answered {r:?}")),
            None => {}
        }
        sets.push(fate);
        record.set.add(fate);
        live.count(fate);

        let (fate, reply) = record.call("INCR", || cmd(c, &["INCR", "counter"]));
        match reply.map(|r| r.as_integer().ok_or(r)) {
            Some(Ok(value)) => record.incr_values.push(value),
            Some(Err(reply)) => record.anomaly(format!("INCR answered {reply:?}")),
            None => {}
        }
        record.incr.add(fate);
        live.count(fate);
    }
    record.sets = vec![sets];
    record
}

// ---------------------------------------------------------------------------------------------
// The faults

struct Driver<'a> {
    server: &'a mut RedisServer,
    proxy: &'a FaultProxy,
    live: &'a Live,
    /// Per phase (a fault and the progress after it): its name, and a line with what was done
    /// and what the writers saw meanwhile.
    log: Vec<(String, String)>,
    peak_fds: usize,
    /// Failures seen during each SIGSTOP and proxy stall (both outlast the read timeout).
    stall_failures: Vec<u64>,
}

/// The driver's pacing between fault steps (never used to wait for a condition).
fn pace(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

impl Driver<'_> {
    /// Applies `fault`, then waits until the writers have acknowledged [`PROGRESS`] more writes;
    /// logs what happened meanwhile. Returns the failures seen.
    fn phase(&mut self, what: &str, fault: impl FnOnce(&mut Self) -> String) -> u64 {
        let started = Instant::now();
        self.live.phase.store(self.log.len(), SeqCst);
        let before = self.live.snapshot();
        let detail = fault(self);
        self.peak_fds = self.peak_fds.max(open_fds());
        let acked = self.live.acknowledged.load(SeqCst);
        let live = self.live;
        assert!(
            wait_until(PROGRESS_DEADLINE, || {
                live.acknowledged.load(SeqCst) >= acked + PROGRESS
            }),
            "the writers acknowledged fewer than {PROGRESS} writes within {PROGRESS_DEADLINE:?} \
             after: {what}"
        );
        let after = self.live.snapshot();
        let mut line = format!(
            "{what:<44} {:>6} acked {:>4} failed ({:>3} may have been applied)  {:>5.1} s",
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2],
            started.elapsed().as_secs_f64()
        );
        if !detail.is_empty() {
            let _ = write!(line, "  [{detail}]");
        }
        self.log.push((what.to_owned(), line));
        after[1] - before[1]
    }

    fn round(&mut self) {
        self.phase("CLIENT KILL TYPE normal x15, every 100 ms", |d| {
            let mut killed = 0u64;
            for _ in 0..15 {
                killed += d
                    .server
                    .cli(&["CLIENT", "KILL", "TYPE", "normal"])
                    .parse::<u64>()
                    .unwrap_or(0);
                pace(100);
            }
            format!("{killed} connections killed")
        });
        let failed = self.phase("SIGSTOP 1.5 s, SIGCONT", |d| {
            d.server.sigstop();
            pace(1500);
            d.server.sigcont();
            String::new()
        });
        self.stall_failures.push(failed);
        self.phase("kill -9, down 300 ms, restart (AOF)", |d| {
            d.server.kill();
            pace(300);
            d.server.start_again();
            String::new()
        });
        self.phase("proxy: 100 ms delay per chunk for 1 s", |d| {
            d.proxy.set_delay(Duration::from_millis(100));
            pace(1000);
            d.proxy.heal();
            String::new()
        });
        let failed = self.phase("proxy: stall 1.5 s", |d| {
            d.proxy.stall();
            pace(1500);
            d.proxy.resume();
            String::new()
        });
        self.stall_failures.push(failed);
        self.phase("proxy: reset (RST) mid-reply x5", |d| {
            for _ in 0..5 {
                // Three bytes of some reply pass, then everything stops and is reset.
                d.proxy.stall_after(3);
                let stalled = wait_until(Duration::from_secs(10), || d.proxy.is_stalled());
                d.proxy.reset_all();
                d.proxy.heal();
                assert!(stalled, "no reply reached the proxy within 10 s");
                pace(200);
            }
            String::new()
        });
        self.phase("proxy: cut (FIN) mid-reply x5", |d| {
            for _ in 0..5 {
                d.proxy.cut_after(3);
                pace(200);
                d.proxy.heal();
                pace(100);
            }
            String::new()
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the data back

#[derive(Default)]
struct Found {
    acked_missing: Vec<String>,
    acked_wrong: Vec<String>,
    not_applied_present: Vec<String>,
    maybe_present: u64,
    present: u64,
    dbsize: u64,
    counter: i64,
}

/// Reads back every key any writer tried to set, the counter and the key count.
fn read_back(server: &RedisServer, sets: &[Vec<Fate>]) -> Found {
    let c = Client::new(&server.config()).expect("a client to read the data back");
    let mut found = Found::default();
    for (t, fates) in sets.iter().enumerate() {
        for (batch, chunk) in fates.chunks(MGET_BATCH).enumerate() {
            let first = batch * MGET_BATCH;
            let keys: Vec<String> = (first..first + chunk.len())
                .map(|n| format!("key:{t}:{n}"))
                .collect();
            let mut args = vec!["MGET"];
            args.extend(keys.iter().map(String::as_str));
            let reply = ok(&c, &args);
            assert_eq!(
                reply.children().len(),
                chunk.len(),
                "MGET answered {reply:?}"
            );
            for (i, (value, fate)) in reply.children().iter().zip(chunk).enumerate() {
                let n = first + i;
                let key = &keys[i];
                if value.is_nil() {
                    if *fate == Fate::Acknowledged {
                        found.acked_missing.push(key.clone());
                    }
                    continue;
                }
                found.present += 1;
                if value.as_str() != Some(n.to_string().as_str()) {
                    found
                        .acked_wrong
                        .push(format!("{key} = {:?}", value.as_str()));
                }
                match fate {
                    Fate::Acknowledged => {}
                    Fate::MayHaveBeenApplied => found.maybe_present += 1,
                    Fate::NotApplied => found.not_applied_present.push(key.clone()),
                }
            }
        }
    }
    let counter = ok(&c, &["GET", "counter"]);
    found.counter = if counter.is_nil() {
        0
    } else {
        text(&counter).parse().expect("the counter is an integer")
    };
    found.dbsize = ok(&c, &["DBSIZE"])
        .as_integer()
        .expect("DBSIZE is an integer") as u64;
    found
}

/// Whether the server has finished loading its data set (`loading:0`).
fn loaded(server: &RedisServer) -> bool {
    server
        .cli(&["INFO", "persistence"])
        .lines()
        .any(|l| l.trim() == "loading:0")
}

fn soak() -> Option<Duration> {
    let secs = std::env::var("BRISK_SOAK_SECS").ok()?;
    let secs: u64 = secs
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("BRISK_SOAK_SECS={secs:?} is not a number of seconds"));
    Some(Duration::from_secs(secs))
}

fn client_config(proxy: &FaultProxy) -> Config {
    let mut config = Config::default();
    config.set_url(&proxy.url()).expect("proxy URL");
    config.connect_timeout_ms = READ_TIMEOUT_MS;
    config.read_timeout_ms = READ_TIMEOUT_MS;
    config.command_deadline_ms = COMMAND_DEADLINE_MS;
    config.retry = RetrySettings {
        policy: Some(RETRY),
        writes: RetryWrites::Safe,
        ..RetrySettings::default()
    };
    config
}

// ---------------------------------------------------------------------------------------------

#[test]
fn acknowledged_writes_survive_every_fault_and_none_is_applied_twice() {
    let soak = soak();
    let mut server = RedisServer::builder()
        .config("appendonly yes")
        .config("appendfsync always")
        .start();
    let proxy = FaultProxy::in_front_of(&server);

    // A throwaway client first, so that brisk's process-wide state (its background runtime) is
    // there before the descriptors are counted: only what the client under test keeps counts.
    {
        let warm = Client::new(&server.config()).expect("Client::new");
        assert_eq!(text(&ok(&warm, &["PING"])), "PONG");
    }
    let fds_before = open_fds();

    // Writers on threads of their own (not scoped), so that one stuck in a call fails the test
    // instead of hanging it.
    let client = Arc::new(Client::new(&client_config(&proxy)).expect("Client::new"));
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());
    let started = Instant::now();
    let run_for = soak.unwrap_or_default();
    let writers_until = started + run_for + Duration::from_secs(300);
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (client, stop, live) = (client.clone(), stop.clone(), live.clone());
            std::thread::spawn(move || write_loop(t, &client, &stop, &live, writers_until))
        })
        .collect();
    let mut rounds = 0;
    let (log, peak_fds, stall_failures) = {
        let _stop = StopOnDrop(&stop);
        let mut driver = Driver {
            server: &mut server,
            proxy: &proxy,
            live: &live,
            log: Vec::new(),
            peak_fds: 0,
            stall_failures: Vec::new(),
        };
        driver.phase("no fault (writers started)", |_| String::new());
        loop {
            driver.round();
            rounds += 1;
            if started.elapsed() >= run_for {
                break;
            }
        }
        (driver.log, driver.peak_fds, driver.stall_failures)
    };
    let elapsed = started.elapsed();
    // Told to stop, each writer finishes the call it is in, which the command deadline bounds.
    let bound = Duration::from_millis(u64::from(COMMAND_DEADLINE_MS)) + LATENCY_MARGIN;
    assert!(
        wait_until(bound + Duration::from_secs(10), || writers
            .iter()
            .all(|w| w.is_finished())),
        "a writer is still in a call {:?} after it was told to stop",
        bound + Duration::from_secs(10)
    );
    let mut record = Record::default();
    for w in writers {
        record.merge(w.join().expect("a writer panicked"));
    }

    drop(Arc::into_inner(client).expect("the writers have given back their handles to the client"));
    let proxy_idle = wait_until(Duration::from_secs(10), || {
        proxy.open_connections() == 0 && open_fds() <= fds_before + FD_MARGIN
    });
    let fds_after = open_fds();
    assert!(
        wait_until(Duration::from_secs(30), || loaded(&server)),
        "the server was still loading its data set 30 s after the last fault"
    );
    let found = read_back(&server, &record.sets);

    // The accounting and every check, all printed before the test fails on any of them.
    let (set, incr) = (record.set, record.incr);
    let (low, high) = (
        incr.acknowledged,
        incr.acknowledged + incr.may_have_been_applied,
    );
    let mut values = record.incr_values.clone();
    values.sort_unstable();
    let duplicates = values.windows(2).filter(|w| w[0] == w[1]).count();
    let max_incr = values.last().copied().unwrap_or(0);
    println!(
        "fault matrix: {rounds} round(s) in {:.1} s; {WRITERS} writers on one client through the \
         fault proxy (read timeout {READ_TIMEOUT_MS} ms, command deadline \
         {COMMAND_DEADLINE_MS} ms, retries {RETRY:?}, SAFE)",
        elapsed.as_secs_f64()
    );
    for (_, line) in &log {
        println!("  {line}");
    }
    for (name, c) in [("SET ", set), ("INCR", incr)] {
        println!(
            "  {name}: {} calls, {} acknowledged, {} may have been applied, {} not applied",
            c.calls(),
            c.acknowledged,
            c.may_have_been_applied,
            c.not_applied
        );
    }
    println!("  failures by command, status and fate:");
    for (key, (count, message)) in &record.failures {
        println!("    {count:>6}  {key}  (e.g. {message:?})");
    }
    println!(
        "  read back: {} SET keys present ({} of {} \"may have been applied\"), DBSIZE {}; \
         counter {}: {} of {} \"may have been applied\" INCRs were applied",
        found.present,
        found.maybe_present,
        set.may_have_been_applied,
        found.dbsize,
        found.counter,
        found.counter - low as i64,
        incr.may_have_been_applied
    );
    println!(
        "  slowest call {:.2} s: {}",
        record.slowest.as_secs_f64(),
        record.slowest_what
    );
    println!(
        "  file descriptors: {fds_before} before the client, peak {peak_fds} during the faults, \
         {fds_after} after dropping it"
    );

    let mut checks = Checks::default();
    checks.check(
        found.acked_missing.is_empty() && found.acked_wrong.is_empty(),
        format!(
            "every acknowledged SET is there with its value: {} missing{}, {} wrong{}",
            found.acked_missing.len(),
            example(&found.acked_missing),
            found.acked_wrong.len(),
            example(&found.acked_wrong)
        ),
    );
    checks.check(
        found.not_applied_present.is_empty(),
        format!(
            "no SET reported as not applied is there: {} are{}",
            found.not_applied_present.len(),
            example(&found.not_applied_present)
        ),
    );
    let twice: Vec<String> = record
        .sets_applied_twice
        .iter()
        .map(|(_, key)| key.clone())
        .collect();
    let mut twice_by_phase = BTreeMap::<&str, u64>::new();
    for (phase, _) in &record.sets_applied_twice {
        *twice_by_phase.entry(log[*phase].0.as_str()).or_default() += 1;
    }
    checks.check(
        record.sets_applied_twice.is_empty(),
        format!(
            "no SET was applied twice (its GET found its own value): {} were{}{}",
            record.sets_applied_twice.len(),
            example(&twice),
            if twice.is_empty() {
                String::new()
            } else {
                format!(", by phase: {twice_by_phase:?}")
            }
        ),
    );
    let counter_key = u64::from(found.counter != 0);
    checks.check(
        found.dbsize == found.present + counter_key,
        format!(
            "nothing else in the database: DBSIZE {} = {} keys + counter",
            found.dbsize, found.present
        ),
    );
    checks.check(
        (low as i64..=high as i64).contains(&found.counter),
        format!(
            "counter {} within [acknowledged {low}, acknowledged + may have been applied {high}]",
            found.counter
        ),
    );
    checks.check(
        duplicates == 0 && max_incr <= found.counter,
        format!(
            "acknowledged INCR replies distinct ({duplicates} duplicates), the highest \
             ({max_incr}) not above the counter"
        ),
    );
    checks.check(
        record.slowest <= bound,
        format!(
            "slowest call {:.2} s within the command deadline plus {LATENCY_MARGIN:?} ({:.1} s)",
            record.slowest.as_secs_f64(),
            bound.as_secs_f64()
        ),
    );
    checks.check(
        proxy_idle && fds_after <= fds_before + FD_MARGIN,
        format!(
            "no descriptor growth: {fds_before} before, {fds_after} after (margin {FD_MARGIN}; \
             {} connections still open through the proxy)",
            proxy.open_connections()
        ),
    );
    checks.check(
        record.anomalies.is_empty(),
        format!(
            "no self-contradicting error or mistyped reply: {}{}",
            record.anomalies.len(),
            example(&record.anomalies)
        ),
    );
    // The faults did bite: a stall longer than the read timeout fails the writes in flight.
    checks.check(
        stall_failures.iter().all(|&n| n > 0),
        format!(
            "every stall past the read timeout failed writes: at least {} in each of {}",
            stall_failures.iter().min().unwrap_or(&0),
            stall_failures.len()
        ),
    );
    checks.check(
        set.acknowledged > 0 && incr.acknowledged > 0,
        "writes were acknowledged".to_owned(),
    );
    checks.finish();
}

/// ` (e.g. <the first>)`, or nothing for an empty list.
fn example(items: &[String]) -> String {
    items
        .first()
        .map_or_else(String::new, |first| format!(" (e.g. {first:?})"))
}

/// Checks that are all evaluated and printed, then fail the test together.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, passed: bool, what: String) {
        println!("  [{}] {what}", if passed { "ok" } else { "FAILED" });
        if !passed {
            self.failed.push(what);
        }
    }

    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} check(s) failed:\n  {}",
            self.failed.len(),
            self.failed.join("\n  ")
        );
    }
}

/// What the matrix's resets found, on its own. A proxy forwards an INCR to the server, which
/// applies it; the reply is held, then the proxy resets (RST) the client's connection before its
/// kernel has acknowledged the request's bytes (the ACK would have ridden on the reply). A RST
/// carries no acknowledgement the client takes in, so `tcpi_bytes_acked` says "nothing arrived",
/// and brisk's check for a pooled connection the server had closed (`Connection::check_reuse`,
/// `stale_on_reuse`) sends the INCR again on another connection: applied twice under SAFE, with
/// retries off, reported as one success. Whether the ACK went out before the reset is up to the
/// proxy's kernel (delayed ACK), so the case is tried up to 100 times.
#[test]
fn a_write_forwarded_then_reset_before_its_ack_is_not_sent_again() {
    let server = RedisServer::start();
    let proxy = FaultProxy::in_front_of(&server);
    let mut config = Config::default();
    config
        .set_url(&format!("{}?max_retries=0&pool_size=1", proxy.url()))
        .expect("proxy URL");
    let c = Client::new(&config).expect("Client::new");
    let mut outcomes = BTreeMap::<String, u32>::new();
    for i in 0..100 {
        let key = format!("forwarded:{i}");
        // The connection has just come back to the pool: it is lent again without a peek.
        assert_eq!(text(&ok(&c, &["PING"])), "PONG");
        // The first byte of the next reply stops everything; the request has been forwarded.
        proxy.stall_after(0);
        let result = std::thread::scope(|s| {
            let incr = s.spawn(|| cmd(&c, &["INCR", &key]));
            let stalled = wait_until(Duration::from_secs(10), || proxy.is_stalled());
            proxy.reset_all();
            proxy.heal();
            assert!(stalled, "the INCR's reply never reached the proxy");
            incr.join().expect("INCR thread")
        });
        let applied = server.cli(&["GET", &key]);
        let caller = match &result {
            Ok(reply) => format!("acknowledged {reply:?}"),
            Err(e) => format!("{:?}, sent: {}", e.status(), e.is_sent()),
        };
        *outcomes
            .entry(format!("server {applied}, caller {caller}"))
            .or_default() += 1;
        assert!(
            applied == "1",
            "INCR {key} applied {applied} times (caller: {caller}; retries {}); outcomes so \
             far: {outcomes:#?}",
            c.stat(brisk::stats::Stat::Retries)
        );
    }
    println!("{outcomes:#?}");
}
