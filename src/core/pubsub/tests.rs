use super::*;
use crate::core::protocol::Protocol;
use crate::core::server_error::ServerErrorKind;
use crate::resp::Reply;

/// Every frame of `bytes`, decoded as a subscriber's connection reads them, fed in pieces of
/// `chunk` bytes.
fn frames(bytes: &[u8], chunk: usize) -> Vec<Reply> {
    let mut proto = Protocol::default();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        proto.input_buffer().extend_from_slice(piece);
        while let Some(frame) = proto.next_frame().unwrap() {
            out.push(frame);
        }
    }
    assert!(!proto.mid_reply());
    out
}

fn names(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|n| n.as_bytes().to_vec()).collect()
}

/// What a server answered to `SUBSCRIBE a b`, `PING`, `UNSUBSCRIBE zz`, `PSUBSCRIBE p*`,
/// `SSUBSCRIBE s1` (captured from redis-server 7.0 in RESP3), with a message, a pattern
/// message with a binary payload, a shard message and an error reply between them.
const RESP3: &[u8] =
    b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n\
+PONG\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n\
>3\r\n$11\r\nunsubscribe\r\n$2\r\nzz\r\n:2\r\n>3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n\
>4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$6\r\n\0\r\n$1\r\r\n\
-MOVED 5 127.0.0.1:7001\r\n\
>3\r\n$10\r\nssubscribe\r\n$2\r\ns1\r\n:1\r\n>3\r\n$8\r\nsmessage\r\n$2\r\ns1\r\n$0\r\n\r\n";

/// The same exchange in RESP2 (arrays; PONG as `pong` in subscribed mode).
const RESP2: &[u8] =
    b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n\
*2\r\n$4\r\npong\r\n$0\r\n\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n\
*3\r\n$11\r\nunsubscribe\r\n$2\r\nzz\r\n:2\r\n*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n\
*4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$6\r\n\0\r\n$1\r\r\n\
-MOVED 5 127.0.0.1:7001\r\n\
*3\r\n$10\r\nssubscribe\r\n$2\r\ns1\r\n:1\r\n*3\r\n$8\r\nsmessage\r\n$2\r\ns1\r\n$0\r\n\r\n";

#[test]
fn frames_are_classified_alike_in_resp3_and_resp2_however_they_are_split() {
    for (protocol, bytes) in [("RESP3", RESP3), ("RESP2", RESP2)] {
        for chunk in [1, 2, 3, 5, 7, 16, bytes.len()] {
            let frames = frames(bytes, chunk);
            let classified: Vec<Frame<'_>> = frames.iter().map(|f| classify(f)).collect();
            let confirmation = |action, kind, channel: &'static [u8]| Frame::Confirmation {
                action,
                kind,
                channel: Some(channel),
            };
            assert_eq!(
                classified,
                vec![
                    confirmation(Action::Subscribe, Kind::Channel, b"a"),
                    confirmation(Action::Subscribe, Kind::Channel, b"b"),
                    Frame::Pong,
                    Frame::Message {
                        kind: Kind::Channel,
                        pattern: None,
                        channel: b"a",
                        payload: b"hello"
                    },
                    confirmation(Action::Unsubscribe, Kind::Channel, b"zz"),
                    confirmation(Action::Subscribe, Kind::Pattern, b"p*"),
                    Frame::Message {
                        kind: Kind::Pattern,
                        pattern: Some(b"p*"),
                        channel: b"pq",
                        payload: b"\0\r\n$1\r"
                    },
                    Frame::Error(b"MOVED 5 127.0.0.1:7001"),
                    confirmation(Action::Subscribe, Kind::Shard, b"s1"),
                    Frame::Message {
                        kind: Kind::Shard,
                        pattern: None,
                        channel: b"s1",
                        payload: b""
                    },
                ],
                "{protocol}, chunks of {chunk}"
            );
        }
    }
}

#[test]
fn odd_frames_are_other_never_messages() {
    let odd: &[u8] = b">2\r\n$7\r\nmessage\r\n$1\r\na\r\n\
>3\r\n$7\r\nmessage\r\n:1\r\n$1\r\nx\r\n\
>4\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n\
>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n\
*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n\
>3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n\
:7\r\n$4\r\nPONG\r\n";
    let frames = frames(odd, odd.len());
    let classified: Vec<Frame<'_>> = frames.iter().map(|f| classify(f)).collect();
    let nothing = Frame::Confirmation {
        action: Action::Unsubscribe,
        kind: Kind::Channel,
        channel: None,
    };
    assert_eq!(
        classified,
        vec![
            Frame::Other,
            Frame::Other,
            Frame::Other,
            Frame::Other,
            nothing,
            Frame::Confirmation {
                action: Action::Unsubscribe,
                kind: Kind::Channel,
                channel: None,
            },
            Frame::Other,
            Frame::Pong,
        ]
    );
}

/// [`Answer`] with the refusal's error as its text, for comparing.
#[derive(Debug, PartialEq, Eq)]
enum A {
    Done(u32),
    Refused(u32, String),
    Pong,
    Unsolicited(Action, Kind, &'static str),
    Ignored,
}

fn unsolicited(kind: Kind, channel: &'static str) -> A {
    A::Unsolicited(Action::Unsubscribe, kind, channel)
}

/// Answers the frames of `bytes` with `flight`: what each non-message frame answered.
fn answers(flight: &mut InFlight<u32>, bytes: &[u8]) -> Vec<A> {
    frames(bytes, bytes.len())
        .iter()
        .map(|f| classify(f))
        .filter(|f| !matches!(f, Frame::Message { .. }))
        .map(|f| match flight.answer(&f) {
            Answer::Done(t) => A::Done(t),
            Answer::Refused(t, e) => {
                assert!(matches!(
                    e.server_kind(),
                    Some(ServerErrorKind::Moved { slot: 5, .. })
                ));
                A::Refused(t, e.message().to_owned())
            }
            Answer::Pong => A::Pong,
            Answer::Unsolicited {
                action,
                kind,
                channel,
            } => A::Unsolicited(action, kind, String::from_utf8(channel).unwrap().leak()),
            Answer::Ignored => A::Ignored,
        })
        .collect()
}

#[test]
fn confirmations_complete_requests_by_kind_and_name_and_errors_the_oldest() {
    for bytes in [RESP3, RESP2] {
        let mut flight = InFlight::default();
        flight.sent(1, Action::Subscribe, Kind::Channel, names(&["b", "a"]));
        flight.sent_ping();
        flight.sent(2, Action::Unsubscribe, Kind::Channel, names(&["zz"]));
        flight.sent(3, Action::Subscribe, Kind::Pattern, names(&["p*"]));
        flight.sent(4, Action::Subscribe, Kind::Shard, names(&["elsewhere"]));
        flight.sent(5, Action::Subscribe, Kind::Shard, names(&["s1"]));
        assert!(flight.ping_pending());
        // The first confirmation of request 1 leaves it waiting for its other name; request 4
        // (to a node that does not own its slot) is refused.
        assert_eq!(
            answers(&mut flight, bytes),
            vec![
                A::Ignored,
                A::Done(1),
                A::Pong,
                A::Done(2),
                A::Done(3),
                A::Refused(4, "MOVED 5 127.0.0.1:7001".into()),
                A::Done(5),
            ]
        );
        assert!(flight.is_empty());
        assert!(!flight.ping_pending());
    }
}

/// The redis-rs failure mode: the server unsubscribes a shard channel on its own (its slot
/// moved) while a request is in flight. The frame is recognised as unsolicited, and the request
/// still gets its own confirmation.
#[test]
fn a_server_initiated_sunsubscribe_is_never_taken_for_an_answer() {
    let bytes: &[u8] = b">3\r\n$12\r\nsunsubscribe\r\n$2\r\ns1\r\n:0\r\n\
>3\r\n$12\r\nsunsubscribe\r\n$2\r\ns2\r\n:0\r\n\
+PONG\r\n\
>3\r\n$12\r\nsunsubscribe\r\n$2\r\ns3\r\n:0\r\n";
    let mut flight = InFlight::default();
    flight.sent(7, Action::Unsubscribe, Kind::Shard, names(&["s2"]));
    flight.sent_ping();
    assert_eq!(
        answers(&mut flight, bytes),
        vec![
            unsolicited(Kind::Shard, "s1"),
            A::Done(7),
            A::Pong,
            unsolicited(Kind::Shard, "s3"),
        ]
    );
    // A channel confirmation does not answer a pattern request of the same name, nor a PONG
    // one that was never asked for.
    flight.sent(8, Action::Subscribe, Kind::Pattern, names(&["x"]));
    let bytes: &[u8] = b">3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n+PONG\r\n";
    assert_eq!(
        answers(&mut flight, bytes),
        vec![
            A::Unsolicited(Action::Subscribe, Kind::Channel, "x"),
            A::Ignored
        ]
    );
    assert_eq!(flight.abandon(), vec![8]);
}

#[test]
fn the_same_name_twice_needs_two_confirmations() {
    let mut flight = InFlight::default();
    flight.sent(1, Action::Subscribe, Kind::Channel, names(&["a", "a"]));
    let one: &[u8] = b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n";
    assert_eq!(answers(&mut flight, one), vec![A::Ignored]);
    assert_eq!(answers(&mut flight, one), vec![A::Done(1)]);
}

#[test]
fn commands_group_shard_channels_by_slot_and_cap_their_size() {
    // {x} tags put both in one slot; "foo" is elsewhere.
    let shard = commands(
        Action::Subscribe,
        Kind::Shard,
        [&b"{x}1"[..], b"foo", b"{x}2"],
    );
    assert_eq!(shard.len(), 2);
    assert!(shard.iter().all(|c| c[0] == b"SSUBSCRIBE"));
    let together = shard.iter().find(|c| c.len() == 3).expect("the {x} pair");
    assert_eq!(&together[1..], &names(&["{x}1", "{x}2"])[..]);

    let many: Vec<Vec<u8>> = (0..2500).map(|i| format!("c{i}").into_bytes()).collect();
    let plain = commands(
        Action::Unsubscribe,
        Kind::Channel,
        many.iter().map(|n| n.as_slice()),
    );
    assert_eq!(
        plain.iter().map(|c| c.len() - 1).collect::<Vec<_>>(),
        vec![1000, 1000, 500]
    );
    assert!(plain.iter().all(|c| c[0] == b"UNSUBSCRIBE"));
}

#[test]
fn groups_and_members() {
    assert_eq!(Group::of(Kind::Channel, b"x", true), Group::Home);
    assert_eq!(Group::of(Kind::Shard, b"x", false), Group::Home);
    let slot = crate::core::cluster::key_slot(b"x");
    assert_eq!(Group::of(Kind::Shard, b"x", true), Group::Slot(slot));
    assert_eq!(Group::Slot(slot).slot(), Some(slot));

    let mut members = Members::default();
    assert!(members.insert(Kind::Pattern, b"__keyspace@0__:*"));
    assert!(members.insert(Kind::Channel, b"a"));
    assert!(!members.insert(Kind::Channel, b"a"));
    assert!(members.insert(Kind::Shard, b"s"));
    assert!(members.contains(Kind::Channel, b"a"));
    assert!(!members.contains(Kind::Pattern, b"a"));
    let commands = members.subscribe_commands();
    let written: Vec<(Kind, Vec<Vec<u8>>)> = vec![
        (Kind::Channel, names(&["SUBSCRIBE", "a"])),
        (Kind::Pattern, names(&["PSUBSCRIBE", "__keyspace@0__:*"])),
        (Kind::Shard, names(&["SSUBSCRIBE", "s"])),
    ];
    assert_eq!(commands, written);
    assert!(members.remove(Kind::Channel, b"a"));
    assert!(!members.remove(Kind::Channel, b"a"));
    assert_eq!(members.len(), 2);
    assert_eq!(Kind::from_u32(2), Some(Kind::Shard));
    assert_eq!(Kind::from_u32(3), None);
}
