//! A byte stream to a server: a plain socket or TLS over one.

use super::socket::{IdleInput, Socket};
use bytes::BytesMut;
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};

const TLS_READ_WINDOW: usize = 64 * 1024;

pub enum Stream {
    Plain(Socket),
    Tls(Box<StreamOwned<ClientConnection, Socket>>),
}

impl Stream {
    pub fn socket(&self) -> &Socket {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    /// Runs the TLS handshake to completion (a no-op for plain sockets), so that certificate
    /// problems surface while connecting rather than on the first command.
    pub fn finish_handshake(&mut self) -> io::Result<()> {
        if let Stream::Tls(t) = self {
            while t.conn.is_handshaking() {
                t.conn.complete_io(&mut t.sock)?;
            }
        }
        Ok(())
    }

    /// Reads into the spare capacity of `buf`; `Ok(0)` is end of stream.
    pub fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.recv_into(buf),
            Stream::Tls(t) => {
                // rustls wants an initialised slice; zero a bounded window, not the whole
                // (possibly huge) capacity.
                let start = buf.len();
                buf.resize(buf.capacity().min(start + TLS_READ_WINDOW), 0);
                let result = t.read(&mut buf[start..]);
                buf.truncate(start + *result.as_ref().unwrap_or(&0));
                result
            }
        }
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.send(data),
            Stream::Tls(t) => {
                let n = t.write(data)?;
                // rustls buffers records; push them to the socket now.
                t.flush()?;
                Ok(n)
            }
        }
    }

    /// What an idle connection has waiting (for TLS, the records under it: a close_notify
    /// shows as bytes).
    pub fn idle_input(&self) -> IdleInput {
        self.socket().idle_input()
    }

    /// Reads what a plain socket has without waiting; `None` for TLS, whose records cannot be
    /// read without waiting for a whole one.
    pub fn read_available(&mut self, buf: &mut BytesMut) -> Option<io::Result<usize>> {
        match self {
            Stream::Plain(s) => Some(s.recv_available(buf)),
            Stream::Tls(_) => None,
        }
    }
}
