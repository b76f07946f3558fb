//! A reply tree written out exactly (every byte of every string, a double's bits), with the
//! invariants every decoded reply must keep checked on the way.
//!
//! `Debug` would do for comparing, but it writes strings lossily and doubles rounded: two trees
//! that differ in a byte could print alike.

use brisk::resp::{Limits, Node, ReplyKind};
use std::fmt::Write;

/// `node` written out; panics if it breaks an invariant.
pub fn dump(node: &Node) -> String {
    let mut out = String::new();
    write_node(&mut out, node);
    out
}

fn write_node(out: &mut String, node: &Node) {
    let kind = node.kind();
    write!(out, "{kind:?}").unwrap();
    if let Some(bytes) = node.as_bytes() {
        // The C API hands strings out as C strings in place: the byte after each is a NUL.
        let c = node.as_c_ptr();
        assert!(!c.is_null(), "{kind:?} without a C string");
        // SAFETY: a text node's C string is its payload followed by a NUL (what is checked).
        let nul = unsafe { *c.add(bytes.len()) };
        assert_eq!(nul, 0, "{kind:?} string not NUL-terminated");
        write!(out, "({})", bytes.escape_ascii()).unwrap();
    }
    match kind {
        ReplyKind::Integer | ReplyKind::Bool => {
            write!(out, "={}", node.as_integer().expect("a number")).unwrap()
        }
        ReplyKind::Double => {
            write!(out, "={:#x}", node.as_double().expect("a double").to_bits()).unwrap()
        }
        ReplyKind::Verbatim => {
            let format = node.verbatim_format().expect("a format");
            write!(out, "[{}]", format.escape_ascii()).unwrap()
        }
        _ => {}
    }
    if kind.is_aggregate() {
        if kind == ReplyKind::Map {
            assert_eq!(node.children().len() % 2, 0, "map with a key and no value");
        }
        out.push('[');
        for child in node.children() {
            write_node(out, child);
            out.push(',');
        }
        out.push(']');
    } else {
        assert!(node.children().is_empty(), "{kind:?} with children");
    }
}

/// Panics if `node` (a top-level reply) holds more than `limits` allow.
pub fn assert_within(node: &Node, limits: &Limits) {
    within(node, limits, 0);
}

fn within(node: &Node, limits: &Limits, depth: usize) {
    let kind = node.kind();
    let children = node.children();
    if !children.is_empty() {
        // Only aggregates with elements are nested: an empty one opens nothing.
        assert!(
            depth < limits.max_depth,
            "nested deeper than {}",
            limits.max_depth
        );
        let max = match kind {
            ReplyKind::Map => limits.max_elements * 2,
            _ => limits.max_elements,
        };
        assert!(
            children.len() <= max,
            "{kind:?} of {} elements",
            children.len()
        );
    }
    if let Some(bytes) = node.as_bytes() {
        // Errors come as lines (`-`) or as bulks (`!`); statuses, doubles and big numbers are
        // lines; strings and verbatim strings are bulks.
        let max = match kind {
            ReplyKind::String | ReplyKind::Verbatim => limits.max_bulk_len,
            ReplyKind::Error => limits.max_bulk_len.max(limits.max_line_len),
            _ => limits.max_line_len,
        };
        assert!(bytes.len() <= max, "{kind:?} of {} bytes", bytes.len());
    }
    for child in children {
        within(child, limits, depth + 1);
    }
}
