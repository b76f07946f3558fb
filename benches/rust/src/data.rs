//! The data every workload uses, the same as benches/bench.c's: NKEYS keys of 16-byte values
//! and one list of LRANGE_LEN 16-byte elements, written before any measurement.

use brisk::{Args, Client};

pub const VALUE: &[u8; 16] = b"0123456789abcdef";
pub const NKEYS: usize = 1000;
pub const PIPE_BATCH: usize = 100;
pub const LRANGE_LEN: usize = 1000;
pub const LIST_KEY: &[u8] = b"bench:list";
pub const ASYNC_IN_FLIGHT: u64 = 50;

/// "bench:k:0000" .. "bench:k:0999", as bench.c names them.
pub struct Keys(Vec<[u8; 12]>);

impl Keys {
    pub fn new() -> Keys {
        Keys(
            (0..NKEYS)
                .map(|i| {
                    let mut key = [0u8; 12];
                    key.copy_from_slice(format!("bench:k:{i:04}").as_bytes());
                    key
                })
                .collect(),
        )
    }

    #[inline]
    pub fn get(&self, k: usize) -> &[u8] {
        &self.0[k]
    }
}

/// Async command `index`: a SET (even) or a GET (odd) of key (index / 2) % NKEYS, as bench.c's
/// async_args.
#[inline]
pub fn async_command(keys: &Keys, index: u64) -> (bool, &[u8]) {
    (index & 1 == 1, keys.get((index / 2) as usize % NKEYS))
}

/// Writes the keys and the list (through brisk; the same cost for every client measured after).
pub fn setup(client: &Client, keys: &Keys) {
    let check = |args: &[&[u8]]| {
        if let Err(e) = client.command(&Args::from_slices(args)) {
            crate::die(&format!(
                "setup {:?}: {e}",
                String::from_utf8_lossy(args[0])
            ));
        }
    };
    check(&[b"DEL", LIST_KEY]);
    let mut pipeline = client.pipeline();
    for i in 0..LRANGE_LEN {
        let value = format!("v{i:015}");
        pipeline
            .append(&Args::from_slices(&[b"RPUSH", LIST_KEY, value.as_bytes()]))
            .unwrap_or_else(|e| crate::die(&format!("setup RPUSH: {e}")));
    }
    if let Err(e) = pipeline.exec() {
        crate::die(&format!("setup RPUSH: {e}"));
    }
    for k in 0..NKEYS {
        check(&[b"SET", keys.get(k), VALUE]);
    }
}
