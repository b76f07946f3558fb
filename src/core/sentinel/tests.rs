use super::*;
use crate::resp::{Decoder, Reply};
use bytes::BytesMut;

fn decode(wire: &[u8]) -> Reply {
    let mut buf = BytesMut::from(wire);
    Decoder::default().decode(&mut buf).unwrap().unwrap()
}

fn address(host: &str, port: u16) -> NodeAddress {
    NodeAddress {
        host: host.into(),
        port,
    }
}

#[test]
fn master_address_or_unknown_master() {
    let known = decode(b"*2\r\n$9\r\n127.0.0.1\r\n$5\r\n26379\r\n");
    assert_eq!(
        parse_master_address(known.node()).unwrap(),
        Some(address("127.0.0.1", 26379))
    );
    // An unknown name is nil: RESP2 null array or bulk, RESP3 null.
    for nil in [&b"*-1\r\n"[..], b"$-1\r\n", b"_\r\n", b"*0\r\n"] {
        assert_eq!(parse_master_address(decode(nil).node()).unwrap(), None);
    }
    for bad in [
        &b"*1\r\n$1\r\nh\r\n"[..],
        b"*2\r\n$1\r\nh\r\n$4\r\nport\r\n",
        b"*2\r\n$1\r\nh\r\n$1\r\n0\r\n",
        b"*2\r\n$1\r\nh\r\n$6\r\n999999\r\n",
        b":1\r\n",
    ] {
        let e = parse_master_address(decode(bad).node()).unwrap_err();
        assert_eq!(e.status(), Status::Protocol, "{bad:?}");
    }
}

#[test]
fn roles() {
    let master = decode(b"*3\r\n$6\r\nmaster\r\n:3129659\r\n*0\r\n");
    assert_eq!(parse_role(master.node()).unwrap(), Role::Master);
    let replica =
        decode(b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9999\r\n$9\r\nconnected\r\n:3167038\r\n");
    assert_eq!(parse_role(replica.node()).unwrap(), Role::Replica);
    let sentinel = decode(b"*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n");
    assert_eq!(parse_role(sentinel.node()).unwrap(), Role::Sentinel);
    assert!(parse_role(decode(b"*1\r\n$4\r\nboss\r\n").node()).is_err());
    assert!(parse_role(decode(b"+OK\r\n").node()).is_err());
}

#[test]
fn replicas_in_resp2_and_resp3() {
    let resp2 = b"*2\r\n\
        *10\r\n$4\r\nname\r\n$15\r\n127.0.0.1:27002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n\
          $4\r\nport\r\n$5\r\n27002\r\n$5\r\nflags\r\n$5\r\nslave\r\n\
          $13\r\nrole-reported\r\n$5\r\nslave\r\n\
        *8\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n$5\r\n27003\r\n\
          $5\r\nflags\r\n$12\r\ns_down,slave\r\n$13\r\nrole-reported\r\n$5\r\nslave\r\n";
    let instances = parse_instances(decode(resp2).node()).unwrap();
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[0].address, address("127.0.0.1", 27002));
    assert!(instances[0].is_usable_replica());
    assert_eq!(instances[1].address, address("127.0.0.1", 27003));
    assert!(!instances[1].is_up());

    let resp3 = b"*1\r\n%4\r\n+ip\r\n+10.0.0.5\r\n+port\r\n+6380\r\n\
        +flags\r\n+slave\r\n+role-reported\r\n+master\r\n";
    let instances = parse_instances(decode(resp3).node()).unwrap();
    assert_eq!(instances[0].address, address("10.0.0.5", 6380));
    assert!(instances[0].is_up());
    assert!(
        !instances[0].is_usable_replica(),
        "a demoted master still reporting master serves no reads"
    );
    assert!(
        parse_instances(decode(b"*0\r\n").node())
            .unwrap()
            .is_empty()
    );
    assert!(parse_instances(decode(b"*1\r\n*2\r\n$2\r\nip\r\n$1\r\nh\r\n").node()).is_err());
    assert!(parse_instances(decode(b"$2\r\nno\r\n").node()).is_err());
}

#[test]
fn down_or_disconnected_instances_are_not_up() {
    let instance = |flags: &str| Instance {
        address: address("h", 1),
        flags: flags.into(),
        role_reported: None,
    };
    assert!(instance("slave").is_up());
    assert!(instance("sentinel").is_up());
    for flags in ["s_down,slave", "o_down,s_down,master", "slave,disconnected"] {
        assert!(!instance(flags).is_up(), "{flags}");
    }
    assert!(instance("s_down,sentinel").is_down());
    assert!(!instance("sentinel,disconnected").is_down());
    // Only whole flags count.
    assert!(instance("slave,s_downish").is_up());
}

#[test]
fn switch_master_announcements() {
    let payload = b"mymaster 127.0.0.1 27001 127.0.0.1 27002";
    assert_eq!(
        parse_switch_master(payload, "mymaster"),
        Some(address("127.0.0.1", 27002))
    );
    assert_eq!(parse_switch_master(payload, "other"), None);
    assert_eq!(parse_switch_master(b"mymaster 1 2 3", "mymaster"), None);
    assert_eq!(parse_switch_master(b"mymaster a 1 b x", "mymaster"), None);
    assert_eq!(parse_switch_master(b"\xff", "mymaster"), None);

    let message = decode(b"*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$3\r\nabc\r\n");
    assert_eq!(
        parse_message(message.node()),
        Some((SWITCH_MASTER, &b"abc"[..]))
    );
    let confirmation = decode(b"*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
    assert_eq!(parse_message(confirmation.node()), None);
}

#[test]
fn replica_events() {
    let event = b"slave 127.0.0.1:27002 127.0.0.1 27002 @ mymaster 127.0.0.1 27001";
    assert!(is_replica_event(event, "mymaster"));
    assert!(!is_replica_event(event, "other"));
    // The master's own events, a sentinel's, and garbage are not.
    assert!(!is_replica_event(
        b"master mymaster 127.0.0.1 27001",
        "mymaster"
    ));
    assert!(!is_replica_event(
        b"sentinel 0a1b 127.0.0.1 26379 @ mymaster 127.0.0.1 27001",
        "mymaster"
    ));
    assert!(!is_replica_event(b"slave x y z", "mymaster"));
    assert!(!is_replica_event(b"\xff", "mymaster"));
}
