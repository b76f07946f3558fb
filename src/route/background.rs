//! A topology read in the background, one at a time, that async commands can wait for without a
//! thread ([`RefreshTicket`]): shared by the topologies that change (cluster, Sentinel).

use super::RefreshTicket;
use crate::core::{Error, Result, Status};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct BackgroundRefresh(Arc<Inner>);

struct Inner {
    queued: AtomicBool,
    /// Reads finished (successful or not), for the commands waiting for one.
    finished: watch::Sender<u64>,
    /// How the last read failed, if it did.
    last_failure: Arc<Mutex<Option<Error>>>,
}

impl Default for BackgroundRefresh {
    fn default() -> Self {
        BackgroundRefresh(Arc::new(Inner {
            queued: AtomicBool::new(false),
            finished: watch::channel(0).0,
            last_failure: Arc::default(),
        }))
    }
}

impl BackgroundRefresh {
    /// Runs `read` on a runtime thread, unless a read is queued already (then that one serves).
    /// False when no thread could be started for it.
    pub fn queue(&self, read: impl FnOnce() -> Result<()> + Send + 'static) -> bool {
        if self.0.queued.swap(true, Relaxed) {
            return true;
        }
        let inner = self.0.clone();
        let queued = crate::runtime::spawn_blocking(move || {
            let failure = read().err();
            *inner.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
            // Cleared before the count moves: whoever sees the new count and asks again gets a
            // new read, not a "queued already" for this finished one.
            inner.queued.store(false, Relaxed);
            inner.finished.send_modify(|n| *n += 1);
        });
        if !queued {
            self.0.queued.store(false, Relaxed);
        }
        queued
    }

    /// A ticket for a read that starts after this call; `queue` queues it (see
    /// [`BackgroundRefresh::queue`]).
    pub fn ticket(&self, queue: impl FnOnce() -> bool) -> Option<Result<RefreshTicket>> {
        let mut finished = self.0.finished.subscribe();
        let seen = *finished.borrow_and_update();
        if !queue() {
            return Some(Err(Error::new(
                Status::Internal,
                "the async runtime is not running (could not start its threads)",
            )));
        }
        Some(Ok(RefreshTicket::new(
            finished,
            seen,
            self.0.last_failure.clone(),
        )))
    }
}
