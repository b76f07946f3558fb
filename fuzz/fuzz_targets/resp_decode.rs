//! (a) The RESP decoder on whole input, default limits: no panic, no memory error, and every
//! reply keeps its invariants (NUL-terminated strings, whole maps).
#![no_main]

use brisk::resp::Limits;
use brisk_fuzz::drive::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    decode(Limits::default(), &[data]);
});
