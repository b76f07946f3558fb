//! A fast, well-mixed 64-bit hash for short byte strings (command names, keys, whole
//! commands): each 8-byte word goes through a 64x64->128-bit multiply whose halves are folded,
//! so every input bit reaches every output bit. Maps whose keys an application chooses seed it
//! randomly.

use std::hash::{BuildHasher, Hasher};

/// Multiplies to 128 bits and folds the halves.
#[inline(always)]
pub fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

const WORD: u64 = 0xD6E8_FEB8_6659_FD93;
const FINISH: u64 = 0x9E37_79B9_7F4A_7C15;

/// Mixes `bytes` into `state`.
#[inline]
pub fn mix_bytes(mut state: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        state = fold_multiply(state ^ word, WORD);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        state = fold_multiply(
            state ^ u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 59),
            WORD,
        );
    }
    state
}

/// The hasher of [`FastHash`] maps.
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        fold_multiply(self.0, FINISH)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix_bytes(self.0, bytes);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = fold_multiply(self.0 ^ n as u64, WORD);
    }
}

/// Builds [`FastHasher`]s from a seed (0 for maps whose keys nobody outside chooses).
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHash(pub u64);

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}
