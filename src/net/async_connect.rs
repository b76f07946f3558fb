//! Opening a connection for the async driver: the same transports (TCP, Unix socket, TLS) and
//! the same handshake plan as the blocking driver, on tokio.

use super::connection::ConnectSettings;
use super::errors::{closed_by_peer, io_error};
use crate::config::Endpoint;
use crate::core::handshake::{Outcome, Stage};
use crate::core::protocol::Protocol;
use crate::core::{Error, Result, Status};
use crate::resp::{Node, Reply};
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

/// Connects, runs the TLS and Redis handshakes, and returns the stream with its protocol state.
/// Errors never count as "sent": no caller's request has been written yet.
pub async fn connect(settings: &ConnectSettings) -> Result<(AsyncStream, Protocol)> {
    open(settings).await.map_err(|e| e.sent(false))
}

async fn open(settings: &ConnectSettings) -> Result<(AsyncStream, Protocol)> {
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
    handshake(settings, &mut stream, &mut proto)
        .await
        .map_err(|e| e.context("handshake"))?;
    Ok((stream, proto))
}

async fn handshake(
    settings: &ConnectSettings,
    stream: &mut AsyncStream,
    proto: &mut Protocol,
) -> Result<()> {
    let params = &settings.handshake;
    let mut stage = params.first_stage();
    loop {
        let commands = params.commands(stage);
        if commands.is_empty() {
            return Ok(());
        }
        for command in &commands {
            proto.queue_owned(command);
        }
        within(
            settings.write_timeout,
            "write",
            write_all(stream, proto, &settings.address),
        )
        .await?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in 0..commands.len() {
            let reply = within(
                settings.read_timeout,
                "read",
                read_reply(stream, proto, &settings.address),
            );
            replies.push(reply.await?);
        }
        let nodes: Vec<&Node> = replies.iter().map(|r| r.node()).collect();
        match params.check(stage, &nodes) {
            Outcome::Ready { .. } => return Ok(()),
            Outcome::Fallback => stage = Stage::Legacy,
            Outcome::Failed(e) => return Err(e),
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

/// Reads until `proto` has a complete reply.
pub async fn read_reply(
    stream: &mut (impl AsyncRead + Unpin),
    proto: &mut Protocol,
    address: &str,
) -> Result<Reply> {
    loop {
        if let Some(reply) = proto.next_reply()? {
            return Ok(reply);
        }
        match stream.read_buf(proto.input_buffer()).await {
            Ok(0) => return Err(closed_by_peer(address)),
            Ok(_) => {}
            Err(e) => return Err(io_error(&e, "read from", address)),
        }
    }
}
