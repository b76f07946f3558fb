//! Transports (TCP, Unix socket, TLS) and the blocking connection driver.

pub mod async_connect;
pub mod connection;
pub mod errors;
pub mod socket;
pub mod stream;
pub mod tls;

pub use connection::{ConnectSettings, Connection};
