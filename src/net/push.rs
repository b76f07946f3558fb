//! Routing RESP3 push frames out of connections.
//!
//! A push (`>` frame) can arrive on any connection at any moment, before, between or after
//! replies: client-side-cache invalidations, Pub/Sub messages, server notices. The protocol
//! state never hands one out as a reply (`core::protocol`); the drivers give each to the
//! client's [`PushRouter`], which passes it to the consumers registered for its kind (the
//! first element of the frame: `invalidate`, `message`, ...). A push nobody registered for is
//! counted and dropped.
//!
//! Consumers run on the thread that read the frame: the caller's thread for a blocking
//! command, a runtime thread for the async driver. They must not block. They also hear when a
//! connection closes, since what a server tracks for a connection (client-side caching) ends
//! with it.

use crate::core::protocol::Protocol;
use crate::resp::Reply;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock, Weak};

/// Where a push came from: the node, and which of the client's connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOrigin {
    /// `host:port` or the socket path.
    pub address: Arc<str>,
    /// Unique among the client's connections, never reused.
    pub connection: u64,
}

/// Something that wants push frames: the client-side cache, a subscriber.
pub trait PushConsumer: Send + Sync {
    /// A push of a kind this consumer registered for.
    fn push(&self, origin: &PushOrigin, frame: &Reply);

    /// A connection closed (every consumer hears it, whatever its kinds).
    fn connection_closed(&self, _origin: &PushOrigin) {}
}

struct Entry {
    id: u64,
    kinds: Vec<Vec<u8>>,
    consumer: Arc<dyn PushConsumer>,
}

/// The pushes of one client, and who wants them.
#[derive(Default)]
pub struct PushRouter {
    consumers: RwLock<Vec<Entry>>,
    next_id: AtomicU64,
    next_connection: AtomicU64,
    unclaimed: AtomicU64,
}

/// Keeps a consumer registered; dropping it unregisters.
pub struct PushRegistration {
    router: Weak<PushRouter>,
    id: u64,
}

impl Drop for PushRegistration {
    fn drop(&mut self) {
        if let Some(router) = self.router.upgrade() {
            router.write().retain(|entry| entry.id != self.id);
        }
    }
}

impl PushRouter {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        self.consumers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Entry>> {
        self.consumers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `consumer` for pushes whose kind (first element) is one of `kinds`
    /// (compared without case).
    pub fn register(
        self: &Arc<Self>,
        kinds: &[&[u8]],
        consumer: Arc<dyn PushConsumer>,
    ) -> PushRegistration {
        let id = self.next_id.fetch_add(1, Relaxed);
        self.write().push(Entry {
            id,
            kinds: kinds.iter().map(|k| k.to_ascii_lowercase()).collect(),
            consumer,
        });
        PushRegistration {
            router: Arc::downgrade(self),
            id,
        }
    }

    /// Hands a push frame to the consumers of its kind.
    pub fn route(&self, origin: &PushOrigin, frame: &Reply) {
        let kind = frame
            .children()
            .first()
            .and_then(|n| n.as_bytes())
            .unwrap_or_default();
        let consumers = self.read();
        let mut claimed = false;
        for entry in consumers.iter() {
            if entry.kinds.iter().any(|k| kind.eq_ignore_ascii_case(k)) {
                entry.consumer.push(origin, frame);
                claimed = true;
            }
        }
        if !claimed {
            self.unclaimed.fetch_add(1, Relaxed);
        }
    }

    /// Tells every consumer that the connection of `origin` closed.
    pub fn connection_closed(&self, origin: &PushOrigin) {
        for entry in self.read().iter() {
            entry.consumer.connection_closed(origin);
        }
    }

    /// Pushes no consumer wanted.
    pub fn unclaimed(&self) -> u64 {
        self.unclaimed.load(Relaxed)
    }

    /// Routes the push frames of a new connection to `address` (its protocol state `proto`)
    /// here. The guard tells the consumers when the connection closes: the driver keeps it as
    /// long as the connection.
    pub fn attach(self: &Arc<Self>, address: Arc<str>, proto: &mut Protocol) -> AttachedConnection {
        let origin = PushOrigin {
            address,
            connection: self.next_connection.fetch_add(1, Relaxed),
        };
        let router = self.clone();
        let from = origin.clone();
        proto.set_push_handler(Some(Box::new(move |frame: Reply| {
            router.route(&from, &frame)
        })));
        AttachedConnection {
            router: self.clone(),
            origin,
        }
    }
}

/// A connection whose pushes go to a router; dropping it (when the connection closes) tells the
/// router's consumers.
pub struct AttachedConnection {
    router: Arc<PushRouter>,
    origin: PushOrigin,
}

impl AttachedConnection {
    pub fn origin(&self) -> &PushOrigin {
        &self.origin
    }
}

impl Drop for AttachedConnection {
    fn drop(&mut self) {
        self.router.connection_closed(&self.origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::ReplyKind;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl PushConsumer for Log {
        fn push(&self, origin: &PushOrigin, frame: &Reply) {
            let kind = frame.children()[0].as_str().unwrap_or("?").to_owned();
            self.0
                .lock()
                .unwrap()
                .push(format!("{}#{} {kind}", origin.address, origin.connection));
        }
        fn connection_closed(&self, origin: &PushOrigin) {
            self.0
                .lock()
                .unwrap()
                .push(format!("closed #{}", origin.connection));
        }
    }

    fn push(kind: &str) -> Reply {
        Reply::aggregate(
            ReplyKind::Push,
            vec![Reply::text(ReplyKind::String, kind.as_bytes())],
        )
    }

    #[test]
    fn pushes_go_to_the_consumers_of_their_kind() {
        let router = Arc::new(PushRouter::default());
        let cache = Arc::new(Log::default());
        let subscriber = Arc::new(Log::default());
        let cache_reg = router.register(&[b"invalidate"], cache.clone());
        let _sub_reg = router.register(&[b"message", b"pmessage"], subscriber.clone());
        let mut proto = Protocol::default();
        let attached = router.attach("127.0.0.1:6379".into(), &mut proto);
        // Frames as a server sends them, around a reply: only the reply comes out.
        proto.input_buffer().extend_from_slice(
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n+OK\r\n>3\r\n$7\r\nMESSAGE\r\n$1\r\nc\r\n$1\r\nm\r\n\
              >4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nm\r\n>1\r\n$21\r\ntracking-redir-broken\r\n:1\r\n",
        );
        assert_eq!(proto.next_reply().unwrap().unwrap().as_str(), Some("OK"));
        assert_eq!(proto.next_reply().unwrap().unwrap().as_integer(), Some(1));
        assert_eq!(router.unclaimed(), 1);
        assert_eq!(attached.origin().connection, 0);
        drop(attached);
        assert_eq!(
            *cache.0.lock().unwrap(),
            ["127.0.0.1:6379#0 invalidate", "closed #0"]
        );
        assert_eq!(subscriber.0.lock().unwrap().len(), 3);
        drop(cache_reg);
        let other = PushOrigin {
            address: "x".into(),
            connection: 1,
        };
        router.route(&other, &push("invalidate"));
        assert_eq!(cache.0.lock().unwrap().len(), 2, "unregistered");
        assert_eq!(router.unclaimed(), 2);
    }
}
