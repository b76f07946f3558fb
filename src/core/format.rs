//! Command formats in hiredis's style, for `brisk_commandf` and its relatives:
//! `"SET %s %b"` with a C string and a (pointer, length) pair.
//!
//! - A space in the format separates arguments (several spaces count as one); nothing else does:
//!   an interpolated value is one argument, or part of one, whatever bytes it holds.
//! - `%s` interpolates a NUL-terminated string, `%b` binary data given as a pointer and a
//!   `size_t` length, `%%` a literal `%`. Conversions may sit inside an argument
//!   (`"user:%s:name"`), and an argument that is only an empty value is an empty argument.
//! - Anything else after a `%` (hiredis passes `%d` and friends to `vsnprintf`) is refused, and
//!   so is a `%` at the end of the format: brisk never guesses what a conversion would take from
//!   the caller's arguments, so a wrong format is an error, never a crash.
//!
//! [`parse`] checks the whole format before any value is read; the caller then takes one value
//! per [`Conversion`], in order, and [`Format::build`] assembles the arguments.

use super::Error;

/// What a conversion takes from the caller's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// `%s`: a NUL-terminated string.
    String,
    /// `%b`: a pointer and a `size_t` length.
    Binary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part<'f> {
    /// Bytes of the format, copied as they are (`%%` gives `"%"`).
    Literal(&'f [u8]),
    /// The next value.
    Value,
    /// The end of an argument.
    End,
}

/// A checked format: its parts and the conversions it needs, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format<'f> {
    parts: Vec<Part<'f>>,
    conversions: Vec<Conversion>,
}

/// Checks `format` and splits it into parts. INVALID_ARGUMENT for an unknown conversion, a
/// trailing `%`, or a format with no argument at all.
pub fn parse<'f>(format: &'f [u8]) -> Result<Format<'f>, Error> {
    let mut parts = Vec::new();
    let mut conversions = Vec::new();
    // Whether the argument being built has anything yet (an empty value counts).
    let mut open = false;
    let mut literal_start = 0;
    let mut i = 0;
    let flush = |parts: &mut Vec<Part<'f>>, from: usize, to: usize| {
        if to > from {
            parts.push(Part::Literal(&format[from..to]));
        }
    };
    while i < format.len() {
        match format[i] {
            b' ' => {
                flush(&mut parts, literal_start, i);
                if open {
                    parts.push(Part::End);
                    open = false;
                }
                i += 1;
                literal_start = i;
            }
            b'%' => {
                flush(&mut parts, literal_start, i);
                let conversion = match format.get(i + 1) {
                    Some(b's') => Some(Conversion::String),
                    Some(b'b') => Some(Conversion::Binary),
                    Some(b'%') => None,
                    Some(&other) => return Err(unknown_conversion(i, other)),
                    None => {
                        return Err(Error::invalid_argument(format!(
                            "format: a lone '%' ends the format (at byte {i}); write %% for a \
                             literal %"
                        )));
                    }
                };
                match conversion {
                    Some(c) => {
                        conversions.push(c);
                        parts.push(Part::Value);
                    }
                    None => parts.push(Part::Literal(b"%")),
                }
                open = true;
                i += 2;
                literal_start = i;
            }
            _ => {
                open = true;
                i += 1;
            }
        }
    }
    flush(&mut parts, literal_start, format.len());
    if open {
        parts.push(Part::End);
    }
    if !parts.contains(&Part::End) {
        return Err(Error::invalid_argument(
            "format: no command in it (a command needs at least its name)",
        ));
    }
    Ok(Format { parts, conversions })
}

fn unknown_conversion(at: usize, byte: u8) -> Error {
    let shown = match byte {
        b'!'..=b'~' => format!("%{}", byte as char),
        _ => format!("'%' followed by byte 0x{byte:02x}"),
    };
    Error::invalid_argument(format!(
        "format: unknown conversion {shown} at byte {at}; brisk formats take %s (a C string), \
         %b (a pointer and a size_t length) and %% (a literal %)"
    ))
}

/// Arguments assembled into one buffer: argument `i` is `bytes[ranges[i].clone()]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub ranges: Vec<std::ops::Range<usize>>,
}

impl Built {
    pub fn args(&self) -> Vec<&[u8]> {
        self.ranges.iter().map(|r| &self.bytes[r.clone()]).collect()
    }
}

impl Format<'_> {
    /// The values the format takes, in order.
    pub fn conversions(&self) -> &[Conversion] {
        &self.conversions
    }

    /// The arguments, with `values[i]` for the `i`-th conversion.
    ///
    /// # Panics
    /// If `values` does not hold exactly one value per conversion (a caller's bug).
    pub fn build(&self, values: &[&[u8]]) -> Built {
        assert_eq!(
            values.len(),
            self.conversions.len(),
            "one value per conversion"
        );
        let mut built = Built::default();
        let mut values = values.iter();
        let mut start = 0;
        for part in &self.parts {
            match part {
                Part::Literal(bytes) => built.bytes.extend_from_slice(bytes),
                Part::Value => built
                    .bytes
                    .extend_from_slice(values.next().expect("counted above")),
                Part::End => {
                    built.ranges.push(start..built.bytes.len());
                    start = built.bytes.len();
                }
            }
        }
        built
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Status;

    fn args(format: &str, values: &[&[u8]]) -> Vec<Vec<u8>> {
        let parsed = parse(format.as_bytes()).unwrap_or_else(|e| panic!("{format}: {e:?}"));
        parsed
            .build(values)
            .args()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn refused(format: &[u8]) -> String {
        let e = parse(format).expect_err("refused");
        assert_eq!(e.status(), Status::InvalidArgument);
        e.message().to_owned()
    }

    #[test]
    fn spaces_separate_arguments_and_values_never_do() {
        assert_eq!(args("PING", &[]), strings(&["PING"]));
        assert_eq!(args("  SET  k   v ", &[]), strings(&["SET", "k", "v"]));
        assert_eq!(
            args("SET %s %b", &[b"my key", b"a\0b c\r\n"]),
            vec![b"SET".to_vec(), b"my key".to_vec(), b"a\0b c\r\n".to_vec()]
        );
        // Tabs and newlines are no separators, as in hiredis.
        assert_eq!(args("GET a\tb", &[]), strings(&["GET", "a\tb"]));
    }

    #[test]
    fn conversions_inside_an_argument() {
        assert_eq!(
            args("HGET user:%s:profile %s%b!", &[b"42", b"na", b"me"]),
            strings(&["HGET", "user:42:profile", "name!"])
        );
        assert_eq!(
            args("SET %s%s x", &[b"a", b"b"]),
            strings(&["SET", "ab", "x"])
        );
    }

    #[test]
    fn empty_values_are_empty_arguments() {
        assert_eq!(args("SET %s %b", &[b"", b""]), strings(&["SET", "", ""]));
        assert_eq!(args("ECHO %s", &[b""]), strings(&["ECHO", ""]));
    }

    #[test]
    fn percent_percent_is_a_literal() {
        assert_eq!(
            args("SET 100%% %%s%%", &[]),
            strings(&["SET", "100%", "%s%"])
        );
        assert_eq!(args("%%", &[]), strings(&["%"]));
    }

    #[test]
    fn the_conversions_are_listed_in_order() {
        let f = parse(b"MSET %s %b %s %b").unwrap();
        assert_eq!(
            f.conversions(),
            [
                Conversion::String,
                Conversion::Binary,
                Conversion::String,
                Conversion::Binary
            ]
        );
        assert!(parse(b"PING %%").unwrap().conversions().is_empty());
    }

    #[test]
    fn unknown_conversions_are_refused_by_name() {
        for (format, shown) in [
            (&b"SET %s %d"[..], "%d"),
            (b"INCRBY k %lld", "%l"),
            (b"SET %S v", "%S"),
            (b"GET % k", "byte 0x20"),
            (b"GET %\x01", "byte 0x01"),
            (b"GET %\xff", "byte 0xff"),
            (b"SET %n", "%n"),
        ] {
            let message = refused(format);
            assert!(
                message.contains("unknown conversion") && message.contains(shown),
                "{format:?}: {message}"
            );
            assert!(message.contains("%s (a C string), %b"), "{message}");
        }
        assert!(refused(b"SET k 100%").contains("a lone '%' ends the format"));
    }

    #[test]
    fn a_format_needs_a_command() {
        for format in [&b""[..], b"   "] {
            assert!(refused(format).contains("no command in it"), "{format:?}");
        }
        // A lone value is an argument: the command's name may come from a value.
        assert_eq!(args("%s", &[b"PING"]), strings(&["PING"]));
    }

    #[test]
    #[should_panic(expected = "one value per conversion")]
    fn build_wants_one_value_per_conversion() {
        parse(b"GET %s").unwrap().build(&[]);
    }
}
