//! Time bounds that hold on a loaded machine and still fail when something hangs.
//!
//! A test's lower bound says "it really waited" and stays strict: no load makes a timeout fire
//! early. Its upper bound says "it did not wait for something else", and a busy machine (CI's
//! has been seen at a load average of 7 on 2 CPUs) makes every thread wait for a CPU, so the
//! upper bound is widened by the load measured when it is checked: runnable threads per CPU
//! (the 1-minute load average, or the run queue right now when that is longer), at least 1, at
//! most [`MAX_WIDENING`]. Each test keeps `high * MAX_WIDENING` short of what the failure it
//! guards against would take (a read timeout the deadline must beat, a peer that gives up after
//! 20 s), so a real hang still fails however loaded the machine is.
//!
//! `BRISK_TEST_TIME_FACTOR=<f>` fixes the factor instead (1 checks the nominal bounds);
//! `BRISK_TEST_TIMING_LOG=<file>` appends every checked bound to `file` (test, took, bounds,
//! factor, what), to see how close the tests come to their bounds (scripts/under-load uses it).

use std::io::Write;
use std::time::{Duration, Instant};

/// The most an upper bound is widened, however high the load.
pub const MAX_WIDENING: f64 = 2.0;

/// How much the upper bounds are widened now, and why.
#[derive(Clone, Copy, Debug)]
pub struct Widening {
    pub factor: f64,
    /// Runnable threads (load average or run queue) and CPUs it was computed from; `None` when
    /// the factor was fixed by `BRISK_TEST_TIME_FACTOR`.
    pub measured: Option<(f64, usize)>,
}

impl Widening {
    /// The widening for the machine's load right now.
    pub fn now() -> Widening {
        if let Some(fixed) = std::env::var("BRISK_TEST_TIME_FACTOR")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0)
        {
            return Widening {
                factor: fixed,
                measured: None,
            };
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let load = runnable_threads().unwrap_or(0.0);
        Widening {
            factor: (load / cpus as f64).clamp(1.0, MAX_WIDENING),
            measured: Some((load, cpus)),
        }
    }

    /// `high` widened.
    pub fn widen(&self, high: Duration) -> Duration {
        high.mul_f64(self.factor)
    }
}

impl std::fmt::Display for Widening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.measured {
            Some((load, cpus)) => write!(
                f,
                "x{:.2} for {load:.1} runnable threads on {cpus} CPUs",
                self.factor
            ),
            None => write!(f, "x{:.2} from BRISK_TEST_TIME_FACTOR", self.factor),
        }
    }
}

/// Runnable threads on the machine: the 1-minute load average, or the run queue right now when
/// that is longer (the average lags a load that has just begun). Less the thread asking.
fn runnable_threads() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_ascii_whitespace();
    let one_minute: f64 = fields.next()?.parse().ok()?;
    let running: f64 = fields
        .nth(2)
        .and_then(|f| f.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    Some(one_minute.max(running - 1.0))
}

/// Runs `f`; returns its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let result = f();
    (result, started.elapsed())
}

/// Whether `took` lies in `low..=high`, `high` widened for the load; with the description of
/// the bounds for a failure message. For callers that check more than the time at once.
pub fn within(took: Duration, low: Duration, high: Duration, what: &str) -> (bool, String) {
    let widening = Widening::now();
    let widened = widening.widen(high);
    let fits = took >= low && took <= widened;
    log(what, took, low, high, widening);
    let bounds = format!("{low:.2?}..={high:.2?}, up to {widened:.2?} now ({widening})");
    (fits, bounds)
}

/// `took` is at least `low_ms` (strict) and at most `high_ms` (widened for the load).
#[track_caller]
pub fn assert_between(took: Duration, low_ms: u64, high_ms: u64, what: &str) {
    let (fits, bounds) = within(
        took,
        Duration::from_millis(low_ms),
        Duration::from_millis(high_ms),
        what,
    );
    assert!(fits, "{what}: took {took:.2?}, expected {bounds}");
}

/// `took` is at most `high_ms` (widened for the load): it did not wait for something else.
#[track_caller]
pub fn assert_at_most(took: Duration, high_ms: u64, what: &str) {
    assert_between(took, 0, high_ms, what);
}

/// Appends the check to `BRISK_TEST_TIMING_LOG`, when it is set.
fn log(what: &str, took: Duration, low: Duration, high: Duration, widening: Widening) {
    let Some(path) = std::env::var_os("BRISK_TEST_TIMING_LOG") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!(
        "{}\t{}\t{}\t{}\t{}\t{:.2}\t{}\n",
        test,
        took.as_millis(),
        low.as_millis(),
        high.as_millis(),
        widening.widen(high).as_millis(),
        widening.factor,
        what.replace(['\t', '\n'], " ")
    );
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write of one short line: lines from parallel tests do not interleave.
        let _ = file.write_all(line.as_bytes());
    }
}
