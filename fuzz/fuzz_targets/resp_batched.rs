//! (c) A pipeline's replies decoded in place into a batch (`Decoder::decode_batched`, driven by
//! `Protocol::expect_batch`/`next_in_batch`/`take_batch`) against the same bytes decoded reply
//! by reply: the same replies and pushes, and an error in both or in neither.
//!
//! Input: a chunking header (`Header::chunking`), a batch byte (batch size `1 + (b & 7)`; bit 3
//! takes each batch as separate replies), then the RESP bytes.
#![no_main]

use brisk::resp::Limits;
use brisk_fuzz::drive::{assert_batch_agrees, read_batched, read_one_by_one};
use brisk_fuzz::input::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut header = Header::new(data);
    let (Some(chunking), Some(batch)) = (header.chunking(), header.byte()) else {
        return;
    };
    let payload = header.payload();
    let pieces = chunking.split(payload);
    let single = read_one_by_one(Limits::default(), &pieces);
    let size = usize::from(batch & 7) + 1;
    let batched = read_batched(Limits::default(), &pieces, size, batch & 8 != 0);
    assert_batch_agrees(&single, &batched, payload);
});
