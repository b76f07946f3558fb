//! Opening a connection for the async driver: the same transports (TCP, Unix socket, TLS) and
//! the same handshake plan as the blocking driver, on tokio.

use super::connection::ConnectSettings;
use super::errors::{closed_by_peer, io_error};
use super::push::AttachedConnection;
use crate::config::Endpoint;
use crate::core::handshake::{Handshake, Step};
use crate::core::protocol::Protocol;
use crate::core::{Error, Result, Status};
use socket2::{SockRef, TcpKeepalive};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connected byte stream for the async driver.
pub enum AsyncStream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncStream {
    /// A duplicate of a plain socket (TCP or Unix), for non-blocking writes from the threads
    /// that send requests (the mux's express lane); `None` under TLS, whose records only the
    /// task writes, or when the descriptor cannot be duplicated.
    pub fn express_socket(&self) -> Option<socket2::Socket> {
        match self {
            AsyncStream::Tcp(s) => SockRef::from(s).try_clone().ok(),
            AsyncStream::Unix(s) => SockRef::from(s).try_clone().ok(),
            AsyncStream::Tls(_) => None,
        }
    }

    /// The plain socket under the stream, out of tokio's reactor (for reads on the thread that
    /// dispatches callbacks, `mux::loop_reads`); a TLS stream is given back untouched.
    pub fn into_plain(self) -> std::result::Result<io::Result<socket2::Socket>, AsyncStream> {
        match self {
            AsyncStream::Tcp(s) => Ok(s.into_std().map(socket2::Socket::from)),
            AsyncStream::Unix(s) => Ok(s.into_std().map(socket2::Socket::from)),
            tls @ AsyncStream::Tls(_) => Err(tls),
        }
    }

    /// The socket under the stream (under TLS, the TCP socket).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            AsyncStream::Tcp(s) => s.as_raw_fd(),
            AsyncStream::Unix(s) => s.as_raw_fd(),
            AsyncStream::Tls(s) => s.get_ref().0.as_raw_fd(),
        }
    }
}

/// True when the peer has closed the socket (or it failed): a non-blocking peek, as the pool
/// makes before lending an idle connection. Bytes waiting are not a close (the reader takes
/// them). `fd` must be open for the duration of the call.
pub fn peer_closed(fd: std::os::fd::RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local buffer on a socket the caller keeps open.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => {
            let e = std::io::Error::last_os_error();
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            )
        }
    }
}

macro_rules! each_stream {
    ($self:ident, $s:ident => $body:expr) => {
        match $self.get_mut() {
            AsyncStream::Tcp($s) => $body,
            AsyncStream::Unix($s) => $body,
            AsyncStream::Tls($s) => $body,
        }
    };
}

impl AsyncRead for AsyncStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for AsyncStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Runs `fut` within `limit` (none: no limit); running out is TIMEOUT naming `what`.
pub async fn within<T>(
    limit: Option<Duration>,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match limit {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(Error::new(
                Status::Timeout,
                format!("{what} timed out after {} ms", limit.as_millis()),
            ))
        }),
    }
}

async fn open_tcp(settings: &ConnectSettings, host: &str, port: u16) -> Result<TcpStream> {
    let address = &settings.address;
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::new(Status::Connection, format!("cannot resolve {host:?}: {e}")))?
        .collect();
    let mut last = Error::new(Status::Connection, format!("{host:?} has no address"));
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if let Some(k) = settings.keepalive {
                    let params = TcpKeepalive::new()
                        .with_time(Duration::from_secs(k.idle_s.into()))
                        .with_interval(Duration::from_secs(k.interval_s.into()))
                        .with_retries(k.probes);
                    let _ = SockRef::from(&stream).set_tcp_keepalive(&params);
                }
                return Ok(stream);
            }
            Err(e) => last = io_error(&e, "connect to", address),
        }
    }
    Err(last)
}

/// A connection opened for the async driver.
pub struct AsyncConnection {
    pub stream: AsyncStream,
    pub proto: Protocol,
    /// Keeps the connection known to the push router (until the driver lets go of it).
    pub pushes: Option<AttachedConnection>,
}

/// Connects, runs the TLS and Redis handshakes, and returns the stream with its protocol state.
/// Errors never count as "sent": no caller's request has been written yet.
pub async fn connect(settings: &ConnectSettings) -> Result<AsyncConnection> {
    open(settings).await.map_err(|e| e.sent(false))
}

async fn open(settings: &ConnectSettings) -> Result<AsyncConnection> {
    let address = &settings.address;
    let connecting = format!("connect to {address}");
    let stream = within(settings.connect_timeout, &connecting, async {
        Ok(match &settings.endpoint {
            Endpoint::Unix(path) => AsyncStream::Unix(
                UnixStream::connect(path)
                    .await
                    .map_err(|e| io_error(&e, "connect to", address))?,
            ),
            Endpoint::Tcp { host, port } => {
                let tcp = open_tcp(settings, host, *port).await?;
                match &settings.tls {
                    None => AsyncStream::Tcp(tcp),
                    Some((config, name)) => AsyncStream::Tls(Box::new(
                        TlsConnector::from(config.clone())
                            .connect(name.clone(), tcp)
                            .await
                            .map_err(|e| io_error(&e, "TLS handshake with", address))?,
                    )),
                }
            }
        })
    })
    .await?;
    let mut stream = stream;
    let mut proto = Protocol::new(settings.limits);
    let pushes = settings
        .pushes
        .as_ref()
        .map(|router| router.attach(address.clone(), &mut proto));
    handshake(settings, &mut stream, &mut proto)
        .await
        .map_err(|e| e.context("handshake"))?;
    Ok(AsyncConnection {
        stream,
        proto,
        pushes,
    })
}

/// Runs the handshake plan: writes and reads as `core::handshake` says. Its replies must all
/// arrive within the read timeout from its start, however the peer trickles them.
async fn handshake(
    settings: &ConnectSettings,
    stream: &mut AsyncStream,
    proto: &mut Protocol,
) -> Result<()> {
    let address = &settings.address;
    let mut handshake = Handshake::new(&settings.handshake);
    let read_by = settings
        .read_timeout
        .map(|t| tokio::time::Instant::now() + t);
    loop {
        match handshake.poll(proto)? {
            Step::Write => {
                let write = write_all(stream, proto, address);
                within(settings.write_timeout, "write", write).await?;
            }
            Step::Read => {
                let read = read_some(stream, proto, address);
                match read_by {
                    None => read.await?,
                    Some(at) => tokio::time::timeout_at(at, read)
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                Status::Timeout,
                                format!("read from {address}: timed out"),
                            ))
                        })?,
                }
            }
            Step::Ready { .. } => return Ok(()),
        }
    }
}

/// Writes everything `proto` has queued.
pub async fn write_all(
    stream: &mut (impl AsyncWrite + Unpin),
    proto: &mut Protocol,
    address: &str,
) -> Result<()> {
    let pending = proto.output().len();
    let written = async {
        stream.write_all(proto.output()).await?;
        stream.flush().await
    };
    written
        .await
        .map_err(|e| io_error(&e, "write to", address))?;
    proto.consume_output(pending);
    Ok(())
}

/// Reads what the stream has into `proto`'s input buffer.
async fn read_some(
    stream: &mut (impl AsyncRead + Unpin),
    proto: &mut Protocol,
    address: &str,
) -> Result<()> {
    match stream.read_buf(proto.input_buffer()).await {
        Ok(0) => Err(closed_by_peer(address)),
        Ok(_) => Ok(()),
        Err(e) => Err(io_error(&e, "read from", address)),
    }
}
