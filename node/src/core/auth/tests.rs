//! The front door: one test per refusal reason, each with the frame that passes next to the
//! one that is refused, so a check that stopped refusing would fail here.

use super::frame::{self, Header, Mode};
use super::*;

const SECRET: &[u8] = b"sixteen+ bytes of secret";

fn node(id: u64) -> PeerAuth {
    PeerAuth::new(PeerKey::from_secret(SECRET), "c", NodeId(id), &addr(id), 1)
}

fn addr(id: u64) -> String {
    format!("10.0.0.{id}:7400")
}

fn leave() -> PeerMsg {
    PeerMsg::Leave
}

fn admitted(r: Result<Admission, Refusal>) -> Admitted {
    match r {
        Ok(Admission::Peer(a)) => a,
        other => panic!("expected admission, got {other:?}"),
    }
}

#[test]
fn a_sealed_frame_is_admitted_once_with_its_sender_and_sequence() {
    let (mut two, mut one) = (node(2), node(1));
    let f = two.seal(BROADCAST, &leave());
    let a = admitted(one.admit(&f, &addr(2)));
    assert_eq!(
        (a.from, a.incarnation, a.seq, a.msg),
        (NodeId(2), 1, 1, leave())
    );
    assert_eq!(
        one.admit(&f, &addr(2)),
        Err(Refusal::Replayed(Stale::Duplicate))
    );
    assert_eq!(
        one.admit(&one.clone().seal(BROADCAST, &leave()), &addr(1)),
        Ok(Admission::Own)
    );
}

#[test]
fn a_wrong_tag_or_secret_is_unauthenticated() {
    let mut one = node(1);
    let mut f = node(2).seal(BROADCAST, &leave());
    let last = f.len() - 1;
    f[last] ^= 1;
    assert_eq!(one.admit(&f, &addr(2)), Err(Refusal::Unauthenticated));
    // A changed header byte (the sequence number) breaks the tag too.
    let mut g = node(2).seal(BROADCAST, &leave());
    g[4 + 1 + 2 + 14 + 23] ^= 1;
    assert_eq!(one.admit(&g, &addr(2)), Err(Refusal::Unauthenticated));
    let mut other = PeerAuth::new(
        PeerKey::from_secret(b"another secret, 16+"),
        "c",
        NodeId(2),
        &addr(2),
        1,
    );
    let h = other.seal(BROADCAST, &leave());
    assert_eq!(one.admit(&h, &addr(2)), Err(Refusal::Unauthenticated));
    assert_eq!(Refusal::Unauthenticated.kind(), "unauthenticated");
}

#[test]
fn the_modes_do_not_mix() {
    let mut insecure = PeerAuth::new(PeerKey::insecure(), "c", NodeId(2), &addr(2), 1);
    let f = insecure.seal(BROADCAST, &leave());
    let r = node(1).admit(&f, &addr(2));
    assert_eq!(r, Err(Refusal::WrongMode(Mode::Insecure)));
    assert!(r
        .unwrap_err()
        .reason()
        .starts_with("unauthenticated: an --insecure frame"));
    let mut insecure_one = PeerAuth::new(PeerKey::insecure(), "c", NodeId(1), &addr(1), 1);
    let g = node(2).seal(BROADCAST, &leave());
    assert_eq!(
        insecure_one.admit(&g, &addr(2)),
        Err(Refusal::WrongMode(Mode::Hmac))
    );
    admitted(insecure_one.admit(&f, &addr(2)));
}

#[test]
fn a_unicast_for_another_node_is_refused() {
    let mut two = node(2);
    let for_three = two.seal(NodeId(3), &leave());
    let r = node(1).admit(&for_three, &addr(2));
    assert_eq!(r, Err(Refusal::WrongDestination(NodeId(3))));
    assert_eq!(
        r.unwrap_err().reason(),
        "wrong_destination: frame for node 3"
    );
    admitted(node(3).admit(&for_three, &addr(2)));
    admitted(node(1).admit(&two.seal(NodeId(1), &leave()), &addr(2)));
}

#[test]
fn a_frame_from_another_address_than_the_signed_one_is_refused() {
    let f = node(2).seal(BROADCAST, &leave());
    let mut one = node(1);
    let r = one.admit(&f, "10.0.0.250:7400");
    assert_eq!(r, Err(Refusal::AddressMismatch { signed: addr(2) }));
    // The relay consumed nothing: the genuine copy is still admitted afterwards.
    admitted(one.admit(&f, &addr(2)));
}

#[test]
fn old_incarnations_and_frames_older_than_the_window_are_replays() {
    let mut one = node(1);
    let mut old = PeerAuth::new(PeerKey::from_secret(SECRET), "c", NodeId(2), &addr(2), 5);
    let before_restart = old.seal(BROADCAST, &leave());
    let mut new = PeerAuth::new(PeerKey::from_secret(SECRET), "c", NodeId(2), &addr(2), 6);
    admitted(one.admit(&new.seal(BROADCAST, &leave()), &addr(2)));
    assert_eq!(
        one.admit(&before_restart, &addr(2)),
        Err(Refusal::Replayed(Stale::OldIncarnation { newest: 6 }))
    );
    let first = new.seal(BROADCAST, &leave());
    for _ in 0..replay::WINDOW {
        admitted(one.admit(&new.seal(BROADCAST, &leave()), &addr(2)));
    }
    assert!(matches!(
        one.admit(&first, &addr(2)),
        Err(Refusal::Replayed(Stale::TooOld { .. }))
    ));
}

#[test]
fn size_layout_cluster_and_body_are_checked_without_panics() {
    let mut one = node(1);
    let big = vec![0u8; MAX_DATAGRAM_BYTES + 1];
    assert_eq!(
        one.admit(&big, &addr(2)),
        Err(Refusal::Oversized(big.len()))
    );
    let v1 = br#"{"v":1,"cluster":"c","from":2,"msg":{"t":"leave"}}"#;
    assert_eq!(one.admit(v1, &addr(2)), Err(Refusal::WrongVersion));
    assert!(matches!(
        one.admit(b"FLW2\x01", &addr(2)),
        Err(Refusal::Malformed(_))
    ));
    let mut foreign = PeerAuth::new(
        PeerKey::from_secret(SECRET),
        "other",
        NodeId(2),
        &addr(2),
        1,
    );
    assert_eq!(
        one.admit(&foreign.seal(BROADCAST, &leave()), &addr(2)),
        Err(Refusal::ForeignCluster("other".into()))
    );
    // A member's frame with a body that is no message: malformed, and not marked seen.
    let header = Header {
        mode: Mode::Hmac,
        cluster: "c".into(),
        addr: addr(2),
        from: NodeId(2),
        incarnation: 1,
        seq: 1,
        dest: BROADCAST,
    };
    let bad_body = frame::seal(&PeerKey::from_secret(SECRET), &header, br#"{"t":"nope"}"#);
    assert!(matches!(
        one.admit(&bad_body, &addr(2)),
        Err(Refusal::Malformed(_))
    ));
    admitted(one.admit(&node(2).seal(BROADCAST, &leave()), &addr(2)));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..3000usize {
        let mut bytes: Vec<u8> = b"FLW2".to_vec();
        bytes.extend((0..len % 200).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        assert!(one.admit(&bytes, &addr(2)).is_err());
    }
}

/// The MAC's cost per datagram, sealed by the sender and admitted by a receiver (HMAC-SHA256
/// over the whole frame, both ends). A measurement, not an assertion:
/// `cargo test -p chat-node --release --lib mac_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn mac_cost_per_datagram() {
    use crate::core::durable::LogEntry;
    use crate::events::Credentials;
    use crate::ids::Role;
    let heartbeat = PeerMsg::Heartbeat(super::super::wire::Beacon {
        epoch: 12,
        role: Role::Leader,
        leader: Some(NodeId(2)),
        credentials: Credentials {
            last_log_epoch: 12,
            last_log_index: 4711,
            id: NodeId(2),
        },
        client_addr: "10.99.0.12:7070".into(),
        commit_index: 4710,
        hears: vec![NodeId(1), NodeId(3), NodeId(4), NodeId(5)],
        clients: 0,
        full: false,
        assign: Vec::new(),
    });
    let entries: Vec<LogEntry> = (0..165)
        .map(|i| LogEntry {
            index: 4712 + i,
            epoch: 12,
            op: crate::core::chat::ChatOp::Send {
                from: "alice".into(),
                to: "bob".into(),
                id: format!("m-{i}"),
                text: "x".repeat(150),
            },
            origin: None,
        })
        .collect();
    let append = PeerMsg::Append {
        epoch: 12,
        prev_index: 4711,
        prev_epoch: 12,
        entries,
        commit: 4710,
    };
    for (name, msg) in [("heartbeat", heartbeat), ("append", append)] {
        let mut sender = node(2);
        let mut receiver = node(1);
        let body = super::super::wire::encode_msg(&msg);
        let n = if body.len() > 10_000 { 2_000 } else { 50_000 };
        let frames: Vec<Vec<u8>> = (0..n).map(|_| sender.seal(BROADCAST, &msg)).collect();
        let size = frames[0].len();
        // Tag only: the same work without the MAC (insecure mode) is subtracted.
        let key = PeerKey::from_secret(SECRET);
        let t = std::time::Instant::now();
        for f in &frames {
            let tag = key.tag(&f[..f.len() - 32]);
            assert!(key.verify(&f[..f.len() - 32], &tag));
        }
        let mac_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        for f in &frames {
            admitted(receiver.admit(f, &addr(2)));
        }
        let admit_ns = t.elapsed().as_nanos() as f64 / n as f64;
        eprintln!(
            "mac_cost: {name} frame {size} bytes (body {} bytes): HMAC-SHA256 seal + check {mac_ns:.0} ns; whole admission (parse, tag, window, JSON body) {admit_ns:.0} ns",
            body.len()
        );
    }
}
