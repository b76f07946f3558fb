//! Turning I/O failures into statuses.

use crate::core::{Error, Status};
use std::io;

/// Maps an I/O error to CONNECTION, TIMEOUT or TLS, with `op` and `address` as context.
pub fn io_error(e: &io::Error, op: &str, address: &str) -> Error {
    let status = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Status::Timeout,
        _ if tls_error(e).is_some() => Status::Tls,
        _ => Status::Connection,
    };
    let what = match (status, tls_error(e)) {
        (Status::Timeout, _) => "timed out".to_owned(),
        (_, Some(tls)) => format!("TLS: {tls}"),
        _ => describe(e),
    };
    let message = match (op.is_empty(), address.is_empty()) {
        (true, _) => what,
        (false, true) => format!("{op}: {what}"),
        (false, false) => format!("{op} {address}: {what}"),
    };
    Error::new(status, message)
}

fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        io::ErrorKind::BrokenPipe => "connection closed by peer (broken pipe)".into(),
        io::ErrorKind::UnexpectedEof => "connection closed by peer".into(),
        _ => e.to_string(),
    }
}

/// The peer closed the connection in the middle of an exchange.
pub fn closed_by_peer(address: &str) -> Error {
    Error::new(
        Status::Connection,
        format!("connection to {address} closed by the server"),
    )
}
