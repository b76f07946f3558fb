//! brisk: a Redis and Valkey client with a small, stable C API.
//!
//! The crate is layered so that each layer can be read and tested alone:
//!
//! - [`resp`]: RESP2/RESP3 encoder and incremental decoder (sans-IO, zero-copy replies).
//! - [`core`]: pure logic: statuses and errors, error-reply classification, the handshake as
//!   data, per-connection protocol state, command facts.
//! - [`config`]: the client configuration and URL parsing.
//! - [`net`]: sockets, TLS and the blocking connection driver.
//! - [`pool`], [`client`], [`pipeline`], [`session`]: connection pooling and the Rust API that
//!   the C API wraps.
//! - `capi`: the C ABI, the only place with `extern "C"`.
//!
//! `docs/ARCHITECTURE.md` walks through how a command flows through these layers.

mod async_client;
pub mod client;
pub mod config;
pub mod core;
pub mod events;
mod execute;
mod mux;
pub mod net;
pub mod pipeline;
pub mod pool;
pub mod resp;
mod runtime;
pub mod session;
pub mod stats;

pub mod capi;

pub use client::Client;
pub use config::Config;
pub use core::{Error, Result, Status};
pub use pipeline::Pipeline;
pub use resp::{Args, Reply, ReplyKind};
pub use session::Session;
