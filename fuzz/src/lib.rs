//! What the fuzz targets share: reading a target's parameters off the front of the fuzzer's
//! bytes, driving brisk's decoder in the ways the client drives it, and writing a reply tree out
//! exactly so that two ways of decoding can be compared.
//!
//! Each target in `fuzz_targets/` is a few lines on top of this.

pub mod drive;
pub mod input;
pub mod topology;
pub mod tree;
