//! Incremental RESP2/RESP3 decoder.
//!
//! (At ~690 lines this is one of src/'s longest files, on purpose: `impl Decoder` is one state
//! machine whose fast paths and general path share private state and must agree byte for byte,
//! so they are kept where they can be read, and inlined, side by side. Its limits, scalar
//! parsing and tests live in decoder/.)
//!
//! The decoder reads from the front of a `BytesMut` that the driver appends network bytes to.
//! It keeps its place between calls (a stack of the aggregates still open, like hiredis's
//! reader), so a reply arriving in many pieces is scanned once. When a reply is complete its
//! bytes are split off the buffer without copying and its string nodes point into them.
//!
//! Every string in RESP is followed by `\r\n`; once that terminator has been checked the decoder
//! overwrites the `\r` with NUL, which makes each string a C string in place. Streamed strings
//! (`$?` with `;` chunks) are compacted in place the same way: each chunk is moved down to follow
//! the previous one, so they too end up as one contiguous, NUL-terminated slice.
//!
//! Hostile input is bounded by [`Limits`]: nesting depth, element count, bulk length, line
//! length, and the memory one reply takes. Declared element counts never size an allocation
//! beyond what has actually arrived. RESP3 attributes (`|`) are read and dropped; the value they
//! annotate is returned.
//!
//! Whether bytes are accepted never depends on where the network split them: every check is made
//! at a point fixed by the bytes themselves (a line, a bulk header, an element), the fast paths
//! accept only what the general path would, and a line still waiting for its end is rejected only
//! when no ending could make it fit.

mod limits;
mod scalars;

use super::reply::{Node, Reply, ReplyKind};
use bytes::BytesMut;
pub use limits::{DEFAULT_MAX_REPLY_BYTES, Limits, ProtocolError};
use limits::{err, over_budget};
use scalars::{check_big_number, verbatim};
pub(crate) use scalars::{parse_double, parse_int};

/// An aggregate whose elements are still arriving.
struct Open {
    kind: ReplyKind,
    /// Elements still expected; `None` for a streamed aggregate (ended by `.`).
    remaining: Option<usize>,
    children: Vec<Node>,
    /// An attribute map: read, then dropped.
    attribute: bool,
}

/// A streamed string being compacted: its payload so far is `start..start + len`.
struct Streamed {
    start: usize,
    len: usize,
}

/// Outcome of reading one element.
enum Step {
    /// Not enough bytes yet.
    Incomplete,
    /// A complete value.
    Value(Node),
    /// An aggregate header was read; its elements follow.
    Opened,
    /// The end of a streamed aggregate.
    End,
}

/// Preallocate at most this many children from a declared count; more grow as they arrive.
const MAX_PREALLOC: usize = 1024;
/// The first room made for a streamed aggregate's children.
const MIN_GROWTH: usize = 4;
const NODE_BYTES: usize = std::mem::size_of::<Node>();

/// How many more children to make room for when `open` is full.
fn growth(open: &Open) -> usize {
    let len = open.children.len();
    match open.remaining {
        // Doubling, up to the declared count: the last element fills the storage exactly, with
        // nothing to shrink when the aggregate closes. (`remaining` counts the one arriving.)
        Some(remaining) => len.max(MIN_GROWTH).min(remaining),
        // No count declared: by half, so that at most a third of the storage is slack.
        None => (len / 2).max(MIN_GROWTH),
    }
}

pub struct Decoder {
    limits: Limits,
    /// Bytes of the buffer already consumed: the current (incomplete) reply's, after those of
    /// the replies decoded by [`Decoder::decode_batched`] and not split off yet.
    pos: usize,
    /// Where the replies decoded by [`Decoder::decode_batched`] end (0: none waiting).
    batch_end: usize,
    stack: Vec<Open>,
    streamed: Option<Streamed>,
    /// `(line start, scanned up to)` for the line being waited for.
    line_scan: (usize, usize),
    /// The buffer position the current reply's bytes may reach: where the reply starts, plus
    /// `max_reply_bytes`, less the memory its nodes take so far.
    budget_end: usize,
    /// A bulk's length line longer than this many digits is left to the general path (which
    /// checks it against `max_line_len`); 12 digits are beyond any bulk limit.
    max_bulk_digits: usize,
    /// Total buffer length the next step needs, when known (a bulk's payload); lets the driver
    /// reserve once instead of growing the buffer read by read.
    needed: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            pos: 0,
            batch_end: 0,
            stack: Vec::new(),
            streamed: None,
            line_scan: (usize::MAX, 0),
            budget_end: limits.max_reply_bytes,
            max_bulk_digits: limits.max_line_len.min(12),
            needed: 0,
        }
    }

    /// How many bytes the buffer must hold before decoding can make progress (0 if unknown).
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// Frees the room kept for open aggregates when none is open (an idle connection's).
    pub fn release_memory(&mut self) {
        if self.stack.is_empty() {
            self.stack = Vec::new();
        }
    }

    /// True when reply bytes have been consumed and not split off yet: part of a reply, or
    /// batched replies.
    pub fn in_progress(&self) -> bool {
        self.pos > 0
    }

    /// Decodes the next complete reply from the front of `buf`, removing its bytes from `buf`.
    /// `Ok(None)` means more bytes are needed; call again after appending them. After an error
    /// the stream is unusable and the connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
        debug_assert_eq!(self.batch_end, 0, "split the batch first");
        match self.decode_root(buf)? {
            Some(root) => Ok(Some(self.finish(buf, root))),
            None => Ok(None),
        }
    }

    /// Decodes the next complete reply like [`Decoder::decode`], but leaves its bytes in `buf`
    /// after those of the replies batched before it, and appends its root to `out` with its
    /// strings still as offsets into `buf`; false when more bytes are needed.
    /// [`Decoder::split_batch`] splits them all off at once, for the caller to rebase: a
    /// pipeline pays for one split per read instead of one per reply.
    pub fn decode_batched(
        &mut self,
        buf: &mut BytesMut,
        out: &mut Vec<Node>,
    ) -> Result<bool, ProtocolError> {
        // `decode_root` spelled out: through it, each reply's node is moved once more on its
        // way into `out` (about 30 instructions per pipelined command, measured).
        let root = match self.simple(buf)? {
            Some(root) => root,
            None => match self.decode_general(buf)? {
                Some(root) => root,
                None => return Ok(false),
            },
        };
        out.push(root);
        self.batch_end = self.pos;
        self.budget_end = self.pos.saturating_add(self.limits.max_reply_bytes);
        self.line_scan = (usize::MAX, 0);
        self.needed = 0;
        Ok(true)
    }

    /// The per-reply memory bound in force.
    pub fn max_reply_bytes(&self) -> usize {
        self.limits.max_reply_bytes
    }

    /// Changes the per-reply memory bound for the replies not yet begun. Called between replies
    /// (a reply under way keeps the budget it started with, less what it has used).
    pub fn set_max_reply_bytes(&mut self, bytes: usize) {
        if !self.in_progress() {
            self.limits.max_reply_bytes = bytes;
            self.budget_end = self.pos.saturating_add(bytes);
        }
    }

    /// Whether [`Decoder::split_batch`] would split anything off.
    #[inline(always)]
    pub fn batch_ready(&self) -> bool {
        self.batch_end != 0 && self.pos == self.batch_end
    }

    /// Splits off the bytes of the batched replies, unless part of the next reply has been
    /// consumed already (its nodes hold offsets into `buf`, which must not move under them; the
    /// batch is then split later). The caller rebases the batched roots onto the bytes.
    pub fn split_batch(&mut self, buf: &mut BytesMut) -> Option<bytes::Bytes> {
        if !self.batch_ready() {
            return None;
        }
        let bytes = buf.split_to(self.batch_end).freeze();
        self.needed = self.needed.saturating_sub(self.batch_end);
        self.pos = 0;
        self.batch_end = 0;
        self.budget_end = self.limits.max_reply_bytes;
        self.line_scan = (usize::MAX, 0);
        Some(bytes)
    }

    /// The next complete reply's root, its strings as offsets into `buf`.
    fn decode_root(&mut self, buf: &mut BytesMut) -> Result<Option<Node>, ProtocolError> {
        match self.simple(buf)? {
            Some(root) => Ok(Some(root)),
            None => self.decode_general(buf),
        }
    }

    /// The common replies, without the general machinery: a whole bulk or status string at the
    /// top level. `None` leaves everything else to [`Decoder::decode_general`].
    #[inline(always)]
    fn simple(&mut self, buf: &mut BytesMut) -> Result<Option<Node>, ProtocolError> {
        if !self.stack.is_empty() || self.streamed.is_some() {
            return Ok(None);
        }
        match buf.get(self.pos) {
            Some(b'$') => self.complete_bulk(buf),
            Some(b'+') => Ok(self.complete_status(buf)),
            _ => Ok(None),
        }
    }

    /// Any reply, in as many calls as its bytes take to arrive.
    fn decode_general(&mut self, buf: &mut BytesMut) -> Result<Option<Node>, ProtocolError> {
        // Every step needs a byte past `pos`: a driver looking before it has read anything (a
        // blocking command's first look) is told so at once.
        if buf.len() <= self.pos {
            return Ok(None);
        }
        loop {
            self.push_whole_bulks(buf)?;
            let mut node = match self.step(buf)? {
                Step::Incomplete => return Ok(None),
                Step::Opened => continue,
                Step::Value(node) => node,
                Step::End => match self.stack.last() {
                    Some(open) if open.remaining.is_none() => {
                        // A map's children are key/value pairs: an odd count would leave a key
                        // without a value (and hand C an odd length).
                        if open.kind == ReplyKind::Map && open.children.len() % 2 != 0 {
                            return err("streamed map ended between a key and its value");
                        }
                        if open.attribute {
                            // Dropped like a sized attribute; the value it annotates follows.
                            self.drop_attribute();
                            continue;
                        }
                        self.close_top()
                    }
                    _ => return err("'.' outside a streamed aggregate"),
                },
            };
            // Attach the value to the aggregates it completes, innermost first.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok(Some(node));
                };
                if top.children.len() == top.children.capacity() {
                    // Room for more, counted against the reply's memory before it is taken.
                    let more = growth(top);
                    if self.budget_end.saturating_sub(self.pos) / NODE_BYTES < more {
                        return over_budget(&self.limits);
                    }
                    self.budget_end -= more * NODE_BYTES;
                    top.children.reserve_exact(more);
                }
                top.children.push(node);
                match &mut top.remaining {
                    Some(n) => {
                        *n -= 1;
                        if *n > 0 {
                            break;
                        }
                    }
                    None => {
                        // A streamed aggregate declares no count, so the element limit is
                        // checked as it grows; otherwise it could grow without bound.
                        let max = match top.kind {
                            ReplyKind::Map => self.limits.max_elements.saturating_mul(2),
                            _ => self.limits.max_elements,
                        };
                        if top.children.len() > max {
                            return err(format!(
                                "streamed aggregate of more than {} elements exceeds the limit",
                                self.limits.max_elements
                            ));
                        }
                        break;
                    }
                }
                if top.attribute {
                    // An attribute annotates the value that follows it; we do not keep it.
                    self.drop_attribute();
                    break;
                }
                node = self.close_top();
            }
        }
    }

    fn close_top(&mut self) -> Node {
        let open = self.stack.pop().expect("close_top with an open aggregate");
        // A streamed aggregate's storage shrinks to its elements.
        self.budget_end += (open.children.capacity() - open.children.len()) * NODE_BYTES;
        Node::aggregate(open.kind, open.children)
    }

    /// Drops the attribute on top of the stack, giving back the memory it took.
    fn drop_attribute(&mut self) {
        let open = self.stack.pop().expect("an attribute on top");
        debug_assert!(open.attribute);
        let nested: usize = open.children.iter().map(Node::heap_bytes).sum();
        self.budget_end += open.children.capacity() * NODE_BYTES + nested;
    }

    fn finish(&mut self, buf: &mut BytesMut, mut root: Node) -> Reply {
        let bytes = buf.split_to(self.pos).freeze();
        self.pos = 0;
        self.budget_end = self.limits.max_reply_bytes;
        self.line_scan = (usize::MAX, 0);
        self.needed = 0;
        // SAFETY: every text offset in `root` was checked to lie (with its NUL) inside the
        // first `pos` bytes of the buffer, which are exactly `bytes`; freezing does not move them.
        unsafe {
            root.rebase(bytes.as_ptr());
            Reply::from_buffer(root, bytes)
        }
    }

    /// Finds the line starting at `self.pos`; returns the index of its `\r`.
    fn line_end(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let start = self.pos + 1;
        // Resume where the last look at this line stopped: a long line arriving in pieces is
        // then scanned once, not once per piece.
        let from = match self.line_scan {
            (line, scanned) if line == start => scanned.max(start),
            _ => start,
        };
        match buf[from..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let lf = from + i;
                // Judged as if the LF were still on its way (below) first: a line too long
                // is too long however it ends, and so whichever part of it arrived first.
                let before_lf = lf - start;
                let room = self.limits.max_line_len.saturating_add(1);
                if before_lf > room || (before_lf == room && buf[lf - 1] != b'\r') {
                    return err("line longer than the limit");
                }
                if lf == start || buf[lf - 1] != b'\r' {
                    return err("line not terminated by CRLF");
                }
                Ok(Some(lf - 1))
            }
            None => {
                self.line_scan = (start, buf.len());
                // A line of exactly `max_line_len` bytes may be here with its '\r' while the
                // '\n' is still on its way: it must wait, not fail, or whether it is accepted
                // would depend on where the network split the bytes.
                let pending = buf.len() - start;
                let room = self.limits.max_line_len.saturating_add(1);
                if pending > room || (pending == room && buf[buf.len() - 1] != b'\r') {
                    return err("line longer than the limit");
                }
                Ok(None)
            }
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        if self.streamed.is_some() {
            return self.streamed_chunk(buf);
        }
        if buf.len() <= self.pos {
            return Ok(Step::Incomplete);
        }
        let type_byte = buf[self.pos];
        if type_byte == b'$' {
            // The common case first: a length line and the whole payload are already here.
            if let Some(node) = self.complete_bulk(buf)? {
                return Ok(Step::Value(node));
            }
        }
        // Checked before waiting for the line: no later byte can make an unknown type valid, and
        // a peer that is not speaking RESP should fail now, not after a read timeout.
        if !b"+-:$*_#,(!=%~>|.".contains(&type_byte) {
            return err(format!(
                "unknown type byte {:?}",
                char::from(type_byte).escape_default().to_string()
            ));
        }
        let Some(cr) = self.line_end(buf)? else {
            return Ok(Step::Incomplete);
        };
        let text_start = self.pos + 1;
        let line = &buf[text_start..cr];
        let after_line = cr + 2;
        if after_line > self.budget_end {
            return over_budget(&self.limits);
        }
        let node = match type_byte {
            b'+' | b'-' | b',' | b'(' => {
                let kind = match type_byte {
                    b'+' => ReplyKind::Status,
                    b'-' => ReplyKind::Error,
                    b',' => ReplyKind::Double,
                    _ => ReplyKind::BigNumber,
                };
                // Checked now; a double's value is parsed again when asked for.
                match kind {
                    ReplyKind::Double => _ = parse_double(line)?,
                    ReplyKind::BigNumber => check_big_number(line)?,
                    _ => {}
                }
                let len = line.len();
                buf[cr] = 0;
                Node::text_at(kind, text_start, len)
            }
            b':' => Node::scalar(ReplyKind::Integer, parse_int(line)? as u64),
            b'#' => match line {
                b"t" => Node::scalar(ReplyKind::Bool, 1),
                b"f" => Node::scalar(ReplyKind::Bool, 0),
                _ => return err("boolean is neither 't' nor 'f'"),
            },
            b'_' if line.is_empty() => Node::scalar(ReplyKind::Nil, 0),
            b'_' => return err("null with a payload"),
            b'$' | b'!' | b'=' => {
                if type_byte == b'$' && line == b"?" {
                    self.pos = after_line;
                    self.streamed = Some(Streamed {
                        start: after_line,
                        len: 0,
                    });
                    return self.streamed_chunk(buf);
                }
                let len = parse_int(line)?;
                if len == -1 && type_byte == b'$' {
                    Node::scalar(ReplyKind::Nil, 0)
                } else {
                    let len = usize::try_from(len)
                        .map_err(|_| ProtocolError(format!("negative string length {len}")))?;
                    if len > self.limits.max_bulk_len {
                        return err(format!("bulk of {len} bytes is longer than the limit"));
                    }
                    let end = after_line + len;
                    // Before waiting for the payload: it will be part of the reply.
                    if end + 2 > self.budget_end {
                        return over_budget(&self.limits);
                    }
                    if buf.len() < end + 2 {
                        self.needed = end + 2;
                        return Ok(Step::Incomplete);
                    }
                    if &buf[end..end + 2] != b"\r\n" {
                        return err("bulk string not terminated by CRLF");
                    }
                    buf[end] = 0;
                    self.needed = 0;
                    self.pos = end + 2;
                    return Ok(Step::Value(match type_byte {
                        b'$' => Node::text_at(ReplyKind::String, after_line, len),
                        b'!' => Node::text_at(ReplyKind::Error, after_line, len),
                        _ => verbatim(buf, after_line, len)?,
                    }));
                }
            }
            b'*' | b'%' | b'~' | b'>' | b'|' => {
                let kind = match type_byte {
                    b'*' => ReplyKind::Array,
                    b'%' | b'|' => ReplyKind::Map,
                    b'~' => ReplyKind::Set,
                    _ => ReplyKind::Push,
                };
                let attribute = type_byte == b'|';
                let count = if line == b"?" {
                    None
                } else {
                    let n = parse_int(line)?;
                    if n == -1 && type_byte == b'*' {
                        self.pos = after_line;
                        return Ok(Step::Value(Node::scalar(ReplyKind::Nil, 0)));
                    }
                    let n = usize::try_from(n)
                        .map_err(|_| ProtocolError(format!("negative element count {n}")))?;
                    if n > self.limits.max_elements {
                        return err(format!("aggregate of {n} elements exceeds the limit"));
                    }
                    // Maps and attributes carry a key and a value per entry.
                    Some(if kind == ReplyKind::Map { n * 2 } else { n })
                };
                self.pos = after_line;
                if count == Some(0) {
                    if attribute {
                        return Ok(Step::Opened);
                    }
                    return Ok(Step::Value(Node::aggregate(kind, Vec::new())));
                }
                if self.stack.len() >= self.limits.max_depth {
                    return err("aggregates nested deeper than the limit");
                }
                let prealloc = count.unwrap_or(0).min(MAX_PREALLOC);
                if self.budget_end.saturating_sub(self.pos) / NODE_BYTES < prealloc {
                    return over_budget(&self.limits);
                }
                self.budget_end -= prealloc * NODE_BYTES;
                self.stack.push(Open {
                    kind,
                    remaining: count,
                    children: Vec::with_capacity(prealloc),
                    attribute,
                });
                return Ok(Step::Opened);
            }
            b'.' if line.is_empty() => {
                self.pos = after_line;
                return Ok(Step::End);
            }
            other => {
                return err(format!(
                    "unknown type byte {:?}",
                    char::from(other).escape_default().to_string()
                ));
            }
        };
        self.pos = after_line;
        Ok(Step::Value(node))
    }

    /// A bulk string whose bytes have all arrived, at `self.pos` (see [`whole_bulk`]).
    #[inline(always)]
    fn complete_bulk(&mut self, buf: &mut BytesMut) -> Result<Option<Node>, ProtocolError> {
        let bounds = (
            self.max_bulk_digits,
            self.limits.max_bulk_len,
            self.budget_end,
        );
        let Some((node, end)) = whole_bulk(buf, self.pos, bounds)? else {
            return Ok(None);
        };
        self.needed = 0;
        self.pos = end;
        Ok(Some(node))
    }

    /// The elements of the innermost aggregate that are whole bulks (LRANGE, MGET, HGETALL
    /// replies), pushed straight in without a general step each. The last element (closing the
    /// aggregate), growing its storage, and anything else are left to the general loop, which
    /// takes the same decisions on the same bytes.
    #[inline(always)]
    fn push_whole_bulks(&mut self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        if self.streamed.is_some() {
            return Ok(());
        }
        let Some(Open {
            remaining: Some(remaining),
            children,
            ..
        }) = self.stack.last_mut()
        else {
            return Ok(());
        };
        let bounds = (
            self.max_bulk_digits,
            self.limits.max_bulk_len,
            self.budget_end,
        );
        while *remaining > 1
            && children.len() < children.capacity()
            && buf.get(self.pos) == Some(&b'$')
        {
            let Some((node, end)) = whole_bulk(buf, self.pos, bounds)? else {
                break;
            };
            children.push(node);
            *remaining -= 1;
            self.needed = 0;
            self.pos = end;
        }
        Ok(())
    }

    /// A short status line (`+OK\r\n`, at `self.pos`) whose bytes have all arrived. Anything
    /// else (a long or incomplete line, a CR or LF out of place) is left to the general path,
    /// which also reports errors.
    #[inline]
    fn complete_status(&mut self, buf: &mut BytesMut) -> Option<Node> {
        const SHORT: usize = 64;
        let start = self.pos + 1;
        let rest = buf.get(start..)?;
        let cr = rest
            .iter()
            .take(SHORT)
            .position(|&b| b == b'\r' || b == b'\n')?;
        if rest[cr] != b'\r'
            || rest.get(cr + 1) != Some(&b'\n')
            || cr > self.limits.max_line_len
            || start + cr + 2 > self.budget_end
        {
            return None;
        }
        buf[start + cr] = 0;
        self.needed = 0;
        self.pos = start + cr + 2;
        Some(Node::text_at(ReplyKind::Status, start, cr))
    }

    /// Reads one `;len` chunk of a streamed string, moving its payload down to follow the
    /// chunks before it.
    fn streamed_chunk(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        loop {
            if buf.len() <= self.pos {
                return Ok(Step::Incomplete);
            }
            if buf[self.pos] != b';' {
                return err("streamed string chunk does not start with ';'");
            }
            let Some(cr) = self.line_end(buf)? else {
                return Ok(Step::Incomplete);
            };
            let len = usize::try_from(parse_int(&buf[self.pos + 1..cr])?)
                .map_err(|_| ProtocolError("negative chunk length".into()))?;
            let streamed = self.streamed.as_mut().expect("in a streamed string");
            if streamed.len + len > self.limits.max_bulk_len {
                return err("streamed string longer than the limit");
            }
            let data = cr + 2;
            if data + len + if len == 0 { 0 } else { 2 } > self.budget_end {
                return over_budget(&self.limits);
            }
            if len == 0 {
                let Streamed { start, len } = self.streamed.take().expect("in a streamed string");
                // The terminator line is at least 4 bytes past the payload, so the NUL fits.
                buf[start + len] = 0;
                self.pos = data;
                return Ok(Step::Value(Node::text_at(ReplyKind::String, start, len)));
            }
            if buf.len() < data + len + 2 {
                self.needed = data + len + 2;
                return Ok(Step::Incomplete);
            }
            if &buf[data + len..data + len + 2] != b"\r\n" {
                return err("streamed string chunk not terminated by CRLF");
            }
            let dest = streamed.start + streamed.len;
            buf.copy_within(data..data + len, dest);
            streamed.len += len;
            self.needed = 0;
            self.pos = data + len + 2;
        }
    }
}

/// A bulk string (`$len\r\npayload\r\n`, at `pos`) whose bytes have all arrived, decoded without
/// the general line scan: its node and where it ends. `None` leaves anything else (a null, a
/// streamed string, a length line longer than `max_digits`, a bulk longer than `max_len` or
/// ending past `budget_end`, a malformed or incomplete one) to the general path, which also
/// reports errors.
#[inline(always)]
fn whole_bulk(
    buf: &mut [u8],
    pos: usize,
    (max_digits, max_len, budget_end): (usize, usize, usize),
) -> Result<Option<(Node, usize)>, ProtocolError> {
    let digits_start = pos + 1;
    let mut len: usize = 0;
    let mut i = digits_start;
    // At most 12 digits (far beyond any bulk limit, and no overflow), and no more than a line
    // may hold (`max_digits`): a longer length line is the general path's to reject.
    while let Some(&b) = buf.get(i) {
        if !b.is_ascii_digit() || i - digits_start == max_digits {
            break;
        }
        len = len * 10 + usize::from(b - b'0');
        i += 1;
    }
    if i == digits_start || buf.get(i..i + 2) != Some(b"\r\n") || len > max_len {
        return Ok(None);
    }
    let start = i + 2;
    let end = start + len;
    if buf.len() < end + 2 || end + 2 > budget_end {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return err("bulk string not terminated by CRLF");
    }
    buf[end] = 0;
    Ok(Some((
        Node::text_at(ReplyKind::String, start, len),
        end + 2,
    )))
}

#[cfg(test)]
mod tests;
