//! Decoder tests: raw RESP bytes in, reply trees out; no server.
//!
//! Every case is fed whole, byte by byte, and split at every offset into two pieces, and must
//! decode the same way each time. Replies are compared through [`dump`], a strict rendering that
//! keeps every byte, the kind of every node and a verbatim string's format, and that checks each
//! string is NUL-terminated in place.

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn esc(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// Checks the zero-copy promise: the payload is readable through `as_c_ptr` and followed by NUL.
fn assert_c_string(node: &Node) {
    let bytes = node.as_bytes().expect("a text node has bytes");
    let ptr = node.as_c_ptr();
    assert!(!ptr.is_null(), "text node without a C string");
    // SAFETY: `as_c_ptr` promises `len` payload bytes followed by a NUL, alive as long as `node`.
    let in_place = unsafe { std::slice::from_raw_parts(ptr, bytes.len() + 1) };
    assert_eq!(
        &in_place[..bytes.len()],
        bytes,
        "C string differs from the payload"
    );
    assert_eq!(in_place[bytes.len()], 0, "no NUL after {}", esc(bytes));
}

/// A strict rendering of a node: kind, exact bytes, numbers, children.
fn dump(node: &Node) -> String {
    let kind = node.kind();
    if kind.has_text() {
        assert_c_string(node);
    } else {
        assert!(node.as_c_ptr().is_null(), "{kind:?} node has a C string");
    }
    if !kind.is_aggregate() {
        assert!(node.children().is_empty(), "{kind:?} node has children");
    }
    let text = || esc(node.as_bytes().unwrap());
    let list = |name: &str| {
        let items: Vec<String> = node.children().iter().map(dump).collect();
        format!("{name}[{}]", items.join(", "))
    };
    match kind {
        ReplyKind::Nil => "nil".to_owned(),
        ReplyKind::Integer => format!("int({})", node.as_integer().unwrap()),
        ReplyKind::Bool => format!("bool({})", node.as_integer().unwrap() != 0),
        ReplyKind::Double => format!("double({:?} {})", node.as_double().unwrap(), text()),
        ReplyKind::String => format!("str({})", text()),
        ReplyKind::Status => format!("status({})", text()),
        ReplyKind::Error => format!("error({})", text()),
        ReplyKind::BigNumber => format!("big({})", text()),
        ReplyKind::Verbatim => {
            let format = node.verbatim_format().unwrap();
            format!("verbatim({} {})", String::from_utf8_lossy(&format), text())
        }
        ReplyKind::Array => list("array"),
        ReplyKind::Map => {
            assert_eq!(node.children().len() % 2, 0, "map with a key and no value");
            list("map")
        }
        ReplyKind::Set => list("set"),
        ReplyKind::Push => list("push"),
    }
}

/// Small limits, so that tests of the limits stay cheap.
fn small_limits() -> Limits {
    Limits {
        max_depth: 2,
        max_elements: 3,
        max_bulk_len: 4,
        max_line_len: 4,
        max_reply_bytes: Limits::default().max_reply_bytes,
    }
}

/// What feeding some pieces to a fresh decoder produced.
struct Fed {
    /// Every reply decoded, as (`dump`, `Debug`).
    replies: Vec<(String, String)>,
    error: Option<ProtocolError>,
    /// Bytes left in the buffer at the end.
    left: usize,
}

/// Appends each piece to the buffer in turn, decoding after each until the decoder asks for more.
fn feed<'a>(limits: Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> Fed {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(reply)) => {
                    assert!(!decoder.in_progress(), "in progress after a whole reply");
                    replies.push((dump(&reply), format!("{reply:?}")));
                }
                Ok(None) => break,
                Err(error) => {
                    return Fed {
                        replies,
                        error: Some(error),
                        left: buf.len(),
                    };
                }
            }
        }
    }
    Fed {
        replies,
        error: None,
        left: buf.len(),
    }
}

/// Every way of feeding `input` the tests use: whole, byte by byte, and split in two at every
/// offset (both ends included, so an empty piece is fed too).
fn feedings(input: &[u8]) -> Vec<(String, Vec<&[u8]>)> {
    let mut out = vec![
        ("whole".to_owned(), vec![input]),
        ("byte by byte".to_owned(), input.chunks(1).collect()),
    ];
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        out.push((format!("split at {at}"), vec![a, b]));
    }
    out
}

/// `input` decodes to exactly `expected` (as `dump` renders them) however it is fed, with the
/// same `Debug` output each time, and leaves the buffer empty.
#[track_caller]
fn assert_decodes_with(limits: Limits, input: &[u8], expected: &[&str]) {
    let whole = feed(limits, [input]);
    for (how, pieces) in feedings(input) {
        let fed = feed(limits, pieces);
        let ctx = || format!("input {} fed {how}", esc(input));
        if let Some(e) = &fed.error {
            panic!("{}: unexpected error {e}", ctx());
        }
        let dumps: Vec<&str> = fed.replies.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(dumps, expected, "{}", ctx());
        assert_eq!(
            fed.replies,
            whole.replies,
            "{}: Debug output differs",
            ctx()
        );
        assert_eq!(fed.left, 0, "{}: bytes left in the buffer", ctx());
    }
}

#[track_caller]
fn assert_decodes(input: &[u8], expected: &str) {
    assert_decodes_with(Limits::default(), input, &[expected]);
}

/// Table form: each input decodes to one reply.
#[track_caller]
fn assert_cases(cases: &[(&[u8], &str)]) {
    for (input, expected) in cases {
        assert_decodes(input, expected);
    }
}

/// However `input` is fed, decoding ends in a protocol error whose message contains `why`, and
/// no reply comes out before it.
#[track_caller]
fn assert_rejected_with(limits: Limits, input: &[u8], why: &str) {
    for (how, pieces) in feedings(input) {
        let fed = feed(limits, pieces);
        let ctx = format!("input {} fed {how}", esc(input));
        assert!(fed.replies.is_empty(), "{ctx}: decoded {:?}", fed.replies);
        let error = fed.error.unwrap_or_else(|| panic!("{ctx}: accepted"));
        assert!(
            error.0.contains(why),
            "{ctx}: error {:?} does not say {why:?}",
            error.0
        );
    }
}

#[track_caller]
fn assert_rejected(input: &[u8], why: &str) {
    assert_rejected_with(Limits::default(), input, why);
}

/// However `input` is fed, the decoder neither fails nor returns a reply: more bytes could still
/// make it valid.
#[track_caller]
fn assert_incomplete_with(limits: Limits, input: &[u8]) {
    for (how, pieces) in feedings(input) {
        let fed = feed(limits, pieces);
        let ctx = format!("input {} fed {how}", esc(input));
        assert!(fed.error.is_none(), "{ctx}: {:?}", fed.error);
        assert!(fed.replies.is_empty(), "{ctx}: decoded {:?}", fed.replies);
        assert_eq!(
            fed.left,
            input.len(),
            "{ctx}: bytes removed from the buffer"
        );
    }
}

#[track_caller]
fn assert_incomplete(input: &[u8]) {
    assert_incomplete_with(Limits::default(), input);
}

// ---------------------------------------------------------------------------------------------
// Every type
// ---------------------------------------------------------------------------------------------

#[test]
fn simple_strings_and_errors() {
    assert_cases(&[
        (b"+OK\r\n", r#"status("OK")"#),
        (b"+\r\n", r#"status("")"#),
        (b"+hello world\r\n", r#"status("hello world")"#),
        (
            b"-ERR unknown command\r\n",
            r#"error("ERR unknown command")"#,
        ),
        (
            b"-WRONGTYPE Operation against a key\r\n",
            r#"error("WRONGTYPE Operation against a key")"#,
        ),
        (b"-\r\n", r#"error("")"#),
    ]);
}

#[test]
fn integers_including_the_extremes() {
    assert_cases(&[
        (b":0\r\n", "int(0)"),
        (b":1\r\n", "int(1)"),
        (b":-1\r\n", "int(-1)"),
        (b":+42\r\n", "int(42)"),
        (b":1000\r\n", "int(1000)"),
        (b":9223372036854775807\r\n", "int(9223372036854775807)"),
        (b":-9223372036854775808\r\n", "int(-9223372036854775808)"),
        (b":0000000000000000001\r\n", "int(1)"),
    ]);
}

#[test]
fn integers_out_of_range_or_malformed_are_rejected() {
    for input in [
        &b":9223372036854775808\r\n"[..],
        b":-9223372036854775809\r\n",
        b":99999999999999999999\r\n",
        b":18446744073709551616\r\n",
    ] {
        assert_rejected(input, "integer");
    }
    for input in [
        &b":\r\n"[..],
        b":-\r\n",
        b":+\r\n",
        b":abc\r\n",
        b":1a\r\n",
        b":1.5\r\n",
        b": 1\r\n",
        b":1 \r\n",
        b":--1\r\n",
        b":+-1\r\n",
        b":0x10\r\n",
        b":00000000000000000001\r\n",
    ] {
        assert_rejected(input, "malformed integer");
    }
}

#[test]
fn parse_int_table() {
    let ok: &[(&[u8], i64)] = &[
        (b"0", 0),
        (b"-0", 0),
        (b"+7", 7),
        (b"123456789", 123_456_789),
        (b"9223372036854775807", i64::MAX),
        (b"-9223372036854775808", i64::MIN),
    ];
    for (text, value) in ok {
        assert_eq!(parse_int(text), Ok(*value), "{}", esc(text));
    }
    for text in [
        &b""[..],
        b"-",
        b"+",
        b" 1",
        b"1\0",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"12345678901234567890",
        b"\xff",
    ] {
        assert!(parse_int(text).is_err(), "{} accepted", esc(text));
    }
}

#[test]
fn bulk_strings() {
    assert_cases(&[
        (b"$5\r\nhello\r\n", r#"str("hello")"#),
        (b"$0\r\n\r\n", r#"str("")"#),
        (b"$1\r\n\0\r\n", r#"str("\x00")"#),
        // CR, LF and NUL inside the payload are just bytes.
        (b"$8\r\na\r\nb\0c\r\n\r\n", r#"str("a\r\nb\x00c\r\n")"#),
        (b"$2\r\n\r\n\r\n", r#"str("\r\n")"#),
        (b"$3\r\n\xff\xfe\x00\r\n", r#"str("\xff\xfe\x00")"#),
        (b"$4\r\n$1\r\n\r\n", r#"str("$1\r\n")"#),
    ]);
}

#[test]
fn resp2_and_resp3_nulls() {
    assert_cases(&[
        (b"$-1\r\n", "nil"),
        (b"*-1\r\n", "nil"),
        (b"_\r\n", "nil"),
        (b"*3\r\n$-1\r\n*-1\r\n_\r\n", "array[nil, nil, nil]"),
    ]);
    assert_rejected(b"_x\r\n", "null with a payload");
}

#[test]
fn doubles() {
    assert_cases(&[
        (b",1.5\r\n", r#"double(1.5 "1.5")"#),
        (b",-0.25\r\n", r#"double(-0.25 "-0.25")"#),
        (b",0\r\n", r#"double(0.0 "0")"#),
        (b",-0\r\n", r#"double(-0.0 "-0")"#),
        (b",10\r\n", r#"double(10.0 "10")"#),
        (b",1e10\r\n", r#"double(10000000000.0 "1e10")"#),
        (b",1E-3\r\n", r#"double(0.001 "1E-3")"#),
        (b",+2.5e+3\r\n", r#"double(2500.0 "+2.5e+3")"#),
        (b",-1.5e-2\r\n", r#"double(-0.015 "-1.5e-2")"#),
        (b",.5\r\n", r#"double(0.5 ".5")"#),
        (b",inf\r\n", r#"double(inf "inf")"#),
        (b",+inf\r\n", r#"double(inf "+inf")"#),
        (b",-inf\r\n", r#"double(-inf "-inf")"#),
        (b",nan\r\n", r#"double(NaN "nan")"#),
        (b",-nan\r\n", r#"double(NaN "-nan")"#),
        (b",1e999\r\n", r#"double(inf "1e999")"#),
    ]);
}

#[test]
fn malformed_doubles_are_rejected() {
    for text in [
        "infinity",
        "Infinity",
        "-infinity",
        "INF",
        "NaN",
        "",
        "abc",
        "1.2.3",
        "e",
        "1e",
        "--1",
        "0x10",
        "1,5",
        " 1",
        "1_000",
    ] {
        assert_rejected(format!(",{text}\r\n").as_bytes(), "malformed double");
    }
    assert_rejected(b",\xff\r\n", "malformed double");
}

#[test]
fn booleans() {
    assert_cases(&[(b"#t\r\n", "bool(true)"), (b"#f\r\n", "bool(false)")]);
    for input in [&b"#\r\n"[..], b"#T\r\n", b"#tt\r\n", b"#1\r\n", b"#x\r\n"] {
        assert_rejected(input, "boolean");
    }
}

#[test]
fn big_numbers() {
    assert_cases(&[
        (
            b"(3492890328409238509324850943850943825024385\r\n",
            r#"big("3492890328409238509324850943850943825024385")"#,
        ),
        (
            b"(-12345678901234567890\r\n",
            r#"big("-12345678901234567890")"#,
        ),
        (b"(+1\r\n", r#"big("+1")"#),
        (b"(0\r\n", r#"big("0")"#),
    ]);
    for input in [
        &b"(\r\n"[..],
        b"(-\r\n",
        b"(12a\r\n",
        b"(1.5\r\n",
        b"( 1\r\n",
    ] {
        assert_rejected(input, "malformed big number");
    }
}

#[test]
fn verbatim_strings() {
    assert_cases(&[
        (
            b"=15\r\ntxt:Some string\r\n",
            r#"verbatim(txt "Some string")"#,
        ),
        (b"=4\r\nmkd:\r\n", r#"verbatim(mkd "")"#),
        (b"=9\r\ntxt:a\r\nb\0\r\n", r#"verbatim(txt "a\r\nb\x00")"#),
    ]);
    for input in [
        &b"=3\r\ntxt\r\n"[..],
        b"=0\r\n\r\n",
        b"=5\r\ntxtx:\r\n",
        b"=4\r\ntxt;\r\n",
    ] {
        assert_rejected(input, "verbatim string without a 3-byte format prefix");
    }
}

#[test]
fn blob_errors() {
    assert_cases(&[
        (
            b"!21\r\nSYNTAX invalid syntax\r\n",
            r#"error("SYNTAX invalid syntax")"#,
        ),
        (b"!0\r\n\r\n", r#"error("")"#),
        (b"!3\r\na\r\n\r\n", r#"error("a\r\n")"#),
    ]);
}

#[test]
fn arrays_sets_pushes() {
    assert_cases(&[
        (
            b"*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n",
            r#"array[str("foo"), str("bar")]"#,
        ),
        (
            b"*3\r\n:1\r\n+two\r\n$-1\r\n",
            r#"array[int(1), status("two"), nil]"#,
        ),
        (b"~2\r\n:1\r\n:2\r\n", "set[int(1), int(2)]"),
        (
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhi!\r\n",
            r#"push[str("message"), str("ch"), str("hi!")]"#,
        ),
    ]);
}

#[test]
fn maps_alternate_keys_and_values() {
    assert_decodes(
        b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#t\r\n",
        r#"map[status("first"), int(1), str("second"), bool(true)]"#,
    );
    let reply = single(b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n");
    assert_eq!(reply.get("b").and_then(Node::as_integer), Some(2));
    let pairs: Vec<_> = reply
        .pairs()
        .map(|(k, v)| (k.as_str().unwrap(), v.as_integer().unwrap()))
        .collect();
    assert_eq!(pairs, [("a", 1), ("b", 2)]);
}

#[test]
fn empty_aggregates() {
    assert_cases(&[
        (b"*0\r\n", "array[]"),
        (b"%0\r\n", "map[]"),
        (b"~0\r\n", "set[]"),
        (b">0\r\n", "push[]"),
        (b"*?\r\n.\r\n", "array[]"),
        (b"%?\r\n.\r\n", "map[]"),
        (b"~?\r\n.\r\n", "set[]"),
        (
            b"*3\r\n*0\r\n%0\r\n*?\r\n.\r\n",
            "array[array[], map[], array[]]",
        ),
    ]);
}

#[test]
fn nested_aggregates() {
    assert_cases(&[
        (
            b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*1\r\n+deep\r\n",
            r#"array[array[int(1), int(2)], array[array[status("deep")]]]"#,
        ),
        (
            b"%1\r\n$4\r\nkeys\r\n~2\r\n+a\r\n+b\r\n",
            r#"map[str("keys"), set[status("a"), status("b")]]"#,
        ),
        (
            b"*3\r\n:1\r\n*2\r\n:2\r\n*1\r\n:3\r\n:4\r\n",
            "array[int(1), array[int(2), array[int(3)]], int(4)]",
        ),
        // A map as a key.
        (
            b"%1\r\n%1\r\n:1\r\n:2\r\n:3\r\n",
            "map[map[int(1), int(2)], int(3)]",
        ),
    ]);
}

#[test]
fn attributes_are_dropped() {
    assert_cases(&[
        (
            b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
            "array[int(2039123), int(9543892)]",
        ),
        (b"|1\r\n+a\r\n+b\r\n:5\r\n", "int(5)"),
        (b"|0\r\n:5\r\n", "int(5)"),
        // An attribute annotating an element inside an array.
        (
            b"*3\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n:3\r\n",
            r#"array[int(1), str("val"), int(3)]"#,
        ),
        // Several in a row, and one nested inside another.
        (
            b"|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n|1\r\n+x\r\n+y\r\n+d\r\n+value\r\n",
            r#"status("value")"#,
        ),
        // An attribute whose values are aggregates, annotating an aggregate in a map.
        (
            b"%1\r\n+k\r\n|1\r\n*1\r\n:1\r\n%1\r\n:2\r\n:3\r\n~1\r\n+v\r\n",
            r#"map[status("k"), set[status("v")]]"#,
        ),
        // A streamed attribute is dropped like a sized one.
        (b"|?\r\n+a\r\n+b\r\n.\r\n:7\r\n", "int(7)"),
    ]);
    // An attribute alone is not a reply: the value it annotates must follow.
    assert_incomplete(b"|1\r\n+a\r\n+b\r\n");
}

#[test]
fn streamed_aggregates() {
    assert_cases(&[
        (
            b"*?\r\n:1\r\n:2\r\n:3\r\n.\r\n",
            "array[int(1), int(2), int(3)]",
        ),
        (
            b"%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n",
            r#"map[status("a"), int(1), status("b"), int(2)]"#,
        ),
        (b"~?\r\n+x\r\n.\r\n", r#"set[status("x")]"#),
        (
            b"*?\r\n*?\r\n:1\r\n.\r\n*2\r\n:2\r\n*?\r\n.\r\n.\r\n",
            "array[array[int(1)], array[int(2), array[]]]",
        ),
        (
            b"*2\r\n*?\r\n:1\r\n.\r\n:2\r\n",
            "array[array[int(1)], int(2)]",
        ),
    ]);
    assert_incomplete(b"*?\r\n:1\r\n:2\r\n");
}

#[test]
fn streamed_map_ending_between_key_and_value_is_rejected() {
    assert_rejected(b"%?\r\n+a\r\n:1\r\n+b\r\n.\r\n", "streamed map");
    assert_rejected(b"|?\r\n+a\r\n.\r\n:1\r\n", "streamed map");
}

#[test]
fn streamed_strings() {
    assert_cases(&[
        (
            b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
            r#"str("Hello word")"#,
        ),
        (b"$?\r\n;0\r\n", r#"str("")"#),
        (b"$?\r\n;3\r\nabc\r\n;0\r\n", r#"str("abc")"#),
        (
            b"$?\r\n;2\r\n\r\n\r\n;1\r\n\0\r\n;0\r\n",
            r#"str("\r\n\x00")"#,
        ),
        (
            b"*3\r\n$?\r\n;1\r\na\r\n;1\r\nb\r\n;0\r\n$?\r\n;0\r\n:1\r\n",
            r#"array[str("ab"), str(""), int(1)]"#,
        ),
    ]);
    assert_incomplete(b"$?\r\n;4\r\nHell\r\n");
    assert_rejected(b"$?\r\n:1\r\n", "does not start with ';'");
    assert_rejected(b"$?\r\nx", "does not start with ';'");
    assert_rejected(b"$?\r\n;-1\r\n", "negative chunk length");
    assert_rejected(b"$?\r\n;2\r\nabc\r\n;0\r\n", "chunk not terminated by CRLF");
    assert_rejected(b"$?\r\n;x\r\n", "malformed integer");
}

#[test]
fn several_replies_back_to_back() {
    let input = b"+OK\r\n:1\r\n$3\r\nfoo\r\n*2\r\n:1\r\n:2\r\n_\r\n%1\r\n+k\r\n+v\r\n$?\r\n;1\r\nx\r\n;0\r\n,1.5\r\n";
    assert_decodes_with(
        Limits::default(),
        input,
        &[
            r#"status("OK")"#,
            "int(1)",
            r#"str("foo")"#,
            "array[int(1), int(2)]",
            "nil",
            r#"map[status("k"), status("v")]"#,
            r#"str("x")"#,
            r#"double(1.5 "1.5")"#,
        ],
    );
}

#[test]
fn each_decode_removes_exactly_one_reply() {
    let replies: [&[u8]; 4] = [
        b"+OK\r\n",
        b"*2\r\n:1\r\n$1\r\nx\r\n",
        b"_\r\n",
        b"$0\r\n\r\n",
    ];
    let mut buf = BytesMut::from(&replies.concat()[..]);
    let mut decoder = Decoder::default();
    let mut left = buf.len();
    for raw in replies {
        assert!(decoder.decode(&mut buf).unwrap().is_some());
        left -= raw.len();
        assert_eq!(buf.len(), left);
    }
    assert!(buf.is_empty());
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert!(!decoder.in_progress());
}

// ---------------------------------------------------------------------------------------------
// Zero-copy and decoder state
// ---------------------------------------------------------------------------------------------

/// Decodes one whole reply from `input`.
fn single(input: &[u8]) -> Reply {
    let mut buf = BytesMut::from(input);
    let reply = Decoder::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    reply
}

#[test]
fn strings_point_into_the_network_buffer() {
    let input = b"*3\r\n$5\r\nhello\r\n+OK\r\n$?\r\n;2\r\nab\r\n;1\r\nc\r\n;0\r\n";
    let mut buf = BytesMut::with_capacity(input.len());
    buf.extend_from_slice(input);
    let base = buf.as_ptr();
    let reply = Decoder::default().decode(&mut buf).unwrap().unwrap();
    let offsets: Vec<usize> = reply
        .children()
        .iter()
        .map(|n| n.as_c_ptr().addr() - base.addr())
        .collect();
    // "hello" at 8, "OK" at 16, the streamed string compacted to where its first chunk began.
    assert_eq!(offsets, [8, 16, 24]);
    assert_eq!(
        dump(&reply),
        r#"array[str("hello"), status("OK"), str("abc")]"#
    );
}

#[test]
fn replies_outlive_the_decoder_and_the_rest_of_the_buffer() {
    let mut buf = BytesMut::from(&b"$3\r\nfoo\r\n$3\r\nbar\r\n"[..]);
    let mut decoder = Decoder::default();
    let first = decoder.decode(&mut buf).unwrap().unwrap();
    let second = decoder.decode(&mut buf).unwrap().unwrap();
    drop(decoder);
    drop(buf);
    assert_eq!(first.as_str(), Some("foo"));
    assert_eq!(second.as_str(), Some("bar"));
    assert_c_string(&first);
    assert_c_string(&second);
}

#[test]
fn needed_reports_a_pending_bulk() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"$10\r\nabc"[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert_eq!(decoder.needed(), 5 + 10 + 2);
    buf.extend_from_slice(b"defghij\r\n");
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert_eq!(decoder.needed(), 0);
}

#[test]
fn in_progress_only_inside_a_reply() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"*2\r\n:1\r\n"[..]);
    assert!(!decoder.in_progress());
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert!(decoder.in_progress());
    buf.extend_from_slice(b":2\r\n");
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert!(!decoder.in_progress());
}

#[test]
fn empty_input_needs_more() {
    assert!(
        Decoder::default()
            .decode(&mut BytesMut::new())
            .unwrap()
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    let limits = small_limits();
    assert_decodes_with(limits, b"*1\r\n*1\r\n:1\r\n", &["array[array[int(1)]]"]);
    // Empty aggregates open nothing, so they do not count.
    assert_decodes_with(limits, b"*1\r\n*1\r\n*0\r\n", &["array[array[array[]]]"]);
}

#[test]
fn nesting_over_the_limit_is_rejected() {
    let limits = small_limits();
    for input in [
        &b"*1\r\n*1\r\n*1\r\n:1\r\n"[..],
        b"%1\r\n+k\r\n%1\r\n+k\r\n%1\r\n",
        b"*?\r\n*?\r\n*?\r\n",
        b"~1\r\n>1\r\n*1\r\n",
        // Attributes are aggregates too.
        b"*1\r\n|1\r\n*1\r\n",
    ] {
        assert_rejected_with(limits, input, "nested deeper than the limit");
    }
}

#[test]
fn default_depth_limit_is_64() {
    let nested = |depth: usize| {
        let mut v = b"*1\r\n".repeat(depth);
        v.extend_from_slice(b":1\r\n");
        v
    };
    let expected = format!("{}int(1){}", "array[".repeat(64), "]".repeat(64));
    assert_decodes(&nested(64), &expected);
    assert_rejected(&nested(65), "nested deeper than the limit");
}

#[test]
fn element_count_over_the_limit_is_rejected() {
    let limits = small_limits();
    assert_decodes_with(
        limits,
        b"*3\r\n:1\r\n:2\r\n:3\r\n",
        &["array[int(1), int(2), int(3)]"],
    );
    // A map's limit counts entries, not keys plus values.
    assert_decodes_with(
        limits,
        b"%3\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n",
        &["map[int(1), int(2), int(3), int(4), int(5), int(6)]"],
    );
    for input in [&b"*4\r\n"[..], b"%4\r\n", b"~4\r\n", b">4\r\n", b"|4\r\n"] {
        assert_rejected_with(limits, input, "exceeds the limit");
    }
}

#[test]
fn streamed_aggregates_obey_the_element_limit() {
    let limits = small_limits();
    assert_decodes_with(
        limits,
        b"*?\r\n:1\r\n:2\r\n:3\r\n.\r\n",
        &["array[int(1), int(2), int(3)]"],
    );
    assert_rejected_with(
        limits,
        b"*?\r\n:1\r\n:2\r\n:3\r\n:4\r\n",
        "exceeds the limit",
    );
    assert_rejected_with(
        limits,
        b"%?\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n",
        "exceeds the limit",
    );
    // Without a limit a streamed aggregate could grow forever.
    let mut endless = b"~?\r\n".to_vec();
    endless.extend_from_slice(&b":1\r\n".repeat(10_000));
    let fed = feed(
        Limits {
            max_elements: 1000,
            ..Limits::default()
        },
        [&endless[..]],
    );
    assert!(fed.error.is_some());
}

#[test]
fn huge_element_counts_are_rejected_without_allocating() {
    for input in [
        &b"*4294967295\r\n"[..],
        b"*9223372036854775807\r\n",
        b"%4294967295\r\n",
        b"~268435457\r\n",
        b">4294967296\r\n",
    ] {
        assert_rejected(input, "exceeds the limit");
    }
    assert_rejected(b"*9223372036854775808\r\n", "integer out of range");
}

#[test]
fn a_huge_declared_count_with_few_elements_waits_without_a_big_allocation() {
    for input in [
        &b"*268435456\r\n:1\r\n:2\r\n"[..],
        b"%268435456\r\n+k\r\n",
        b"*2\r\n*268435456\r\n*268435456\r\n",
    ] {
        assert_incomplete(input);
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(input);
        assert!(decoder.decode(&mut buf).unwrap().is_none());
        for open in &decoder.stack {
            assert!(open.children.capacity() <= MAX_PREALLOC);
        }
    }
}

#[test]
fn bulk_length_over_the_limit_is_rejected() {
    let limits = small_limits();
    assert_decodes_with(limits, b"$4\r\nabcd\r\n", &[r#"str("abcd")"#]);
    // Rejected from the header alone, before any payload arrives.
    for input in [&b"$5\r\n"[..], b"!5\r\n", b"=5\r\n", b"$9999\r\n"] {
        assert_rejected_with(limits, input, "longer than the limit");
    }
    assert_rejected(b"$536870913\r\n", "longer than the limit");
    assert_rejected(b"$9223372036854775807\r\n", "longer than the limit");
    // A streamed string is bounded by its total, not per chunk.
    assert_decodes_with(
        limits,
        b"$?\r\n;2\r\nab\r\n;2\r\ncd\r\n;0\r\n",
        &[r#"str("abcd")"#],
    );
    assert_rejected_with(
        limits,
        b"$?\r\n;2\r\nab\r\n;2\r\ncd\r\n;1\r\n",
        "longer than the limit",
    );
}

#[test]
fn lines_longer_than_the_limit_are_rejected() {
    let limits = small_limits();
    // Exactly at the limit is fine, even while its '\n' has not arrived.
    assert_decodes_with(limits, b"+abcd\r\n", &[r#"status("abcd")"#]);
    assert_incomplete_with(limits, b"+abcd");
    assert_incomplete_with(limits, b"+abcd\r");
    for input in [
        &b"+abcde\r\n"[..],
        b"-abcde\r\n",
        b":12345\r\n",
        b"$12345\r\n",
        // No CRLF at all: rejected once the line can no longer fit.
        b"+abcdefgh",
        b"+abcde",
        b"+abcd\rx",
    ] {
        assert_rejected_with(limits, input, "line longer than the limit");
    }
}

/// The default limits with `max_reply_bytes` set.
fn reply_limit(max_reply_bytes: usize) -> Limits {
    Limits {
        max_reply_bytes,
        ..Limits::default()
    }
}

#[track_caller]
fn assert_reply_too_large(max_reply_bytes: usize, input: &[u8]) {
    let why = format!("reply larger than max_reply_bytes ({max_reply_bytes} bytes)");
    assert_rejected_with(reply_limit(max_reply_bytes), input, &why);
}

#[test]
fn the_reply_limit_defaults_to_redis_largest_bulk_and_its_framing() {
    let limits = Limits::default();
    assert_eq!(limits.max_reply_bytes, (512 << 20) + (1 << 20));
    // The largest string Redis stores fits, with its header and terminator.
    let header = format!("${}\r\n", limits.max_bulk_len);
    assert!(limits.max_bulk_len + header.len() + 2 <= limits.max_reply_bytes);
    assert_eq!(std::mem::size_of::<Node>(), 16);
}

#[test]
fn a_reply_is_bounded_by_the_bytes_it_keeps() {
    // 9 bytes, all kept (the string points into them).
    assert_decodes_with(reply_limit(9), b"$3\r\nfoo\r\n", &[r#"str("foo")"#]);
    assert_reply_too_large(8, b"$3\r\nfoo\r\n");
    assert_decodes_with(reply_limit(5), b"+OK\r\n", &[r#"status("OK")"#]);
    assert_reply_too_large(4, b"+OK\r\n");
    assert_reply_too_large(4, b":12\r\n");
    // A bulk that cannot fit is rejected from its header, before its payload is waited for.
    assert_reply_too_large(100, b"$1000\r\n");
    assert_reply_too_large(100, b"*1\r\n=1000\r\n");
    // A streamed string keeps every chunk's bytes (its chunks are compacted in place).
    let streamed = b"$?\r\n;2\r\nab\r\n;2\r\ncd\r\n;0\r\n";
    assert_decodes_with(reply_limit(streamed.len()), streamed, &[r#"str("abcd")"#]);
    assert_reply_too_large(streamed.len() - 1, streamed);
}

#[test]
fn a_reply_is_bounded_by_its_nodes_too() {
    // 12 bytes of input and two 16-byte nodes (the root's own node is not counted).
    let input = b"*2\r\n:1\r\n:2\r\n";
    assert_decodes_with(reply_limit(44), input, &["array[int(1), int(2)]"]);
    assert_reply_too_large(43, input);
    // A streamed aggregate's storage is counted as it grows (by 4, then by half) and shrinks to
    // its elements when it ends: here room for 8 is taken for 5 nils, and the peak is when the
    // end marker arrives, all 22 bytes of input in.
    let input = b"~?\r\n_\r\n_\r\n_\r\n_\r\n_\r\n.\r\n";
    let nils = "set[nil, nil, nil, nil, nil]";
    assert_decodes_with(reply_limit(22 + 8 * 16), input, &[nils]);
    assert_reply_too_large(22 + 8 * 16 - 1, input);
    // 3-byte elements cannot grow a reply without bound while staying small on the wire.
    let mut endless = b"*?\r\n".to_vec();
    endless.extend_from_slice(&b"_\r\n".repeat(10_000));
    let fed = feed(reply_limit(64 << 10), [&endless[..]]);
    assert_eq!(
        fed.error.map(|e| e.0),
        Some("reply larger than max_reply_bytes (65536 bytes)".to_owned())
    );
}

#[test]
fn a_dropped_attribute_gives_its_memory_back() {
    // The attribute peaks at 12 bytes of input and 2 nodes (44); once dropped, the reply is
    // 24 bytes of input and 2 nodes (56). Were the attribute's nodes still counted: 88.
    let input = b"|1\r\n+k\r\n+v\r\n*2\r\n:1\r\n:2\r\n";
    assert_decodes_with(reply_limit(56), input, &["array[int(1), int(2)]"]);
    assert_reply_too_large(55, input);
}

#[test]
fn each_reply_has_its_own_budget() {
    let input = b"$3\r\nfoo\r\n$3\r\nbar\r\n+OK\r\n";
    let expected = [r#"str("foo")"#, r#"str("bar")"#, r#"status("OK")"#];
    assert_decodes_with(reply_limit(9), input, &expected);
    // Pipelined: the replies stay in the buffer after one another.
    let mut decoder = Decoder::new(reply_limit(9));
    let mut buf = BytesMut::from(&input[..]);
    let mut roots = Vec::new();
    while decoder.decode_batched(&mut buf, &mut roots).unwrap() {}
    let bytes = decoder.split_batch(&mut buf).expect("a whole batch");
    for root in &mut roots {
        // SAFETY: the roots were decoded from exactly these bytes.
        unsafe { root.rebase(bytes.as_ptr()) };
    }
    let dumps: Vec<String> = roots.iter().map(dump).collect();
    assert_eq!(dumps, expected);
}

#[test]
fn a_bulk_length_line_is_held_to_the_line_limit_however_it_arrives() {
    // Found by the split-invariance property: whole, the bulk fast path accepted what byte by
    // byte the general path rejected.
    let limits = Limits {
        max_line_len: 1,
        ..Limits::default()
    };
    assert_decodes_with(limits, b"$9\r\naaaaaaaaa\r\n", &[r#"str("aaaaaaaaa")"#]);
    for input in [
        &b"$10\r\naaaaaaaaaa\r\n"[..],
        b"*1\r\n$10\r\naaaaaaaaaa\r\n",
    ] {
        assert_rejected_with(limits, input, "line longer than the limit");
    }
}

#[test]
fn a_line_too_long_is_reported_so_however_it_ends() {
    // Found by the split-invariance property: byte by byte, "?\r*" fails as too long before its
    // LF arrives; whole, it failed as not ending in CRLF.
    let limits = Limits {
        max_line_len: 0,
        ..Limits::default()
    };
    assert_rejected_with(limits, b"%?\r*\n", "line longer than the limit");
    assert_rejected_with(limits, b"+a\n", "line longer than the limit");
    assert_rejected_with(limits, b"+\n", "line not terminated by CRLF");
}

// ---------------------------------------------------------------------------------------------
// Hostile and malformed input
// ---------------------------------------------------------------------------------------------

#[test]
fn negative_lengths_other_than_minus_one_are_rejected() {
    for input in [
        &b"$-2\r\n"[..],
        b"!-1\r\n",
        b"=-1\r\n",
        b"$-9223372036854775808\r\n",
    ] {
        assert_rejected(input, "negative string length");
    }
    for input in [
        &b"*-2\r\n"[..],
        b"%-1\r\n",
        b"~-1\r\n",
        b">-1\r\n",
        b"|-1\r\n",
    ] {
        assert_rejected(input, "negative element count");
    }
}

#[test]
fn unknown_type_bytes_are_rejected() {
    for input in [
        &b"x\r\n"[..],
        b"@1\r\n",
        b" +OK\r\n",
        b"\0\r\n",
        b"\r\n",
        b";1\r\n",
        b"OK\r\n",
        b"HTTP/1.1 400 Bad Request\r\n",
        b"\xff",
        // No CRLF needed: no bytes could make these valid.
        b"x",
        b"GET / HTTP/1.1",
    ] {
        assert_rejected(input, "unknown type byte");
    }
    // Inside an aggregate too.
    assert_rejected(b"*2\r\n:1\r\nx\r\n", "unknown type byte");
}

#[test]
fn missing_crlf_after_a_bulk_is_rejected() {
    for input in [
        &b"$3\r\nfooXY"[..],
        b"$3\r\nfoo\n\n",
        b"$3\r\nfoo\rX",
        b"$3\r\nfoobar\r\n",
        b"$0\r\nab",
        b"!3\r\nabcde",
        b"=5\r\ntxt:ab\r\n",
    ] {
        assert_rejected(input, "not terminated by CRLF");
    }
    // Until the two bytes after the payload have arrived, more input could still fix it.
    assert_incomplete(b"$3\r\nfoo");
    assert_incomplete(b"$3\r\nfoo\r");
}

#[test]
fn bare_lf_is_rejected() {
    for input in [
        &b"+OK\n"[..],
        b":1\n",
        b"$3\nfoo\r\n",
        b"*1\n:1\r\n",
        b"+\n",
        b"*1\r\n+OK\n",
        b"$?\r\n;1\nx\r\n",
        b"+O\nK\r\n",
    ] {
        assert_rejected(input, "not terminated by CRLF");
    }
}

#[test]
fn end_marker_outside_a_streamed_aggregate_is_rejected() {
    for input in [
        &b".\r\n"[..],
        b"*1\r\n.\r\n",
        b"%1\r\n+k\r\n.\r\n",
        b"|1\r\n.\r\n",
    ] {
        assert_rejected(input, "'.' outside a streamed aggregate");
    }
    assert_rejected(b"*?\r\n.x\r\n", "unknown type byte");
}

#[test]
fn garbage_and_truncated_numbers() {
    let rejected: &[(&[u8], &str)] = &[
        (b"$abc\r\n", "malformed integer"),
        (b"$\r\n", "malformed integer"),
        (b"$1x\r\n", "malformed integer"),
        (b"$ 1\r\n", "malformed integer"),
        (b"*x\r\n", "malformed integer"),
        (b"*\r\n", "malformed integer"),
        (b"%1.5\r\n", "malformed integer"),
        (b"=?\r\n", "malformed integer"),
        (b"!?\r\n", "malformed integer"),
        (b"*??\r\n", "malformed integer"),
        (b"$??\r\n", "malformed integer"),
        (b"$99999999999999999999\r\n", "malformed integer"),
    ];
    for (input, why) in rejected {
        assert_rejected(input, why);
    }
    // Truncated replies just need more bytes.
    for input in [
        &b":12"[..],
        b":",
        b"$5\r\nab",
        b"$5",
        b"*2\r\n:1\r\n",
        b"%1\r\n+k\r\n",
        b"$?\r\n",
        b"$?\r\n;3\r\nab",
        b"=15\r\ntxt:Some",
        b",1.",
        b"#",
        b"+OK\r",
    ] {
        assert_incomplete(input);
    }
}

// ---------------------------------------------------------------------------------------------
// Pseudo-random replies and garbage
// ---------------------------------------------------------------------------------------------

/// xorshift64: deterministic, good enough to pick shapes and split points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes_from(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| *self.pick(alphabet)).collect()
    }
}

/// Bytes a bulk payload may hold: anything, including the RESP punctuation.
const BINARY: &[u8] = b"ab Z09\r\n\0\xff$*:+-_.;?";
/// Bytes a simple string may hold: anything but CR and LF.
const LINE: &[u8] = b"ab Z09\0\xff$*:+-_.;?\t";

fn put(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        out.extend_from_slice(part);
    }
}

fn put_bulk(out: &mut Vec<u8>, type_byte: u8, payload: &[u8]) {
    out.push(type_byte);
    put(
        out,
        &[
            payload.len().to_string().as_bytes(),
            b"\r\n",
            payload,
            b"\r\n",
        ],
    );
}

/// Appends a random RESP value to `out` and returns what [`dump`] prints for it.
fn gen_value(rng: &mut Rng, depth_left: usize, out: &mut Vec<u8>) -> String {
    if rng.one_in(10) {
        // An attribute first: decoded and dropped, so it adds nothing to the expectation.
        let pairs = rng.below(3);
        let streamed = rng.one_in(3);
        if streamed {
            out.extend_from_slice(b"|?\r\n");
        } else {
            put(out, &[b"|", pairs.to_string().as_bytes(), b"\r\n"]);
        }
        for _ in 0..pairs * 2 {
            gen_value(rng, depth_left.saturating_sub(1), out);
        }
        if streamed {
            out.extend_from_slice(b".\r\n");
        }
    }
    const LEAVES: usize = 15;
    const AGGREGATES: usize = 7;
    let choice = if depth_left == 0 {
        rng.below(LEAVES)
    } else {
        rng.below(LEAVES + AGGREGATES)
    };
    match choice {
        0 => {
            let text = rng.bytes_from(LINE, 12);
            put(out, &[b"+", &text, b"\r\n"]);
            format!("status({})", esc(&text))
        }
        1 => {
            let text = rng.bytes_from(LINE, 12);
            put(out, &[b"-ERR ", &text, b"\r\n"]);
            format!("error({})", esc(&[b"ERR ", &text[..]].concat()))
        }
        2 => {
            let n = match rng.below(4) {
                0 => *rng.pick(&[0, -1, i64::MIN, i64::MAX]),
                1 => rng.below(1000) as i64 - 500,
                _ => rng.next() as i64,
            };
            put(out, &[b":", n.to_string().as_bytes(), b"\r\n"]);
            format!("int({n})")
        }
        3 => {
            let payload = rng.bytes_from(BINARY, 20);
            put_bulk(out, b'$', &payload);
            format!("str({})", esc(&payload))
        }
        4 => {
            let nils: [&[u8]; 3] = [b"$-1\r\n", b"*-1\r\n", b"_\r\n"];
            let nil = *rng.pick(&nils);
            out.extend_from_slice(nil);
            "nil".to_owned()
        }
        5 => {
            let (text, value) = match rng.below(6) {
                0 => {
                    let (t, v) = *rng.pick(&[
                        ("inf", f64::INFINITY),
                        ("-inf", f64::NEG_INFINITY),
                        ("nan", f64::NAN),
                    ]);
                    (t.to_owned(), v)
                }
                1 => {
                    let v = f64::from_bits(rng.next());
                    if v.is_finite() {
                        (format!("{v:e}"), v)
                    } else {
                        ("0".to_owned(), 0.0)
                    }
                }
                _ => {
                    let v = (rng.next() as i64 as f64) / 1024.0;
                    (format!("{v}"), v)
                }
            };
            put(out, &[b",", text.as_bytes(), b"\r\n"]);
            format!("double({value:?} {})", esc(text.as_bytes()))
        }
        6 => {
            let b = rng.one_in(2);
            out.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
            format!("bool({b})")
        }
        7 => {
            let mut digits = rng.bytes_from(b"0123456789", 60);
            digits.insert(0, b'1');
            if rng.one_in(2) {
                digits.insert(0, b'-');
            }
            put(out, &[b"(", &digits, b"\r\n"]);
            format!("big({})", esc(&digits))
        }
        8 => {
            let format = *rng.pick(&[b"txt", b"mkd"]);
            let text = rng.bytes_from(BINARY, 20);
            put_bulk(out, b'=', &[&format[..], b":", &text].concat());
            format!(
                "verbatim({} {})",
                String::from_utf8_lossy(format),
                esc(&text)
            )
        }
        9 => {
            let text = rng.bytes_from(BINARY, 20);
            put_bulk(out, b'!', &text);
            format!("error({})", esc(&text))
        }
        10 => {
            // A streamed string: random chunks, then the empty one.
            out.extend_from_slice(b"$?\r\n");
            let mut whole = Vec::new();
            for _ in 0..rng.below(4) {
                let mut chunk = rng.bytes_from(BINARY, 8);
                if chunk.is_empty() {
                    chunk.push(b'c');
                }
                put(
                    out,
                    &[
                        b";",
                        chunk.len().to_string().as_bytes(),
                        b"\r\n",
                        &chunk,
                        b"\r\n",
                    ],
                );
                whole.extend_from_slice(&chunk);
            }
            out.extend_from_slice(b";0\r\n");
            format!("str({})", esc(&whole))
        }
        11..LEAVES => {
            // More of the common ones: short bulks and small integers.
            let payload = rng.bytes_from(b"abc", 3);
            put_bulk(out, b'$', &payload);
            format!("str({})", esc(&payload))
        }
        _ => {
            let (type_byte, name) = *rng.pick(&[
                (b'*', "array"),
                (b'%', "map"),
                (b'~', "set"),
                (b'>', "push"),
            ]);
            let entries = rng.below(5);
            let children = if type_byte == b'%' {
                entries * 2
            } else {
                entries
            };
            let streamed = type_byte != b'>' && rng.one_in(3);
            if streamed {
                put(out, &[&[type_byte], b"?\r\n"]);
            } else {
                put(
                    out,
                    &[&[type_byte], entries.to_string().as_bytes(), b"\r\n"],
                );
            }
            let items: Vec<String> = (0..children)
                .map(|_| gen_value(rng, depth_left - 1, out))
                .collect();
            if streamed {
                out.extend_from_slice(b".\r\n");
            }
            format!("{name}[{}]", items.join(", "))
        }
    }
}

/// Cuts `input` at `cuts` random points.
fn random_pieces<'a>(rng: &mut Rng, input: &'a [u8], cuts: usize) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = (0..cuts).map(|_| rng.below(input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

#[test]
fn random_replies_decode_however_they_are_split() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let mut input = Vec::new();
        let expected: Vec<String> = (0..1 + rng.below(3))
            .map(|_| gen_value(&mut rng, 4, &mut input))
            .collect();
        for cuts in [0, 1, 3, 10] {
            let pieces = random_pieces(&mut rng, &input, cuts);
            let fed = feed(Limits::default(), pieces);
            let ctx = format!("round {round}, {cuts} cuts, input {}", esc(&input));
            assert!(fed.error.is_none(), "{ctx}: {:?}", fed.error);
            let dumps: Vec<&String> = fed.replies.iter().map(|r| &r.0).collect();
            assert_eq!(dumps, expected.iter().collect::<Vec<_>>(), "{ctx}");
            assert_eq!(fed.left, 0, "{ctx}");
        }
    }
}

#[test]
fn random_replies_byte_by_byte_and_at_every_offset() {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..100 {
        let mut input = Vec::new();
        let expected = gen_value(&mut rng, 3, &mut input);
        if input.len() > 400 {
            continue;
        }
        assert_decodes_with(Limits::default(), &input, &[&expected]);
    }
}

/// Decodes `pieces`, checking what holds for any input: no panic, and every reply that does come
/// out is well-formed (`feed` runs `dump` on it: strings NUL-terminated in place, maps in pairs).
fn decode_anything(limits: Limits, pieces: Vec<&[u8]>) {
    let _ = feed(limits, pieces);
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    const RESPISH: &[u8] = b"+-:$*%~>|_#,(!=.;?0123456789-\r\n\r\n\r\nabtfx\0\xff";
    let tight = Limits {
        max_depth: 3,
        max_elements: 4,
        max_bulk_len: 8,
        max_line_len: 8,
        max_reply_bytes: 256,
    };
    for _ in 0..20_000 {
        let garbage = rng.bytes_from(RESPISH, 48);
        let cuts = rng.below(6);
        let limits = if rng.one_in(2) {
            tight
        } else {
            Limits::default()
        };
        decode_anything(limits, random_pieces(&mut rng, &garbage, cuts));
    }
}

#[test]
fn mutated_replies_never_panic() {
    let mut rng = Rng(0x0F0F_0F0F_1234_4321);
    for _ in 0..5000 {
        let mut input = Vec::new();
        gen_value(&mut rng, 3, &mut input);
        // Flip, insert or delete a few bytes.
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(input.len() + 1);
            match rng.below(3) {
                0 if at < input.len() => input[at] = rng.next() as u8,
                1 => input.insert(at, *rng.pick(b"\r\n*$:?.;-9")),
                _ if at < input.len() => {
                    input.remove(at);
                }
                _ => {}
            }
        }
        let cuts = rng.below(4);
        decode_anything(Limits::default(), random_pieces(&mut rng, &input, cuts));
    }
}

mod split_invariance;
