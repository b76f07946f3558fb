//! Pure logic shared by every driver: statuses and errors, error-reply classification, the
//! attempt engine, the connection handshake as data, the per-connection protocol state, Redis
//! Cluster's slots and keys, Sentinel's replies, and what a Pub/Sub subscriber's frames mean.
//! Nothing here opens a socket or reads the clock.

pub mod attempt;
pub mod cache;
pub mod cluster;
pub mod command_table;
pub mod commands;
pub mod error;
pub mod format;
pub mod handshake;
pub mod hash;
pub mod protocol;
pub mod pubsub;
pub mod retry;
pub mod sentinel;
pub mod server_error;
pub mod status;
pub mod transaction;

pub use error::{Error, Result};
pub use status::{Category, Status};
