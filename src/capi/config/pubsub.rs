//! Pub/Sub: a subscriber's message queue and the health check of its connections.

use super::{brisk_config, update};
use crate::capi::boundary::unknown_value;
use crate::capi::status::brisk_status;
use crate::config::Overflow;

/// What a subscriber does with a message that arrives while its queue is full.
pub type brisk_overflow = u32;

/// Drop the oldest waiting message to make room (the default): a slow consumer sees the most
/// recent messages.
pub const BRISK_OVERFLOW_DROP_OLDEST: brisk_overflow = 0;
/// Drop the arriving message: a slow consumer sees the oldest ones.
pub const BRISK_OVERFLOW_DROP_NEWEST: brisk_overflow = 1;
/// Stop reading the subscriber's connection until there is room: brisk drops nothing, the
/// messages wait in the server, whose output-buffer limit for Pub/Sub clients
/// (`client-output-buffer-limit pubsub`, 32 MB hard / 8 MB for 60 s by default) then applies:
/// past it the server closes the connection, and the subscriber reconnects and subscribes again.
pub const BRISK_OVERFLOW_BLOCK: brisk_overflow = 2;

/// The bound of each subscriber's message queue (default 10000 messages) and what happens when
/// it is full (default `BRISK_OVERFLOW_DROP_OLDEST`). Every dropped message is counted in
/// `BRISK_STAT_PUBSUB_DROPPED`. INVALID_ARGUMENT for `max_messages` 0 or an unknown policy.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_pubsub_queue(
    cfg: *mut brisk_config,
    max_messages: u32,
    policy: brisk_overflow,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        update(cfg, |c| {
            let overflow = Overflow::from_u32(policy)
                .ok_or_else(|| unknown_value("policy", "brisk_overflow", policy))?;
            c.pubsub.set_queue(max_messages, overflow)
        })
    }
}

/// How a subscriber finds a connection that died silently (a frozen server, a cut network): a
/// connection that read nothing for `interval_ms` (default 3000) is sent a PING, which must be
/// answered within `timeout_ms` (default 5000; any byte read meanwhile extends it); otherwise
/// the connection counts as lost and the subscriber reconnects and subscribes again.
/// `interval_ms` 0 turns the PINGs off. INVALID_ARGUMENT for `timeout_ms` 0 with PINGs on.
///
/// # Safety
/// `cfg` is NULL or a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_config_set_pubsub_health_check(
    cfg: *mut brisk_config,
    interval_ms: u32,
    timeout_ms: u32,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { update(cfg, |c| c.pubsub.set_health_check(interval_ms, timeout_ms)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_numbers_match() {
        for (c, overflow) in [
            (BRISK_OVERFLOW_DROP_OLDEST, Overflow::DropOldest),
            (BRISK_OVERFLOW_DROP_NEWEST, Overflow::DropNewest),
            (BRISK_OVERFLOW_BLOCK, Overflow::Block),
        ] {
            assert_eq!(Overflow::from_u32(c), Some(overflow));
            assert_eq!(overflow as u32, c);
        }
        assert_eq!(Overflow::from_u32(3), None);
    }
}
