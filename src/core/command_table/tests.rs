use super::*;
use crate::resp::{Decoder, Reply};
use bytes::BytesMut;

/// The reply to `COMMAND` from redis-server 7.0.15 (RESP3), captured once.
const REDIS_7_COMMAND: &[u8] = include_bytes!("redis-7.0-command.resp3");

fn table() -> CommandTable {
    let mut buf = BytesMut::from(REDIS_7_COMMAND);
    let reply: Reply = Decoder::default().decode(&mut buf).unwrap().unwrap();
    CommandTable::from_command_reply(&reply)
}

fn positions(table: &CommandTable, words: &[&str]) -> Option<Vec<usize>> {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    table.key_positions(&Args::from_slices(&args))
}

fn read_only(table: &CommandTable, words: &[&str]) -> bool {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    table.is_read_only(&Args::from_slices(&args))
}

#[test]
fn read_only_flags_come_from_the_server() {
    let t = table();
    assert!(t.len() > 200, "{} commands", t.len());
    assert!(read_only(&t, &["GET", "k"]));
    assert!(read_only(&t, &["get", "k"]));
    assert!(read_only(&t, &["OBJECT", "ENCODING", "k"]));
    assert!(read_only(&t, &["XRANGE", "s", "-", "+"]));
    assert!(!read_only(&t, &["SET", "k", "v"]));
    assert!(!read_only(&t, &["INCR", "k"]));
    assert!(!read_only(&t, &["CONFIG", "SET", "x", "y"]));
    assert!(!read_only(&t, &["NOSUCHCOMMAND"]));
}

/// The commands whose keys cannot all be found from their arguments, as Redis 7.0 says (key
/// specs of type `unknown` or flagged `incomplete`): a client-side cache must not trust the
/// keys it finds for them.
#[test]
fn commands_with_keys_only_the_server_can_name() {
    let t = table();
    let mut unnamed: Vec<&str> = t
        .commands
        .iter()
        .filter(|(_, info)| info.facts.unnamed_keys)
        .map(|(name, _)| std::str::from_utf8(name).unwrap())
        .collect();
    unnamed.sort_unstable();
    assert_eq!(unnamed, ["migrate", "sort", "sort_ro"]);
}

#[test]
fn key_specs_find_keys_where_each_command_keeps_them() {
    let t = table();
    assert_eq!(positions(&t, &["GET", "k"]), Some(vec![1]));
    assert_eq!(
        positions(&t, &["MSET", "a", "1", "b", "2"]),
        Some(vec![1, 3])
    );
    assert_eq!(positions(&t, &["MGET", "a", "b", "c"]), Some(vec![1, 2, 3]));
    assert_eq!(
        positions(&t, &["EVAL", "return 1", "2", "k1", "k2", "arg"]),
        Some(vec![3, 4])
    );
    assert_eq!(
        positions(&t, &["EVAL", "return 1", "0", "arg"]),
        Some(vec![])
    );
    assert_eq!(
        positions(
            &t,
            &["XREAD", "COUNT", "1", "STREAMS", "s1", "s2", "0", "0"]
        ),
        Some(vec![4, 5])
    );
    assert_eq!(
        positions(&t, &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s1", ">"]),
        Some(vec![5])
    );
    assert_eq!(
        positions(&t, &["ZUNIONSTORE", "dest", "2", "a", "b"]),
        Some(vec![1, 3, 4])
    );
    assert_eq!(positions(&t, &["BLPOP", "a", "b", "0"]), Some(vec![1, 2]));
    assert_eq!(positions(&t, &["OBJECT", "ENCODING", "k"]), Some(vec![2]));
    assert_eq!(positions(&t, &["PING"]), Some(vec![]));
    // SORT's STORE key has an "unknown" spec: only the source key is found.
    assert_eq!(
        positions(&t, &["SORT", "src", "STORE", "dst"]),
        Some(vec![1])
    );
    assert_eq!(positions(&t, &["NOSUCHCOMMAND", "x"]), None);
    // Malformed counts find no keys rather than panicking.
    assert_eq!(positions(&t, &["EVAL", "s", "many", "k"]), Some(vec![]));
    assert_eq!(positions(&t, &["EVAL", "s", "99", "k"]), Some(vec![3]));
    assert_eq!(positions(&t, &["XREAD", "STREAMS"]), Some(vec![]));
}

#[test]
fn legacy_triple_without_key_specs() {
    // A Redis 6 style entry: no key specs, first/last/step = 1/-1/2.
    let wire = b"*1\r\n*6\r\n$4\r\nmset\r\n:-3\r\n*1\r\n+write\r\n:1\r\n:-1\r\n:2\r\n";
    let mut buf = BytesMut::from(&wire[..]);
    let reply = Decoder::default().decode(&mut buf).unwrap().unwrap();
    let t = CommandTable::from_command_reply(&reply);
    assert_eq!(
        positions(&t, &["MSET", "a", "1", "b", "2"]),
        Some(vec![1, 3])
    );
    // Movable keys without specs: unknown, so the built-in fallback decides.
    let wire = b"*1\r\n*6\r\n$4\r\neval\r\n:-3\r\n*1\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n";
    let mut buf = BytesMut::from(&wire[..]);
    let reply = Decoder::default().decode(&mut buf).unwrap().unwrap();
    let t = CommandTable::from_command_reply(&reply);
    assert_eq!(positions(&t, &["EVAL", "s", "1", "k"]), None);
}

#[test]
fn builtin_fallback_covers_the_common_shapes() {
    let p = |words: &[&str]| {
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        builtin_key_positions(&Args::from_slices(&args))
    };
    assert_eq!(p(&["GET", "k"]), vec![1]);
    assert_eq!(p(&["MSET", "a", "1", "b", "2"]), vec![1, 3]);
    assert_eq!(p(&["DEL", "a", "b"]), vec![1, 2]);
    assert_eq!(p(&["EVALSHA", "sha", "1", "k", "arg"]), vec![3]);
    assert_eq!(p(&["XREAD", "STREAMS", "a", "b", "0", "0"]), vec![2, 3]);
    assert_eq!(p(&["BLPOP", "a", "b", "5"]), vec![1, 2]);
    assert_eq!(p(&["PING"]), Vec::<usize>::new());
    assert_eq!(p(&["INFO", "server"]), Vec::<usize>::new());
}

/// Found by fuzzing (fuzz/fuzz_targets/command_table.rs): `EVAL script` without its key count
/// indexed past the arguments, and an absurd count overflowed.
#[test]
fn builtin_fallback_survives_a_missing_or_absurd_key_count() {
    let p = |words: &[&str]| {
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        builtin_key_positions(&Args::from_slices(&args))
    };
    assert_eq!(p(&["EVAL", "return 1"]), Vec::<usize>::new());
    assert_eq!(p(&["FCALL", "f"]), Vec::<usize>::new());
    assert_eq!(
        p(&["EVAL", "s", &usize::MAX.to_string(), "k1", "k2"]),
        vec![3, 4]
    );
}

fn table_from(wire: &[u8]) -> CommandTable {
    let mut buf = BytesMut::from(wire);
    let reply = Decoder::default().decode(&mut buf).unwrap().unwrap();
    CommandTable::from_command_reply(&reply)
}

/// A RESP3 COMMAND reply with one entry, `cmd`, whose one key spec begins at `index` and finds
/// its keys as `find` (type, then the spec's fields) says.
fn one_spec_entry(index: i64, find: (&str, [(&str, i64); 3])) -> Vec<u8> {
    let (kind, fields) = find;
    let mut wire = format!(
        "*1\r\n*10\r\n$3\r\ncmd\r\n:-2\r\n~0\r\n:0\r\n:0\r\n:0\r\n~0\r\n~0\r\n~1\r\n%2\r\n\
         $12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n\
         $5\r\nindex\r\n:{index}\r\n\
         $9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n${}\r\n{kind}\r\n$4\r\nspec\r\n%3\r\n",
        kind.len()
    );
    for (name, value) in fields {
        wire += &format!("${}\r\n{name}\r\n:{value}\r\n", name.len());
    }
    wire += "~0\r\n";
    wire.into_bytes()
}

fn keynum(index: i64, keynumidx: i64, firstkey: i64, keystep: i64) -> CommandTable {
    let find = [
        ("keynumidx", keynumidx),
        ("firstkey", firstkey),
        ("keystep", keystep),
    ];
    table_from(&one_spec_entry(index, ("keynum", find)))
}

/// Found while writing the command_table fuzz target (and checked by it since): key specs with
/// numbers no Redis sends made key lookups overflow, or return positions before the command's
/// arguments (a negative first key, cast to a huge index that routing then read past the
/// arguments with). Keys are only ever arguments after the name.
#[test]
fn key_specs_with_absurd_numbers_find_only_arguments() {
    let t = keynum(1, 0, 1, 1);
    assert_eq!(positions(&t, &["cmd", "2", "a", "b"]), Some(vec![2, 3]));
    assert_eq!(
        positions(&t, &["cmd", "9223372036854775807", "a"]),
        Some(vec![2])
    );
    // Keys starting at or before the name.
    let t = keynum(1, 0, -5, 1);
    assert_eq!(positions(&t, &["cmd", "3", "a", "b"]), Some(vec![]));
    let t = keynum(1, 0, -1, 1);
    assert_eq!(positions(&t, &["cmd", "1", "a"]), Some(vec![]));
    let t = keynum(1, 0, i64::MIN, 1);
    assert_eq!(positions(&t, &["cmd", "9223372036854775807"]), Some(vec![]));
    // Overflowing index, count and step.
    let t = keynum(1, i64::MAX, 1, 1);
    assert_eq!(positions(&t, &["cmd", "1", "a"]), Some(vec![]));
    let t = keynum(1, 0, 1, i64::MAX);
    assert_eq!(positions(&t, &["cmd", "3", "a", "b"]), Some(vec![2]));
    let t = keynum(1, 0, i64::MAX, 1);
    assert_eq!(positions(&t, &["cmd", "1", "a"]), Some(vec![]));
    let range = [("lastkey", i64::MAX), ("keystep", 1), ("limit", 0)];
    let t = table_from(&one_spec_entry(1, ("range", range)));
    assert_eq!(positions(&t, &["cmd", "a", "b"]), Some(vec![1, 2]));
    let range = [("lastkey", i64::MIN), ("keystep", i64::MAX), ("limit", 0)];
    let t = table_from(&one_spec_entry(1, ("range", range)));
    assert_eq!(positions(&t, &["cmd", "a", "b"]), Some(vec![]));
    // The pre-7 triple with a first key no server sends.
    let wire =
        b"*1\r\n*6\r\n$4\r\nmset\r\n:-3\r\n*1\r\n+write\r\n:-9223372036854775808\r\n:5\r\n:2\r\n";
    let t = table_from(wire);
    assert_eq!(positions(&t, &["MSET", "a", "1"]), Some(vec![]));
}
