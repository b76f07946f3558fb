//! Transports (TCP, Unix socket, TLS), the blocking connection driver (`connection`), the
//! async driver (`mux`, over `async_connect`), push routing (`push`), and the readiness descriptor
//! event loops poll (`signal`).

pub mod async_connect;
pub mod connection;
pub mod errors;
pub(crate) mod mux;
pub mod push;
pub mod settings;
pub(crate) mod signal;
pub mod socket;
pub mod stream;
pub mod tls;

pub use connection::{ConnectSettings, Connection};
