//! Encoding commands as RESP arrays of bulk strings (what every Redis command is on the wire).

use bytes::{BufMut, BytesMut};

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

    /// Arguments held by C: `count` pointers in `argv`, lengths in `lens` (or NUL-terminated
    /// strings when `lens` is null).
    ///
    /// # Safety
    /// `argv` must point to `count` non-null pointers, each valid for `lens[i]` bytes (or up to
    /// and including a NUL when `lens` is null), all living and unchanged for `'a`.
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
                unsafe {
                    let p = *argv.add(i);
                    let len = if lens.is_null() {
                        libc::strlen(p.cast())
                    } else {
                        *lens.add(i)
                    };
                    std::slice::from_raw_parts(p, len)
                }
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

/// Appends `*N\r\n` then `$len\r\narg\r\n` for each argument.
pub fn encode_command(out: &mut BytesMut, args: &Args<'_>) {
    let mut fmt = itoa::Buffer::new();
    let total: usize = args.iter().map(|a| a.len() + 16).sum::<usize>() + 16;
    out.reserve(total);
    out.put_u8(b'*');
    out.put_slice(fmt.format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for arg in args.iter() {
        out.put_u8(b'$');
        out.put_slice(fmt.format(arg.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
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
    fn raw_arguments_with_and_without_lengths() {
        let a = c"GET";
        let b = c"key";
        let argv = [a.as_ptr().cast::<u8>(), b.as_ptr().cast::<u8>()];
        // SAFETY: two valid NUL-terminated strings.
        let args = unsafe { Args::from_raw(argv.as_ptr(), std::ptr::null(), 2) };
        assert_eq!(args.get(1), b"key");
        let lens = [3usize, 2];
        // SAFETY: lengths within the strings.
        let args = unsafe { Args::from_raw(argv.as_ptr(), lens.as_ptr(), 2) };
        assert_eq!(args.get(1), b"ke");
        let mut out = BytesMut::new();
        encode_command(&mut out, &args);
        assert_eq!(&out[..], b"*2\r\n$3\r\nGET\r\n$2\r\nke\r\n");
    }
}
