//! (b) The same bytes decoded whole and split into fuzzer-chosen reads: the same replies, and
//! an error in both or in neither.
//!
//! Input: a chunking header (`Header::chunking`), then the RESP bytes.
#![no_main]

use brisk::resp::Limits;
use brisk_fuzz::drive::{assert_same, decode};
use brisk_fuzz::input::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut header = Header::new(data);
    let Some(chunking) = header.chunking() else {
        return;
    };
    let payload = header.payload();
    let whole = decode(Limits::default(), &[payload]);
    let split = decode(Limits::default(), &chunking.split(payload));
    assert_same(&whole, &split, ("whole", "split"), payload);
});
