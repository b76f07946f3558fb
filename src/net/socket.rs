//! A connected TCP or Unix socket, with the options a Redis connection wants.
//!
//! Sends use `MSG_NOSIGNAL`: brisk lives inside C programs that have not ignored SIGPIPE, and a
//! write to a connection the server closed must be an error, not the death of the process.

use super::errors::io_error;
use crate::config::{Endpoint, Keepalive};
use crate::core::{Error, Result, Status};
use bytes::BytesMut;
use socket2::{Domain, SockAddr, SockRef, Socket as RawSocket, TcpKeepalive, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

pub struct Socket {
    inner: RawSocket,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

impl Socket {
    /// Connects to `endpoint`, trying each resolved address in turn within `timeout` overall.
    pub fn connect(
        endpoint: &Endpoint,
        timeout: Option<Duration>,
        keepalive: Option<Keepalive>,
    ) -> Result<Socket> {
        let address = endpoint.address();
        let socket = match endpoint {
            Endpoint::Tcp { host, port } => connect_tcp(host, *port, timeout, keepalive),
            Endpoint::Unix(path) => {
                let addr = SockAddr::unix(path).map_err(|e| io_error(&e, "connect", &address))?;
                connect_addr(Domain::UNIX, &addr, timeout)
            }
        };
        socket.map_err(|e| e.context(format!("connect to {address}")))
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.inner.as_raw_fd()
    }

    /// A handle that another thread can use to wake a read blocked on this socket.
    pub fn interrupter(&self) -> io::Result<Interrupter> {
        Ok(Interrupter(self.inner.try_clone()?))
    }

    pub fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(read)?;
        self.inner.set_write_timeout(write)
    }

    pub fn set_read_timeout(&self, read: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(read)
    }

    /// Reads and writes return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self) -> io::Result<()> {
        self.inner.set_nonblocking(true)
    }

    /// Reads what is available (blocking up to the read timeout) into the spare capacity of
    /// `buf`. `Ok(0)` means the peer closed the connection.
    pub fn recv_into(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        let n = self.inner.recv(spare)?;
        // SAFETY: recv initialised the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }

    pub fn send(&self, data: &[u8]) -> io::Result<usize> {
        self.inner.send_with_flags(data, SEND_FLAGS)
    }

    /// How many bytes sent on this TCP connection the peer has acknowledged (Linux's
    /// `tcpi_bytes_acked`, which may count the SYN too); `None` for other sockets and systems.
    /// The peer's kernel acknowledges data only while its socket is open: bytes that reach a
    /// socket the server has closed are answered with a reset instead, unacknowledged.
    pub fn bytes_acked(&self) -> Option<u64> {
        tcp_bytes_acked(self.raw_fd())
    }

    /// What an idle connection has waiting, seen with a non-blocking peek (no byte consumed).
    pub fn idle_input(&self) -> IdleInput {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match self
            .inner
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            Ok(0) => IdleInput::Closed,
            Ok(_) => IdleInput::Bytes,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => IdleInput::Nothing,
            Err(_) => IdleInput::Closed,
        }
    }

    /// Reads what is available without waiting into the spare capacity of `buf` (`WouldBlock`
    /// when nothing is).
    pub fn recv_available(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        let n = self.inner.recv_with_flags(spare, libc::MSG_DONTWAIT)?;
        // SAFETY: recv initialised the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }
}

/// What an idle connection has waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleInput {
    Nothing,
    /// The peer closed it (or it failed).
    Closed,
    /// Bytes nobody asked for: push frames, or something that means the stream is off.
    Bytes,
}

/// Wakes a thread blocked on a socket from another thread (closing a client interrupts the
/// blocking commands it runs, BLPOP with no timeout among them) by shutting the socket down.
/// It holds a duplicate of the descriptor, so it stays valid whatever happens to the
/// connection meanwhile: the shutdown then reaches a socket nobody reads any more, harmlessly.
pub struct Interrupter(RawSocket);

impl Interrupter {
    pub fn interrupt(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(target_os = "linux")]
fn tcp_bytes_acked(fd: std::os::fd::RawFd) -> Option<u64> {
    // SAFETY: `tcp_info` is plain integers, for which all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes; the kernel writes at most that and says how
    // many it wrote (older kernels write less: the field is then missing).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
    (rc == 0 && len as usize >= needed).then_some(info.tcpi_bytes_acked)
}

#[cfg(not(target_os = "linux"))]
fn tcp_bytes_acked(_fd: std::os::fd::RawFd) -> Option<u64> {
    None
}

fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Option<Duration>,
    keepalive: Option<Keepalive>,
) -> Result<Socket> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(Status::Connection, format!("cannot resolve {host:?}: {e}")))?
        .collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut last_error = Error::new(Status::Connection, format!("{host:?} has no address"));
    for addr in addrs {
        let remaining = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => break,
            },
            None => None,
        };
        let domain = Domain::for_address(addr);
        match connect_addr(domain, &addr.into(), remaining) {
            Ok(socket) => {
                socket
                    .inner
                    .set_tcp_nodelay(true)
                    .map_err(|e| io_error(&e, "set TCP_NODELAY", ""))?;
                if let Some(k) = keepalive {
                    let params = TcpKeepalive::new()
                        .with_time(Duration::from_secs(k.idle_s.into()))
                        .with_interval(Duration::from_secs(k.interval_s.into()))
                        .with_retries(k.probes);
                    SockRef::from(&socket.inner)
                        .set_tcp_keepalive(&params)
                        .map_err(|e| io_error(&e, "set keepalive", ""))?;
                }
                return Ok(socket);
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn connect_addr(domain: Domain, addr: &SockAddr, timeout: Option<Duration>) -> Result<Socket> {
    let inner = RawSocket::new(domain, Type::STREAM.cloexec(), None)
        .map_err(|e| io_error(&e, "create socket", ""))?;
    let connected = match timeout {
        Some(t) => inner.connect_timeout(addr, t),
        None => inner.connect(addr),
    };
    connected.map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::new(
            Status::Timeout,
            format!(
                "timed out after {} ms",
                timeout.unwrap_or_default().as_millis()
            ),
        ),
        _ => io_error(&e, "", ""),
    })?;
    Ok(Socket { inner })
}

/// rustls drives the socket through `Read`/`Write`.
impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &self.inner, buf)
    }
}

impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
