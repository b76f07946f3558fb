//! A fault-injecting TCP proxy for the cases a real server cannot produce on demand: added
//! latency, a stalled stream (at once or after N bytes), a stream cut after N bytes, and
//! connections reset (RST), also mid-reply (stall after N bytes, then reset).
//!
//! Every accepted connection gets two pump threads (client -> server, server -> client) that
//! consult the shared fault settings before forwarding each chunk. Sockets use short read
//! timeouts so pumps notice faults and shutdown promptly; nothing waits without a deadline.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Faults {
    /// Milliseconds to hold each chunk before forwarding it (both directions).
    delay_ms: AtomicU64,
    /// While set, nothing is forwarded in either direction (bytes wait in the proxy).
    stalled: AtomicBool,
    /// Server-to-client bytes still allowed before every connection is cut; `usize::MAX`: no cut.
    cut_budget: AtomicUsize,
    /// Server-to-client bytes still allowed before the proxy stalls; `usize::MAX`: none.
    stall_budget: AtomicUsize,
    /// Bumped to reset every connection open at that moment.
    reset_generation: AtomicU64,
    stop: AtomicBool,
    /// Bytes read from clients so far (forwarded, or held by a delay or stall).
    client_bytes: AtomicUsize,
    open: AtomicUsize,
    accepted: AtomicUsize,
}

pub struct FaultProxy {
    address: SocketAddr,
    faults: Arc<Faults>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `server`'s TCP port.
    pub fn in_front_of(server: &super::RedisServer) -> FaultProxy {
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], server.port())))
    }

    /// Starts a proxy on a free loopback port forwarding to `target`.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("local address");
        let faults = Arc::new(Faults {
            cut_budget: AtomicUsize::new(usize::MAX),
            stall_budget: AtomicUsize::new(usize::MAX),
            ..Faults::default()
        });
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let faults = faults.clone();
            let threads = threads.clone();
            std::thread::spawn(move || accept_loop(listener, target, faults, threads))
        };
        FaultProxy {
            address,
            faults,
            threads,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// Holds every chunk this long before forwarding it.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.delay_ms.store(delay.as_millis() as u64, SeqCst);
    }

    /// Stops forwarding in both directions until [`FaultProxy::resume`]. What clients send
    /// meanwhile is taken in and held (it shows in [`FaultProxy::client_bytes`]), then forwarded.
    pub fn stall(&self) {
        self.faults.stalled.store(true, SeqCst);
    }

    /// Whether the proxy is stalled now (by [`FaultProxy::stall`] or a reached
    /// [`FaultProxy::stall_after`]).
    pub fn is_stalled(&self) -> bool {
        self.faults.stalled.load(SeqCst)
    }

    pub fn resume(&self) {
        self.faults.stalled.store(false, SeqCst);
    }

    /// After `bytes` more bytes from server to client, cuts every connection (the client sees
    /// a reply stop mid-way, then EOF).
    pub fn cut_after(&self, bytes: usize) {
        self.faults.cut_budget.store(bytes, SeqCst);
    }

    /// After `bytes` more bytes from server to client, stalls like [`FaultProxy::stall`] (the
    /// client sees a reply stop mid-way and hang) until [`FaultProxy::resume`].
    pub fn stall_after(&self, bytes: usize) {
        self.faults.stall_budget.store(bytes, SeqCst);
    }

    /// Resets (RST) every connection open now, stalled ones too (after
    /// [`FaultProxy::stall_after`], the client sees a reply stop mid-way, then the reset); new
    /// ones work normally.
    pub fn reset_all(&self) {
        self.faults.reset_generation.fetch_add(1, SeqCst);
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.faults.delay_ms.store(0, SeqCst);
        self.faults.stalled.store(false, SeqCst);
        self.faults.cut_budget.store(usize::MAX, SeqCst);
        self.faults.stall_budget.store(usize::MAX, SeqCst);
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.faults.open.load(SeqCst)
    }

    /// Bytes received from clients so far, including bytes still held by a delay: shows that
    /// a request has left the client.
    pub fn client_bytes(&self) -> usize {
        self.faults.client_bytes.load(SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.faults.accepted.load(SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.faults.stop.store(true, SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    faults: Arc<Faults>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !faults.stop.load(SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(_) => continue,
        };
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        faults.accepted.fetch_add(1, SeqCst);
        faults.open.fetch_add(1, SeqCst);
        let _ = client.set_nonblocking(false);
        for s in [&client, &server] {
            let _ = s.set_read_timeout(Some(POLL));
            let _ = s.set_nodelay(true);
        }
        let generation = faults.reset_generation.load(SeqCst);
        let closed = Arc::new(AtomicBool::new(false));
        let pumps = [
            (client.try_clone(), server.try_clone(), false),
            (server.try_clone(), client.try_clone(), true),
        ];
        let mut handles = Vec::new();
        for (from, to, to_client) in pumps {
            let (Ok(from), Ok(to)) = (from, to) else {
                continue;
            };
            let faults = faults.clone();
            let closed = closed.clone();
            handles.push(std::thread::spawn(move || {
                pump(from, to, to_client, generation, &faults, &closed);
            }));
        }
        let faults_for_count = faults.clone();
        let closer = std::thread::spawn(move || {
            for h in handles {
                let _ = h.join();
            }
            faults_for_count.open.fetch_sub(1, SeqCst);
        });
        threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(closer);
    }
}

/// Copies `from` to `to` while honouring the faults; on any end, closes both sides.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    to_client: bool,
    generation: u64,
    faults: &Faults,
    closed: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut held = Vec::new();
    let mut client_closed = false;
    let end = |how: &str, from: &TcpStream, to: &TcpStream| {
        closed.store(true, SeqCst);
        if how == "reset" {
            // SO_LINGER 0 turns the close into an RST. No shutdown, which would send a FIN
            // first: the sockets close when both pumps (each sees the reset) have dropped them.
            for s in [from, to] {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
            return;
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    };
    loop {
        // The reset first: the other pump of a reset connection must not close it with a FIN.
        if faults.reset_generation.load(SeqCst) != generation {
            return end("reset", &from, &to);
        }
        if faults.stop.load(SeqCst) || closed.load(SeqCst) {
            return end("close", &from, &to);
        }
        if faults.stalled.load(SeqCst) {
            if to_client || client_closed {
                std::thread::sleep(POLL);
                continue;
            }
            // What clients send during a stall is taken in (so `client_bytes` shows it) and
            // held until the stall ends; a close is passed on after the held bytes.
            match from.read(&mut buf) {
                Ok(0) => client_closed = true,
                Ok(n) => {
                    faults.client_bytes.fetch_add(n, SeqCst);
                    held.extend_from_slice(&buf[..n]);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return end("close", &from, &to),
            }
            continue;
        }
        if !held.is_empty() {
            if to.write_all(&held).is_err() {
                return end("close", &from, &to);
            }
            held.clear();
        }
        if client_closed {
            return end("close", &from, &to);
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return end("close", &from, &to),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return end("close", &from, &to),
        };
        if !to_client {
            faults.client_bytes.fetch_add(n, SeqCst);
        }
        let delay = faults.delay_ms.load(SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        // Wait out a stall that began while this chunk was in hand (a reset ends it).
        if !wait_out_stall(faults, generation) {
            return end("reset", &from, &to);
        }
        let mut chunk = &buf[..n];
        let mut cut = false;
        if to_client {
            let budget = faults.cut_budget.load(SeqCst);
            if budget != usize::MAX {
                let allowed = budget.min(n);
                faults.cut_budget.store(budget - allowed, SeqCst);
                cut = allowed < n || budget - allowed == 0;
                chunk = &chunk[..allowed];
            }
        }
        if to_client {
            let budget = faults.stall_budget.load(SeqCst);
            if budget != usize::MAX && budget < chunk.len() {
                // Forward what the budget allows, stall, and forward the rest once resumed.
                faults.stall_budget.store(usize::MAX, SeqCst);
                faults.stalled.store(true, SeqCst);
                if to.write_all(&chunk[..budget]).is_err() {
                    return end("close", &from, &to);
                }
                chunk = &chunk[budget..];
                // A reset now cuts the reply mid-way with an RST.
                if !wait_out_stall(faults, generation) {
                    return end("reset", &from, &to);
                }
            } else if budget != usize::MAX {
                faults.stall_budget.store(budget - chunk.len(), SeqCst);
            }
        }
        if !chunk.is_empty() && to.write_all(chunk).is_err() {
            return end("close", &from, &to);
        }
        if cut {
            return end("close", &from, &to);
        }
    }
}

/// Waits while the proxy is stalled. Returns false when every connection of `generation` was
/// reset meanwhile (the caller resets its own), true when the stall ended or the proxy stops.
fn wait_out_stall(faults: &Faults, generation: u64) -> bool {
    while faults.stalled.load(SeqCst) && !faults.stop.load(SeqCst) {
        if faults.reset_generation.load(SeqCst) != generation {
            return false;
        }
        std::thread::sleep(POLL);
    }
    faults.reset_generation.load(SeqCst) == generation
}
