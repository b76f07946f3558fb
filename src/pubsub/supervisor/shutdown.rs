//! How the supervisor ends: why it stopped ([`Ending`]), failing the callers still waiting,
//! letting go of every link and the queue, and telling the subscriber it has ([`Finished`],
//! set by [`FinishGuard`] however the task ends, a panic included).

use super::{Request, Supervisor};
use crate::core::{Error, Status};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Set when the supervisor has let go of every connection.
#[derive(Default)]
pub(crate) struct Finished {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Finished {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Waits up to `limit`; whether it finished.
    pub fn wait(&self, limit: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = self
            .changed
            .wait_timeout_while(done, limit, |done| !*done)
            .unwrap_or_else(|p| p.into_inner());
        *done
    }
}

/// Sets [`Finished`] however the supervisor ends (a panic included).
pub(super) struct FinishGuard(pub(super) Arc<Finished>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// Why the supervisor stopped.
pub(super) enum Ending {
    /// The subscriber is being freed: what is queued is dropped.
    Freed,
    /// The client was closed: what is queued can still be taken.
    ClientClosed,
}

impl Supervisor {
    pub(super) async fn shutdown(mut self, ending: Ending) {
        let _ = self.stop.send(true);
        let (status, why) = match ending {
            Ending::Freed => (Status::Closed, "the subscriber was freed"),
            Ending::ClientClosed => (Status::Closed, "the client was closed"),
        };
        let error = Error::new(status, why);
        for waiter in self.waiters.drain(..) {
            let _ = waiter.reply.send(Err(error.clone()));
        }
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            if let Request::Change { reply, .. } = request {
                let _ = reply.send(Err(error.clone()));
            }
        }
        self.links.clear();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.ctx.core.queue.close(matches!(ending, Ending::Freed));
    }
}
