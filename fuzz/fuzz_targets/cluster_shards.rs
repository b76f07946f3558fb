//! The CLUSTER SHARDS parser (`parse_shards`), fed replies decoded by the RESP decoder from the
//! fuzzer's bytes; what it accepts then builds a slot map, as the cluster client does.
#![no_main]

use brisk::core::cluster::parse_shards;
use brisk_fuzz::topology::{check_topology, first_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(reply) = first_reply(data) {
        check_topology(parse_shards(&reply, "10.0.0.1"));
    }
});
