use super::*;
use crate::resp::{Decoder, Reply};
use bytes::BytesMut;

fn decode(wire: &[u8]) -> Reply {
    let mut buf = BytesMut::from(wire);
    Decoder::default().decode(&mut buf).unwrap().unwrap()
}

#[test]
fn slots_match_redis_cluster_keyslot() {
    // Values from `CLUSTER KEYSLOT` on a real server.
    assert_eq!(key_slot(b"123456789"), 12739);
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"bar"), 5061);
    assert_eq!(key_slot(b""), 0);
    // Hash tags: only the part inside the first {...} counts, if it is not empty.
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
    assert_eq!(
        key_slot(b"foo{}{bar}"),
        CRC16.checksum(b"foo{}{bar}") % 16384
    );
    assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    assert_eq!(key_slot(b"{unclosed"), CRC16.checksum(b"{unclosed") % 16384);
}

#[test]
fn node_addresses_parse_and_print() {
    let a = NodeAddress::parse("127.0.0.1:7000").unwrap();
    assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 7000));
    let v6 = NodeAddress::parse("[::1]:7001").unwrap();
    assert_eq!(v6.host, "::1");
    assert_eq!(v6.to_string(), "[::1]:7001");
    assert!(NodeAddress::parse("nonsense").is_none());
    assert!(NodeAddress::parse("h:99999").is_none());
}

#[test]
fn cluster_shards_in_resp3_and_resp2() {
    let resp3 = b"*2\r\n\
        %2\r\n+slots\r\n*2\r\n:0\r\n:8191\r\n+nodes\r\n*2\r\n\
          %4\r\n+port\r\n:7000\r\n+ip\r\n+127.0.0.1\r\n+role\r\n+master\r\n+health\r\n+online\r\n\
          %4\r\n+port\r\n:7003\r\n+ip\r\n+127.0.0.1\r\n+role\r\n+replica\r\n+health\r\n+online\r\n\
        %2\r\n+slots\r\n*4\r\n:8192\r\n:10000\r\n:10002\r\n:16383\r\n+nodes\r\n*2\r\n\
          %4\r\n+port\r\n:7001\r\n+ip\r\n+127.0.0.1\r\n+role\r\n+master\r\n+health\r\n+online\r\n\
          %4\r\n+port\r\n:7004\r\n+ip\r\n+127.0.0.1\r\n+role\r\n+replica\r\n+health\r\n+fail\r\n";
    let shards = parse_shards(&decode(resp3), "seed").unwrap();
    assert_eq!(shards.len(), 2);
    assert_eq!(
        shards[0].primary,
        NodeAddress::parse("127.0.0.1:7000").unwrap()
    );
    assert_eq!(
        shards[0].replicas,
        vec![NodeAddress::parse("127.0.0.1:7003").unwrap()]
    );
    assert_eq!(shards[1].slots, vec![(8192, 10000), (10002, 16383)]);
    assert!(
        shards[1].replicas.is_empty(),
        "a failed replica is left out"
    );

    let map = SlotMap::new(shards);
    assert_eq!(map.shard(0).unwrap().primary.port, 7000);
    assert_eq!(map.shard(8191).unwrap().primary.port, 7000);
    assert_eq!(map.shard(9000).unwrap().primary.port, 7001);
    assert!(map.shard(10001).is_none());
    assert_eq!(map.uncovered(), 1);

    // RESP2: maps arrive as flat key/value arrays; an empty ip means "the host you asked".
    let resp2 = b"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n\
        *6\r\n$4\r\nport\r\n:7000\r\n$2\r\nip\r\n$0\r\n\r\n$4\r\nrole\r\n$6\r\nmaster\r\n";
    let shards = parse_shards(&decode(resp2), "10.0.0.5").unwrap();
    assert_eq!(
        shards[0].primary,
        NodeAddress {
            host: "10.0.0.5".into(),
            port: 7000
        }
    );
}

#[test]
fn cluster_slots_groups_ranges_by_primary() {
    let wire = b"*3\r\n\
        *4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n\
        *3\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n\
        *3\r\n:10923\r\n:16383\r\n*3\r\n$0\r\n\r\n:7000\r\n$2\r\nid\r\n";
    let shards = parse_slots(&decode(wire), "127.0.0.1").unwrap();
    assert_eq!(shards.len(), 2);
    assert_eq!(shards[0].slots, vec![(0, 5460), (10923, 16383)]);
    assert_eq!(shards[0].replicas.len(), 1);
    assert!(parse_slots(&decode(b"*1\r\n*2\r\n:0\r\n:1\r\n"), "h").is_err());
    assert!(
        parse_slots(
            &decode(b"*1\r\n*3\r\n:0\r\n:99999\r\n*2\r\n$1\r\nh\r\n:1\r\n"),
            "h"
        )
        .is_err()
    );
}

#[test]
fn moved_reassigns_one_slot() {
    let shards = vec![Shard {
        primary: NodeAddress::parse("a:1").unwrap(),
        replicas: vec![],
        slots: vec![(0, 16383)],
    }];
    let map = SlotMap::new(shards);
    let b = NodeAddress::parse("b:2").unwrap();
    let next = map.moved(42, &b);
    assert_eq!(next.shard(42).unwrap().primary, b);
    assert_eq!(next.shard(43).unwrap().primary.host, "a");
    assert_eq!(
        map.shard(42).unwrap().primary.host,
        "a",
        "the old map is unchanged"
    );
    assert_eq!(next.addresses().len(), 2);
}
