//! The command-format parser (`brisk::core::format`, what `brisk_commandf` and its relatives
//! run): no panic on any format; a refused format is INVALID_ARGUMENT; an accepted one builds
//! arguments whose bytes are exactly the format's literal text and the values, in order, with
//! no value ever split; and arguments written as a format (spaces separating, '%' escaped as
//! %%) come back as they were.
//!
//! Input: a format, then (after the first 0xFF byte, if any) the values, separated by 0xFE.
#![no_main]

use brisk::Status;
use brisk::core::format::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (format, rest) = match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let pool: Vec<&[u8]> = rest.split(|&b| b == 0xFE).collect();
    match parse(format) {
        Err(e) => assert_eq!(e.status(), Status::InvalidArgument, "{}", e.message()),
        Ok(parsed) => {
            let values: Vec<&[u8]> = (0..parsed.conversions().len())
                .map(|i| pool[i % pool.len()])
                .collect();
            let built = parsed.build(&values);
            let args = built.args();
            assert!(!args.is_empty(), "an accepted format has a command");
            // The arguments, concatenated, are the format with separators dropped, %% made %,
            // and each conversion replaced by its value.
            let mut expected = Vec::new();
            let mut next_value = values.iter();
            let mut i = 0;
            while i < format.len() {
                match (format[i], format.get(i + 1)) {
                    (b' ', _) => i += 1,
                    (b'%', Some(b'%')) => {
                        expected.push(b'%');
                        i += 2;
                    }
                    (b'%', Some(b's' | b'b')) => {
                        expected.extend_from_slice(next_value.next().unwrap());
                        i += 2;
                    }
                    (b'%', _) => panic!("an accepted format holds a bad conversion"),
                    (byte, _) => {
                        expected.push(byte);
                        i += 1;
                    }
                }
            }
            assert_eq!(args.concat(), expected);
        }
    }
    // Arguments without spaces, written as a format, come back unchanged.
    let words: Vec<&[u8]> = pool
        .iter()
        .flat_map(|v| v.split(|&b| b == b' '))
        .filter(|w| !w.is_empty())
        .collect();
    if !words.is_empty() {
        let mut written = Vec::new();
        for word in &words {
            for &b in *word {
                if b == b'%' {
                    written.push(b'%');
                }
                written.push(b);
            }
            written.push(b' ');
        }
        let parsed = parse(&written).expect("an escaped format parses");
        assert!(parsed.conversions().is_empty());
        assert_eq!(parsed.build(&[]).args(), words);
    }
});
