//! Pub/Sub settings: the subscriber's message queue and the health check of its connections.

use super::Config;
use crate::core::retry::RetryPolicy;
use crate::core::{Error, Result};
use std::time::Duration;

/// What a subscriber does with a message that arrives while its queue is full. The numbers are
/// the C API's `brisk_overflow` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// The oldest waiting message is dropped to make room.
    #[default]
    DropOldest = 0,
    /// The arriving message is dropped.
    DropNewest = 1,
    /// The subscriber stops reading its connection until there is room: nothing is dropped by
    /// brisk, and the server's output-buffer limit for Pub/Sub clients applies instead.
    Block = 2,
}

impl Overflow {
    pub fn from_u32(n: u32) -> Option<Overflow> {
        Some(match n {
            0 => Overflow::DropOldest,
            1 => Overflow::DropNewest,
            2 => Overflow::Block,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PubSubSettings {
    /// Messages a subscriber's queue holds at most.
    pub queue_capacity: u32,
    pub overflow: Overflow,
    /// A subscriber's connection that read nothing for this long is sent a PING; 0: never.
    pub health_check_interval_ms: u32,
    /// How long that PING may take before the connection counts as lost.
    pub health_check_timeout_ms: u32,
}

impl Default for PubSubSettings {
    fn default() -> Self {
        PubSubSettings {
            queue_capacity: 10_000,
            overflow: Overflow::DropOldest,
            health_check_interval_ms: 3_000,
            health_check_timeout_ms: 5_000,
        }
    }
}

impl PubSubSettings {
    pub fn set_queue(&mut self, capacity: u32, overflow: Overflow) -> Result<()> {
        if capacity == 0 {
            return Err(Error::invalid_argument(
                "pubsub queue max_messages must be at least 1",
            ));
        }
        self.queue_capacity = capacity;
        self.overflow = overflow;
        Ok(())
    }

    pub fn set_health_check(&mut self, interval_ms: u32, timeout_ms: u32) -> Result<()> {
        if interval_ms != 0 && timeout_ms == 0 {
            return Err(Error::invalid_argument(
                "pubsub health check timeout_ms must be at least 1 when interval_ms is set",
            ));
        }
        self.health_check_interval_ms = interval_ms;
        self.health_check_timeout_ms = timeout_ms;
        Ok(())
    }
}

/// How a subscriber's connections are checked while they are quiet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HealthCheck {
    /// PING after this long without a byte read; `None`: never.
    pub interval: Option<Duration>,
    /// How long the PING may wait for its answer.
    pub timeout: Duration,
}

/// A client's Pub/Sub settings, resolved once when the client is made: what the subscribers made
/// from it use. (Resolved here, below both the client's shared state and `pubsub`, so that the
/// one holds them and the other reads them without either importing the other.)
#[derive(Clone, Debug)]
pub(crate) struct SubscriberSettings {
    pub queue_capacity: usize,
    pub overflow: Overflow,
    pub health: HealthCheck,
    /// The client's retry policy as configured (a cluster's per-node default of no retries does
    /// not apply: a subscriber reconnects whatever the topology).
    pub reconnect: RetryPolicy,
}

impl SubscriberSettings {
    pub fn from_config(config: &Config) -> SubscriberSettings {
        let pubsub = &config.pubsub;
        SubscriberSettings {
            queue_capacity: pubsub.queue_capacity as usize,
            overflow: pubsub.overflow,
            health: HealthCheck {
                interval: super::limit(pubsub.health_check_interval_ms),
                timeout: Duration::from_millis(u64::from(pubsub.health_check_timeout_ms.max(1))),
            },
            reconnect: config.retry.resolve().policy,
        }
    }
}
