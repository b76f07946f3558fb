//! (d) (a) to (c) with small fuzzer-chosen limits: whole and split agree, batched and one by one
//! agree, and no reply holds more than the limits allow.
//!
//! Input: five limit bytes (`Header::small_limits`), a chunking header, a batch byte (as in
//! `resp_batched`), then the RESP bytes.
#![no_main]

use brisk_fuzz::drive::{assert_batch_agrees, assert_same, decode, read_batched, read_one_by_one};
use brisk_fuzz::input::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut header = Header::new(data);
    let (Some(limits), Some(chunking), Some(batch)) =
        (header.small_limits(), header.chunking(), header.byte())
    else {
        return;
    };
    let payload = header.payload();
    let pieces = chunking.split(payload);
    let whole = decode(limits, &[payload]);
    let split = decode(limits, &pieces);
    let whole_name = format!("whole with {limits:?}");
    assert_same(&whole, &split, (&whole_name, "split"), payload);
    let single = read_one_by_one(limits, &pieces);
    let size = usize::from(batch & 7) + 1;
    let batched = read_batched(limits, &pieces, size, batch & 8 != 0);
    assert_batch_agrees(&single, &batched, payload);
});
