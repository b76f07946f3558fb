//! Fake peers for failure tests: a server that never answers, one that answers with fixed
//! bytes, and a port with nothing listening. Each stops its threads in `Drop`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A listener on a free loopback port running `serve` for every accepted connection on its own
/// thread, until dropped. `serve` must return soon after the flag it gets is set: `Drop` joins
/// every connection thread.
pub(super) struct Listener {
    pub(super) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub(super) fn start(
        serve: impl Fn(TcpStream, &AtomicBool) + Send + Sync + 'static,
    ) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut connections = Vec::new();
            for conn in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (serve, stop) = (serve.clone(), stop_flag.clone());
                connections.push(std::thread::spawn(move || serve(conn, &stop)));
            }
            for c in connections {
                let _ = c.join();
            }
        });
        Listener {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often connection threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Reads from `conn` until EOF or stop, calling `on_data` for each chunk read.
fn read_loop(mut conn: TcpStream, stop: &AtomicBool, mut on_data: impl FnMut(&mut TcpStream)) {
    let _ = conn.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => on_data(&mut conn),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Accepts connections and reads requests, but never answers: for read timeouts.
pub struct SilentServer {
    listener: Listener,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        SilentServer {
            listener: Listener::start(|conn, stop| read_loop(conn, stop, |_| {})),
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.addr.port()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }
}

/// Answers every chunk of request bytes it reads with the same raw bytes: for protocol garbage
/// and truncated replies.
pub struct ScriptedServer {
    listener: Listener,
}

impl ScriptedServer {
    /// Replies with `reply` and keeps the connection open.
    pub fn replying(reply: &[u8]) -> ScriptedServer {
        ScriptedServer::start(reply.to_vec(), false)
    }

    /// Replies with `reply` once, then closes the connection.
    pub fn replying_then_closing(reply: &[u8]) -> ScriptedServer {
        ScriptedServer::start(reply.to_vec(), true)
    }

    fn start(reply: Vec<u8>, close: bool) -> ScriptedServer {
        let listener = Listener::start(move |conn, stop| {
            let mut done = false;
            read_loop(conn, stop, |conn| {
                if done {
                    return;
                }
                let _ = conn.write_all(&reply);
                if close {
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                    done = true;
                }
            })
        });
        ScriptedServer { listener }
    }

    pub fn port(&self) -> u16 {
        self.listener.addr.port()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }
}

/// A loopback port that refuses connections for as long as this value lives: a TCP socket is
/// bound to it but not listening, so no other process can start listening there meanwhile.
pub struct ClosedPort {
    _socket: socket2::Socket,
    port: u16,
}

/// A [`ClosedPort`]; keep it alive while the port is in use.
pub fn closed_port() -> ClosedPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&addr.into()).expect("bind 127.0.0.1:0");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address")
        .port();
    ClosedPort {
        _socket: socket,
        port,
    }
}

impl ClosedPort {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A listener that never accepts and whose accept queue is full, so a new connection attempt
/// gets no answer at all (its SYN is dropped): for connect timeouts.
pub struct FullBacklog {
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
    port: u16,
}

impl FullBacklog {
    pub fn start() -> FullBacklog {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        listener.bind(&addr.into()).expect("bind 127.0.0.1:0");
        listener.listen(0).expect("listen");
        let addr = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("bound address");
        // Fill the queue until a connection attempt goes unanswered.
        let mut queued = Vec::new();
        loop {
            assert!(queued.len() < 64, "the accept queue never filled up");
            match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(conn) => queued.push(conn),
                Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                    break;
                }
                Err(e) => panic!("filling the accept queue: {e}"),
            }
        }
        FullBacklog {
            _listener: listener,
            _queued: queued,
            port: addr.port(),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}
