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

use super::decoder::parse_double;
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
    /// A bit per kind with text ([`ReplyKind::has_text`]).
    const TEXT: u16 = 1 << ReplyKind::String as u8
        | 1 << ReplyKind::Status as u8
        | 1 << ReplyKind::Error as u8
        | 1 << ReplyKind::Double as u8
        | 1 << ReplyKind::BigNumber as u8
        | 1 << ReplyKind::Verbatim as u8;

    /// Kinds whose payload is a byte string (`Double` keeps its text as well as its value).
    #[inline]
    pub fn has_text(self) -> bool {
        // A bit per kind: one shift, no branch (it is asked for every string a caller reads).
        Self::TEXT >> self as u8 & 1 != 0
    }

    /// Kinds with child nodes.
    pub fn is_aggregate(self) -> bool {
        matches!(self, Self::Array | Self::Map | Self::Set | Self::Push)
    }
}

/// One value in a reply tree: 16 bytes, so that a large aggregate costs little more than its
/// elements' bytes on the wire (a 3-byte `_\r\n` element costs 16 bytes of node).
///
/// `word` holds a string payload's address (NUL-terminated in memory; an offset into the buffer
/// being decoded until [`Node::rebase`]), an aggregate's elements (a boxed slice this node owns;
/// a map's keys and values alternate) or an integer or boolean (0/1); `tag` holds the kind in
/// its low byte and the payload's length (without the NUL) or the number of elements above.
/// A double's value is parsed from its text when asked for, and a verbatim string's format is
/// read from the 4 bytes before its text (`txt:`), which is where RESP puts it.
pub struct Node {
    word: *const u8,
    tag: u64,
}

// An integer shares `word` with the pointers.
const _: () = assert!(
    usize::BITS == 64,
    "Node keeps a 64-bit integer in a pointer"
);

/// The length's place in `tag`, above the kind.
const LEN_SHIFT: u32 = 8;
const _: () = assert!(
    ReplyKind::Verbatim as u8 + 1 == ReplyKind::Array as u8
        && ReplyKind::Push as u8 == ReplyKind::Array as u8 + 3,
    "the aggregate kinds are the last four: one compare tells an aggregate from the rest"
);

// SAFETY: a node is immutable after construction; `word` points into a `Bytes` owned by the root
// `Reply` (shared, immutable, Send + Sync), into static memory, or to the node's own children.
unsafe impl Send for Node {}
unsafe impl Sync for Node {}

impl Node {
    #[inline(always)]
    fn new(kind: ReplyKind, word: *const u8, len: usize) -> Node {
        debug_assert!(len as u64 <= u64::MAX >> LEN_SHIFT);
        Node {
            word,
            tag: (len as u64) << LEN_SHIFT | kind as u64,
        }
    }

    /// The payload's length or the number of elements.
    #[inline(always)]
    fn len(&self) -> usize {
        (self.tag >> LEN_SHIFT) as usize
    }

    /// `kind().is_aggregate()` in one compare (in `children`, and in every node's drop).
    #[inline(always)]
    fn is_aggregate(&self) -> bool {
        self.tag as u8 >= ReplyKind::Array as u8
    }

    /// A node without text or elements: nil, an integer, a boolean (0/1).
    pub(crate) fn scalar(kind: ReplyKind, num: u64) -> Node {
        debug_assert!(!kind.has_text() && !kind.is_aggregate());
        Node::new(kind, std::ptr::without_provenance(num as usize), 0)
    }

    /// A node whose text is at `offset..offset + len` of the buffer it is being decoded from;
    /// [`Node::rebase`] turns the offset into a pointer once that buffer stops moving. A
    /// verbatim string's text must follow its 3-byte format and a colon.
    #[inline(always)]
    pub(crate) fn text_at(kind: ReplyKind, offset: usize, len: usize) -> Node {
        debug_assert!(kind.has_text());
        Node::new(kind, std::ptr::without_provenance(offset), len)
    }

    pub(crate) fn aggregate(kind: ReplyKind, children: Vec<Node>) -> Node {
        debug_assert!(kind.is_aggregate());
        let children = Box::into_raw(children.into_boxed_slice());
        Node::new(kind, children.cast::<u8>(), children.len())
    }

    /// The elements as the boxed slice this node owns; `None` for a node without any.
    ///
    /// # Safety
    /// The node must not be used (nor dropped) afterwards.
    unsafe fn take_children(&mut self) -> Option<Box<[Node]>> {
        if !self.is_aggregate() {
            return None;
        }
        let slice =
            std::ptr::slice_from_raw_parts_mut(self.word.cast::<Node>().cast_mut(), self.len());
        // SAFETY: an aggregate's `word` and length are those of the boxed slice `aggregate` made
        // and that only this node owns; the caller does not use the node again.
        Some(unsafe { Box::from_raw(slice) })
    }

    /// An aggregate's elements, to take apart.
    pub(crate) fn into_children(self) -> Vec<Node> {
        let mut node = std::mem::ManuallyDrop::new(self);
        // SAFETY: `node` is forgotten, never used again.
        unsafe { node.take_children() }
            .map(Vec::from)
            .unwrap_or_default()
    }

    fn children_mut(&mut self) -> &mut [Node] {
        if !self.is_aggregate() {
            return &mut [];
        }
        // SAFETY: as in `children`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.word.cast::<Node>().cast_mut(), self.len()) }
    }

    /// Turns the offsets recorded by [`Node::text_at`] into pointers into `base`.
    ///
    /// # Safety
    /// Every text offset in this tree, plus its length and the NUL after it, must lie within the
    /// allocation `base` points to.
    pub(crate) unsafe fn rebase(&mut self, base: *const u8) {
        if self.kind().has_text() {
            // SAFETY: guaranteed by the caller.
            self.word = unsafe { base.add(self.word.addr()) };
            return;
        }
        for child in self.children_mut() {
            // SAFETY: same buffer, same guarantee.
            unsafe { child.rebase(base) };
        }
    }

    /// Bytes of memory this node's elements take, theirs included (not the node itself).
    pub(crate) fn heap_bytes(&self) -> usize {
        let children = self.children();
        children.iter().map(Node::heap_bytes).sum::<usize>() + std::mem::size_of_val(children)
    }

    #[inline(always)]
    pub fn kind(&self) -> ReplyKind {
        let kind = self.tag as u8;
        // SAFETY: the low byte of `tag` is only ever written from a `ReplyKind` (`Node::new`).
        unsafe { std::mem::transmute::<u8, ReplyKind>(kind) }
    }

    pub fn is_nil(&self) -> bool {
        self.kind() == ReplyKind::Nil
    }

    /// The payload of a string-like node (see [`ReplyKind::has_text`]), without the NUL.
    #[inline]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        if !self.kind().has_text() {
            return None;
        }
        // SAFETY: `word..word+len` and the NUL after it (so `word` is never NULL, even for an
        // empty string) lie in a buffer kept alive by the root reply that `self` borrows from
        // (see the module docs).
        Some(unsafe { std::slice::from_raw_parts(self.word, self.len()) })
    }

    /// The payload as a NUL-terminated C string; NULL for nodes without text.
    #[inline]
    pub fn as_c_ptr(&self) -> *const u8 {
        match self.kind().has_text() {
            true => self.word,
            false => std::ptr::null(),
        }
    }

    /// [`Node::as_c_ptr`] and the payload's length; NULL and 0 for nodes without text.
    #[inline]
    pub fn text_parts(&self) -> (*const u8, usize) {
        match self.kind().has_text() {
            true => (self.word, self.len()),
            false => (std::ptr::null(), 0),
        }
    }

    /// Kind, text (NULL without), length and integer in one read of the node, as the C API's
    /// `brisk_reply_item` holds them: the length is the text's bytes, an aggregate's elements,
    /// or 0 for nil, integers and booleans (whose length [`Node::scalar`] stores as 0); the
    /// integer is an INTEGER's value, a BOOL's 0 or 1, and 0 for every other kind. The same as
    /// [`Node::text_parts`], `children().len()` and [`Node::as_integer`], without a branch.
    #[inline(always)]
    pub(crate) fn item_parts(&self) -> (ReplyKind, *const u8, usize, i64) {
        // Two masks per kind, `word` and'ed with them the text and the integer: one table
        // read per node where tests and conditional moves took about twice the instructions.
        const TEXT: usize = 0;
        const INTEGER: usize = 1;
        const MASKS: [[usize; 2]; 16] = {
            const INTEGERS: u16 = 1 << ReplyKind::Integer as u8 | 1 << ReplyKind::Bool as u8;
            let mut table = [[0; 2]; 16];
            let mut k = 0;
            while k < 16 {
                if ReplyKind::TEXT >> k & 1 != 0 {
                    table[k][TEXT] = usize::MAX;
                }
                if INTEGERS >> k & 1 != 0 {
                    table[k][INTEGER] = usize::MAX;
                }
                k += 1;
            }
            table
        };
        static TABLE: [[usize; 2]; 16] = MASKS;
        let kind = self.kind();
        let masks = &TABLE[kind as usize & 15];
        let text = self.word.map_addr(|a| a & masks[TEXT]);
        let integer = (self.word.addr() & masks[INTEGER]) as i64;
        (kind, text, self.len(), integer)
    }

    /// The payload as UTF-8, when it is.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// INTEGER as itself, BOOL as 0/1.
    pub fn as_integer(&self) -> Option<i64> {
        match self.kind() {
            ReplyKind::Integer | ReplyKind::Bool => Some(self.word.addr() as i64),
            _ => None,
        }
    }

    /// A double's value, parsed from its text (checked when it was decoded).
    pub fn as_double(&self) -> Option<f64> {
        match self.kind() {
            ReplyKind::Double => parse_double(self.as_bytes()?).ok(),
            _ => None,
        }
    }

    /// The format of a verbatim string ("txt", "mkd").
    pub fn verbatim_format(&self) -> Option<[u8; 3]> {
        (self.kind() == ReplyKind::Verbatim).then(|| {
            // SAFETY: a verbatim string's text follows its format and a colon in the same
            // buffer (`Node::text_at`, `Reply::text`).
            let prefix = unsafe { std::slice::from_raw_parts(self.word.sub(4), 3) };
            [prefix[0], prefix[1], prefix[2]]
        })
    }

    /// Elements of an aggregate (a map's keys and values alternate); empty for scalars.
    #[inline]
    pub fn children(&self) -> &[Node] {
        if !self.is_aggregate() {
            return &[];
        }
        // SAFETY: an aggregate's `word` and length are those of the boxed slice it owns.
        unsafe { std::slice::from_raw_parts(self.word.cast::<Node>(), self.len()) }
    }

    /// Key/value pairs of a map (or of any aggregate read as pairs).
    pub fn pairs(&self) -> impl Iterator<Item = (&Node, &Node)> {
        self.children().chunks_exact(2).map(|kv| (&kv[0], &kv[1]))
    }

    /// The value of `key` in a map (RESP3) or a flat key/value array (RESP2).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.pairs()
            .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
            .map(|(_, v)| v)
    }
}

impl Drop for Node {
    #[inline]
    fn drop(&mut self) {
        // The check inline, so that dropping a string or number costs a compare.
        if self.is_aggregate() {
            // SAFETY: the node is being dropped.
            unsafe { drop_children(self) };
        }
    }
}

/// Frees an aggregate's elements. The loop looks at each element's kind itself and calls
/// itself only for nested aggregates: a large array of strings costs a compare per element,
/// not a call to each element's `drop` (which, being recursive, is not always inlined).
///
/// # Safety
/// `node` is an aggregate being dropped: it is not used afterwards.
#[inline(never)]
unsafe fn drop_children(node: &mut Node) {
    // SAFETY: per this function's contract.
    let Some(children) = (unsafe { node.take_children() }) else {
        return;
    };
    // The same memory without the elements' drop: they are dropped here, by hand.
    // SAFETY: `ManuallyDrop<Node>` has the layout of `Node`.
    let mut children =
        unsafe { Box::from_raw(Box::into_raw(children) as *mut [std::mem::ManuallyDrop<Node>]) };
    for child in children.iter_mut() {
        if child.is_aggregate() {
            // SAFETY: each element is dropped exactly once, here, and never used again.
            unsafe { drop_children(child) };
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            ReplyKind::Nil => write!(f, "nil"),
            ReplyKind::Integer => write!(f, "{}", self.as_integer().unwrap_or_default()),
            ReplyKind::Bool => write!(f, "{}", self.as_integer() != Some(0)),
            ReplyKind::Double => write!(f, "{}", self.as_double().unwrap_or(f64::NAN)),
            k if k.has_text() => {
                let text = String::from_utf8_lossy(self.as_bytes().unwrap_or_default());
                match k {
                    ReplyKind::String => write!(f, "{text:?}"),
                    _ => write!(f, "{k:?}({text:?})"),
                }
            }
            k => {
                write!(f, "{k:?}")?;
                f.debug_list().entries(self.children()).finish()
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

    /// The buffer every string of this reply points into, when there is exactly one (a reply
    /// decoded on its own): what keeps a part of it alive without the reply's tree (a Pub/Sub
    /// message keeps the buffer and where its strings are).
    pub(crate) fn buffer(&self) -> Option<&Bytes> {
        match &self.buffers {
            Buffers::One(buffer) => Some(buffer),
            Buffers::None | Buffers::Many(_) => None,
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

    /// A string reply holding a copy of `text` (used for replies brisk makes itself). A
    /// verbatim string gets the format "txt".
    pub fn text(kind: ReplyKind, text: &[u8]) -> Reply {
        debug_assert!(kind.has_text());
        let prefix: &[u8] = if kind == ReplyKind::Verbatim {
            b"txt:"
        } else {
            b""
        };
        let mut owned = Vec::with_capacity(prefix.len() + text.len() + 1);
        owned.extend_from_slice(prefix);
        owned.extend_from_slice(text);
        owned.push(0);
        let buffer = Bytes::from(owned);
        // SAFETY: `prefix.len()` is within `buffer`.
        let start = unsafe { buffer.as_ptr().add(prefix.len()) };
        Reply {
            root: Node::new(kind, start, text.len()),
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
        let mut children = root.into_children();
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
        root.into_children()
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
    /// The bytes of text before a node's own (a verbatim string's `txt:`).
    fn prefix_len(&self) -> usize {
        match self.kind() {
            ReplyKind::Verbatim => 4,
            _ => 0,
        }
    }

    /// The bytes its strings take with their NULs (and verbatim formats), over the whole tree.
    fn text_size(&self) -> usize {
        let own = match self.kind().has_text() {
            true => self.prefix_len() + self.len() + 1,
            false => 0,
        };
        own + self.children().iter().map(Node::text_size).sum::<usize>()
    }

    /// A copy of the tree whose strings are appended to `text` (as offsets, see
    /// [`Node::text_at`]).
    fn copy_into(&self, text: &mut Vec<u8>) -> Node {
        let kind = self.kind();
        if kind.has_text() {
            let bytes = self.as_bytes().unwrap_or_default();
            if kind == ReplyKind::Verbatim {
                // SAFETY: a verbatim string's text follows its format and a colon in the same
                // buffer (see `verbatim_format`).
                text.extend_from_slice(unsafe { std::slice::from_raw_parts(self.word.sub(4), 4) });
            }
            let offset = text.len();
            text.extend_from_slice(bytes);
            text.push(0);
            return Node::text_at(kind, offset, bytes.len());
        }
        if kind.is_aggregate() {
            return Node::aggregate(
                kind,
                self.children().iter().map(|c| c.copy_into(text)).collect(),
            );
        }
        Node::new(kind, self.word, 0)
    }

    /// The same tree, pointing at the same bytes (elements copied: a node owns them).
    fn duplicate(&self) -> Node {
        match self.is_aggregate() {
            true => Node::aggregate(
                self.kind(),
                self.children().iter().map(Node::duplicate).collect(),
            ),
            false => Node {
                word: self.word,
                tag: self.tag,
            },
        }
    }
}

impl Reply {
    /// A copy whose strings live in one buffer of its own, exactly as large as they are: what a
    /// cache keeps (a reply decoded in place may hold on to a whole network read buffer) and
    /// what it hands out for small replies (a private copy, so readers on different cores never
    /// write one shared reference count).
    pub fn detached(&self) -> Reply {
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
        self.root.text_size() + self.root.heap_bytes()
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
    fn item_parts_agree_with_the_accessors() {
        let wire = b"*15\r\n$3\r\nabc\r\n+OK\r\n-ERR x\r\n:-42\r\n,1.5\r\n#t\r\n#f\r\n\
                     (123\r\n=7\r\ntxt:hey\r\n*2\r\n:1\r\n:2\r\n%1\r\n+k\r\n+v\r\n\
                     ~1\r\n_\r\n_\r\n$-1\r\n$0\r\n\r\n";
        let mut buf = bytes::BytesMut::from(&wire[..]);
        let reply = crate::resp::Decoder::default()
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(reply.children().len(), 15);
        for n in reply.children() {
            let (kind, text, len, integer) = n.item_parts();
            let (want_text, want_len) = n.text_parts();
            let want_len = if want_text.is_null() {
                n.children().len()
            } else {
                want_len
            };
            assert_eq!(kind, n.kind());
            assert_eq!(text, want_text, "{kind:?}");
            assert_eq!(len, want_len, "{kind:?}");
            assert_eq!(integer, n.as_integer().unwrap_or(0), "{kind:?}");
        }
    }

    #[test]
    fn empty_text_is_an_empty_c_string() {
        let r = Reply::text(ReplyKind::String, b"");
        assert_eq!(r.as_bytes(), Some(&b""[..]));
        assert!(!r.as_c_ptr().is_null());
    }
}
