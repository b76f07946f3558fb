//! Encoding commands as RESP arrays of bulk strings (what every Redis command is on the wire).

use bytes::BytesMut;

/// The arguments of one command, borrowed from wherever the caller keeps them.
///
/// Commands from C arrive as `argv`/`argvlen` arrays; commands built in Rust are slices. This
/// view lets both be encoded and inspected (name, keys, flags) without collecting them into a
/// `Vec` per command.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    inner: Inner<'a>,
}

#[derive(Clone, Copy)]
enum Inner<'a> {
    Slices(&'a [&'a [u8]]),
    Raw {
        argv: *const *const u8,
        lens: *const usize,
        count: usize,
    },
}

impl<'a> Args<'a> {
    pub fn from_slices(args: &'a [&'a [u8]]) -> Args<'a> {
        Args {
            inner: Inner::Slices(args),
        }
    }

    /// Arguments held as arrays of pointers and lengths (C's `argv`/`argvlen`): `count`
    /// pointers in `argv`, their lengths in `lens`.
    ///
    /// # Safety
    /// `argv` and `lens` must each point to `count` values, each pointer non-null and valid for
    /// its length in bytes, all living and unchanged for `'a`.
    pub unsafe fn from_raw(argv: *const *const u8, lens: *const usize, count: usize) -> Args<'a> {
        Args {
            inner: Inner::Raw { argv, lens, count },
        }
    }

    pub fn len(&self) -> usize {
        match self.inner {
            Inner::Slices(s) => s.len(),
            Inner::Raw { count, .. } => count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Argument `i`; panics when out of range, like slice indexing.
    pub fn get(&self, i: usize) -> &'a [u8] {
        match self.inner {
            Inner::Slices(s) => s[i],
            Inner::Raw { argv, lens, count } => {
                assert!(i < count, "argument index out of range");
                // SAFETY: the constructor's contract covers every index below `count`.
                unsafe { raw_arg(argv, lens, i) }
            }
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// The command name (first argument).
    pub fn name(&self) -> &'a [u8] {
        self.get(0)
    }
}

/// Argument `i` of an `argv`/`lens` pair.
///
/// # Safety
/// As [`Args::from_raw`] requires, for an `i` below its `count`.
#[inline(always)]
unsafe fn raw_arg<'a>(argv: *const *const u8, lens: *const usize, i: usize) -> &'a [u8] {
    // SAFETY: per the contract.
    unsafe { std::slice::from_raw_parts(*argv.add(i), *lens.add(i)) }
}

/// Appends `*N\r\n` then `$len\r\narg\r\n` for each argument.
///
/// This runs once per command on every path, so it reserves once and then writes straight into
/// the spare capacity, instead of a bounds-checked `put` per piece; and it looks at how the
/// arguments are held once, not once per argument.
pub fn encode_command(out: &mut BytesMut, args: &Args<'_>) {
    match args.inner {
        Inner::Slices(slices) => encode_parts(out, slices.len(), || slices.iter().copied()),
        Inner::Raw { argv, lens, count } => encode_parts(out, count, || {
            // SAFETY: `Args::from_raw`'s contract covers every index below `count`.
            (0..count).map(move |i| unsafe { raw_arg(argv, lens, i) })
        }),
    }
}

/// [`encode_command`] of the `count` arguments that `parts` walks (twice: sizing, writing).
#[inline(always)]
fn encode_parts<'a, I: Iterator<Item = &'a [u8]>>(
    out: &mut BytesMut,
    count: usize,
    parts: impl Fn() -> I,
) {
    // Per argument: '$', at most 20 digits, two CRLFs; the header: '*', 20 digits, CRLF.
    const ARG_OVERHEAD: usize = 1 + 20 + 4;
    const HEADER: usize = 1 + 20 + 2;
    let total: usize = parts().map(|a| a.len() + ARG_OVERHEAD).sum::<usize>() + HEADER;
    out.reserve(total);
    let start = out.len();
    let spare = out.spare_capacity_mut();
    debug_assert!(spare.len() >= total);
    // SAFETY: `spare` has room for `total` bytes, which bounds everything written below (each
    // length has at most 20 digits); the written prefix is initialised before `set_len`.
    unsafe {
        let base = spare.as_mut_ptr().cast::<u8>();
        let mut p = base;
        *p = b'*';
        p = write_decimal(p.add(1), count);
        for arg in parts() {
            *p = b'$';
            p = write_decimal(p.add(1), arg.len());
            copy_arg(arg, p);
            p = p.add(arg.len());
            *p = b'\r';
            *p.add(1) = b'\n';
            p = p.add(2);
        }
        out.set_len(start + p.offset_from(base) as usize);
    }
}

/// Copies `arg` to `p`. Most arguments are a few bytes (names, keys, small values), for which a
/// call to `memcpy` costs more than the copy: up to 16 bytes are moved as two overlapping words.
///
/// # Safety
/// `p` must be valid for `arg.len()` bytes of writes, not overlapping `arg`.
#[inline(always)]
unsafe fn copy_arg(arg: &[u8], p: *mut u8) {
    let (src, len) = (arg.as_ptr(), arg.len());
    // SAFETY: every read lies within `arg`, every write within `p..p + len`.
    unsafe {
        match len {
            8..=16 => copy_two_words::<u64>(src, p, len),
            4..=7 => copy_two_words::<u32>(src, p, len),
            1..=3 => {
                *p = *src;
                *p.add(len / 2) = *src.add(len / 2);
                *p.add(len - 1) = *src.add(len - 1);
            }
            0 => {}
            _ => std::ptr::copy_nonoverlapping(src, p, len),
        }
    }
}

/// Copies `len` bytes, from one to two words `W` long, as a word at the start and a word ending
/// at the end (overlapping in the middle).
///
/// # Safety
/// `size_of::<W>() <= len <= 2 * size_of::<W>()`; `src` readable and `p` writable for `len` bytes.
#[inline(always)]
unsafe fn copy_two_words<W: Copy>(src: *const u8, p: *mut u8, len: usize) {
    let last = len - std::mem::size_of::<W>();
    // SAFETY: per the contract, both words lie within the `len` bytes.
    unsafe {
        p.cast::<W>()
            .write_unaligned(src.cast::<W>().read_unaligned());
        p.add(last)
            .cast::<W>()
            .write_unaligned(src.add(last).cast::<W>().read_unaligned());
    }
}

/// Writes `n` in decimal and a CRLF at `p`; returns the position after them.
///
/// # Safety
/// `p` must be valid for 22 bytes of writes.
#[inline]
unsafe fn write_decimal(p: *mut u8, n: usize) -> *mut u8 {
    // SAFETY: per the contract; at most 20 digits and 2 bytes of CRLF.
    unsafe {
        let digits = if n < 10 {
            *p = b'0' + n as u8;
            1
        } else if n < 100 {
            *p = b'0' + (n / 10) as u8;
            *p.add(1) = b'0' + (n % 10) as u8;
            2
        } else {
            let mut fmt = itoa::Buffer::new();
            let s = fmt.format(n).as_bytes();
            std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            s.len()
        };
        *p.add(digits) = b'\r';
        *p.add(digits + 1) = b'\n';
        p.add(digits + 2)
    }
}

/// Calls `f` with each command of `encoded`, bytes made by [`encode_command`] (a pipeline's
/// batch), until `f` returns false; returns whether it never did. Bytes that are not such
/// commands end the walk with false.
pub fn all_encoded(encoded: &[u8], mut f: impl FnMut(&Args<'_>) -> bool) -> bool {
    fn number(rest: &mut &[u8], marker: u8) -> Option<usize> {
        let (&first, tail) = rest.split_first()?;
        if first != marker {
            return None;
        }
        let end = tail.iter().position(|&b| b == b'\r')?;
        let n = std::str::from_utf8(&tail[..end]).ok()?.parse().ok()?;
        *rest = tail.get(end + 2..)?;
        Some(n)
    }
    let mut rest = encoded;
    let mut argv: Vec<&[u8]> = Vec::new();
    while !rest.is_empty() {
        let Some(count) = number(&mut rest, b'*') else {
            return false;
        };
        argv.clear();
        for _ in 0..count {
            let Some(len) = number(&mut rest, b'$') else {
                return false;
            };
            let Some(arg) = rest.get(..len) else {
                return false;
            };
            argv.push(arg);
            rest = rest.get(len + 2..).unwrap_or_default();
        }
        if !f(&Args::from_slices(&argv)) {
            return false;
        }
    }
    true
}

/// Encodes a command given as owned arguments (handshakes, internal commands).
pub fn encode_owned(out: &mut BytesMut, args: &[Vec<u8>]) {
    let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    encode_command(out, &Args::from_slices(&slices));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_binary_arguments() {
        let mut out = BytesMut::new();
        let args: [&[u8]; 3] = [b"SET", b"k\0\r\n", b""];
        encode_command(&mut out, &Args::from_slices(&args));
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$4\r\nk\0\r\n\r\n$0\r\n\r\n");
    }

    #[test]
    fn encoded_commands_are_walked_back() {
        let mut out = BytesMut::new();
        let a: [&[u8]; 2] = [b"GET", b"k\r\n"];
        let b: [&[u8]; 3] = [b"SET", b"k", &[b'v'; 300]];
        encode_command(&mut out, &Args::from_slices(&a));
        encode_command(&mut out, &Args::from_slices(&b));
        let mut seen = Vec::new();
        assert!(all_encoded(&out, |args| {
            seen.push(args.iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
            true
        }));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], [b"GET".to_vec(), b"k\r\n".to_vec()]);
        assert_eq!(seen[1][2].len(), 300);
        assert!(!all_encoded(&out, |args| args.name() == b"GET"));
        assert!(!all_encoded(b"*1\r\n$9\r\nGET", |_| true));
        assert!(all_encoded(b"", |_| false));
    }

    /// Every short length takes its own copy path: each byte must land where it belongs.
    #[test]
    fn arguments_of_every_short_length_are_copied_exactly() {
        for len in 0..=40usize {
            let arg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let other = b"tail".as_slice();
            let mut out = BytesMut::new();
            encode_command(&mut out, &Args::from_slices(&[arg.as_slice(), other]));
            let mut want = format!("*2\r\n${len}\r\n").into_bytes();
            want.extend_from_slice(&arg);
            want.extend_from_slice(b"\r\n$4\r\ntail\r\n");
            assert_eq!(&out[..], &want[..], "length {len}");
        }
    }

    #[test]
    fn lengths_of_every_width() {
        for len in [0usize, 1, 9, 10, 99, 100, 999, 1000, 12345, 100_000] {
            let arg = vec![b'x'; len];
            let args: [&[u8]; 1] = [&arg];
            let mut out = BytesMut::new();
            encode_command(&mut out, &Args::from_slices(&args));
            let mut expected = format!("*1\r\n${len}\r\n").into_bytes();
            expected.extend_from_slice(&arg);
            expected.extend_from_slice(b"\r\n");
            assert_eq!(&out[..], &expected[..]);
        }
        let many: Vec<&[u8]> = vec![b"a"; 123];
        let mut out = BytesMut::from(&b"prefix"[..]);
        encode_command(&mut out, &Args::from_slices(&many));
        assert!(out.starts_with(b"prefix*123\r\n$1\r\na\r\n"));
        assert_eq!(out.len(), 6 + 6 + 123 * 7);
    }

    #[test]
    fn raw_arguments_with_lengths() {
        let a = c"GET";
        let b = c"key";
        let argv = [a.as_ptr().cast::<u8>(), b.as_ptr().cast::<u8>()];
        let lens = [3usize, 2];
        // SAFETY: lengths within the strings.
        let args = unsafe { Args::from_raw(argv.as_ptr(), lens.as_ptr(), 2) };
        assert_eq!(args.get(1), b"ke");
        let mut out = BytesMut::new();
        encode_command(&mut out, &args);
        assert_eq!(&out[..], b"*2\r\n$3\r\nGET\r\n$2\r\nke\r\n");
    }
}
