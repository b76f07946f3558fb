use super::leases::LEASE;
use super::*;
use crate::core::cache::command_hash;
use crate::resp::ReplyKind;
use std::sync::Arc;

const NODE: &str = "127.0.0.1:6379";

fn store(max_entries: usize, max_bytes: usize, ttl: Option<Duration>) -> Arc<Store> {
    let store = Arc::new(Store::new(Limits {
        max_entries,
        max_bytes,
        ttl,
    }));
    let node = store.node(&Arc::from(NODE));
    store.node_live(
        node,
        Live {
            client_id: 7,
            connection: 1000,
        },
    );
    store
}

fn with<T>(words: &[&str], f: impl FnOnce(&Args<'_>, u64) -> T) -> T {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    let args = Args::from_slices(&args);
    f(&args, command_hash(&args, 1))
}

fn value(text: &str) -> Reply {
    Reply::text(ReplyKind::String, text.as_bytes())
}

/// A read of `words` (keys at `keys`) through connection 1, filled with `reply`.
fn read(store: &Arc<Store>, words: &[&str], keys: &[usize], reply: &str) {
    with(words, |args, hash| {
        let token = store
            .begin(NODE, hash, args, keys, Via::Conn(1))
            .expect("a token");
        store.fill(token, args, &value(reply), true);
    });
}

/// A lease that stays fresh for the whole test, however slowly it runs.
fn far_future() -> u64 {
    now_ns() + 3_600_000_000_000
}

/// A lookup with every node's lease fresh.
fn lookup(store: &Store, args: &Args<'_>, hash: u64) -> Option<Reply> {
    for node in 0..4 {
        store.leases.renew(node, far_future());
    }
    match store.hit(hash, args) {
        Lookup::Hit(reply) => Some(reply),
        Lookup::Miss => None,
        Lookup::Unconfirmed => panic!("the lease was just renewed"),
    }
}

fn hit(store: &Store, words: &[&str]) -> Option<String> {
    with(words, |args, hash| {
        lookup(store, args, hash).map(|r| r.as_str().unwrap().to_owned())
    })
}

#[test]
fn a_filled_read_is_hit_by_the_same_command_only() {
    let s = store(100, usize::MAX, None);
    read(&s, &["HGET", "h", "f1"], &[1], "one");
    assert_eq!(hit(&s, &["HGET", "h", "f1"]).as_deref(), Some("one"));
    assert_eq!(hit(&s, &["HGET", "h", "f2"]), None);
    assert_eq!(hit(&s, &["hget", "h", "f1"]), None);
    assert_eq!(s.entries(), 1);
    s.check();
}

#[test]
fn invalidating_a_key_drops_every_entry_that_read_it() {
    let s = store(100, usize::MAX, None);
    read(&s, &["HGET", "h", "f1"], &[1], "1");
    read(&s, &["HGET", "h", "f2"], &[1], "2");
    read(&s, &["MGET", "a", "h"], &[1, 2], "x");
    read(&s, &["GET", "a"], &[1], "a");
    assert_eq!(s.invalidate([&b"h"[..]]), 3);
    assert_eq!(hit(&s, &["HGET", "h", "f1"]), None);
    assert_eq!(hit(&s, &["MGET", "a", "h"]), None);
    assert_eq!(hit(&s, &["GET", "a"]).as_deref(), Some("a"));
    s.check();
}

/// Guarantee 3 on the store: an invalidation between the token and the reply keeps the reply
/// out; so does a flush, a lost node, and the token's own connection closing.
#[test]
fn a_token_dropped_while_in_flight_keeps_the_reply_out() {
    let s = store(100, usize::MAX, None);
    let drops: [&dyn Fn(&Store); 4] = [
        &|s| {
            s.invalidate([&b"k"[..]]);
        },
        &|s| {
            s.flush();
        },
        &|s| {
            s.node_lost(0, None);
        },
        &|s| {
            s.connection_closed(NODE, 1);
        },
    ];
    for drop_it in drops {
        with(&["GET", "k"], |args, hash| {
            let token = s.begin(NODE, hash, args, &[1], Via::Conn(1)).unwrap();
            drop_it(&s);
            s.fill(token, args, &value("old"), true);
            assert!(lookup(&s, args, hash).is_none());
        });
        s.node_live(
            0,
            Live {
                client_id: 7,
                connection: 1000,
            },
        );
        s.check();
    }
    // One read in flight at a time per command; a dropped token lets the next one in.
    with(&["GET", "k"], |args, hash| {
        let first = s.begin(NODE, hash, args, &[1], Via::Conn(1)).unwrap();
        assert!(s.begin(NODE, hash, args, &[1], Via::Conn(2)).is_none());
        drop(first);
        assert!(s.begin(NODE, hash, args, &[1], Via::Conn(2)).is_some());
    });
    s.check();
}

#[test]
fn nothing_is_kept_without_a_live_invalidation_connection() {
    let s = store(100, usize::MAX, None);
    s.node_lost(0, None);
    with(&["GET", "k"], |args, hash| {
        assert!(s.begin(NODE, hash, args, &[1], Via::Conn(1)).is_none());
        assert!(
            s.begin("elsewhere:1", hash, args, &[1], Via::Conn(1))
                .is_none()
        );
    });
}

#[test]
fn connections_are_set_up_once_per_invalidation_connection() {
    let s = store(100, usize::MAX, None);
    with(&["GET", "k"], |args, hash| {
        let token = s.begin(NODE, hash, args, &[1], Via::Conn(5)).unwrap();
        assert_eq!(token.setup, Some(7));
        s.fill(token, args, &value("v"), true);
        assert!(s.is_tracked(NODE, 5));
    });
    with(&["GET", "j"], |args, hash| {
        let token = s.begin(NODE, hash, args, &[1], Via::Conn(5)).unwrap();
        assert_eq!(token.setup, None);
    });
    // A new invalidation connection: set up again (and what came before is gone).
    s.node_lost(0, Some(1000));
    s.node_live(
        0,
        Live {
            client_id: 9,
            connection: 1001,
        },
    );
    assert_eq!(hit(&s, &["GET", "k"]), None);
    with(&["GET", "k"], |args, hash| {
        let token = s.begin(NODE, hash, args, &[1], Via::Conn(5)).unwrap();
        assert_eq!(token.setup, Some(9));
    });
    // Only the live connection's loss counts.
    assert_eq!(s.node_lost(0, Some(1000)), None);
    assert!(s.node_lost(0, Some(1001)).is_some());
}

#[test]
fn a_closed_connection_takes_its_entries_and_unknown_ones_take_the_async_ones() {
    let s = store(100, usize::MAX, None);
    read(&s, &["GET", "a"], &[1], "a");
    with(&["GET", "m"], |args, hash| {
        let token = s.begin(NODE, hash, args, &[1], Via::Mux).unwrap();
        s.fill(token, args, &value("m"), false);
    });
    with(&["GET", "b"], |args, hash| {
        let token = s.begin(NODE, hash, args, &[1], Via::Conn(2)).unwrap();
        s.fill(token, args, &value("b"), true);
    });
    // Connection 3 is nobody the cache knows: maybe the multiplexed one.
    assert_eq!(s.connection_closed(NODE, 3), 1);
    assert_eq!(hit(&s, &["GET", "m"]), None);
    assert_eq!(s.connection_closed(NODE, 1), 1);
    assert_eq!(hit(&s, &["GET", "a"]), None);
    assert_eq!(hit(&s, &["GET", "b"]).as_deref(), Some("b"));
    s.check();
}

#[test]
fn entry_bound_evicts_the_least_recently_used_first() {
    let s = store(3, usize::MAX, None);
    for k in ["a", "b", "c"] {
        read(&s, &["GET", k], &[1], k);
    }
    // "a" used since: spared once; "b" goes.
    assert!(hit(&s, &["GET", "a"]).is_some());
    read(&s, &["GET", "d"], &[1], "d");
    assert_eq!(s.entries(), 3);
    assert_eq!(hit(&s, &["GET", "b"]), None);
    assert!(hit(&s, &["GET", "a"]).is_some());
    for i in 0..50 {
        let key = format!("k{i}");
        read(&s, &["GET", &key], &[1], "v");
        assert!(s.entries() <= 3);
    }
    s.check();
}

#[test]
fn byte_bound_holds_and_counts_everything() {
    let s = store(1_000_000, 10_000, None);
    for i in 0..1000 {
        let key = format!("key:{i}");
        read(&s, &["GET", &key], &[1], "0123456789abcdef");
        assert!(s.bytes() <= 10_000);
    }
    let per_entry = s.bytes() / s.entries();
    // The command, the value, the key twice over and every map's share: far more than the
    // 16-byte value.
    assert!(per_entry > 250, "{per_entry} bytes per entry");
    // An entry that can never fit is not kept.
    let huge = "x".repeat(20_000);
    read(&s, &["GET", "huge"], &[1], &huge);
    assert_eq!(hit(&s, &["GET", "huge"]), None);
    s.check();
    s.flush();
    assert_eq!((s.entries(), s.bytes()), (0, 0));
    s.check();
}

#[test]
fn expired_entries_are_never_served_and_are_swept() {
    let long = store(100, usize::MAX, Some(Duration::from_secs(600)));
    read(&long, &["GET", "k"], &[1], "v");
    assert!(hit(&long, &["GET", "k"]).is_some());
    assert_eq!(long.sweep(100), 0);

    let s = store(100, usize::MAX, Some(Duration::from_millis(20)));
    read(&s, &["GET", "k"], &[1], "v");
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(hit(&s, &["GET", "k"]), None);
    assert_eq!(s.sweep(100), 1);
    assert_eq!(s.entries(), 0);
    // A miss after expiry takes the place of the expired entry.
    read(&s, &["GET", "j"], &[1], "v");
    std::thread::sleep(Duration::from_millis(30));
    read(&s, &["GET", "j"], &[1], "w");
    assert_eq!(hit(&s, &["GET", "j"]).as_deref(), Some("w"));
    s.check();
}

#[test]
fn a_node_loss_drops_only_that_nodes_entries() {
    let s = store(100, usize::MAX, None);
    let other = s.node(&Arc::from("10.0.0.2:6379"));
    s.node_live(
        other,
        Live {
            client_id: 3,
            connection: 2000,
        },
    );
    read(&s, &["GET", "a"], &[1], "a");
    with(&["GET", "b"], |args, hash| {
        let token = s
            .begin("10.0.0.2:6379", hash, args, &[1], Via::Conn(9))
            .unwrap();
        s.fill(token, args, &value("b"), true);
    });
    assert_eq!(s.listener_node(2000), Some(other));
    assert_eq!(s.node_lost(other, Some(2000)), Some(1));
    assert!(hit(&s, &["GET", "a"]).is_some());
    assert_eq!(hit(&s, &["GET", "b"]), None);
    s.check();
}

/// Small replies are copied for each hit (no memory written by hits on two cores), large
/// ones share the entry's bytes; either outlives the entry.
#[test]
fn hits_copy_small_replies_and_share_large_ones() {
    let s = store(100, usize::MAX, None);
    let big = "y".repeat(4096);
    read(&s, &["GET", "big"], &[1], &big);
    read(&s, &["GET", "small"], &[1], "s");
    let a = with(&["GET", "big"], |args, hash| {
        lookup(&s, args, hash).unwrap()
    });
    let b = with(&["GET", "big"], |args, hash| {
        lookup(&s, args, hash).unwrap()
    });
    assert_eq!(
        a.as_bytes().unwrap().as_ptr(),
        b.as_bytes().unwrap().as_ptr()
    );
    let c = with(&["GET", "small"], |args, hash| {
        lookup(&s, args, hash).unwrap()
    });
    let d = with(&["GET", "small"], |args, hash| {
        lookup(&s, args, hash).unwrap()
    });
    assert_ne!(
        c.as_bytes().unwrap().as_ptr(),
        d.as_bytes().unwrap().as_ptr()
    );
    s.flush();
    assert_eq!(a.as_bytes(), Some(big.as_bytes()));
    assert_eq!(d.as_str(), Some("s"));
}

/// Guarantee 2's lease: an entry is served only while its node's invalidation connection was
/// seen drained within the lease; otherwise the read goes to the server. Hits ask for leases.
#[test]
fn entries_are_served_only_under_a_fresh_lease() {
    let s = store(100, usize::MAX, None);
    read(&s, &["GET", "k"], &[1], "v");
    s.leases.take_demand(0);
    with(&["GET", "k"], |args, hash| {
        // Never renewed.
        assert!(matches!(s.hit(hash, args), Lookup::Unconfirmed));
        assert!(s.leases.take_demand(0), "a hit asks for its node's lease");
        assert!(!s.leases.take_demand(1));
        // Renewed too long ago.
        s.leases.renew(0, now_ns() - 4 * LEASE.as_nanos() as u64);
        assert!(matches!(s.hit(hash, args), Lookup::Unconfirmed));
        // Renewed (a moment that stays within the lease however slow this test runs), and a
        // later, older renewal never moves it back.
        s.leases.renew(0, far_future());
        s.leases.renew(0, now_ns() - 4 * LEASE.as_nanos() as u64);
        assert!(matches!(s.hit(hash, args), Lookup::Hit(_)));
    });
}
