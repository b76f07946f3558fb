//! The writing side of a mux's connection, for the mux task: the stream's write half, or, for a
//! socket the dispatching thread reads (`loop_reads`), the bare socket, which tokio watches only
//! for room to write (never for bytes to read: those wake the application's loop instead).

use super::express::SEND_FLAGS;
use crate::net::async_connect::AsyncStream;
use std::io;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWriteExt, WriteHalf};

pub(super) enum Writer {
    Stream(WriteHalf<AsyncStream>),
    Socket(AsyncFd<socket2::Socket>),
}

impl Writer {
    /// Writes all of `buffer`, each write call bounded by `timeout` (as a blocking socket's send
    /// timeout bounds each `send`): a peer that takes no bytes for that long is a TIMEOUT.
    pub async fn write_all(
        &mut self,
        mut buffer: &[u8],
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        while !buffer.is_empty() {
            let written = match timeout {
                Some(limit) => tokio::time::timeout(limit, self.write(buffer))
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))?,
                None => self.write(buffer).await?,
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buffer = &buffer[written..];
        }
        match self {
            Writer::Stream(half) => half.flush().await,
            Writer::Socket(_) => Ok(()),
        }
    }

    async fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Stream(half) => half.write(buffer).await,
            Writer::Socket(socket) => loop {
                let mut ready = socket.writable().await?;
                if let Ok(written) =
                    ready.try_io(|s| s.get_ref().send_with_flags(buffer, SEND_FLAGS))
                {
                    return written;
                }
            },
        }
    }
}
