//! brisk: a Redis and Valkey client with a small, stable C API.
//!
//! The crate is layered so that each layer can be read and tested alone (each imports only
//! from the layers below it):
//!
//! - [`resp`]: RESP2/RESP3 encoder and incremental decoder (sans-IO, zero-copy replies).
//! - [`core`]: pure logic: statuses and errors, error-reply classification, the attempt engine
//!   (retries, deadlines, redirections as decisions on data), the handshake, per-connection
//!   protocol state, command facts, cluster slots.
//! - [`config`]: the client configuration and URL parsing.
//! - [`net`]: sockets, TLS, the blocking driver, the async driver (`mux`), push routing.
//! - `node`: one server's pool and mux; `route`: the routing seam (standalone, cluster);
//!   `exec`: the drivers of the attempt engine over the route, blocking and async.
//! - [`client`], [`pipeline`], [`session`]: the Rust API that the C API wraps; [`pubsub`]:
//!   subscribers (their own connections, resubscription, the message queue).
//! - `capi`: the C ABI, the only place with `extern "C"`.
//!
//! `docs/ARCHITECTURE.md` walks through how a command flows through these layers.

mod cache;
pub mod client;
pub mod config;
pub mod core;
mod exec;
pub mod net;
mod node;
pub mod pipeline;
pub mod pubsub;
pub mod resp;
mod route;
mod runtime;
pub mod session;
pub mod telemetry;
pub(crate) mod thread_id;

pub mod capi;

pub use client::Client;
pub use config::Config;
pub use core::{Error, Result, Status};
pub use pipeline::Pipeline;
pub use pubsub::{Message, Subscriber};
pub use resp::{Args, Reply, ReplyKind};
pub use session::Session;
pub use telemetry::{events, stats};
