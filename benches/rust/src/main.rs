//! brisk's Rust API against the `redis` crate (redis-rs), side by side, against one
//! redis-server: the Rust half of benches/run.sh (bench.c is the C half, against hiredis).
//!
//!   brisk-rust-bench [--quick] [--repeats N] [--duration S] [--only LIST] --host H --port P
//!   brisk-rust-bench callgrind-MODE brisk-rust|redis-rs N --host H --port P
//!         (MODE: sync, pipeline, lrange, async, async-cb)
//!
//! The first form runs each workload through both clients alternately (brisk first on even
//! repeats, redis-rs first on odd ones) and prints a Markdown table: medians of the repeats,
//! ratios as medians of the per-repeat ratios. The workloads are bench.c's, on the same keys:
//! sync SET+GET one at a time (`Client::command` / `redis::Connection`), pipelines of 100 SETs or
//! GETs (`Client::pipeline` / `redis::pipe`), LRANGE of 1,000 x 16 B, and async SET/GET with 50
//! in flight (`Client::command_async` / a `MultiplexedConnection` on tokio) in bench.c's two
//! harness styles (see async_peers.rs). Both clients run with their defaults (brisk: RESP3, its
//! pool and retry policy; redis-rs: RESP2).
//!
//! The second form is a callgrind target, as bench.c's: it connects, warms up, runs N
//! iterations of one loop and exits; run.sh runs it with two values of N and subtracts.
//!
//! A benchmark, not a test: it never judges the numbers; it exits non-zero when a command fails.

mod async_peers;
mod data;
mod sync_peers;
mod table;

use async_peers::{AsyncPeer, BriskAsync, RedisAsync, Run, Style};
use data::{Keys, PIPE_BATCH};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use sync_peers::{BriskSync, RedisSync, SyncPeer};
use table::{Figures, Table, Unit, cpu_seconds};

pub fn die(message: &str) -> ! {
    eprintln!("brisk-rust-bench: {message}");
    std::process::exit(1);
}

/// A brisk client as a user gets it by default, on host:port.
pub fn brisk_client(host: &str, port: u16) -> brisk::Client {
    let mut config = brisk::Config::default();
    config
        .set_address(host, port)
        .unwrap_or_else(|e| die(&format!("brisk config: {e}")));
    brisk::Client::new(&config).unwrap_or_else(|e| die(&format!("brisk client: {e}")))
}

pub fn redis_client(host: &str, port: u16) -> redis::Client {
    redis::Client::open(format!("redis://{host}:{port}/"))
        .unwrap_or_else(|e| die(&format!("redis-rs client: {e}")))
}

/// redis-rs's runtime: tokio, multi-threaded with two workers, as brisk's own runtime.
static TOKIO: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("tokio runtime: {e}")))
});

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Brisk,
    Redis,
}

struct Bench {
    host: String,
    port: u16,
    keys: Keys,
    duration: Duration,
}

impl Bench {
    fn open_sync(&self, which: Which) -> Box<dyn SyncPeer> {
        let mut peer: Box<dyn SyncPeer> = match which {
            Which::Brisk => Box::new(BriskSync::open(&self.host, self.port)),
            Which::Redis => Box::new(RedisSync::open(&self.host, self.port)),
        };
        peer.warm(&self.keys);
        peer
    }

    /// Runs `step` (which returns the operations it did) until the duration is over.
    fn timed(&self, mut step: impl FnMut() -> u64) -> Figures {
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        let end = start + self.duration;
        let mut ops = 0;
        loop {
            ops += step();
            if Instant::now() >= end {
                break;
            }
        }
        Figures::since(ops, start, cpu0)
    }

    fn sync(&self, which: Which) -> Figures {
        let mut peer = self.open_sync(which);
        let mut k = 0;
        self.timed(|| {
            peer.set(&self.keys, k);
            peer.get(&self.keys, k);
            k = (k + 1) % data::NKEYS;
            2
        })
    }

    fn pipeline(&self, which: Which, get: bool) -> Figures {
        let mut peer = self.open_sync(which);
        let mut k = 0;
        self.timed(|| {
            peer.pipeline_batch(&self.keys, get, &mut k);
            PIPE_BATCH as u64
        })
    }

    fn lrange(&self, which: Which) -> Figures {
        let mut peer = self.open_sync(which);
        let mut sum = 0;
        let figures = self.timed(|| {
            sum += peer.lrange();
            1
        });
        if sum == 0 {
            die("LRANGE: no bytes seen");
        }
        figures
    }

    /// One async run: connect, warm up (two rounds of 50, untimed), then `max_cmds` commands or
    /// the duration (max_cmds None); CPU is the whole process's.
    fn run_async(&self, which: Which, style: Style, max_cmds: Option<u64>) -> Figures {
        match which {
            Which::Brisk => {
                let mut sync = BriskSync::open(&self.host, self.port);
                sync.warm(&self.keys); // connects, reads the command table
                let client = sync.into_client();
                self.measure_async(
                    "brisk-rust",
                    Arc::new(BriskAsync { client }),
                    style,
                    max_cmds,
                )
            }
            Which::Redis => {
                let client = redis_client(&self.host, self.port);
                let con = TOKIO
                    .block_on(client.get_multiplexed_async_connection())
                    .unwrap_or_else(|e| die(&format!("redis-rs async connect: {e}")));
                let runtime = TOKIO.handle().clone();
                self.measure_async(
                    "redis-rs",
                    Arc::new(RedisAsync { con, runtime }),
                    style,
                    max_cmds,
                )
            }
        }
    }

    fn measure_async<P: AsyncPeer>(
        &self,
        name: &str,
        peer: Arc<P>,
        style: Style,
        max_cmds: Option<u64>,
    ) -> Figures {
        let warm = Run::new(style, None, 2 * data::ASYNC_IN_FLIGHT);
        async_peers::drive(&peer, &warm);
        if let Some(failures) = async_peers::failures(&warm) {
            die(&format!("{name} async warm-up: {failures}"));
        }
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        let run = match max_cmds {
            Some(n) => Run::new(style, None, n),
            None => Run::new(style, Some(start + self.duration), u64::MAX),
        };
        async_peers::drive(&peer, &run);
        let ops = run.done.load(std::sync::atomic::Ordering::Relaxed);
        let figures = Figures::since(ops, start, cpu0);
        // A callback that issued a chain's last command may still hold the peer: wait until it
        // has returned, so that the client is dropped here, never on a runtime thread.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&peer) > 1 {
            if Instant::now() > deadline {
                die(&format!(
                    "{name} async: a callback still holds the client after 10 s"
                ));
            }
            std::thread::yield_now();
        }
        if let Some(failures) = async_peers::failures(&run) {
            die(&format!("{name} async: {failures}"));
        }
        if ops == 0 {
            die(&format!("{name} async: no command completed"));
        }
        figures
    }
}

/// Both clients on one workload, `repeats` times, alternating which goes first; a row for the
/// rate and one for the CPU per operation.
fn compare(
    table: &mut Table,
    repeats: usize,
    name: &str,
    cpu_name: &str,
    mut run: impl FnMut(Which) -> Figures,
) {
    eprintln!("{name}");
    let rate = table.row(name, Unit::Rate);
    let cpu = table.row(cpu_name, Unit::Micros);
    for i in 0..repeats {
        let (b, r) = if i % 2 == 0 {
            let b = run(Which::Brisk);
            (b, run(Which::Redis))
        } else {
            let r = run(Which::Redis);
            (run(Which::Brisk), r)
        };
        table.add(rate, i, b.rate, r.rate);
        table.add(cpu, i, b.cpu_us, r.cpu_us);
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn run_all(bench: &Bench, repeats: usize, only: Option<&str>) {
    let selected = |name: &str| only.is_none_or(|list| list.split(',').any(|n| n == name));
    let setup = brisk_client(&bench.host, bench.port);
    data::setup(&setup, &bench.keys);
    drop(setup);
    let load_start = loadavg();
    let mut table = Table::default();
    let t = &mut table;
    if selected("sync") {
        let (a, b) = (
            "sync SET+GET, 1 client (ops/s)",
            "sync SET+GET, client CPU per command",
        );
        compare(t, repeats, a, b, |w| bench.sync(w));
    }
    if selected("pipeline") {
        let (a, b) = (
            "pipelined SET, batches of 100",
            "pipelined SET, client CPU per command",
        );
        compare(t, repeats, a, b, |w| bench.pipeline(w, false));
        let (a, b) = (
            "pipelined GET, batches of 100",
            "pipelined GET, client CPU per command",
        );
        compare(t, repeats, a, b, |w| bench.pipeline(w, true));
    }
    if selected("lrange") {
        let (a, b) = (
            "LRANGE 1,000 x 16 B (replies/s)",
            "LRANGE 1,000 x 16 B, client CPU per reply",
        );
        compare(t, repeats, a, b, |w| bench.lrange(w));
    }
    if selected("async") {
        let (a, b) = (
            "async, caller keeps 50 in flight (ops/s)",
            "async, caller keeps 50 in flight, client CPU per command",
        );
        compare(t, repeats, a, b, |w| {
            bench.run_async(w, Style::Caller, None)
        });
        let (a, b) = (
            "async, next command on completion, 50 chains (ops/s)",
            "async, next command on completion, client CPU per command",
        );
        compare(t, repeats, a, b, |w| {
            bench.run_async(w, Style::Chains, None)
        });
    }
    table.print();
    println!(
        "\n{repeats} repeat(s) of {:.2} s per client and workload, alternating brisk and redis-rs; \
         figures are medians, ratios are medians of per-repeat ratios (for CPU, lower is better). \
         Client CPU is the whole process's user + system time (getrusage RUSAGE_SELF, all \
         threads: brisk's runtime threads, tokio's workers) over the run, divided by the \
         operations. Async: \"caller keeps 50 in flight\" has the main thread issue until 50 \
         commands are outstanding and sleep on a semaphore that each completion posts (brisk: \
         from the callback, on its runtime thread; redis-rs: a tokio task spawned per command, \
         on a 2-worker runtime as brisk's); \"next command on completion\" runs 50 chains (brisk: \
         each callback issues the chain's next command; redis-rs: 50 tasks, each awaiting its \
         commands in a loop on a cloned MultiplexedConnection). Load average before: {load_start}, \
         after: {}.",
        bench.duration.as_secs_f64(),
        loadavg()
    );
}

/// The callgrind targets: N iterations of one loop on one client (see profile_report.py for
/// what an iteration is in each mode).
fn profile_target(bench: &Bench, mode: &str, which: &str, n: u64) {
    let which = match which {
        "brisk-rust" => Which::Brisk,
        "redis-rs" => Which::Redis,
        other => die(&format!("{mode}: brisk-rust or redis-rs, not {other}")),
    };
    let setup = brisk_client(&bench.host, bench.port);
    data::setup(&setup, &bench.keys);
    drop(setup);
    match mode {
        "callgrind-async" => drop(bench.run_async(which, Style::Caller, Some(n))),
        "callgrind-async-cb" => drop(bench.run_async(which, Style::Chains, Some(n))),
        "callgrind-sync" | "callgrind-pipeline" | "callgrind-lrange" => {
            let mut peer = bench.open_sync(which);
            let mut k = 0;
            let mut sum = 0u64;
            for i in 0..n as usize {
                match mode {
                    "callgrind-sync" => {
                        peer.set(&bench.keys, i % data::NKEYS);
                        peer.get(&bench.keys, i % data::NKEYS);
                    }
                    "callgrind-pipeline" => {
                        peer.pipeline_batch(&bench.keys, false, &mut k);
                        peer.pipeline_batch(&bench.keys, true, &mut k);
                    }
                    _ => sum += peer.lrange(),
                }
            }
            std::hint::black_box(sum);
        }
        other => die(&format!("unknown mode {other}")),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: brisk-rust-bench [--quick] [--repeats N] [--duration S] [--only LIST] \
         --host HOST --port PORT\n       brisk-rust-bench callgrind-MODE brisk-rust|redis-rs N \
         --host HOST --port PORT\nMODE: sync, pipeline, lrange, async, async-cb; LIST: \
         comma-separated from sync,pipeline,lrange,async"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut host, mut port) = ("127.0.0.1".to_string(), 6379u16);
    let (mut quick, mut repeats, mut duration, mut only) = (false, None, None, None);
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--host" => host = value(),
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--quick" => quick = true,
            "--repeats" => repeats = Some(value().parse::<usize>().unwrap_or_else(|_| usage())),
            "--duration" => duration = Some(value().parse::<f64>().unwrap_or_else(|_| usage())),
            "--only" => only = Some(value()),
            s if s.starts_with('-') => usage(),
            _ => positional.push(arg),
        }
    }
    let repeats = repeats.unwrap_or(if quick { 1 } else { 11 });
    let duration = duration.unwrap_or(if quick { 0.1 } else { 0.3 });
    if repeats == 0 || !duration.is_finite() || duration <= 0.0 {
        usage();
    }
    let bench = Bench {
        host,
        port,
        keys: Keys::new(),
        duration: Duration::from_secs_f64(duration),
    };
    match positional.as_slice() {
        [] => {
            eprintln!(
                "brisk (Rust API) vs redis-rs on {}:{}{}",
                bench.host,
                bench.port,
                if quick { " (quick)" } else { "" }
            );
            run_all(&bench, repeats, only.as_deref());
        }
        [mode, which, n] if mode.starts_with("callgrind-") => {
            let n = n.parse().unwrap_or_else(|_| usage());
            profile_target(&bench, mode, which, n);
        }
        _ => usage(),
    }
}
