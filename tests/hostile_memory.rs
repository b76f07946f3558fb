//! Issue 15: one reply cannot take unbounded memory. A scripted server answers `GET` with a
//! streamed array (`*?\r\n`) of 120 MiB of RESP3 nulls (`_\r\n`, 40 million elements) and never
//! ends it. Before the fix this grew the process by about 2 GB (17 times the bytes received).
//!
//! The bound is the per-reply limit, 513 MiB by default (Redis's `proto-max-bulk-len` and 1 MiB
//! of room), counting the reply's in-memory size honestly: the process may grow by less than
//! 700 MiB. 40 million elements exceed 513 MiB at any honest cost of 14 bytes or more per element
//! (a node with a kind and a position); at a smaller cost the limit is not reached and the tests
//! below say so.
//!
//! The tests measure the peak resident memory of a process (`VmHWM`, reset through
//! `/proc/self/clear_refs`), so each runs in a process of its own: the test starts this test
//! binary again for itself alone (memory an earlier test freed, or still held while a
//! connection closes, would otherwise hide or inflate the growth). The children take turns, to
//! spare the machine.

mod support;

use brisk::{Config, Reply, Result, Status};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use support::{Behaviour, GIVE_UP, HostilePeer, Path, client_on, timed_call, wait_until};

const MIB: u64 = 1024 * 1024;
const BOMB: Behaviour = Behaviour::NullBomb { bytes: 120 * MIB };
/// The default per-reply limit (512 MiB) and what the process may hold besides.
const GROWTH_BOUND: u64 = 700 * MIB;

/// Set in the environment of the process that runs one test's body.
const CHILD: &str = "BRISK_HOSTILE_MEMORY_CHILD";

/// A child that has not ended by then is killed: every wait in it is bounded well below.
const CHILD_LIMIT: Duration = Duration::from_secs(240);

/// One child process at a time.
static TURN: Mutex<()> = Mutex::new(());

/// Runs `body` in a new process of this test binary that runs only the test `name` (the test
/// function calls this again there, and there `body` runs); fails with the child's output.
fn in_own_process(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the test binary");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let ended = wait_until(CHILD_LIMIT, || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
    }
    let status = child.wait().expect("the child's exit status");
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    // The child's line of figures, also when it passes.
    for line in stderr.lines().filter(|l| l.starts_with("measured: ")) {
        eprintln!("{line}");
    }
    let killed = if ended {
        String::new()
    } else {
        format!(", killed after {CHILD_LIMIT:?}")
    };
    assert!(
        ended && status.success() && stdout.contains("1 passed"),
        "{name} failed in its own process ({status}{killed}):\n{stderr}\n{stdout}"
    );
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in /proc/self/status"));
    let kb: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kb * 1024
}

/// Runs `f` and returns its result with how much the peak resident memory of the process rose
/// above the resident memory before it.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, u64) {
    // Give free memory back first: the baseline is then what is in use.
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe { libc::malloc_trim(0) };
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM (/proc/self/clear_refs)");
    let before = status_field("VmRSS");
    let result = f();
    let peak = status_field("VmHWM");
    (result, peak.saturating_sub(before))
}

fn describe(outcome: &Result<Reply>) -> String {
    match outcome {
        Ok(reply) => format!("Ok({:?})", reply.kind()),
        Err(e) => format!("{:?}: {}", e.status(), e.message()),
    }
}

/// `GET` against the bomb with `config`; returns the outcome, the time and the growth. The
/// peak is read once the client is gone and the peer's connections are closed: a connection
/// that goes on reading the bomb after the command ended counts too.
fn bombed(
    peer: &HostilePeer,
    config: &Config,
    path: Path,
) -> (Result<Reply>, Duration, u64, String) {
    let c = client_on(path, config);
    let ((outcome, took), growth) = peak_growth(|| {
        let outcome = timed_call(&c, path, &["GET", "k"]);
        drop(c);
        assert!(
            peer.wait_until_all_closed(),
            "a connection outlived the peer's give-up"
        );
        outcome
    });
    let log = peer.log();
    let summary = format!(
        "got {} after {took:.2?}, peak memory +{} MiB; peer sent {} MiB on {} connections, \
         gave up on {}",
        describe(&outcome),
        growth / MIB,
        log.bytes_sent / MIB,
        log.connections,
        log.gave_up
    );
    eprintln!("measured: {path:?}: {summary}");
    (outcome, took, growth, summary)
}

/// No deadline, no read timeout, no retries: only the reply limit can end the command before
/// the peer gives up (20 s). PROTOCOL, and the growth stays under the bound.
fn reply_limit_ends_the_bomb(path: Path) {
    let peer = HostilePeer::start(BOMB);
    let mut config = peer.config();
    config.command_deadline_ms = 0;
    config.read_timeout_ms = 0;
    config.retry.max_retries = Some(0);
    let (outcome, took, growth, summary) = bombed(&peer, &config, path);
    let what = format!("120 MiB of streamed nulls, {path:?}, the default reply limit");
    assert!(
        matches!(&outcome, Err(e) if e.status() == Status::Protocol) && took < GIVE_UP,
        "{what}: expected PROTOCOL before the peer gave up; {summary}"
    );
    assert!(
        growth < GROWTH_BOUND,
        "{what}: expected growth < {} MiB; {summary}",
        GROWTH_BOUND / MIB
    );
}

#[test]
fn reply_limit_ends_a_memory_bomb_blocking() {
    in_own_process("reply_limit_ends_a_memory_bomb_blocking", || {
        reply_limit_ends_the_bomb(Path::Blocking)
    });
}

#[test]
fn reply_limit_ends_a_memory_bomb_async() {
    in_own_process("reply_limit_ends_a_memory_bomb_async", || {
        reply_limit_ends_the_bomb(Path::Async)
    });
}

#[test]
fn reply_limit_ends_a_memory_bomb_caller_dispatch() {
    in_own_process("reply_limit_ends_a_memory_bomb_caller_dispatch", || {
        reply_limit_ends_the_bomb(Path::CallerDispatch)
    });
}

/// The configuration (1000 ms deadline, 500 ms read timeout, default retries): the
/// command ends within 6 s, with PROTOCOL if the limit is reached first or TIMEOUT if the
/// deadline is (which comes first depends on how fast a busy machine reads), and the growth
/// stays under the bound either way.
fn deadline_ends_the_bomb(path: Path) {
    let peer = HostilePeer::start(BOMB);
    let mut config = peer.config();
    config.command_deadline_ms = 1000;
    config.read_timeout_ms = 500;
    let (outcome, took, growth, summary) = bombed(&peer, &config, path);
    let what = format!("120 MiB of streamed nulls, {path:?}, a 1000 ms deadline");
    assert!(
        matches!(&outcome, Err(e) if matches!(e.status(), Status::Protocol | Status::Timeout))
            && took <= Duration::from_secs(6),
        "{what}: expected PROTOCOL or TIMEOUT within 6 s (a 1 s deadline; margin for a loaded \
         machine); {summary}"
    );
    assert!(
        growth < GROWTH_BOUND,
        "{what}: expected growth < {} MiB; {summary}",
        GROWTH_BOUND / MIB
    );
}

#[test]
fn deadline_ends_a_memory_bomb_blocking() {
    in_own_process("deadline_ends_a_memory_bomb_blocking", || {
        deadline_ends_the_bomb(Path::Blocking)
    });
}

#[test]
fn deadline_ends_a_memory_bomb_async() {
    in_own_process("deadline_ends_a_memory_bomb_async", || {
        deadline_ends_the_bomb(Path::Async)
    });
}

/// A small reply limit (16 MiB): the bomb ends with PROTOCOL naming the limit, long before the
/// peer gives up, and the process grows by about the limit, not by what the peer sends.
fn small_limit_ends_the_bomb(path: Path) {
    let peer = HostilePeer::start(BOMB);
    let mut config = peer.config();
    config.command_deadline_ms = 0;
    config.read_timeout_ms = 0;
    config.retry.max_retries = Some(0);
    config.max_reply_bytes = 16 * MIB as usize;
    let (outcome, took, growth, summary) = bombed(&peer, &config, path);
    let what = format!("120 MiB of streamed nulls, {path:?}, a 16 MiB reply limit");
    match &outcome {
        Err(e) if e.status() == Status::Protocol => assert!(
            e.message().contains("max_reply_bytes (16777216 bytes)"),
            "{what}: the message names the limit; {summary}"
        ),
        _ => panic!("{what}: expected PROTOCOL; {summary}"),
    }
    assert!(took < Duration::from_secs(5), "{what}: too late; {summary}");
    assert!(
        growth < 64 * MIB,
        "{what}: expected growth < 64 MiB; {summary}"
    );
}

#[test]
fn small_reply_limit_ends_a_memory_bomb_blocking() {
    in_own_process("small_reply_limit_ends_a_memory_bomb_blocking", || {
        small_limit_ends_the_bomb(Path::Blocking)
    });
}

#[test]
fn small_reply_limit_ends_a_memory_bomb_async() {
    in_own_process("small_reply_limit_ends_a_memory_bomb_async", || {
        small_limit_ends_the_bomb(Path::Async)
    });
}

/// A bulk header declaring more than the limit fails at once, before any of it is awaited or
/// allocated.
fn declared_size_over_the_limit_fails_at_once(path: Path) {
    let peer = HostilePeer::start(Behaviour::HugeBulk { declared: 20 * MIB });
    let mut config = peer.config();
    config.retry.max_retries = Some(0);
    config.max_reply_bytes = 16 * MIB as usize;
    let (outcome, took, growth, summary) = bombed(&peer, &config, path);
    let what = format!("a 20 MiB bulk declared, {path:?}, a 16 MiB reply limit");
    assert!(
        matches!(&outcome, Err(e) if e.status() == Status::Protocol),
        "{what}: expected PROTOCOL; {summary}"
    );
    assert!(took < Duration::from_secs(2), "{what}: too late; {summary}");
    assert!(
        growth < 8 * MIB,
        "{what}: expected next to no growth; {summary}"
    );
}

#[test]
fn declared_size_over_the_limit_fails_at_once_blocking() {
    in_own_process(
        "declared_size_over_the_limit_fails_at_once_blocking",
        || declared_size_over_the_limit_fails_at_once(Path::Blocking),
    );
}

#[test]
fn declared_size_over_the_limit_fails_at_once_async() {
    in_own_process("declared_size_over_the_limit_fails_at_once_async", || {
        declared_size_over_the_limit_fails_at_once(Path::Async)
    });
}
