//! The decoded form of a reply: a tree of [`Node`]s whose strings point into the network buffer
//! the reply arrived in.
//!
//! A reply is never copied out of the buffer it was read into: the decoder splits the bytes of a
//! complete reply off the connection's read buffer, and every string node points into them. The
//! byte after each string in RESP is the `\r` of its terminator, which the decoder overwrites
//! with NUL, so every string is also a valid C string without a copy (see `decoder.rs`).
//!
//! [`Reply`] is a top-level reply: its root [`Node`] plus the buffers that keep the strings
//! alive. Nested nodes are only ever reached by reference through their root, so a node can
//! never outlive the bytes it points to.

use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

/// The type of a reply node. The numbers are the C API's `brisk_reply_type` values.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    Nil = 0,
    String = 1,
    Status = 2,
    Error = 3,
    Integer = 4,
    Double = 5,
    Bool = 6,
    BigNumber = 7,
    Verbatim = 8,
    Array = 9,
    Map = 10,
    Set = 11,
    Push = 12,
}

impl ReplyKind {
    /// Kinds whose payload is a byte string (`Double` keeps its text as well as its value).
    pub fn has_text(self) -> bool {
        matches!(
            self,
            Self::String
                | Self::Status
                | Self::Error
                | Self::Double
                | Self::BigNumber
                | Self::Verbatim
        )
    }

    /// Kinds with child nodes.
    pub fn is_aggregate(self) -> bool {
        matches!(self, Self::Array | Self::Map | Self::Set | Self::Push)
    }
}

/// One value in a reply tree.
///
/// `ptr`/`len` hold a string payload (NUL-terminated in memory, `len` excluding the NUL), `num`
/// holds an integer, a boolean (0/1) or the bits of a double, and `children` holds the elements
/// of an aggregate (a map's keys and values alternate).
pub struct Node {
    kind: ReplyKind,
    ptr: *const u8,
    len: usize,
    num: u64,
    children: Box<[Node]>,
}

// SAFETY: a node is immutable after construction; `ptr` points into a `Bytes` owned by the root
// `Reply` (shared, immutable, Send + Sync) or into static memory.
unsafe impl Send for Node {}
unsafe impl Sync for Node {}

static EMPTY_C_STRING: [u8; 1] = [0];

impl Node {
    pub(crate) fn scalar(kind: ReplyKind, num: u64) -> Node {
        Node {
            kind,
            ptr: std::ptr::null(),
            len: 0,
            num,
            children: Box::default(),
        }
    }

    /// A node whose text is at `offset..offset + len` of the buffer it is being decoded from;
    /// [`Node::rebase`] turns the offset into a pointer once that buffer stops moving.
    pub(crate) fn text_at(kind: ReplyKind, offset: usize, len: usize, num: u64) -> Node {
        Node {
            kind,
            ptr: std::ptr::without_provenance(offset),
            len,
            num,
            children: Box::default(),
        }
    }

    pub(crate) fn aggregate(kind: ReplyKind, children: Vec<Node>) -> Node {
        Node {
            kind,
            ptr: std::ptr::null(),
            len: 0,
            num: 0,
            children: children.into_boxed_slice(),
        }
    }

    /// Turns the offsets recorded by [`Node::text_at`] into pointers into `base`.
    ///
    /// # Safety
    /// Every text offset in this tree, plus its length and the NUL after it, must lie within the
    /// allocation `base` points to.
    pub(crate) unsafe fn rebase(&mut self, base: *const u8) {
        if self.kind.has_text() {
            // SAFETY: guaranteed by the caller.
            self.ptr = unsafe { base.add(self.ptr.addr()) };
        }
        for child in self.children.iter_mut() {
            // SAFETY: same buffer, same guarantee.
            unsafe { child.rebase(base) };
        }
    }

    pub fn kind(&self) -> ReplyKind {
        self.kind
    }

    pub fn is_nil(&self) -> bool {
        self.kind == ReplyKind::Nil
    }

    /// The payload of a string-like node (see [`ReplyKind::has_text`]), without the NUL.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        if !self.kind.has_text() {
            return None;
        }
        if self.len == 0 {
            return Some(&[]);
        }
        // SAFETY: `ptr..ptr+len` lies in a buffer kept alive by the root reply that `self`
        // borrows from (see the module docs).
        Some(unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
    }

    /// The payload as a NUL-terminated C string; NULL for nodes without text.
    pub fn as_c_ptr(&self) -> *const u8 {
        match self.kind.has_text() {
            true if self.len == 0 => EMPTY_C_STRING.as_ptr(),
            true => self.ptr,
            false => std::ptr::null(),
        }
    }

    /// The payload as UTF-8, when it is.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// INTEGER as itself, BOOL as 0/1.
    pub fn as_integer(&self) -> Option<i64> {
        match self.kind {
            ReplyKind::Integer | ReplyKind::Bool => Some(self.num as i64),
            _ => None,
        }
    }

    pub fn as_double(&self) -> Option<f64> {
        match self.kind {
            ReplyKind::Double => Some(f64::from_bits(self.num)),
            _ => None,
        }
    }

    /// The format of a verbatim string ("txt", "mkd").
    pub fn verbatim_format(&self) -> Option<[u8; 3]> {
        (self.kind == ReplyKind::Verbatim).then(|| {
            let n = self.num;
            [n as u8, (n >> 8) as u8, (n >> 16) as u8]
        })
    }

    /// Elements of an aggregate (a map's keys and values alternate); empty for scalars.
    pub fn children(&self) -> &[Node] {
        &self.children
    }

    /// Key/value pairs of a map (or of any aggregate read as pairs).
    pub fn pairs(&self) -> impl Iterator<Item = (&Node, &Node)> {
        self.children.chunks_exact(2).map(|kv| (&kv[0], &kv[1]))
    }

    /// The value of `key` in a map (RESP3) or a flat key/value array (RESP2).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.pairs()
            .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
            .map(|(_, v)| v)
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ReplyKind::Nil => write!(f, "nil"),
            ReplyKind::Integer => write!(f, "{}", self.num as i64),
            ReplyKind::Bool => write!(f, "{}", self.num != 0),
            ReplyKind::Double => write!(f, "{}", f64::from_bits(self.num)),
            k if k.has_text() => {
                let text = String::from_utf8_lossy(self.as_bytes().unwrap_or_default());
                match k {
                    ReplyKind::String => write!(f, "{text:?}"),
                    _ => write!(f, "{k:?}({text:?})"),
                }
            }
            k => {
                write!(f, "{k:?}")?;
                f.debug_list().entries(self.children.iter()).finish()
            }
        }
    }
}

/// The buffers a reply's strings point into. A list is shared, so that splitting an aggregate
/// into its elements costs one reference count per element, not a copy of the list.
enum Buffers {
    None,
    One(Bytes),
    Many(Arc<[Bytes]>),
}

/// A top-level reply: its root node and the buffers that keep every string in the tree alive.
///
/// `repr(C)` with the root first, so that a pointer to a `Reply` is also a pointer to its root
/// [`Node`]: the C API hands out both as `brisk_reply *`.
#[repr(C)]
pub struct Reply {
    root: Node,
    buffers: Buffers,
}

impl Reply {
    /// A reply whose strings all point into `buffer` (or nowhere).
    ///
    /// # Safety
    /// Every string pointer in `root` must point into `buffer`.
    pub(crate) unsafe fn from_buffer(root: Node, buffer: Bytes) -> Reply {
        Reply {
            root,
            buffers: Buffers::One(buffer),
        }
    }

    /// A reply without strings (nil, integer, bool, or an aggregate of those).
    pub fn scalar(kind: ReplyKind, num: u64) -> Reply {
        debug_assert!(!kind.has_text() && !kind.is_aggregate());
        Reply {
            root: Node::scalar(kind, num),
            buffers: Buffers::None,
        }
    }

    pub fn nil() -> Reply {
        Reply::scalar(ReplyKind::Nil, 0)
    }

    /// A string reply holding a copy of `text` (used for replies brisk makes itself).
    pub fn text(kind: ReplyKind, text: &[u8]) -> Reply {
        debug_assert!(kind.has_text());
        let mut owned = Vec::with_capacity(text.len() + 1);
        owned.extend_from_slice(text);
        owned.push(0);
        let buffer = Bytes::from(owned);
        let root = Node {
            kind,
            ptr: buffer.as_ptr(),
            len: text.len(),
            num: 0,
            children: Box::default(),
        };
        Reply {
            root,
            buffers: Buffers::One(buffer),
        }
    }

    /// An aggregate made of whole replies (a pipeline's results, a transaction's EXEC).
    pub fn aggregate(kind: ReplyKind, items: Vec<Reply>) -> Reply {
        let mut nodes = Vec::with_capacity(items.len());
        let mut buffers = Vec::with_capacity(items.len());
        for item in items {
            nodes.push(item.root);
            match item.buffers {
                Buffers::None => {}
                Buffers::One(b) => buffers.push(b),
                Buffers::Many(bs) => buffers.extend(bs.iter().cloned()),
            }
        }
        Reply {
            root: Node::aggregate(kind, nodes),
            buffers: Buffers::Many(buffers.into()),
        }
    }

    /// An aggregate of replies decoded in place (a pipeline's), whose strings point into
    /// `buffers`.
    ///
    /// # Safety
    /// Every string pointer in `roots` must point into one of `buffers`.
    pub(crate) unsafe fn from_batch(
        kind: ReplyKind,
        roots: Vec<Node>,
        mut buffers: Vec<Bytes>,
    ) -> Reply {
        let buffers = match buffers.len() {
            0 => Buffers::None,
            1 => Buffers::One(buffers.pop().expect("one buffer")),
            _ => Buffers::Many(buffers.into()),
        };
        Reply {
            root: Node::aggregate(kind, roots),
            buffers,
        }
    }

    /// Element `i` of an aggregate as a reply of its own (keeping the buffers it points into);
    /// `None` when out of range.
    pub fn into_element(self, i: usize) -> Option<Reply> {
        let Reply { root, buffers } = self;
        let mut children = root.children.into_vec();
        if i >= children.len() {
            return None;
        }
        Some(Reply {
            root: children.swap_remove(i),
            buffers,
        })
    }

    /// Splits an aggregate into one reply per element (EXEC's array into per-command results).
    pub fn into_elements(self) -> Vec<Reply> {
        let Reply { root, buffers } = self;
        root.children
            .into_vec()
            .into_iter()
            .map(|node| Reply {
                root: node,
                // Cloning a `Bytes` only bumps a reference count.
                buffers: match &buffers {
                    Buffers::None => Buffers::None,
                    Buffers::One(b) => Buffers::One(b.clone()),
                    Buffers::Many(bs) => Buffers::Many(bs.clone()),
                },
            })
            .collect()
    }

    pub fn node(&self) -> &Node {
        &self.root
    }
}

impl Node {
    /// The bytes its strings take with their NULs, over the whole tree.
    fn text_size(&self) -> usize {
        let own = if self.kind.has_text() {
            self.len + 1
        } else {
            0
        };
        own + self.children.iter().map(Node::text_size).sum::<usize>()
    }

    /// Its nodes' own size on the heap (the root's is counted by whoever holds it).
    fn nodes_size(&self) -> usize {
        self.children
            .iter()
            .map(|c| std::mem::size_of::<Node>() + c.nodes_size())
            .sum()
    }

    /// A copy of the tree whose strings are appended to `text` (as offsets, see
    /// [`Node::text_at`]).
    fn copy_into(&self, text: &mut Vec<u8>) -> Node {
        let (ptr, len) = match (self.kind.has_text(), self.as_bytes()) {
            (true, Some(bytes)) => {
                let offset = text.len();
                text.extend_from_slice(bytes);
                text.push(0);
                (std::ptr::without_provenance(offset), bytes.len())
            }
            _ => (std::ptr::null(), 0),
        };
        Node {
            kind: self.kind,
            ptr,
            len,
            num: self.num,
            children: self.children.iter().map(|c| c.copy_into(text)).collect(),
        }
    }

    /// The same tree, pointing at the same bytes.
    fn duplicate(&self) -> Node {
        Node {
            kind: self.kind,
            ptr: self.ptr,
            len: self.len,
            num: self.num,
            children: self.children.iter().map(Node::duplicate).collect(),
        }
    }
}

impl Reply {
    /// A copy whose strings live in one buffer of its own, exactly as large as they are: what a
    /// cache keeps (a reply decoded in place may hold on to a whole network read buffer) and
    /// what it hands out (a private copy, so readers on different threads never write to one
    /// shared reference count).
    pub fn detached(&self) -> Reply {
        if self.root.children.is_empty() {
            // One node (a GET's string, an integer): one allocation at most, no walk.
            let Some(text) = self.root.as_bytes().filter(|_| self.root.kind.has_text()) else {
                return Reply {
                    root: self.root.duplicate(),
                    buffers: Buffers::None,
                };
            };
            let mut copy = Reply::text(self.root.kind, text);
            copy.root.num = self.root.num;
            return copy;
        }
        let size = self.root.text_size();
        if size == 0 {
            return Reply {
                root: self.root.duplicate(),
                buffers: Buffers::None,
            };
        }
        let mut text = Vec::with_capacity(size);
        let mut root = self.root.copy_into(&mut text);
        let buffer = Bytes::from(text);
        // SAFETY: every text offset was recorded while appending to `text`, which is now
        // `buffer` (same bytes, same length; a `Vec` whose length is its capacity becomes a
        // `Bytes` without moving).
        unsafe { root.rebase(buffer.as_ptr()) };
        Reply {
            root,
            buffers: Buffers::One(buffer),
        }
    }

    /// A second reply on the same bytes: the nodes are copied, the buffers shared (a reference
    /// count each). Cheaper than [`Reply::detached`] for large strings.
    pub fn shared(&self) -> Reply {
        Reply {
            root: self.root.duplicate(),
            buffers: match &self.buffers {
                Buffers::None => Buffers::None,
                Buffers::One(b) => Buffers::One(b.clone()),
                Buffers::Many(bs) => Buffers::Many(bs.clone()),
            },
        }
    }

    /// The bytes of its strings (with their NULs), as [`Reply::detached`] holds them.
    pub fn text_size(&self) -> usize {
        self.root.text_size()
    }

    /// What a [`Reply::detached`] copy holds on the heap besides the `Reply` itself: its
    /// strings and its nested nodes.
    pub fn heap_size(&self) -> usize {
        self.root.text_size() + self.root.nodes_size()
    }
}

impl std::ops::Deref for Reply {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.root
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_replies_are_nul_terminated_copies() {
        let r = Reply::text(ReplyKind::Status, b"OK");
        assert_eq!(r.as_bytes(), Some(&b"OK"[..]));
        // SAFETY: as_c_ptr promises a NUL after the payload.
        assert_eq!(unsafe { *r.as_c_ptr().add(2) }, 0);
        assert_eq!(r.as_integer(), None);
    }

    #[test]
    fn aggregates_of_replies_keep_their_buffers() {
        let items = vec![
            Reply::text(ReplyKind::String, b"a"),
            Reply::scalar(ReplyKind::Integer, 7),
        ];
        let arr = Reply::aggregate(ReplyKind::Array, items);
        assert_eq!(arr.children().len(), 2);
        assert_eq!(arr.children()[0].as_bytes(), Some(&b"a"[..]));
        assert_eq!(arr.children()[1].as_integer(), Some(7));
        let parts = arr.into_elements();
        assert_eq!(parts[0].as_str(), Some("a"));
    }

    #[test]
    fn detached_and_shared_copies_read_the_same() {
        let nested = Reply::aggregate(
            ReplyKind::Array,
            vec![
                Reply::text(ReplyKind::String, b"ab\0c"),
                Reply::scalar(ReplyKind::Integer, 7),
                Reply::aggregate(
                    ReplyKind::Map,
                    vec![
                        Reply::text(ReplyKind::String, b"k"),
                        Reply::text(ReplyKind::Status, b""),
                    ],
                ),
            ],
        );
        for copy in [nested.detached(), nested.shared()] {
            assert_eq!(format!("{copy:?}"), format!("{nested:?}"));
            let first = &copy.children()[0];
            assert_eq!(first.as_bytes(), Some(&b"ab\0c"[..]));
            // SAFETY: as_c_ptr promises a NUL after the payload.
            assert_eq!(unsafe { *first.as_c_ptr().add(4) }, 0);
        }
        let detached = nested.detached();
        drop(nested);
        assert_eq!(detached.children()[2].children()[0].as_str(), Some("k"));
        // 4 + 1 + 1 + 0 bytes of text, each with its NUL.
        assert_eq!(detached.text_size(), 8);
        assert_eq!(detached.heap_size(), 8 + 5 * std::mem::size_of::<Node>());
        let scalar = Reply::scalar(ReplyKind::Integer, 3).detached();
        assert_eq!(scalar.as_integer(), Some(3));
        assert_eq!(scalar.heap_size(), 0);
    }

    #[test]
    fn empty_text_is_an_empty_c_string() {
        let r = Reply::text(ReplyKind::String, b"");
        assert_eq!(r.as_bytes(), Some(&b""[..]));
        assert!(!r.as_c_ptr().is_null());
    }
}
