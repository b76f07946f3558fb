//! The parameters a target reads off the front of its input, before the bytes it decodes.
//!
//! The layouts are small and fixed, so a seed is a header byte or two followed by a real reply
//! (see `fuzz/make_seeds.py`), and the fuzzer mutates both.

use brisk::resp::Limits;

/// Reads parameters off the front of the fuzzer's bytes; what is left is the payload.
pub struct Header<'a> {
    rest: &'a [u8],
}

impl<'a> Header<'a> {
    pub fn new(data: &'a [u8]) -> Header<'a> {
        Header { rest: data }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    /// How the payload arrives: `1 + (n & 15)` chunk sizes of 1 to 256 bytes, used in turn
    /// until the payload is used up (one size of 1 is byte by byte).
    pub fn chunking(&mut self) -> Option<Chunking> {
        let count = usize::from(self.byte()? & 15) + 1;
        let mut sizes = Vec::with_capacity(count);
        for _ in 0..count {
            sizes.push(usize::from(self.byte()?) + 1);
        }
        Some(Chunking { sizes })
    }

    /// Small limits, so that every limit is reached by short inputs: depth 0-7, elements 0-15,
    /// bulk and line lengths 0-255, a reply's memory 0-4095 bytes.
    pub fn small_limits(&mut self) -> Option<Limits> {
        Some(Limits {
            max_depth: usize::from(self.byte()? & 7),
            max_elements: usize::from(self.byte()? & 15),
            max_bulk_len: usize::from(self.byte()?),
            max_line_len: usize::from(self.byte()?),
            max_reply_bytes: usize::from(self.byte()?) * 16,
        })
    }

    /// The bytes after the parameters.
    pub fn payload(self) -> &'a [u8] {
        self.rest
    }
}

/// Where the payload is cut into the reads a connection would see.
#[derive(Clone, Debug)]
pub struct Chunking {
    sizes: Vec<usize>,
}

impl Chunking {
    /// The payload in pieces, sizes taken in turn.
    pub fn split<'a>(&self, mut payload: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        for &size in self.sizes.iter().cycle() {
            if payload.is_empty() {
                break;
            }
            let (piece, rest) = payload.split_at(size.min(payload.len()));
            pieces.push(piece);
            payload = rest;
        }
        pieces
    }
}
