//! Transports (TCP, Unix socket, TLS), the blocking connection driver (`connection`), the
//! async driver (`mux`, over `async_connect`), and push routing (`push`).

pub mod async_connect;
pub mod connection;
pub mod errors;
pub(crate) mod mux;
pub mod push;
pub mod settings;
pub mod socket;
pub mod stream;
pub mod tls;

pub use connection::{ConnectSettings, Connection};
