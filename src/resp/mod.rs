//! RESP2/RESP3, sans-IO: commands to bytes ([`encoder`]) and bytes to replies ([`decoder`]).
//! Nothing here touches a socket or a clock; it is tested on bytes alone.

pub mod decoder;
pub mod encoder;
pub mod reply;

pub use decoder::{DEFAULT_MAX_REPLY_BYTES, Decoder, Limits, ProtocolError};
pub use encoder::{Args, all_encoded, encode_command, encode_owned};
pub use reply::{Node, Reply, ReplyKind};
