//! What the CLUSTER SHARDS and CLUSTER SLOTS targets share: decoding the reply, and checking a
//! parsed topology the way the cluster client then uses it.

use brisk::core::Result;
use brisk::core::cluster::{SLOTS, Shard, SlotMap};
use brisk::resp::{Decoder, Reply};
use bytes::BytesMut;

/// The first reply in `data`, if it holds a whole one.
pub fn first_reply(data: &[u8]) -> Option<Reply> {
    Decoder::default().decode(&mut BytesMut::from(data)).ok()?
}

/// Panics if an accepted topology names a slot out of range, or if the slot map built from it
/// routes a slot to a shard that does not claim it.
pub fn check_topology(parsed: Result<Vec<Shard>>) {
    let Ok(shards) = parsed else {
        return;
    };
    for shard in &shards {
        for &(start, end) in &shard.slots {
            assert!(usize::from(start) < SLOTS && usize::from(end) < SLOTS);
        }
    }
    let map = SlotMap::new(shards);
    for slot in 0..SLOTS as u16 {
        if let Some(shard) = map.shard(slot) {
            assert!(
                shard.slots.iter().any(|&(s, e)| (s..=e).contains(&slot)),
                "slot {slot} routed to a shard that does not serve it"
            );
        }
    }
    let _ = map.addresses();
    let _ = map.uncovered();
}
