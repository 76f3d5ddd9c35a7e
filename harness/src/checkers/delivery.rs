//! Delivery, in the manner of Jepsen's set-full: a message is (sender, id). Acknowledged = a
//! client `acked` record exists. Intended recipients: the `to` user of a private message;
//! for a room post, the users whose join of the room was acknowledged before the first send
//! attempt (the sender excepted). Counted separately, each failing the check:
//! - lost: acknowledged, and an intended recipient never received it by the end of the run;
//! - duplicated: received more than once by one recipient (whatever the useq), acked or not;
//! - reordered: a recipient's private messages from one sender not in acknowledged-index
//!   order, or a room's posts not in the same relative order for all members;
//! - offline out of order: the mailbox replayed at login not in FIFO (log index) order;
//! - phantom: received, but never sent by anyone;
//! - forged: committed by a node (a `committed` send or post), but never sent by any client —
//!   an outsider's forged `append`, caught even when no recipient was online to receive it.

use super::CheckResult;
use crate::history::{ClientAction, Record};
use crate::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet, HashMap};

type MsgKey = (String, String); // (sender, id)

struct Sent {
    first_ts: u64,
    to: Option<String>,
    room: Option<String>,
}

struct Got {
    key: MsgKey,
    room: Option<String>,
    index: u64,
    replay: bool,
}

#[derive(Default)]
struct Counts {
    acked: usize,
    lost: usize,
    duplicated: usize,
    reordered: usize,
    room_order: usize,
    offline_fifo: usize,
    phantom: usize,
    forged: usize,
}

pub fn check(s: &Scenario, records: &[Record]) -> CheckResult {
    let mut sent: HashMap<MsgKey, Sent> = HashMap::new();
    let mut acked: HashMap<MsgKey, u64> = HashMap::new();
    // user -> room -> (joined ts, left ts)
    let mut joins: HashMap<String, BTreeMap<String, (u64, u64)>> = HashMap::new();
    let mut inbox: BTreeMap<String, Vec<Got>> = BTreeMap::new();
    // Mailbox replays inferred from login counts, for clients that do not mark `replay`.
    let mut replay_left: HashMap<String, u64> = HashMap::new();

    // Chat messages the nodes committed: (sender, id) -> the nodes that committed it.
    let mut committed: BTreeMap<MsgKey, BTreeSet<u64>> = BTreeMap::new();
    for r in records {
        if let Record::Node(ev) = r {
            if let chat_node::events::Event::Committed {
                op,
                from: Some(from),
                id: Some(id),
                ..
            } = &ev.event
            {
                if op == "send" || op == "post" {
                    committed
                        .entry((from.clone(), id.clone()))
                        .or_default()
                        .insert(ev.node.0);
                }
            }
        }
    }
    for r in records {
        let Record::Client(c) = r else { continue };
        match &c.action {
            ClientAction::Send { id, to, room, .. } => {
                sent.entry((c.user.clone(), id.clone())).or_insert(Sent {
                    first_ts: c.ts_ms,
                    to: to.clone(),
                    room: room.clone(),
                });
            }
            ClientAction::Acked { id, index, .. } => {
                acked.entry((c.user.clone(), id.clone())).or_insert(*index);
            }
            ClientAction::Joined { room } => {
                joins
                    .entry(c.user.clone())
                    .or_default()
                    .entry(room.clone())
                    .or_insert((c.ts_ms, u64::MAX));
            }
            ClientAction::Left { room } => {
                if let Some(j) = joins.get_mut(&c.user).and_then(|m| m.get_mut(room)) {
                    j.1 = j.1.min(c.ts_ms);
                }
            }
            ClientAction::Login { mailbox, .. } => {
                replay_left.insert(c.user.clone(), *mailbox);
            }
            ClientAction::Received { message, replay } => {
                let inferred = match replay_left.get_mut(&c.user) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                };
                inbox.entry(c.user.clone()).or_default().push(Got {
                    key: (message.from.clone(), message.id.clone()),
                    room: message.room.clone(),
                    index: message.index,
                    replay: *replay || inferred,
                });
            }
            _ => {}
        }
    }

    let mut n = Counts {
        acked: acked.len(),
        ..Counts::default()
    };
    let mut details: Vec<String> = Vec::new();
    let mut note = |kind: &str, count: &mut usize, text: String| {
        *count += 1;
        if *count <= 3 {
            details.push(format!("{kind}: {text}"));
        }
    };

    // Lost.
    let received: HashMap<&str, BTreeMap<&MsgKey, usize>> = inbox
        .iter()
        .map(|(u, v)| {
            let mut m: BTreeMap<&MsgKey, usize> = BTreeMap::new();
            for g in v {
                *m.entry(&g.key).or_default() += 1;
            }
            (u.as_str(), m)
        })
        .collect();
    let mut acked_keys: Vec<&MsgKey> = acked.keys().collect();
    acked_keys.sort();
    for key in acked_keys {
        let Some(msg) = sent.get(key) else { continue };
        let recipients: Vec<String> = match (&msg.to, &msg.room) {
            (Some(to), _) => vec![to.clone()],
            (None, Some(room)) => {
                let mut members: Vec<String> = joins
                    .iter()
                    .filter(|(u, rooms)| {
                        **u != key.0
                            && rooms
                                .get(room)
                                .is_some_and(|(j, l)| *j < msg.first_ts && *l > msg.first_ts)
                    })
                    .map(|(u, _)| u.clone())
                    .collect();
                members.sort();
                members
            }
            (None, None) => vec![],
        };
        for r in recipients {
            let got = received
                .get(r.as_str())
                .and_then(|m| m.get(key))
                .copied()
                .unwrap_or(0);
            if got == 0 {
                note(
                    "lost",
                    &mut n.lost,
                    format!(
                        "{}/{} (acked at index {}) never reached {r}",
                        key.0, key.1, acked[key]
                    ),
                );
            }
        }
    }

    // Duplicated and phantom.
    for (user, m) in &received {
        for (key, count) in m {
            if *count > 1 {
                for _ in 1..*count {
                    note(
                        "duplicated",
                        &mut n.duplicated,
                        format!("{user} received {}/{} {count} times", key.0, key.1),
                    );
                }
            }
            if !sent.contains_key(*key) {
                note(
                    "phantom",
                    &mut n.phantom,
                    format!("{user} received {}/{}, which nobody sent", key.0, key.1),
                );
            }
        }
    }

    // Forged: committed, and no client ever sent it.
    for (key, nodes) in &committed {
        if !sent.contains_key(key) {
            let on: Vec<String> = nodes.iter().map(u64::to_string).collect();
            note(
                "forged",
                &mut n.forged,
                format!(
                    "{}/{} was committed on nodes {} but no client sent it",
                    key.0,
                    key.1,
                    on.join(",")
                ),
            );
        }
    }

    // Private order per (recipient, sender), by acknowledged index.
    for (user, got) in &inbox {
        let mut highest: HashMap<&str, (u64, &str)> = HashMap::new();
        let mut seen: BTreeSet<&MsgKey> = BTreeSet::new();
        for g in got.iter().filter(|g| g.room.is_none()) {
            if !seen.insert(&g.key) {
                continue; // duplicates are counted above
            }
            let Some(idx) = acked.get(&g.key) else {
                continue;
            };
            match highest.get(g.key.0.as_str()) {
                Some((h, hid)) if idx < h => note(
                    "reordered",
                    &mut n.reordered,
                    format!(
                        "{user} got {}/{} (index {idx}) after {}/{hid} (index {h})",
                        g.key.0, g.key.1, g.key.0
                    ),
                ),
                _ => {
                    highest.insert(&g.key.0, (*idx, &g.key.1));
                }
            }
        }
    }

    // Room order: every pair of members agrees on the relative order of common posts.
    let mut rooms: BTreeMap<&str, BTreeMap<&str, Vec<&MsgKey>>> = BTreeMap::new();
    for (user, got) in &inbox {
        let mut seen: BTreeSet<&MsgKey> = BTreeSet::new();
        for g in got {
            if let Some(room) = &g.room {
                if seen.insert(&g.key) {
                    rooms
                        .entry(room.as_str())
                        .or_default()
                        .entry(user.as_str())
                        .or_default()
                        .push(&g.key);
                }
            }
        }
    }
    for (room, members) in &rooms {
        let mut flagged: BTreeSet<(&str, &MsgKey)> = BTreeSet::new();
        for (a, seq_a) in members {
            let pos_a: HashMap<&MsgKey, usize> =
                seq_a.iter().enumerate().map(|(i, k)| (*k, i)).collect();
            for (b, seq_b) in members {
                if a >= b {
                    continue;
                }
                let mut max_pos: Option<(usize, &MsgKey)> = None;
                for k in seq_b {
                    let Some(&p) = pos_a.get(k) else { continue };
                    match max_pos {
                        Some((m, prev)) if p < m => {
                            if flagged.insert((b, k)) {
                                note(
                                    "room order",
                                    &mut n.room_order,
                                    format!(
                                        "in #{room}, {b} got {}/{} after {}/{} but {a} got them the other way round",
                                        k.0, k.1, prev.0, prev.1
                                    ),
                                );
                            }
                        }
                        _ => max_pos = Some((p, k)),
                    }
                }
            }
        }
    }

    // Offline mailboxes: FIFO by log index within each replay run.
    for (user, got) in &inbox {
        let mut last: Option<u64> = None;
        for g in got {
            if !g.replay {
                last = None;
                continue;
            }
            if let Some(l) = last {
                if g.index < l {
                    note(
                        "offline out of order",
                        &mut n.offline_fifo,
                        format!(
                            "{user}'s mailbox replayed {}/{} (index {}) after index {l}",
                            g.key.0, g.key.1, g.index
                        ),
                    );
                }
            }
            last = Some(g.index);
        }
    }

    let expects_traffic = s.workload.rate_per_s > 0.0
        || s.steps
            .iter()
            .any(|st| matches!(st.kind, crate::scenario::StepKind::Send { .. }));
    let mut passed =
        n.lost + n.duplicated + n.reordered + n.room_order + n.offline_fifo + n.phantom + n.forged
            == 0;
    if expects_traffic && n.acked == 0 {
        passed = false;
        details.insert(
            0,
            "no message was acknowledged: the workload did not get through".into(),
        );
    }
    let figure = format!(
        "{} acked, {} sent: lost {}, duplicated {}, reordered {}, room-order {}, offline-fifo {}, phantom {}, forged {}",
        n.acked,
        sent.len(),
        n.lost,
        n.duplicated,
        n.reordered,
        n.room_order,
        n.offline_fifo,
        n.phantom,
        n.forged
    );
    CheckResult {
        name: "delivery".into(),
        passed,
        figure,
        deadline: None,
        headroom_ms: None,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn joined(ts: u64, user: &str) -> Record {
        client(
            ts,
            user,
            ClientAction::Joined {
                room: "general".into(),
            },
        )
    }

    fn base() -> Vec<Record> {
        vec![
            joined(1, "u1"),
            joined(1, "u2"),
            joined(1, "u3"),
            send(10, "u1", "m1", Some("u2"), None),
            acked(11, "u1", "m1", 5),
            send(12, "u1", "m2", Some("u2"), None),
            acked(13, "u1", "m2", 6),
            received(14, "u2", "u1", "m1", None, 1, 5),
            received(15, "u2", "u1", "m2", None, 2, 6),
            send(20, "u3", "p1", None, Some("general")),
            acked(21, "u3", "p1", 7),
            send(22, "u1", "p2", None, Some("general")),
            acked(23, "u1", "p2", 8),
            received(24, "u1", "u3", "p1", Some("general"), 3, 7),
            received(24, "u2", "u3", "p1", Some("general"), 3, 7),
            received(25, "u2", "u1", "p2", Some("general"), 4, 8),
            received(25, "u3", "u1", "p2", Some("general"), 4, 8),
            // An unacknowledged send that arrived once: fine.
            send(30, "u2", "q1", Some("u1"), None),
            received(31, "u1", "u2", "q1", None, 5, 9),
        ]
    }

    fn run(mut r: Vec<Record>) -> CheckResult {
        r.sort_by_key(Record::ts_ms);
        check(&scenario("delivery"), &r)
    }

    #[test]
    fn everything_once_and_in_order_passes() {
        let c = run(base());
        assert!(c.passed, "{c:?}");
        assert!(
            c.figure.starts_with("4 acked, 5 sent: lost 0"),
            "{}",
            c.figure
        );
    }

    #[test]
    fn a_missing_acknowledged_message_is_lost() {
        let mut r = base();
        r.retain(|x| !(x.ts_ms() == 25 && matches!(x, Record::Client(c) if c.user == "u3")));
        let c = run(r);
        assert!(!c.passed);
        assert!(c.figure.contains("lost 1,"), "{}", c.figure);
        assert!(
            c.details[0].contains("u1/p2 (acked at index 8) never reached u3"),
            "{:?}",
            c.details
        );
    }

    #[test]
    fn a_room_member_who_joined_after_the_send_is_not_owed_it() {
        let mut r = base();
        r.push(joined(40, "u4"));
        assert!(run(r).passed);
    }

    #[test]
    fn the_same_message_twice_is_duplicated_even_unacknowledged() {
        let mut r = base();
        r.push(received(32, "u1", "u2", "q1", None, 6, 9));
        let c = run(r);
        assert!(!c.passed);
        assert!(c.figure.contains("duplicated 1,"), "{}", c.figure);
    }

    #[test]
    fn private_messages_out_of_send_order_are_reordered() {
        let mut r = base();
        for x in r.iter_mut() {
            if let Record::Client(c) = x {
                if let ClientAction::Received { message, .. } = &mut c.action {
                    if message.id == "m1" {
                        c.ts_ms = 16;
                    }
                }
            }
        }
        let c = run(r);
        assert!(!c.passed);
        assert!(c.figure.contains("reordered 1,"), "{}", c.figure);
    }

    #[test]
    fn members_seeing_room_posts_in_different_orders_fail() {
        let mut r = base();
        r.push(send(50, "u3", "p3", None, Some("general")));
        r.push(acked(51, "u3", "p3", 10));
        r.push(send(52, "u3", "p4", None, Some("general")));
        r.push(acked(53, "u3", "p4", 11));
        r.push(received(54, "u1", "u3", "p3", Some("general"), 10, 10));
        r.push(received(55, "u1", "u3", "p4", Some("general"), 11, 11));
        r.push(received(54, "u2", "u3", "p4", Some("general"), 10, 11));
        r.push(received(55, "u2", "u3", "p3", Some("general"), 11, 10));
        let c = run(r);
        assert!(!c.passed);
        assert!(c.figure.contains("room-order 1,"), "{}", c.figure);
    }

    #[test]
    fn a_mailbox_replayed_out_of_fifo_order_fails() {
        let mut r = base();
        r.push(client(
            60,
            "u2",
            ClientAction::Login {
                node: None,
                mailbox: 2,
            },
        ));
        r.push(send(56, "u1", "o1", Some("u2"), None));
        r.push(acked(57, "u1", "o1", 12));
        r.push(send(58, "u3", "o2", Some("u2"), None));
        r.push(acked(59, "u3", "o2", 13));
        r.push(received(61, "u2", "u3", "o2", None, 7, 13));
        r.push(received(62, "u2", "u1", "o1", None, 8, 12));
        let c = run(r);
        assert!(!c.passed);
        assert!(c.figure.contains("offline-fifo 1,"), "{}", c.figure);
    }

    #[test]
    fn a_message_nobody_sent_is_a_phantom() {
        let mut r = base();
        r.push(received(70, "u2", "u9", "zz", None, 9, 20));
        let c = run(r);
        assert!(!c.passed);
        assert!(c.figure.contains("phantom 1,"), "{}", c.figure);
    }

    fn committed(ts: u64, node: u64, from: &str, id: &str) -> Record {
        ev(
            ts,
            node,
            1,
            chat_node::ids::Role::Follower,
            chat_node::events::Event::Committed {
                index: 30,
                entry_epoch: 1,
                op: "send".into(),
                from: Some(from.into()),
                id: Some(id.into()),
                target: None,
                room_seq: None,
                duplicate: false,
            },
        )
    }

    #[test]
    fn a_commit_of_a_message_no_client_sent_is_forged_even_if_nobody_received_it() {
        let mut r = base();
        // What the clients sent, committed everywhere: fine.
        r.push(committed(12, 1, "u1", "m1"));
        r.push(committed(12, 2, "u1", "m1"));
        assert!(run(r.clone()).passed);
        // An outsider's append in u1's name, committed by two followers.
        r.push(committed(80, 2, "u1", "forged-7"));
        r.push(committed(80, 3, "u1", "forged-7"));
        let c = run(r);
        assert!(!c.passed);
        assert!(c.figure.ends_with("phantom 0, forged 1"), "{}", c.figure);
        assert!(
            c.details.iter().any(
                |d| d == "forged: u1/forged-7 was committed on nodes 2,3 but no client sent it"
            ),
            "{:?}",
            c.details
        );
    }

    #[test]
    fn no_traffic_at_all_fails_when_the_workload_should_have_sent() {
        let c = run(vec![joined(1, "u1")]);
        assert!(!c.passed);
        assert!(c.details[0].contains("no message was acknowledged"));
    }
}
