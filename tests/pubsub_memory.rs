//! A subscriber's queue costs what its messages cost, also when they trickle in after a burst.
//!
//! A frame is read into a buffer (up to 64 KiB once a burst has grown it) and points into it, so
//! a message waiting in the queue keeps its whole read buffer allocated. One message per read, a
//! slow consumer, and 3,000 queued messages held 175 MB before the link copied the messages of
//! small reads out (`Message::compacted`). This file is its own test process, with this one test,
//! so that the heap measure (glibc's `mallinfo2`) sees nothing else.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

use brisk::Client;
use brisk::pubsub::Kind;
use brisk::stats::Stat;
use std::time::Duration;
use support::{RedisServer, ok_bytes, wait_until};

fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().uordblks }
}

#[test]
fn queued_messages_of_a_trickle_do_not_hold_their_read_buffers() {
    let server = RedisServer::start();
    let client = Client::new(&server.config()).unwrap();
    let sub = client.subscriber(None).unwrap();
    sub.subscribe(Kind::Channel, &[b"trickle"]).unwrap();
    // A burst grows the subscriber's read buffer to its largest size.
    const BURST: u64 = 20_000;
    let mut pipeline = client.pipeline();
    for _ in 0..BURST {
        let args: [&[u8]; 3] = [b"PUBLISH", b"trickle", b"0123456789abcdef"];
        pipeline.append(&brisk::Args::from_slices(&args)).unwrap();
    }
    pipeline.exec().unwrap();
    assert!(wait_until(Duration::from_secs(60), || sub
        .stat(Stat::PubsubMessages)
        == BURST));
    while sub.next(Some(Duration::ZERO)).unwrap().is_some() {}

    // Then a trickle, one PUBLISH (one read) at a time, that nobody takes.
    const TRICKLE: usize = 3000;
    let before = heap_in_use();
    for _ in 0..TRICKLE {
        ok_bytes(&client, &[b"PUBLISH", b"trickle", b"0123456789abcdef"]);
    }
    assert!(wait_until(Duration::from_secs(60), || sub.queued() == TRICKLE));
    let grew = heap_in_use().saturating_sub(before);
    eprintln!(
        "{TRICKLE} trickled messages queued: the heap grew {} KB",
        grew / 1024
    );
    // Holding a 64 KiB buffer each would be 190 MB; a message is about a hundred bytes.
    assert!(grew < 32 << 20, "the heap grew {} MB", grew >> 20);
}
