//! The client: a thread-safe handle that runs commands on pooled connections (or, async, on
//! multiplexed ones), by whatever topology its config describes.
//!
//! Everything here is thin: the routing seam (`route/`) says which node serves a command, the
//! drivers (`exec/`) run it by the attempt engine's rules (`core::attempt`).

use crate::config::Config;
use crate::core::Result;
use crate::exec::{self, Shared, async_command};
use crate::net::push::{PushConsumer, PushRegistration};
use crate::pipeline::Pipeline;
use crate::pubsub::{MessageHandler, Subscriber};
use crate::resp::{Args, Reply};
use crate::session::Session;
use crate::telemetry::stats::Stat;
use std::sync::Arc;

pub use crate::exec::async_command::Callback;

pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// Builds a client from `config` (copied). Connections are opened when first needed (or in
    /// the background, with `pool_min_idle`).
    pub fn new(config: &Config) -> Result<Client> {
        Ok(Client {
            shared: Shared::new(config)?,
        })
    }

    /// Runs one command and returns its reply, retrying by the client's rules. An error reply
    /// is `Err` with the server's text and the mapped status.
    pub fn command(&self, args: &Args<'_>) -> Result<Reply> {
        exec::command(&self.shared, args)
    }

    /// Starts one command without waiting for it. `callback` runs exactly once, on a brisk
    /// runtime thread (with [`AsyncDispatch::Caller`](crate::config::AsyncDispatch), on the
    /// thread that calls [`Client::async_dispatch`]), with the reply or the failure (same retry rules, timeouts and statuses as
    /// [`Client::command`]). Concurrent async commands are pipelined onto a shared connection.
    /// On `Err` (bad arguments, a closed client) the callback is never called.
    pub fn command_async(&self, args: &Args<'_>, callback: Callback) -> Result<()> {
        async_command::start(&self.shared, args, callback)
    }

    /// [`Client::command_async`] with the callback kept in the command's own allocation
    /// rather than a box of its own (one allocation less per command).
    pub fn command_async_with<F>(&self, args: &Args<'_>, callback: F) -> Result<()>
    where
        F: FnOnce(Result<Reply>) + Send + 'static,
    {
        async_command::start(&self.shared, args, callback)
    }

    /// With [`AsyncDispatch::Caller`](crate::config::AsyncDispatch): a descriptor that is
    /// readable (level-triggered) while [`Client::async_dispatch`] has work: callbacks waiting,
    /// replies waiting in a plain connection (the dispatch reads them on its own thread), or
    /// commands the dispatching thread sent waiting for its next dispatch to be written. Owned
    /// by the client: do not read, write or close it. INVALID_ARGUMENT without caller dispatch.
    pub fn async_fd(&self) -> Result<std::os::fd::RawFd> {
        self.shared.async_state.fd()
    }

    /// With [`AsyncDispatch::Caller`](crate::config::AsyncDispatch): runs up to `max` waiting
    /// async callbacks (0: all those waiting now) on this thread, in completion order, and
    /// returns how many ran, after reading the replies waiting in the client's plain
    /// connections (up to 1 MiB each). 0 without caller dispatch, and from inside a callback
    /// of this client. A thread that dispatched callbacks is the client's event loop: the commands it
    /// sends to the client afterwards are written together when the callbacks have run or at
    /// its next dispatch (the descriptor is readable meanwhile); without one, the connection's
    /// reader writes them after its next read or within 100 ms.
    pub fn async_dispatch(&self, max: usize) -> usize {
        self.shared.async_state.dispatch(max)
    }

    pub fn ping(&self) -> Result<()> {
        let args: [&[u8]; 1] = [b"PING"];
        self.command(&Args::from_slices(&args)).map(drop)
    }

    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(self.shared.clone(), false)
    }

    pub fn transaction(&self) -> Pipeline {
        Pipeline::new(self.shared.clone(), true)
    }

    pub fn session(&self) -> Result<Session> {
        Session::new(self.shared.clone())
    }

    /// A Pub/Sub subscriber on connections of its own (see [`crate::pubsub`]). With a
    /// `handler`, each message is handed to it on the subscriber's own thread, in arrival
    /// order; without, messages are taken with [`Subscriber::next`].
    pub fn subscriber(&self, handler: Option<MessageHandler>) -> Result<Subscriber> {
        Subscriber::new(self.shared.clone(), handler)
    }

    /// A counter or gauge (see [`Stat`]).
    pub fn stat(&self, stat: Stat) -> u64 {
        self.shared.stat(stat)
    }

    /// Drops every client-side cache entry now (nothing when the cache is off).
    pub fn cache_flush(&self) {
        if let Some(cache) = &self.shared.cache {
            cache.flush();
        }
    }

    /// Registers `consumer` for the RESP3 push frames of the given kinds (the first element of
    /// the frame: `invalidate`, `message`, ...) that arrive on any of the client's connections;
    /// it also hears when a connection closes. It runs on the thread that read the frame and
    /// must not block. Dropping the registration unregisters it. This is the hook client-side
    /// caching and Pub/Sub are built on.
    pub fn register_push_consumer(
        &self,
        kinds: &[&[u8]],
        consumer: Arc<dyn PushConsumer>,
    ) -> PushRegistration {
        self.shared.pushes.register(kinds, consumer)
    }

    /// Exports the OpenTelemetry spans and metrics buffered now, waiting at most `timeout`:
    /// true when they were sent (or OpenTelemetry is off), false when the time ran out.
    pub fn flush_telemetry(&self, timeout: std::time::Duration) -> bool {
        self.shared
            .observer
            .otel()
            .is_none_or(|otel| otel.flush(timeout))
    }

    /// Spans dropped so far because the export queue was full or the collector failed.
    pub fn telemetry_dropped_spans(&self) -> u64 {
        self.shared
            .observer
            .otel()
            .map_or(0, |otel| otel.dropped_spans())
    }

    /// Closes every idle connection; borrowed ones close when returned. Later commands, and
    /// those of pipelines and sessions made from this client, fail with CLOSED.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}
