//! `brisk_subscriber` and `brisk_message`: Pub/Sub.

#![allow(non_camel_case_types)]

use super::args::{ArgLengths, command_args};
use super::boundary::{
    Handle, UserData, free_handle, guard, guard_out, guard_value, into_handle, try_ref,
    unknown_value,
};
use super::client::{brisk_client, brisk_stat};
use super::status::brisk_status;
use crate::core::{Error, Result, Status};
use crate::pubsub::{Kind, Message, MessageHandler, Subscriber};
use crate::telemetry::stats::Stat;
use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

/// A Pub/Sub subscriber: subscriptions to channels, patterns and shard channels, kept through
/// reconnects, failovers and slot moves.
///
/// Created by `brisk_subscriber_new()` from a client of any mode, freed (exactly once) by
/// `brisk_subscriber_free()`. Its connections are its own (never the client's pool): one on a
/// single server; on a cluster, one to each node that owns a slot of its shard channels, plus
/// one for its channels and patterns. They speak RESP3 unless the client's protocol is 2.
///
/// Thread-safe: every function but `brisk_subscriber_free()` may be called from any thread at
/// any time, the message callback's included.
///
/// After a lost connection (CLIENT KILL, a restart, a network cut, an unanswered health PING)
/// the subscriber reconnects with the client's retry policy (and, once its retries are spent,
/// keeps trying at its longest backoff) and subscribes again to everything it had there; then
/// it reports `BRISK_EVENT_RESUBSCRIBE` and counts `BRISK_STAT_PUBSUB_RESUBSCRIBES`. Delivery is
/// at most once: messages published while a connection is down are lost (as with every Redis
/// client), and none is delivered twice.
pub struct brisk_subscriber {
    _private: [u8; 0],
}

// SAFETY: `brisk_subscriber` pointers are only made by `into_handle::<brisk_subscriber>`.
unsafe impl Handle for brisk_subscriber {
    type Target = Subscriber;
    const NAME: &'static str = "brisk_subscriber";
}

/// One message taken with `brisk_subscriber_next()`: owned by the caller, freed (exactly once)
/// with `brisk_message_free()`. Immutable; any thread may read it. Its strings are not copied
/// out of the network buffer: they stay valid until it is freed.
pub struct brisk_message {
    _private: [u8; 0],
}

// SAFETY: `brisk_message` pointers are only made by `into_handle::<brisk_message>`.
unsafe impl Handle for brisk_message {
    type Target = Message;
    const NAME: &'static str = "brisk_message";
}

/// What a subscription is to (and which kind of subscription delivered a message).
pub type brisk_subscription = u32;

/// A channel (`SUBSCRIBE`; messages from `PUBLISH`).
pub const BRISK_SUBSCRIPTION_CHANNEL: brisk_subscription = 0;
/// A glob-style pattern of channels (`PSUBSCRIBE`). Keyspace notifications
/// (`__keyspace@0__:*`) arrive this way. On a cluster, channels and patterns live on one node
/// (PUBLISH reaches every node), but keyspace notifications are each node's own: a pattern
/// subscription there sees the events of its node's keys only.
pub const BRISK_SUBSCRIPTION_PATTERN: brisk_subscription = 1;
/// A shard channel (`SSUBSCRIBE`; messages from `SPUBLISH`). On a cluster it lives on the node
/// that owns its slot, and the subscription follows the slot when it moves or fails over.
pub const BRISK_SUBSCRIPTION_SHARD: brisk_subscription = 2;

/// Receives each message, on the subscriber's own thread (named `brisk-subscriber`), one at a
/// time, in arrival order. `pattern` is NULL (and `pattern_len` 0) unless a pattern
/// subscription delivered it. The strings are binary safe (use the lengths) and NUL-terminated
/// for convenience; they are valid during the call only. It must not block for long: messages
/// wait meanwhile in the subscriber's bounded queue (see `brisk_config_set_pubsub_queue()`). It
/// may call the subscriber's functions, `brisk_subscriber_free()` included (the subscriber then
/// ends when the callback returns).
pub type brisk_message_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        channel: *const c_char,
        channel_len: usize,
        pattern: *const c_char,
        pattern_len: usize,
        payload: *const c_char,
        payload_len: usize,
    ),
>;

/// A message's text for C: a pointer (NUL-terminated in place) and a length; NULL and 0 for
/// none.
fn text_of(text: Option<&[u8]>) -> (*const c_char, usize) {
    match text {
        Some(text) => (text.as_ptr().cast(), text.len()),
        None => (std::ptr::null(), 0),
    }
}

/// The user's callback and its userdata, as a message handler.
fn handler(
    callback: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        usize,
        *const c_char,
        usize,
        *const c_char,
        usize,
    ),
    userdata: *mut c_void,
) -> MessageHandler {
    let userdata = UserData(userdata);
    Box::new(move |message: &Message| {
        let userdata = &userdata;
        let (channel, channel_len) = text_of(Some(message.channel()));
        let (pattern, pattern_len) = text_of(message.pattern());
        let (payload, payload_len) = text_of(Some(message.payload()));
        // SAFETY: the user's callback, with strings valid for the call.
        unsafe {
            callback(
                userdata.0,
                channel,
                channel_len,
                pattern,
                pattern_len,
                payload,
                payload_len,
            )
        };
    })
}

/// Creates a subscriber on `client` (standalone, cluster or Sentinel). With `fn`, each message is
/// passed to it on the subscriber's own thread; with `fn` NULL, messages are queued for
/// `brisk_subscriber_next()` (pull style, for event loops and FFI callers; see
/// `brisk_subscriber_fd()`). No connection is opened until the first subscription. `*out` is
/// NULL on failure: CLOSED for a closed client, INTERNAL if no thread could be started.
///
/// Freeing the client first is safe: the subscriber's connections close, its calls fail with
/// `BRISK_ERR_CLOSED` (the pull API first returns what was already queued), and it must still
/// be freed with `brisk_subscriber_free()`.
///
/// # Safety
/// `client` is NULL or a live client; `out` is NULL or writable; `fn` and `userdata` stay valid
/// until `brisk_subscriber_free()` returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_new(
    client: *mut brisk_client,
    r#fn: brisk_message_fn,
    userdata: *mut c_void,
    out: *mut *mut brisk_subscriber,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        guard_out(out, "out", || {
            let client = try_ref(client, "client")?;
            let handler = r#fn.map(|f| handler(f, userdata));
            Ok(into_handle(client.subscriber(handler)?))
        })
    }
}

/// Runs a subscription change of one NUL-terminated name.
///
/// # Safety
/// `s` is NULL or a live subscriber; `name` is NULL or a NUL-terminated string.
unsafe fn change_one(
    s: *mut brisk_subscriber,
    name: *const c_char,
    arg: &str,
    change: impl FnOnce(&Subscriber, &[&[u8]]) -> Result<()>,
) -> brisk_status {
    guard(|| {
        // SAFETY: per this function's contract.
        let subscriber = unsafe { try_ref(s, "s") }?;
        if name.is_null() {
            return Err(Error::invalid_argument(format!("{arg}: NULL string")));
        }
        // SAFETY: non-null and NUL-terminated per the contract.
        let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
        change(subscriber, &[name])
    })
}

/// Subscribes to a channel; returns once the server confirmed it. Fails with the server's
/// status for a refusal (AUTH for an ACL without the channel), CONNECTION or TIMEOUT when no
/// connection could be made by the retry policy (or the confirmation did not come within the
/// read timeout, or the command deadline), CLOSED when the client was closed. A failed call
/// leaves no subscription behind. For binary names, or many at once, see
/// `brisk_subscriber_subscribe()`.
///
/// # Safety
/// `s` is NULL or a live subscriber; `channel` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscribe(
    s: *mut brisk_subscriber,
    channel: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { change_one(s, channel, "channel", |s, n| s.subscribe(Kind::Channel, n)) }
}

/// Subscribes to a glob-style pattern (`news.*`, `__keyspace@0__:*`); as `brisk_subscribe()`.
///
/// # Safety
/// `s` is NULL or a live subscriber; `pattern` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_psubscribe(
    s: *mut brisk_subscriber,
    pattern: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { change_one(s, pattern, "pattern", |s, n| s.subscribe(Kind::Pattern, n)) }
}

/// Subscribes to a shard channel; as `brisk_subscribe()`. On a cluster the subscription is made
/// at the node that owns the channel's slot.
///
/// # Safety
/// `s` is NULL or a live subscriber; `shard_channel` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_ssubscribe(
    s: *mut brisk_subscriber,
    shard_channel: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        change_one(s, shard_channel, "shard_channel", |s, n| {
            s.subscribe(Kind::Shard, n)
        })
    }
}

/// Unsubscribes from a channel; returns once the server confirmed it (or the connection that
/// held it is gone): no message of it is delivered after that, save those already queued. A
/// channel not subscribed is no error. A subscribe of the same channel still waiting on another
/// thread returns OK at once: it is over, and the channel is not subscribed.
///
/// # Safety
/// `s` is NULL or a live subscriber; `channel` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_unsubscribe(
    s: *mut brisk_subscriber,
    channel: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        change_one(s, channel, "channel", |s, n| {
            s.unsubscribe(Kind::Channel, n)
        })
    }
}

/// Unsubscribes from a pattern; as `brisk_unsubscribe()`.
///
/// # Safety
/// `s` is NULL or a live subscriber; `pattern` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_punsubscribe(
    s: *mut brisk_subscriber,
    pattern: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        change_one(s, pattern, "pattern", |s, n| {
            s.unsubscribe(Kind::Pattern, n)
        })
    }
}

/// Unsubscribes from a shard channel; as `brisk_unsubscribe()`.
///
/// # Safety
/// `s` is NULL or a live subscriber; `shard_channel` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_sunsubscribe(
    s: *mut brisk_subscriber,
    shard_channel: *const c_char,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        change_one(s, shard_channel, "shard_channel", |s, n| {
            s.unsubscribe(Kind::Shard, n)
        })
    }
}

/// Runs a subscription change of `count` names given as `names`/`lens`.
///
/// # Safety
/// As `brisk_subscriber_subscribe()`.
unsafe fn change_many(
    s: *mut brisk_subscriber,
    kind: brisk_subscription,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
    change: impl FnOnce(&Subscriber, Kind, &[&[u8]]) -> Result<()>,
) -> brisk_status {
    guard(|| {
        // SAFETY: per this function's contract.
        let subscriber = unsafe { try_ref(s, "s") }?;
        let kind = Kind::from_u32(kind)
            .ok_or_else(|| unknown_value("kind", "brisk_subscription", kind))?;
        if count == 0 {
            return Err(Error::invalid_argument("count: no name given"));
        }
        let mut lengths = ArgLengths::new();
        // SAFETY: per this function's contract (the same shape as a command's arguments).
        let args = unsafe { command_args(count, names, lens, &mut lengths) }
            .map_err(|e| Error::invalid_argument(e.message().replace("argv", "names")))?;
        let names: Vec<&[u8]> = args.iter().collect();
        change(subscriber, kind, &names)
    })
}

/// Subscribes to `count` names of `kind` at once (one round trip per node), binary safe:
/// `names[i]` has `lens[i]` bytes (`lens` NULL: NUL-terminated strings). Returns once the
/// server confirmed every one; on failure none of them stays subscribed (as for
/// `brisk_subscribe()`). INVALID_ARGUMENT for `count` 0, a NULL name or an unknown `kind`.
///
/// # Safety
/// `s` is NULL or a live subscriber; `names` points to `count` pointers, each to `lens[i]`
/// readable bytes (or a NUL-terminated string when `lens` is NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_subscribe(
    s: *mut brisk_subscriber,
    kind: brisk_subscription,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { change_many(s, kind, count, names, lens, |s, k, n| s.subscribe(k, n)) }
}

/// Unsubscribes from `count` names of `kind` at once, binary safe; as
/// `brisk_subscriber_subscribe()` and `brisk_unsubscribe()`.
///
/// # Safety
/// As `brisk_subscriber_subscribe()`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_unsubscribe(
    s: *mut brisk_subscriber,
    kind: brisk_subscription,
    count: usize,
    names: *const *const c_char,
    lens: *const usize,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { change_many(s, kind, count, names, lens, |s, k, n| s.unsubscribe(k, n)) }
}

/// Takes a message, waiting `wait` (None: for as long as it takes).
///
/// # Safety
/// `s` is NULL or a live subscriber; `out` is NULL or writable.
unsafe fn take(
    s: *mut brisk_subscriber,
    wait: Option<Duration>,
    out: *mut *mut brisk_message,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe {
        guard_out(out, "out", || {
            let subscriber = try_ref(s, "s")?;
            match subscriber.next(wait)? {
                Some(message) => Ok(into_handle(message)),
                None => Err(Error::new(
                    Status::Timeout,
                    match wait {
                        Some(w) if w.is_zero() => "no message waits".to_owned(),
                        Some(w) => format!("no message within {} ms", w.as_millis()),
                        None => "no message".to_owned(),
                    },
                )),
            }
        })
    }
}

/// Pull style (a subscriber made with `fn` NULL): waits up to `timeout_ms` (0: without limit)
/// for the next message and hands it over in `*out` (free it with `brisk_message_free()`).
/// TIMEOUT when none came in time; CLOSED once the client was closed and every queued message
/// was taken; INVALID_ARGUMENT for a subscriber with a callback. Messages come in arrival order;
/// several threads may take them concurrently.
///
/// # Safety
/// `s` is NULL or a live subscriber; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_next(
    s: *mut brisk_subscriber,
    timeout_ms: u32,
    out: *mut *mut brisk_message,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { take(s, crate::config::limit(timeout_ms), out) }
}

/// `brisk_subscriber_next()` without waiting: the next message if one waits, else TIMEOUT. For
/// draining the queue when `brisk_subscriber_fd()` polls readable.
///
/// # Safety
/// `s` is NULL or a live subscriber; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_try_next(
    s: *mut brisk_subscriber,
    out: *mut *mut brisk_message,
) -> brisk_status {
    // SAFETY: per this function's contract.
    unsafe { take(s, Some(Duration::ZERO), out) }
}

/// A file descriptor that is readable exactly while messages wait in the queue of a pull-style
/// subscriber (and, once its client was closed, readable for good, so a loop wakes up to get
/// CLOSED), for poll/epoll/kqueue/libuv/asyncio loops. It is owned by the subscriber: do not
/// read, write or close it; it stays open until `brisk_subscriber_free()`. -1 for a NULL
/// subscriber, one with a callback, or when no descriptor could be made (see
/// `brisk_last_error_message()`).
///
/// # Safety
/// `s` is NULL or a live subscriber.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_fd(s: *const brisk_subscriber) -> c_int {
    let mut fd = -1;
    guard(|| {
        // SAFETY: per this function's contract.
        let subscriber = unsafe { try_ref(s, "s") }?;
        fd = subscriber.fd()?;
        Ok(())
    });
    fd
}

/// This subscriber's share of `BRISK_STAT_PUBSUB_MESSAGES` (received, dropped ones included),
/// `BRISK_STAT_PUBSUB_DROPPED` (dropped by the queue's overflow policy) and
/// `BRISK_STAT_PUBSUB_RESUBSCRIBES`; 0 for any other `which` or a NULL subscriber. The client's
/// `brisk_client_stat()` sums them over its subscribers.
///
/// # Safety
/// `s` is NULL or a live subscriber.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_stat(
    s: *const brisk_subscriber,
    which: brisk_stat,
) -> u64 {
    guard_value(0, || {
        // SAFETY: per this function's contract.
        let subscriber = unsafe { s.cast::<Subscriber>().as_ref() };
        match (subscriber, Stat::from_u32(which)) {
            (Some(subscriber), Some(stat)) => subscriber.stat(stat),
            _ => 0,
        }
    })
}

/// Closes the subscriber's connections and frees it. NULL is a no-op. Returns promptly, also
/// while messages flow: it waits only for a callback call under way to return, and no callback
/// starts after it returned (messages still queued are dropped, not counted). May be called
/// from the message callback itself (the subscriber's thread then ends when the callback
/// returns).
///
/// # Safety
/// `s` is NULL or a live subscriber that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_subscriber_free(s: *mut brisk_subscriber) {
    // SAFETY: per this function's contract.
    guard_value((), || unsafe { free_handle(s) })
}

/// The message's channel: its bytes and (if `len` is not NULL) their number. NUL-terminated for
/// convenience, but may contain NULs. NULL for a NULL message.
///
/// # Safety
/// `m` is NULL or a live message; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_message_channel(
    m: *const brisk_message,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: per this function's contract.
    unsafe { text_out(m, len, |m| Some(m.channel())) }
}

/// The pattern that matched, for a message of a pattern subscription; NULL (and 0 in `len`)
/// otherwise.
///
/// # Safety
/// `m` is NULL or a live message; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_message_pattern(
    m: *const brisk_message,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: per this function's contract.
    unsafe { text_out(m, len, Message::pattern) }
}

/// The message's payload, binary safe (as `brisk_message_channel()`).
///
/// # Safety
/// `m` is NULL or a live message; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_message_payload(
    m: *const brisk_message,
    len: *mut usize,
) -> *const c_char {
    // SAFETY: per this function's contract.
    unsafe { text_out(m, len, |m| Some(m.payload())) }
}

/// Which kind of subscription delivered the message (`BRISK_SUBSCRIPTION_*`); CHANNEL for NULL.
///
/// # Safety
/// `m` is NULL or a live message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_message_kind(m: *const brisk_message) -> brisk_subscription {
    guard_value(BRISK_SUBSCRIPTION_CHANNEL, || {
        // SAFETY: per this function's contract.
        match unsafe { try_ref(m, "m") } {
            Ok(message) => message.kind() as u32,
            Err(_) => BRISK_SUBSCRIPTION_CHANNEL,
        }
    })
}

/// Frees a message from `brisk_subscriber_next()`. NULL is a no-op.
///
/// # Safety
/// `m` is NULL or a live message, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn brisk_message_free(m: *mut brisk_message) {
    // SAFETY: per this function's contract.
    guard_value((), || unsafe { free_handle(m) })
}

/// Writes a text of a message to C.
///
/// # Safety
/// `m` is NULL or a live message; `len` is NULL or writable.
unsafe fn text_out(
    m: *const brisk_message,
    len: *mut usize,
    part: impl FnOnce(&Message) -> Option<&[u8]>,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: per this function's contract.
        let message = unsafe { m.cast::<Message>().as_ref() };
        let (ptr, n) = text_of(message.and_then(part));
        if !len.is_null() {
            // SAFETY: writable per the contract.
            unsafe { *len = n };
        }
        ptr
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_numbers_match() {
        for (c, kind) in [
            (BRISK_SUBSCRIPTION_CHANNEL, Kind::Channel),
            (BRISK_SUBSCRIPTION_PATTERN, Kind::Pattern),
            (BRISK_SUBSCRIPTION_SHARD, Kind::Shard),
        ] {
            assert_eq!(Kind::from_u32(c), Some(kind));
            assert_eq!(kind as u32, c);
        }
    }

    #[test]
    fn null_and_bad_arguments_are_refused() {
        // SAFETY: NULL handles are allowed by every contract here.
        unsafe {
            let s = std::ptr::null_mut();
            assert_eq!(
                brisk_subscribe(s, c"x".as_ptr()),
                Status::InvalidArgument as u32
            );
            assert_eq!(brisk_subscriber_fd(s), -1);
            let mut out = std::ptr::dangling_mut();
            assert_eq!(
                brisk_subscriber_next(s, 1, &mut out),
                Status::InvalidArgument as u32
            );
            assert!(out.is_null());
            assert_eq!(
                brisk_subscriber_subscribe(s, 9, 0, std::ptr::null(), std::ptr::null()),
                Status::InvalidArgument as u32
            );
            assert!(brisk_message_channel(std::ptr::null(), std::ptr::null_mut()).is_null());
            assert_eq!(brisk_subscriber_stat(s, 20), 0);
            brisk_subscriber_free(s);
            brisk_message_free(std::ptr::null_mut());
        }
    }
}
