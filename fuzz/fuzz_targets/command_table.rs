//! The COMMAND reply parser (`CommandTable::from_command_reply`), fed replies decoded by the
//! RESP decoder from the fuzzer's bytes, and the table then used as routing uses it: for every
//! command the reply names, with arguments from a second reply, the key positions must be
//! arguments of the command (never its name, never past its end) and the lookups must not panic.
//!
//! Input: RESP bytes: the COMMAND reply, then optionally an array of strings (the arguments).
#![no_main]

use brisk::core::command_table::{CommandTable, key_positions, read_only};
use brisk::resp::{Args, Decoder, Node};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// Names the entries of a COMMAND reply give, subcommands (`container|sub`) as their words.
fn command_words(entry: &Node, out: &mut Vec<Vec<Vec<u8>>>) {
    let fields = entry.children();
    if let Some(name) = fields.first().and_then(Node::as_bytes) {
        out.push(name.split(|&b| b == b'|').map(<[u8]>::to_vec).collect());
    }
    if let Some(subcommands) = fields.get(9) {
        for sub in subcommands.children().iter().take(64) {
            command_words(sub, out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut decoder = Decoder::default();
    let Ok(Some(reply)) = decoder.decode(&mut buf) else {
        return;
    };
    let table = CommandTable::from_command_reply(&reply);
    let _ = table.len();
    // The arguments after the command's words: the second reply's strings, if any.
    let tail: Vec<Vec<u8>> = match decoder.decode(&mut buf) {
        Ok(Some(args)) => args
            .children()
            .iter()
            .filter_map(|n| n.as_bytes().map(<[u8]>::to_vec))
            .take(16)
            .collect(),
        _ => Vec::new(),
    };
    let mut commands = Vec::new();
    for entry in reply.children().iter().take(64) {
        command_words(entry, &mut commands);
    }
    check_lookups(&table, &commands, &tail);
});

fn check_lookups(table: &CommandTable, commands: &[Vec<Vec<u8>>], tail: &[Vec<u8>]) {
    for words in commands {
        for n in 0..=tail.len() {
            let argv: Vec<&[u8]> = words.iter().chain(&tail[..n]).map(Vec::as_slice).collect();
            let args = Args::from_slices(&argv);
            let _ = read_only(Some(table), &args);
            for position in key_positions(Some(table), &args) {
                assert!(
                    (1..argv.len()).contains(&position),
                    "key position {position} of {} arguments",
                    argv.len()
                );
                // What cluster routing does with it.
                let _ = brisk::core::cluster::key_slot(args.get(position));
            }
        }
    }
}
