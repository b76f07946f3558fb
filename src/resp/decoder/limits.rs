//! What the decoder accepts: the bounds that turn hostile or corrupt input into a protocol
//! error, and that error.

/// The default bound on one reply's memory: the largest string Redis stores (512 MiB, its
/// `proto-max-bulk-len`) and room for its framing and nodes, so no value the server can hold is
/// refused, and nothing much larger is ever accepted.
///
/// cbindgen:ignore
pub const DEFAULT_MAX_REPLY_BYTES: usize = (512 << 20) + (1 << 20);

/// Bounds that turn hostile or corrupt input into a protocol error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Aggregates nested deeper than this are rejected.
    pub max_depth: usize,
    /// An aggregate declaring more elements than this is rejected.
    pub max_elements: usize,
    /// A bulk string longer than this is rejected (Redis's own `proto-max-bulk-len` default).
    pub max_bulk_len: usize,
    /// A line (simple string, error, number) longer than this is rejected.
    pub max_line_len: usize,
    /// A reply taking more memory than this is rejected: the bytes it was read from (its strings
    /// point into them, so the reply keeps them all) plus its nodes (16 bytes per element,
    /// counted by the capacity allocated for them). Checked as the reply arrives, before the
    /// memory is taken. The root node, inside the reply itself, is not counted.
    pub max_reply_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_elements: 1 << 28,
            max_bulk_len: 512 << 20,
            max_line_len: 16 << 20,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        }
    }
}

/// The peer sent bytes that are not valid RESP (or exceed the [`Limits`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("protocol error: {0}")]
pub struct ProtocolError(pub String);

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

#[cold]
pub(super) fn over_budget<T>(limits: &Limits) -> Result<T, ProtocolError> {
    err(format!(
        "reply larger than max_reply_bytes ({} bytes)",
        limits.max_reply_bytes
    ))
}
