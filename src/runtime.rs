//! The one tokio runtime brisk starts, lazily, for background work: the async API's multiplexed
//! connections, retry backoffs and callbacks, pool maintenance, and cluster topology reads (on
//! its blocking threads, at most 8; async blocking commands such as BLPOP get threads of their
//! own instead, see `async_client::start_blocking`). Its threads are named `brisk-runtime`.
//!
//! tokio's threads do not survive `fork()`: a program that forks must create its clients after
//! the fork.

use once_cell::sync::Lazy;
use std::future::Future;
use tokio::runtime::{Builder, Runtime};

static RUNTIME: Lazy<Option<Runtime>> = Lazy::new(|| {
    Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("brisk-runtime")
        .enable_time()
        .enable_io()
        .build()
        .ok()
});

/// Spawns background work. Returns false when the runtime could not be started (the process
/// is out of threads); background upkeep is then skipped, and every foreground path still works.
pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> bool {
    match RUNTIME.as_ref() {
        Some(rt) => {
            rt.spawn(task);
            true
        }
        None => false,
    }
}

/// Runs blocking work on the runtime's blocking threads. Returns false when the runtime could
/// not be started.
pub fn spawn_blocking(work: impl FnOnce() + Send + 'static) -> bool {
    match RUNTIME.as_ref() {
        Some(rt) => {
            rt.spawn_blocking(work);
            true
        }
        None => false,
    }
}

/// Makes the calling thread count as one of the runtime's for as long as the guard lives: the
/// threads brisk starts for blocking commands run callbacks, and a callback that frees its
/// client must find `close` not waiting for that very callback (see `AsyncState::close`).
pub fn enter() -> Option<tokio::runtime::EnterGuard<'static>> {
    RUNTIME.as_ref().map(Runtime::enter)
}

/// Whether the runtime is there (it could not be started when the process is out of threads).
pub fn is_running() -> bool {
    RUNTIME.is_some()
}
