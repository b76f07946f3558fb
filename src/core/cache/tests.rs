use super::*;
use crate::core::command_table::CommandTable;
use crate::resp::{Decoder, Reply};
use bytes::BytesMut;

/// The reply to `COMMAND` from redis-server 7.0.15 (RESP3), as the command table tests use it.
const REDIS_7_COMMAND: &[u8] = include_bytes!("../command_table/redis-7.0-command.resp3");

fn table() -> CommandTable {
    let mut buf = BytesMut::from(REDIS_7_COMMAND);
    let reply: Reply = Decoder::default().decode(&mut buf).unwrap().unwrap();
    CommandTable::from_command_reply(&reply)
}

fn with_args<T>(words: &[&str], f: impl FnOnce(&Args<'_>) -> T) -> T {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    f(&Args::from_slices(&args))
}

fn access_of(table: Option<&CommandTable>, words: &[&str]) -> Access {
    with_args(words, |args| access(table, args))
}

#[test]
fn deterministic_reads_of_named_keys_are_cacheable() {
    let t = table();
    for table in [Some(&t), None] {
        assert_eq!(
            access_of(table, &["GET", "k"]),
            Access::Cacheable(vec![1].into())
        );
        assert_eq!(
            access_of(table, &["hget", "h", "f"]),
            Access::Cacheable(vec![1].into())
        );
        assert_eq!(
            access_of(table, &["MGET", "a", "b"]),
            Access::Cacheable(vec![1, 2].into())
        );
        assert_eq!(
            access_of(table, &["ZRANGE", "z", "0", "-1"]),
            Access::Cacheable(vec![1].into())
        );
    }
    assert_eq!(
        access_of(Some(&t), &["LCS", "a", "b"]),
        Access::Cacheable(vec![1, 2].into())
    );
    assert_eq!(
        access_of(Some(&t), &["SORT_RO", "l", "ALPHA"]),
        Access::Cacheable(vec![1].into())
    );
}

#[test]
fn random_time_dependent_blocking_and_keyless_reads_are_never_cached() {
    let t = table();
    for table in [Some(&t), None] {
        for words in [
            &["TIME"][..],
            &["RANDOMKEY"],
            &["SRANDMEMBER", "s"],
            &["HRANDFIELD", "h"],
            &["ZRANDMEMBER", "z"],
            &["TTL", "k"],
            &["PTTL", "k"],
            &["SCAN", "0"],
            &["SSCAN", "s", "0"],
            &["HSCAN", "h", "0"],
            &["ZSCAN", "z", "0"],
            &["XREAD", "STREAMS", "s", "0"],
            &["XPENDING", "s", "g"],
            &["XINFO", "STREAM", "s"],
            &["OBJECT", "IDLETIME", "k"],
            &["TOUCH", "k"],
            &["KEYS", "*"],
            &["DBSIZE"],
            &["PING"],
            &["EVAL_RO", "return 1", "1", "k"],
            &["SORT_RO", "l", "BY", "w_*"],
            &["SORT_RO", "l", "GET", "o_*"],
        ] {
            assert_eq!(
                access_of(table, words),
                Access::Neither,
                "{words:?} (table: {})",
                table.is_some()
            );
        }
    }
    // Blocking reads, by flag or by their BLOCK argument.
    assert_eq!(
        access_of(Some(&t), &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]),
        Access::Neither
    );
}

#[test]
fn writes_name_their_keys_or_flush_everything() {
    let t = table();
    for table in [Some(&t), None] {
        assert_eq!(
            access_of(table, &["SET", "k", "v"]),
            Access::Writes(vec![1].into())
        );
        assert_eq!(
            access_of(table, &["MSET", "a", "1", "b", "2"]),
            Access::Writes(vec![1, 3].into())
        );
        assert_eq!(
            access_of(table, &["DEL", "a", "b"]),
            Access::Writes(vec![1, 2].into())
        );
        assert_eq!(access_of(table, &["FLUSHALL"]), Access::WritesUnknown);
        assert_eq!(
            access_of(table, &["SWAPDB", "0", "1"]),
            Access::WritesUnknown
        );
        assert_eq!(
            access_of(table, &["EVAL", "return 1", "1", "k", "a"]),
            Access::WritesMore(vec![3].into())
        );
        assert_eq!(
            access_of(table, &["EVAL", "return 1", "0"]),
            Access::WritesMore(vec![].into())
        );
        assert_eq!(
            access_of(table, &["FCALL", "f", "1", "k"]),
            Access::WritesMore(vec![3].into())
        );
        // SORT's STORE key is found by the server only.
        assert!(matches!(
            access_of(table, &["SORT", "src", "STORE", "dst"]),
            Access::WritesMore(_)
        ));
        assert_eq!(access_of(table, &["PING"]), Access::Neither);
        assert_eq!(access_of(table, &["INFO"]), Access::Neither);
        assert_eq!(access_of(table, &["PUBLISH", "c", "m"]), Access::Neither);
    }
    assert_eq!(
        access_of(Some(&t), &["FLUSHDB", "ASYNC"]),
        Access::WritesUnknown
    );
    assert_eq!(
        access_of(Some(&t), &["SPOP", "s"]),
        Access::Writes(vec![1].into())
    );
    // A command the server does not know is refused by it: it changes nothing.
    assert_eq!(access_of(Some(&t), &["NOSUCH", "k"]), Access::Neither);
    // Without a table, an unknown name with a first argument is a write of it.
    assert_eq!(
        access_of(None, &["NOSUCH", "k"]),
        Access::Writes(vec![1].into())
    );
}

#[test]
fn the_name_lists_are_sorted() {
    for list in [DENIED, HARMLESS] {
        assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
    }
}

#[test]
fn session_commands_that_change_tracking() {
    for words in [
        &["RESET"][..],
        &["client", "tracking", "off"],
        &["HELLO", "2"],
        &["AUTH", "u", "p"],
        &["SELECT", "3"],
    ] {
        assert!(with_args(words, changes_tracking), "{words:?}");
    }
    for words in [
        &["HELLO"][..],
        &["CLIENT", "SETNAME", "x"],
        &["MULTI"],
        &["GET", "k"],
    ] {
        assert!(!with_args(words, changes_tracking), "{words:?}");
    }
}

#[test]
fn the_key_is_the_whole_command_binary_exact() {
    let hash = |words: &[&[u8]]| command_hash(&Args::from_slices(words), 42);
    let a = hash(&[b"HGET", b"h", b"f1"]);
    assert_eq!(a, hash(&[b"HGET", b"h", b"f1"]));
    assert_ne!(a, hash(&[b"HGET", b"h", b"f2"]));
    assert_ne!(a, hash(&[b"hget", b"h", b"f1"]));
    // Argument boundaries count: "ab" + "c" is not "a" + "bc".
    assert_ne!(hash(&[b"GET", b"ab", b"c"]), hash(&[b"GET", b"a", b"bc"]));
    assert_ne!(hash(&[b"GET", b"k\0"]), hash(&[b"GET", b"k"]));
    let long: &[u8] = b"a key longer than eight bytes\0with a NUL";
    let stored = command_bytes(&Args::from_slices(&[b"GET", long]));
    assert!(same_command(&stored, &Args::from_slices(&[b"GET", long])));
    assert!(!same_command(
        &stored,
        &Args::from_slices(&[b"GET", &long[1..]])
    ));
    assert!(!same_command(&stored, &Args::from_slices(&[b"GET"])));
    assert!(!same_command(
        &stored,
        &Args::from_slices(&[b"GET", long, b"x"])
    ));
}

#[test]
fn tracking_commands() {
    let words = |c: Vec<Vec<u8>>| {
        c.into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        words(tracking_on(42, Mode::Default)),
        "CLIENT TRACKING ON REDIRECT 42"
    );
    assert_eq!(
        words(tracking_on(7, Mode::OptIn)),
        "CLIENT TRACKING ON REDIRECT 7 OPTIN"
    );
    assert_eq!(
        words(broadcast_on(None, &[b"user:".to_vec(), b"cfg:".to_vec()])),
        "CLIENT TRACKING ON BCAST PREFIX user: PREFIX cfg:"
    );
    assert_eq!(
        words(broadcast_on(Some(3), &[])),
        "CLIENT TRACKING ON REDIRECT 3 BCAST"
    );
    let prefixes = [b"user:".to_vec()];
    assert!(with_args(
        &["MGET", "user:1", "user:2"],
        |a| under_prefixes(&prefixes, a, &[1, 2])
    ));
    assert!(!with_args(
        &["MGET", "user:1", "cfg:2"],
        |a| under_prefixes(&prefixes, a, &[1, 2])
    ));
    assert!(with_args(&["GET", "x"], |a| under_prefixes(&[], a, &[1])));
}

fn decode(bytes: &[u8]) -> Reply {
    let mut buf = BytesMut::from(bytes);
    Decoder::default().decode(&mut buf).unwrap().unwrap()
}

#[test]
fn invalidation_messages_in_both_protocols() {
    let push = decode(b">2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    assert_eq!(
        parse_push(&push),
        Some(Invalidation::Keys(vec![&b"a"[..], b"b"]))
    );
    let flush = decode(b">2\r\n$10\r\ninvalidate\r\n_\r\n");
    assert_eq!(parse_push(&flush), Some(Invalidation::All));
    let other = decode(b">2\r\n$21\r\ntracking-redir-broken\r\n:5\r\n");
    assert_eq!(parse_push(&other), None);

    let message =
        decode(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n");
    assert_eq!(
        parse_message(&message),
        Some(Invalidation::Keys(vec![&b"k"[..]]))
    );
    let flush2 = decode(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");
    assert_eq!(parse_message(&flush2), Some(Invalidation::All));
    let subscribed = decode(b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n");
    assert_eq!(parse_message(&subscribed), None);
    let pong = decode(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(parse_message(&pong), None);
}

#[test]
fn a_gone_redirect_target_is_told_apart() {
    assert!(redirect_target_gone(
        b"ERR The client ID you want redirect to does not exist"
    ));
    assert!(!redirect_target_gone(b"ERR unknown subcommand 'TRACKING'"));
    assert!(!redirect_target_gone(
        b"NOPERM this user has no permissions"
    ));
}

#[test]
fn similar_commands_do_not_collide() {
    // Keys that differ in one digit, in one byte of a long key, or only in length.
    let mut seen = std::collections::HashSet::new();
    let mut check = |words: &[&[u8]]| {
        let hash = command_hash(&Args::from_slices(words), 7);
        assert!(seen.insert(hash), "{words:?}");
        // The shard (top bits) and the bucket (bottom bits) both vary.
        hash
    };
    let mut top = std::collections::HashSet::new();
    for i in 0..500_000 {
        let key = format!("key:{i:06}");
        top.insert(check(&[b"GET", key.as_bytes()]) >> 58);
    }
    assert_eq!(top.len(), 64);
    for i in 0..1000 {
        let mut long = vec![b'x'; 100];
        long[i % 100] = (i / 100) as u8;
        check(&[b"GET", &long]);
    }
    for n in 0..64 {
        check(&[b"GET", &vec![0u8; n]]);
    }
}

/// `HELLO 3` and `HELLO 2` as redis-server 7.0.15 answers them, as a primary and as a replica.
#[test]
fn a_hello_reply_says_whether_the_node_is_a_primary() {
    let primary3 = decode(
        b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n\
          $2\r\nid\r\n:4\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
          $7\r\nmodules\r\n*0\r\n",
    );
    assert_eq!(hello_role(&primary3), Some(Role::Primary));
    let replica3 = decode(
        b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n\
          $2\r\nid\r\n:3\r\n$4\r\nmode\r\n$7\r\ncluster\r\n$4\r\nrole\r\n$7\r\nreplica\r\n\
          $7\r\nmodules\r\n*0\r\n",
    );
    assert_eq!(hello_role(&replica3), Some(Role::Replica));
    let replica2 = decode(
        b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n\
          :2\r\n$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$7\r\nreplica\r\n\
          $7\r\nmodules\r\n*0\r\n",
    );
    assert_eq!(hello_role(&replica2), Some(Role::Replica));
    // Other spellings of the same roles.
    let primary = decode(b"%1\r\n$4\r\nrole\r\n$7\r\nprimary\r\n");
    assert_eq!(hello_role(&primary), Some(Role::Primary));
    let slave = decode(b"*2\r\n$4\r\nrole\r\n+slave\r\n");
    assert_eq!(hello_role(&slave), Some(Role::Replica));
    // No role: a sentinel's, a PING's answer, an error, a value where a name should be.
    for bytes in [
        &b"%1\r\n$4\r\nrole\r\n$8\r\nsentinel\r\n"[..],
        b"+PONG\r\n",
        b"-ERR unknown command 'HELLO'\r\n",
        b"*1\r\n$4\r\nrole\r\n",
        b"*2\r\n:1\r\n$6\r\nmaster\r\n",
        b"*0\r\n",
    ] {
        assert_eq!(hello_role(&decode(bytes)), None, "{bytes:?}");
    }
}
