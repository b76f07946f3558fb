//! A scripted RESP peer that misbehaves on purpose (issue 15): it answers the handshake and the
//! client's housekeeping like a real server, then answers the first real command of a connection
//! with one [`Behaviour`]: a reply trickled forever, a push flood, a memory bomb, `-LOADING`
//! refusals, or garbage after a valid prefix. Played on every connection, or only on the first
//! ([`HostilePeer::once`]), after which real commands are answered `$5\r\nhello\r\n`: the
//! proof that a client recovered on a new connection.
//!
//! Every behaviour is bounded on the peer's side: after [`GIVE_UP`] the peer closes the
//! connection, so a client that never gives up still ends its test (late, and failing it). The
//! peer runs on [`Listener`](super::fake) threads, checks the stop flag every 50 ms, and is
//! joined when dropped.
//!
//! [`timed_call`] runs one command through the blocking path, the async path, or the async path
//! with caller dispatch, and measures it.

use super::fake::Listener;
use brisk::config::AsyncDispatch;
use brisk::{Args, Client, Config, Reply, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the peer keeps one misbehaviour going before it closes the connection. Long enough
/// that a client in a debug build on a machine loaded many times over (load 20 on 2 cores was
/// seen) still reads a 120 MiB bomb to its end before it.
pub const GIVE_UP: Duration = Duration::from_secs(60);

/// How often the peer looks at the stop flag, the give-up time and the client's side.
const POLL: Duration = Duration::from_millis(50);

/// What the peer does with the first real command of a connection (not HELLO, AUTH, SELECT,
/// CLIENT, READONLY, COMMAND or PING, which it answers as a server would).
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// `*?\r\n` (a RESP3 streamed array) then `:1\r\n` every 100 ms, never the end.
    TrickleArray,
    /// `$100000\r\n` then one byte of the string every 100 ms.
    TrickleBulk,
    /// A RESP3 push (a Pub/Sub message) every 50 ms, never the reply.
    PushFlood,
    /// `*?\r\n` then `_\r\n` as fast as the client reads, `bytes` in all, then silence (never
    /// the end of the array).
    NullBomb { bytes: u64 },
    /// `-LOADING ...` to the first `refusals` real commands (counted over all connections),
    /// `:1` to every later one. The connection stays open, as a loading server keeps it.
    Loading { refusals: u32 },
    /// `$5\r\nhel` then `\x00\xffnot resp\r\n`, then silence.
    Garbage,
    /// A bulk string header declaring `declared` bytes, then silence.
    HugeBulk { declared: u64 },
    /// `$5\r\nfirst\r\n` and a second reply nobody asked for, `$5\r\nstray\r\n`, in one write;
    /// then silence.
    StrayReply,
    /// In the handshake: HELLO's usual reply and `+stray\r\n` after it, in one write; then the
    /// connection is served as usual.
    HelloThenStray,
}

/// Where the behaviour is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// As the reply to the first real command.
    FirstCommand,
    /// As the reply to HELLO (the handshake).
    Hello,
}

/// What the peer saw, for assertions and failure messages.
#[derive(Clone, Debug, Default)]
pub struct PeerLog {
    /// Connections accepted.
    pub connections: u32,
    /// Real commands received, by upper-case name, in order.
    pub commands: Vec<String>,
    /// Connections the behaviour was played on.
    pub played: u32,
    /// Connections the client closed (EOF or reset seen by the peer).
    pub closed_by_client: u32,
    /// Connections the peer closed because [`GIVE_UP`] passed.
    pub gave_up: u32,
    /// Connections over (by either side).
    pub ended: u32,
    /// Bytes of behaviour output written (replies to housekeeping not counted).
    pub bytes_sent: u64,
}

impl PeerLog {
    /// How many real commands named `name` (upper case) arrived.
    pub fn count(&self, name: &str) -> usize {
        self.commands.iter().filter(|c| *c == name).count()
    }
}

struct Script {
    behaviour: Behaviour,
    stage: Stage,
    /// Played on the first connection only.
    once: bool,
    log: Mutex<PeerLog>,
}

impl Script {
    fn note(&self, f: impl FnOnce(&mut PeerLog)) {
        f(&mut self.log.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A loopback RESP server playing one [`Behaviour`] until dropped.
pub struct HostilePeer {
    listener: Listener,
    script: Arc<Script>,
}

impl HostilePeer {
    /// Plays `behaviour` on the first real command of each connection.
    pub fn start(behaviour: Behaviour) -> HostilePeer {
        HostilePeer::start_with(behaviour, Stage::FirstCommand, false)
    }

    /// Plays `behaviour` on the first real command of the first connection only; later real
    /// commands get `$5\r\nhello\r\n`.
    pub fn once(behaviour: Behaviour) -> HostilePeer {
        HostilePeer::start_with(behaviour, Stage::FirstCommand, true)
    }

    /// Plays `behaviour` as the reply to HELLO, inside the handshake of every connection.
    pub fn in_handshake(behaviour: Behaviour) -> HostilePeer {
        HostilePeer::start_with(behaviour, Stage::Hello, false)
    }

    fn start_with(behaviour: Behaviour, stage: Stage, once: bool) -> HostilePeer {
        let script = Arc::new(Script {
            behaviour,
            stage,
            once,
            log: Mutex::default(),
        });
        let shared = script.clone();
        let listener = Listener::start(move |conn, stop| serve(conn, stop, &shared));
        HostilePeer { listener, script }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.listener.addr.port())
    }

    /// A default config pointed at this peer.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.set_url(&self.url()).expect("peer URL");
        config
    }

    /// Waits (at most until every behaviour has given up) until no connection is open; false
    /// if one still is.
    pub fn wait_until_all_closed(&self) -> bool {
        super::wait_until(GIVE_UP + Duration::from_secs(5), || {
            let log = self.log();
            log.ended == log.connections
        })
    }

    /// A copy of what the peer has seen so far.
    pub fn log(&self) -> PeerLog {
        self.script
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One connection: answers housekeeping, plays the behaviour, ends on EOF, stop or give-up.
fn serve(conn: TcpStream, stop: &AtomicBool, script: &Script) {
    script.note(|l| l.connections += 1);
    serve_requests(conn, stop, script);
    script.note(|l| l.ended += 1);
}

fn serve_requests(conn: TcpStream, stop: &AtomicBool, script: &Script) {
    let _ = conn.set_nodelay(true);
    let _ = conn.set_write_timeout(Some(POLL));
    let mut peer = Conn {
        conn,
        stop,
        script,
        give_up_at: None,
    };
    let mut requests = RequestBuffer::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match peer.read(&mut chunk, POLL) {
            Got::Data(n) => requests.extend(&chunk[..n]),
            Got::Nothing => continue,
            Got::Closed => return,
            Got::Stopped => return,
        }
        while let Some(request) = requests.next() {
            let Ok(words) = request else { return };
            match respond(&mut peer, &words) {
                Next::Continue => {}
                Next::Close => return,
            }
        }
    }
}

enum Next {
    Continue,
    Close,
}

/// Answers one request.
fn respond(peer: &mut Conn<'_>, words: &[Vec<u8>]) -> Next {
    let script = peer.script;
    let name = String::from_utf8_lossy(words.first().map_or(&[][..], |w| w)).to_ascii_uppercase();
    let plays = !script.once || script.log.lock().unwrap_or_else(|e| e.into_inner()).played == 0;
    if name == "HELLO" && script.stage == Stage::Hello && plays {
        return peer.play(script.behaviour);
    }
    if let Some(reply) = housekeeping(&name, words) {
        return if peer.send_raw(&reply) {
            Next::Continue
        } else {
            Next::Close
        };
    }
    let nth = {
        let mut log = script.log.lock().unwrap_or_else(|e| e.into_inner());
        log.commands.push(name.clone());
        log.commands.len()
    };
    let reply: &[u8] = match script.behaviour {
        Behaviour::Loading { refusals } if nth as u32 <= refusals => {
            b"-LOADING Redis is loading the dataset in memory\r\n"
        }
        Behaviour::Loading { .. } => b":1\r\n",
        behaviour if script.stage == Stage::FirstCommand && plays => return peer.play(behaviour),
        _ => b"$5\r\nhello\r\n",
    };
    if peer.send(reply) {
        Next::Continue
    } else {
        Next::Close
    }
}

/// The reply a real server gives to the commands a client sends on its own (handshake, command
/// table, health checks); `None` for a real command.
fn housekeeping(name: &str, words: &[Vec<u8>]) -> Option<Vec<u8>> {
    Some(match name {
        // brisk sends HELLO only to ask for RESP3.
        "HELLO" if words.get(1).is_some_and(|v| v == b"3") => hello_map(),
        "AUTH" | "SELECT" | "CLIENT" | "READONLY" => b"+OK\r\n".to_vec(),
        "PING" => b"+PONG\r\n".to_vec(),
        "COMMAND" => command_table(),
        _ => return None,
    })
}

/// HELLO 3's reply, the map a Redis 7 server sends.
fn hello_map() -> Vec<u8> {
    b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n\
         $2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
         $7\r\nmodules\r\n*0\r\n"
        .to_vec()
}

/// `COMMAND`'s reply for the commands the tests send, in the pre-7 six-field form (name, arity,
/// flags, first key, last key, step), which a Redis 7 entry begins with too.
fn command_table() -> Vec<u8> {
    let entry = |name: &str, arity: i32, flags: &[&str]| {
        let mut e = format!(
            "*6\r\n${}\r\n{name}\r\n:{arity}\r\n*{}\r\n",
            name.len(),
            flags.len()
        );
        for flag in flags {
            e.push_str(&format!("+{flag}\r\n"));
        }
        e.push_str(":1\r\n:1\r\n:1\r\n");
        e
    };
    let mut table = String::from("*3\r\n");
    table.push_str(&entry("get", 2, &["readonly", "fast"]));
    table.push_str(&entry("incr", 2, &["write", "denyoom", "fast"]));
    table.push_str(&entry("set", -3, &["write", "denyoom"]));
    table.into_bytes()
}

enum Got {
    Data(usize),
    /// Nothing within the wait.
    Nothing,
    Closed,
    Stopped,
}

/// One accepted connection and the bounds on what the peer does with it.
struct Conn<'a> {
    conn: TcpStream,
    stop: &'a AtomicBool,
    script: &'a Script,
    /// Set when a behaviour starts: the peer closes the connection then.
    give_up_at: Option<Instant>,
}

impl Conn<'_> {
    fn read(&mut self, buf: &mut [u8], wait: Duration) -> Got {
        if self.stop.load(Ordering::SeqCst) {
            return Got::Stopped;
        }
        let _ = self
            .conn
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match self.conn.read(buf) {
            Ok(0) => {
                self.script.note(|l| l.closed_by_client += 1);
                Got::Closed
            }
            Ok(n) => Got::Data(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Got::Nothing
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Got::Nothing,
            Err(_) => {
                self.script.note(|l| l.closed_by_client += 1);
                Got::Closed
            }
        }
    }

    /// Whether the behaviour must end now (stop flag or give-up time).
    fn must_end(&mut self) -> bool {
        if self.stop.load(Ordering::SeqCst) {
            return true;
        }
        if self.give_up_at.is_some_and(|at| Instant::now() >= at) {
            self.script.note(|l| l.gave_up += 1);
            let _ = self.conn.shutdown(std::net::Shutdown::Both);
            self.give_up_at = None;
            return true;
        }
        false
    }

    /// Writes all of `bytes`; false when the client is gone or the behaviour must end.
    fn send_raw(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.must_end() {
                return false;
            }
            match self.conn.write(bytes) {
                Ok(0) => return false,
                Ok(n) => bytes = &bytes[n..],
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.script.note(|l| l.closed_by_client += 1);
                    return false;
                }
            }
        }
        true
    }

    /// [`Conn::send_raw`], counted as behaviour output.
    fn send(&mut self, bytes: &[u8]) -> bool {
        let sent = self.send_raw(bytes);
        if sent {
            self.script.note(|l| l.bytes_sent += bytes.len() as u64);
        }
        sent
    }

    /// Lets `d` pass while watching the connection (whatever the client sends meanwhile is
    /// read and ignored); false when the client closed it or the behaviour must end.
    fn pause(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut sink = [0u8; 4096];
        loop {
            if self.must_end() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.read(&mut sink, left.min(POLL)) {
                Got::Data(_) | Got::Nothing => {}
                Got::Closed | Got::Stopped => return false,
            }
        }
    }

    /// Plays `behaviour` to its end (the client leaving, stop, or give-up); the connection is
    /// closed after it.
    fn play(&mut self, behaviour: Behaviour) -> Next {
        self.script.note(|l| l.played += 1);
        self.give_up_at = Some(Instant::now() + GIVE_UP);
        match behaviour {
            Behaviour::TrickleArray => {
                let _ = self.send(b"*?\r\n") && self.every(Duration::from_millis(100), b":1\r\n");
            }
            Behaviour::TrickleBulk => {
                let _ = self.send(b"$100000\r\n") && self.every(Duration::from_millis(100), b"x");
            }
            Behaviour::PushFlood => {
                let push = b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1\r\nx\r\n";
                let _ = self.every(Duration::from_millis(50), push);
            }
            Behaviour::NullBomb { bytes } => {
                let _ = self.send(b"*?\r\n") && self.flood(b"_\r\n", bytes) && self.hold();
            }
            Behaviour::Garbage => {
                let _ =
                    self.send(b"$5\r\nhel") && self.send(b"\x00\xffnot resp\r\n") && self.hold();
            }
            Behaviour::StrayReply => {
                let _ = self.send(b"$5\r\nfirst\r\n$5\r\nstray\r\n") && self.hold();
            }
            Behaviour::HelloThenStray => {
                let mut reply = hello_map();
                reply.extend_from_slice(b"+stray\r\n");
                return if self.send(&reply) {
                    Next::Continue
                } else {
                    Next::Close
                };
            }
            Behaviour::HugeBulk { declared } => {
                let _ = self.send(format!("${declared}\r\n").as_bytes()) && self.hold();
            }
            // Loading answers every command; it has nothing to play.
            Behaviour::Loading { .. } => return Next::Continue,
        }
        Next::Close
    }

    /// Sends `piece` every `period`, forever (until the behaviour ends).
    fn every(&mut self, period: Duration, piece: &[u8]) -> bool {
        while self.pause(period) {
            if !self.send(piece) {
                return false;
            }
        }
        false
    }

    /// Sends `element` repeatedly, as fast as the client takes it, `total` bytes in all.
    fn flood(&mut self, element: &[u8], total: u64) -> bool {
        let chunk: Vec<u8> = element.repeat(64 * 1024 / element.len());
        let mut sent = 0u64;
        while sent < total {
            let n = (total - sent).min(chunk.len() as u64) as usize;
            let n = n - n % element.len();
            if n == 0 || !self.send(&chunk[..n]) {
                return false;
            }
            sent += n as u64;
        }
        true
    }

    /// Keeps the connection open and silent until the behaviour ends.
    fn hold(&mut self) -> bool {
        while self.pause(POLL) {}
        false
    }
}

/// Request bytes received, cut into commands (arrays of bulk strings, as every client sends).
#[derive(Default)]
struct RequestBuffer {
    bytes: Vec<u8>,
}

impl RequestBuffer {
    fn extend(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// The next complete command; `Some(Err(()))` for bytes that are not a command.
    fn next(&mut self) -> Option<std::result::Result<Vec<Vec<u8>>, ()>> {
        let mut at = 0;
        let count = match line(&self.bytes, &mut at, b'*')? {
            Ok(n) => n,
            Err(()) => return Some(Err(())),
        };
        let mut words = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let len = match line(&self.bytes, &mut at, b'$')? {
                Ok(n) => n,
                Err(()) => return Some(Err(())),
            };
            if self.bytes.len() < at + len + 2 {
                return None;
            }
            words.push(self.bytes[at..at + len].to_vec());
            at += len + 2;
        }
        self.bytes.drain(..at);
        Some(Ok(words))
    }
}

/// Reads `<prefix><number>\r\n` at `*at`: `None` when incomplete.
fn line(bytes: &[u8], at: &mut usize, prefix: u8) -> Option<std::result::Result<usize, ()>> {
    let rest = &bytes[*at..];
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    if rest.first() != Some(&prefix) {
        return Some(Err(()));
    }
    let number = std::str::from_utf8(&rest[1..end])
        .ok()
        .and_then(|s| s.parse::<usize>().ok());
    *at += end + 2;
    Some(number.ok_or(()))
}

/// Which driver runs a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `Client::command` on the caller's thread.
    Blocking,
    /// `Client::command_async`, its callback sending the outcome back.
    Async,
    /// `Client::command_async` on a client with caller dispatch: the test's thread polls the
    /// client's descriptor and dispatches (and so reads the connection) until the callback ran.
    CallerDispatch,
}

/// A client for `config`, with caller dispatch on [`Path::CallerDispatch`].
pub fn client_on(path: Path, config: &Config) -> Client {
    let mut config = config.clone();
    if let Path::CallerDispatch = path {
        config.async_dispatch = AsyncDispatch::Caller;
    }
    Client::new(&config).expect("Client::new")
}

/// One test per driver for each scenario: `name::blocking`, `name::asynchronous` and
/// `name::caller_dispatch` call `scenario(args.., Path::Blocking)`, `scenario(args.., Path::Async)`
/// and `scenario(args.., Path::CallerDispatch)`.
///
/// ```ignore
/// on_every_path! {
///     deadline_bounds_a_push_flood => deadline_holds(Behaviour::PushFlood, 3);
/// }
/// ```
#[macro_export]
macro_rules! on_every_path {
    ($($name:ident => $scenario:ident($($arg:expr),* $(,)?);)+) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn blocking() {
                    $scenario($($arg,)* $crate::support::Path::Blocking)
                }

                #[test]
                fn asynchronous() {
                    $scenario($($arg,)* $crate::support::Path::Async)
                }

                #[test]
                fn caller_dispatch() {
                    $scenario($($arg,)* $crate::support::Path::CallerDispatch)
                }
            }
        )+
    };
}

/// How long [`timed_call`] waits for an async callback: past the peer's give-up, so a client
/// that only ends when the peer does is still measured.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(GIVE_UP.as_secs() + 40);

/// Runs `args` on `client` through `path`; returns the outcome and how long it took (for the
/// async path, until the callback ran).
pub fn timed_call(client: &Client, path: Path, args: &[&str]) -> (Result<Reply>, Duration) {
    let words: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let args = Args::from_slices(&words);
    let started = Instant::now();
    match path {
        Path::Blocking => {
            let outcome = client.command(&args);
            (outcome, started.elapsed())
        }
        Path::Async | Path::CallerDispatch => {
            let (tx, rx) = std::sync::mpsc::channel();
            client
                .command_async(
                    &args,
                    Box::new(move |outcome| {
                        let _ = tx.send((outcome, Instant::now()));
                    }),
                )
                .unwrap_or_else(|e| panic!("command_async refused the command: {}", e.message()));
            let (outcome, at) = match path {
                Path::CallerDispatch => dispatch_until_answered(client, &rx),
                _ => rx.recv_timeout(CALLBACK_WAIT).ok(),
            }
            .unwrap_or_else(|| panic!("no callback within {CALLBACK_WAIT:?}"));
            (outcome, at - started)
        }
    }
}

/// Polls `client`'s descriptor and dispatches until the callback has sent its outcome to `rx`
/// (within [`CALLBACK_WAIT`]).
fn dispatch_until_answered<T>(client: &Client, rx: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    let fd = client.async_fd().expect("a client with caller dispatch");
    let started = Instant::now();
    while started.elapsed() < CALLBACK_WAIT {
        super::readable(fd, 100);
        client.async_dispatch(0);
        if let Ok(outcome) = rx.try_recv() {
            return Some(outcome);
        }
    }
    None
}
