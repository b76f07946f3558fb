//! The decoder's split invariance, as a property: the same bytes, however the network splits
//! them, decode to the same replies or fail with the same error, under any [`Limits`], and
//! [`Decoder::decode_batched`] (the pipeline path) agrees with [`Decoder::decode`].
//!
//! Inputs are generated RESP2/RESP3 values (every type, streamed strings and aggregates,
//! attributes, pushes), sometimes with a few bytes damaged; limits are random and small, so that
//! every limit is hit at every kind of place. With the default limits and undamaged bytes the
//! replies must also be exactly the values generated.

use super::*;
use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, RngSeed};

/// A RESP value to encode, and what [`dump`] must print for it.
#[derive(Clone, Debug)]
enum Value {
    Status(Vec<u8>),
    /// A simple error; encoded after an "ERR " prefix.
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or `_`, by index.
    Nil(usize),
    Double(String, f64),
    Bool(bool),
    BigNumber(Vec<u8>),
    Verbatim(&'static [u8; 3], Vec<u8>),
    BlobError(Vec<u8>),
    /// A streamed string's chunks (none empty; the empty one ends it).
    Streamed(Vec<Vec<u8>>),
    Aggregate {
        type_byte: u8,
        streamed: bool,
        items: Vec<Value>,
    },
    /// An attribute (read and dropped), then the value it annotates.
    Attributed {
        pairs: Vec<(Value, Value)>,
        streamed: bool,
        value: Box<Value>,
    },
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    let line = |out: &mut Vec<u8>, type_byte: u8, text: &[u8]| {
        put(out, &[&[type_byte], text, b"\r\n"]);
    };
    let header = |out: &mut Vec<u8>, type_byte: u8, streamed: bool, count: usize| {
        let count = if streamed {
            "?".to_owned()
        } else {
            count.to_string()
        };
        line(out, type_byte, count.as_bytes());
    };
    match value {
        Value::Status(text) => line(out, b'+', text),
        Value::Error(text) => line(out, b'-', &[b"ERR ", &text[..]].concat()),
        Value::Int(n) => line(out, b':', n.to_string().as_bytes()),
        Value::Bulk(payload) => put_bulk(out, b'$', payload),
        Value::Nil(form) => {
            let forms: [&[u8]; 3] = [b"$-1\r\n", b"*-1\r\n", b"_\r\n"];
            out.extend_from_slice(forms[*form]);
        }
        Value::Double(text, _) => line(out, b',', text.as_bytes()),
        Value::Bool(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
        Value::BigNumber(digits) => line(out, b'(', digits),
        Value::Verbatim(format, text) => put_bulk(out, b'=', &[&format[..], b":", text].concat()),
        Value::BlobError(text) => put_bulk(out, b'!', text),
        Value::Streamed(chunks) => {
            out.extend_from_slice(b"$?\r\n");
            for chunk in chunks {
                put_bulk(out, b';', chunk);
            }
            out.extend_from_slice(b";0\r\n");
        }
        Value::Aggregate {
            type_byte,
            streamed,
            items,
        } => {
            let count = match type_byte {
                b'%' => items.len() / 2,
                _ => items.len(),
            };
            header(out, *type_byte, *streamed, count);
            items.iter().for_each(|item| encode(item, out));
            if *streamed {
                out.extend_from_slice(b".\r\n");
            }
        }
        Value::Attributed {
            pairs,
            streamed,
            value,
        } => {
            header(out, b'|', *streamed, pairs.len());
            for (k, v) in pairs {
                encode(k, out);
                encode(v, out);
            }
            if *streamed {
                out.extend_from_slice(b".\r\n");
            }
            encode(value, out);
        }
    }
}

/// What [`dump`] prints for `value` decoded.
fn expected(value: &Value) -> String {
    match value {
        Value::Status(text) => format!("status({})", esc(text)),
        Value::Error(text) => format!("error({})", esc(&[b"ERR ", &text[..]].concat())),
        Value::Int(n) => format!("int({n})"),
        Value::Bulk(payload) => format!("str({})", esc(payload)),
        Value::Nil(_) => "nil".to_owned(),
        Value::Double(text, v) => format!("double({v:?} {})", esc(text.as_bytes())),
        Value::Bool(b) => format!("bool({b})"),
        Value::BigNumber(digits) => format!("big({})", esc(digits)),
        Value::Verbatim(format, text) => {
            format!(
                "verbatim({} {})",
                String::from_utf8_lossy(*format),
                esc(text)
            )
        }
        Value::BlobError(text) => format!("error({})", esc(text)),
        Value::Streamed(chunks) => format!("str({})", esc(&chunks.concat())),
        Value::Aggregate {
            type_byte, items, ..
        } => {
            let name = match type_byte {
                b'*' => "array",
                b'%' => "map",
                b'~' => "set",
                _ => "push",
            };
            let items: Vec<String> = items.iter().map(expected).collect();
            format!("{name}[{}]", items.join(", "))
        }
        Value::Attributed { value, .. } => expected(value),
    }
}

fn bytes(alphabet: &'static [u8], max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(select(alphabet), 0..=max_len)
}

fn double() -> impl Strategy<Value = Value> {
    prop_oneof![
        select(vec![
            ("inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("nan", f64::NAN),
            ("0", 0.0),
            ("-1.5", -1.5),
        ])
        .prop_map(|(text, v)| Value::Double(text.to_owned(), v)),
        any::<i32>().prop_map(|n| {
            let v = f64::from(n) / 1024.0;
            Value::Double(format!("{v}"), v)
        }),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| Value::Double(format!("{v:e}"), v)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        bytes(LINE, 12).prop_map(Value::Status),
        bytes(LINE, 8).prop_map(Value::Error),
        prop_oneof![any::<i64>(), -20i64..20, select(vec![i64::MIN, i64::MAX])]
            .prop_map(Value::Int),
        bytes(BINARY, 20).prop_map(Value::Bulk),
        bytes(b"abc", 3).prop_map(Value::Bulk),
        (0usize..3).prop_map(Value::Nil),
        double(),
        any::<bool>().prop_map(Value::Bool),
        (any::<bool>(), bytes(b"0123456789", 40)).prop_map(|(negative, digits)| {
            let sign: &[u8] = if negative { b"-" } else { b"" };
            Value::BigNumber([sign, b"1", &digits].concat())
        }),
        (select(vec![b"txt", b"mkd"]), bytes(BINARY, 12))
            .prop_map(|(format, text)| Value::Verbatim(format, text)),
        bytes(BINARY, 12).prop_map(Value::BlobError),
        vec(vec(select(BINARY), 1..=6), 0..4).prop_map(Value::Streamed),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            3 => (
                select(vec![b'*', b'%', b'~', b'>']),
                any::<bool>(),
                vec(inner.clone(), 0..5),
            )
                .prop_map(|(type_byte, streamed, mut items)| {
                    if type_byte == b'%' {
                        // A key and a value per entry.
                        items.truncate(items.len() / 2 * 2);
                    }
                    Value::Aggregate {
                        type_byte,
                        streamed,
                        items,
                    }
                }),
            1 => (vec((inner.clone(), inner.clone()), 0..3), any::<bool>(), inner).prop_map(
                |(pairs, streamed, value)| Value::Attributed {
                    pairs,
                    streamed,
                    value: Box::new(value),
                }
            ),
        ]
    })
}

/// Each limit small (so that it is hit at every kind of place) or its default, independently.
fn limits() -> impl Strategy<Value = Limits> {
    let d = Limits::default();
    let either = |small: std::ops::Range<usize>, default: usize| {
        prop_oneof![small.prop_map(|n| n), Just(default)]
    };
    (
        either(0..5, d.max_depth),
        either(0..6, d.max_elements),
        either(0..24, d.max_bulk_len),
        prop_oneof![0usize..4, 0usize..24, Just(d.max_line_len)],
        prop_oneof![0usize..64, 0usize..600, Just(d.max_reply_bytes)],
    )
        .prop_map(
            |(max_depth, max_elements, max_bulk_len, max_line_len, max_reply_bytes)| Limits {
                max_depth,
                max_elements,
                max_bulk_len,
                max_line_len,
                max_reply_bytes,
            },
        )
}

/// A damaged byte: overwritten, inserted or removed.
#[derive(Clone, Debug)]
enum Damage {
    Overwrite(Index, u8),
    Insert(Index, u8),
    Remove(Index),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let byte = select(b"\r\n*$:?.;-09_%|~>+!=(#,x".to_vec());
    let one = prop_oneof![
        (any::<Index>(), byte.clone()).prop_map(|(at, b)| Damage::Overwrite(at, b)),
        (any::<Index>(), byte).prop_map(|(at, b)| Damage::Insert(at, b)),
        any::<Index>().prop_map(Damage::Remove),
    ];
    prop_oneof![3 => Just(Vec::new()), 1 => vec(one, 1..4)]
}

fn apply(damage: &[Damage], input: &mut Vec<u8>) {
    for d in damage {
        match *d {
            Damage::Overwrite(at, b) if !input.is_empty() => {
                let at = at.index(input.len());
                input[at] = b;
            }
            Damage::Insert(at, b) => input.insert(at.index(input.len() + 1), b),
            Damage::Remove(at) if !input.is_empty() => {
                input.remove(at.index(input.len()));
            }
            _ => {}
        }
    }
}

/// What decoding some bytes produced: the replies (as [`dump`] prints them), then the error
/// that stopped decoding, or else how many bytes were left undecoded (after an error, bytes
/// not fed yet would count too).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    replies: Vec<String>,
    end: Result<usize, String>,
}

/// Feeds `pieces` through [`Decoder::decode`].
fn decode_pieces(limits: Limits, pieces: &[&[u8]]) -> Outcome {
    let fed = feed(limits, pieces.iter().copied());
    Outcome {
        replies: fed.replies.into_iter().map(|(dump, _)| dump).collect(),
        end: match fed.error {
            Some(e) => Err(e.0),
            None => Ok(fed.left),
        },
    }
}

/// Feeds `pieces` through [`Decoder::decode_batched`], the way a pipeline reads: before each
/// read the replies batched so far are split off and pointed into their bytes.
fn decode_pieces_batched(limits: Limits, pieces: &[&[u8]]) -> Outcome {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut roots: Vec<Node> = Vec::new();
    let mut sealed: Vec<(Bytes, Vec<Node>)> = Vec::new();
    let seal = |decoder: &mut Decoder,
                buf: &mut BytesMut,
                roots: &mut Vec<Node>,
                sealed: &mut Vec<(Bytes, Vec<Node>)>| {
        if let Some(bytes) = decoder.split_batch(buf) {
            let mut batch = std::mem::take(roots);
            for root in &mut batch {
                // SAFETY: these roots were decoded from exactly the bytes just split off.
                unsafe { root.rebase(bytes.as_ptr()) };
            }
            sealed.push((bytes, batch));
        }
    };
    let mut error = None;
    'read: for piece in pieces {
        seal(&mut decoder, &mut buf, &mut roots, &mut sealed);
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode_batched(&mut buf, &mut roots) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    error = Some(e.0);
                    break 'read;
                }
            }
        }
    }
    seal(&mut decoder, &mut buf, &mut roots, &mut sealed);
    let mut replies: Vec<String> = sealed
        .iter()
        .flat_map(|(_, batch)| batch.iter().map(dump))
        .collect();
    // Roots that could not be split off (part of a next reply was consumed after them) still
    // hold offsets into the buffer, which has not moved since.
    for root in &mut roots {
        // SAFETY: their strings lie within the first `batch_end` bytes of `buf`.
        unsafe { root.rebase(buf.as_ptr()) };
        replies.push(dump(root));
    }
    Outcome {
        replies,
        end: match error {
            Some(e) => Err(e),
            None => Ok(buf.len() - decoder.batch_end),
        },
    }
}

/// Cuts `input` at the given points (in any order, repeats allowed).
fn cut<'a>(input: &'a [u8], at: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = at.iter().map(|i| i.index(input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

/// The property: whole, byte by byte and cut at `cuts`, through `decode` and `decode_batched`,
/// `input` gives one outcome.
fn check_split_invariance(limits: Limits, input: &[u8], cuts: &[Index]) -> Outcome {
    let whole = decode_pieces(limits, &[input]);
    let byte_by_byte: Vec<&[u8]> = input.chunks(1).collect();
    let pieces = cut(input, cuts);
    for (how, pieces) in [("byte by byte", &byte_by_byte), ("cut", &pieces)] {
        assert_eq!(
            decode_pieces(limits, pieces),
            whole,
            "{how} {pieces:?} vs whole, with {limits:?}"
        );
    }
    for (how, pieces) in [
        ("whole", &vec![input]),
        ("byte by byte", &byte_by_byte),
        ("cut", &pieces),
    ] {
        assert_eq!(
            decode_pieces_batched(limits, pieces),
            whole,
            "decode_batched fed {how} {pieces:?} vs decode, with {limits:?}"
        );
    }
    whole
}

/// 1,000 cases from a fixed seed, so that CI runs the cases that passed here;
/// `PROPTEST_CASES` and `PROPTEST_RNG_SEED` explore further.
fn config() -> Config {
    let set = |var| std::env::var_os(var).is_some();
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if !set("PROPTEST_CASES") {
        config.cases = 1000;
    }
    if !set("PROPTEST_RNG_SEED") {
        config.rng_seed = RngSeed::Fixed(0x5EED_DEC0_DE00_0001);
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn replies_split_anywhere_decode_the_same_under_any_limits(
        values in vec(value(), 1..4),
        limits in limits(),
        cuts in vec(any::<Index>(), 0..8),
        damage in damage(),
    ) {
        let mut input = Vec::new();
        values.iter().for_each(|v| encode(v, &mut input));
        apply(&damage, &mut input);
        let outcome = check_split_invariance(limits, &input, &cuts);
        if damage.is_empty() && limits == Limits::default() {
            let want: Vec<String> = values.iter().map(expected).collect();
            prop_assert_eq!(outcome, Outcome { replies: want, end: Ok(0) });
        }
    }
}
