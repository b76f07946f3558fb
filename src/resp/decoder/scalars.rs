//! The scalar values inside RESP lines: integers, doubles, big numbers, verbatim strings.

use super::limits::{ProtocolError, err};
use crate::resp::reply::{Node, ReplyKind};

pub(super) fn verbatim(buf: &[u8], start: usize, len: usize) -> Result<Node, ProtocolError> {
    if len < 4 || buf[start + 3] != b':' {
        return err("verbatim string without a 3-byte format prefix");
    }
    // The format ("txt", "mkd") stays in the buffer, right before the text (see `Node`).
    Ok(Node::text_at(ReplyKind::Verbatim, start + 4, len - 4))
}

/// A RESP integer: optional sign, then decimal digits, fitting in i64.
pub(crate) fn parse_int(line: &[u8]) -> Result<i64, ProtocolError> {
    let (negative, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return err("malformed integer");
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return err("malformed integer");
        }
        let digit = i64::from(d - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if negative {
                    v.checked_sub(digit)
                } else {
                    v.checked_add(digit)
                }
            })
            .ok_or_else(|| ProtocolError("integer out of range".into()))?;
    }
    Ok(value)
}

pub(crate) fn parse_double(line: &[u8]) -> Result<f64, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError("malformed double".into()))?;
    match text {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" | "-nan" => Ok(f64::NAN),
        // Rust's parser also accepts "infinity" and friends; RESP does not.
        t if t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && !t.is_empty() =>
        {
            t.parse()
                .map_err(|_| ProtocolError("malformed double".into()))
        }
        _ => err("malformed double"),
    }
}

pub(super) fn check_big_number(line: &[u8]) -> Result<(), ProtocolError> {
    let digits = line
        .strip_prefix(b"-")
        .or_else(|| line.strip_prefix(b"+"))
        .unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return err("malformed big number");
    }
    Ok(())
}
