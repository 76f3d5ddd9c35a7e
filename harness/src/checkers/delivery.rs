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

use super::{CheckContext, CheckResult, Checker};
use crate::history::{ClientAction, Record};
use crate::scenario::{ClusterSettings, Deadline, Scenario};
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
    ts: u64,
}

/// Everything the properties read, gathered from the client records in one pass.
struct Ledger {
    sent: HashMap<MsgKey, Sent>,
    /// Acknowledged messages: their log index, and when the first ack came.
    acked: HashMap<MsgKey, (u64, u64)>,
    /// user -> room -> (joined ts, left ts)
    joins: HashMap<String, BTreeMap<String, (u64, u64)>>,
    inbox: BTreeMap<String, Vec<Got>>,
    /// Chat messages the nodes committed: (sender, id) -> the nodes that committed it.
    committed: BTreeMap<MsgKey, BTreeSet<u64>>,
}

fn ledger(records: &[Record]) -> Ledger {
    let mut l = Ledger {
        sent: HashMap::new(),
        acked: HashMap::new(),
        joins: HashMap::new(),
        inbox: BTreeMap::new(),
        committed: BTreeMap::new(),
    };
    // Mailbox replays inferred from login counts, for clients that do not mark `replay`.
    let mut replay_left: HashMap<String, u64> = HashMap::new();
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
                    l.committed
                        .entry((from.clone(), id.clone()))
                        .or_default()
                        .insert(ev.node.0);
                }
            }
        }
        let Record::Client(c) = r else { continue };
        match &c.action {
            ClientAction::Send { id, to, room, .. } => {
                l.sent.entry((c.user.clone(), id.clone())).or_insert(Sent {
                    first_ts: c.ts_ms,
                    to: to.clone(),
                    room: room.clone(),
                });
            }
            ClientAction::Acked { id, index, .. } => {
                l.acked
                    .entry((c.user.clone(), id.clone()))
                    .or_insert((*index, c.ts_ms));
            }
            ClientAction::Joined { room } => {
                l.joins
                    .entry(c.user.clone())
                    .or_default()
                    .entry(room.clone())
                    .or_insert((c.ts_ms, u64::MAX));
            }
            ClientAction::Left { room } => {
                if let Some(j) = l.joins.get_mut(&c.user).and_then(|m| m.get_mut(room)) {
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
                l.inbox.entry(c.user.clone()).or_default().push(Got {
                    key: (message.from.clone(), message.id.clone()),
                    room: message.room.clone(),
                    index: message.index,
                    replay: *replay || inferred,
                    ts: c.ts_ms,
                });
            }
            _ => {}
        }
    }
    l
}

impl Ledger {
    /// Who was owed a message: the `to` user, or the room's members when it was first sent
    /// (the sender excepted).
    fn recipients(&self, key: &MsgKey) -> Vec<String> {
        let Some(msg) = self.sent.get(key) else {
            return Vec::new();
        };
        match (&msg.to, &msg.room) {
            (Some(to), _) => vec![to.clone()],
            (None, Some(room)) => {
                let mut members: Vec<String> = self
                    .joins
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
        }
    }

    /// How many times each user received each message.
    fn received(&self) -> BTreeMap<&str, BTreeMap<&MsgKey, usize>> {
        self.inbox
            .iter()
            .map(|(u, v)| {
                let mut m: BTreeMap<&MsgKey, usize> = BTreeMap::new();
                for g in v {
                    *m.entry(&g.key).or_default() += 1;
                }
                (u.as_str(), m)
            })
            .collect()
    }
}

/// One kind of delivery fault: how many, and the first three described.
struct Finding {
    kind: &'static str,
    count: usize,
    examples: Vec<String>,
}

impl Finding {
    fn new(kind: &'static str) -> Finding {
        Finding {
            kind,
            count: 0,
            examples: Vec::new(),
        }
    }

    fn note(&mut self, text: String) {
        self.count += 1;
        if self.count <= 3 {
            self.examples.push(format!("{}: {text}", self.kind));
        }
    }
}

/// Property: every acknowledged message reached every intended recipient.
fn lost(l: &Ledger) -> Finding {
    let mut f = Finding::new("lost");
    let received = l.received();
    let mut acked_keys: Vec<&MsgKey> = l.acked.keys().collect();
    acked_keys.sort();
    for key in acked_keys {
        for r in l.recipients(key) {
            let got = received
                .get(r.as_str())
                .and_then(|m| m.get(key))
                .copied()
                .unwrap_or(0);
            if got == 0 {
                f.note(format!(
                    "{}/{} (acked at index {}) never reached {r}",
                    key.0, key.1, l.acked[key].0
                ));
            }
        }
    }
    f
}

/// Property: nobody received a message twice (acknowledged or not).
fn duplicated(l: &Ledger) -> Finding {
    let mut f = Finding::new("duplicated");
    for (user, m) in &l.received() {
        for (key, count) in m {
            for _ in 1..*count {
                f.note(format!("{user} received {}/{} {count} times", key.0, key.1));
            }
        }
    }
    f
}

/// Property: nobody received a message nobody sent.
fn phantom(l: &Ledger) -> Finding {
    let mut f = Finding::new("phantom");
    for (user, m) in &l.received() {
        for key in m.keys() {
            if !l.sent.contains_key(*key) {
                f.note(format!(
                    "{user} received {}/{}, which nobody sent",
                    key.0, key.1
                ));
            }
        }
    }
    f
}

/// Property: no node committed a chat message that no client sent.
fn forged(l: &Ledger) -> Finding {
    let mut f = Finding::new("forged");
    for (key, nodes) in &l.committed {
        if !l.sent.contains_key(key) {
            let on: Vec<String> = nodes.iter().map(u64::to_string).collect();
            f.note(format!(
                "{}/{} was committed on nodes {} but no client sent it",
                key.0,
                key.1,
                on.join(",")
            ));
        }
    }
    f
}

/// Property: private messages per (recipient, sender) arrive in acknowledged-index order.
fn private_order(l: &Ledger) -> Finding {
    let mut f = Finding::new("reordered");
    for (user, got) in &l.inbox {
        let mut highest: HashMap<&str, (u64, &str)> = HashMap::new();
        let mut seen: BTreeSet<&MsgKey> = BTreeSet::new();
        for g in got.iter().filter(|g| g.room.is_none()) {
            if !seen.insert(&g.key) {
                continue; // duplicates are counted apart
            }
            let Some((idx, _)) = l.acked.get(&g.key) else {
                continue;
            };
            match highest.get(g.key.0.as_str()) {
                Some((h, hid)) if idx < h => f.note(format!(
                    "{user} got {}/{} (index {idx}) after {}/{hid} (index {h})",
                    g.key.0, g.key.1, g.key.0
                )),
                _ => {
                    highest.insert(&g.key.0, (*idx, &g.key.1));
                }
            }
        }
    }
    f
}

/// Property: every pair of room members agrees on the relative order of common posts.
fn room_order(l: &Ledger) -> Finding {
    let mut f = Finding::new("room order");
    let mut rooms: BTreeMap<&str, BTreeMap<&str, Vec<&MsgKey>>> = BTreeMap::new();
    for (user, got) in &l.inbox {
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
                                f.note(format!(
                                    "in #{room}, {b} got {}/{} after {}/{} but {a} got them the other way round",
                                    k.0, k.1, prev.0, prev.1
                                ));
                            }
                        }
                        _ => max_pos = Some((p, k)),
                    }
                }
            }
        }
    }
    f
}

/// Property: a mailbox replayed at login comes in FIFO (log index) order.
fn offline_fifo(l: &Ledger) -> Finding {
    let mut f = Finding::new("offline out of order");
    for (user, got) in &l.inbox {
        let mut last: Option<u64> = None;
        for g in got {
            if !g.replay {
                last = None;
                continue;
            }
            if let Some(prev) = last {
                if g.index < prev {
                    f.note(format!(
                        "{user}'s mailbox replayed {}/{} (index {}) after index {prev}",
                        g.key.0, g.key.1, g.index
                    ));
                }
            }
            last = Some(g.index);
        }
    }
    f
}

/// Figures: each acknowledged message's first send attempt to its first ack, and each
/// live receipt's first send attempt to its first arrival (mailbox replays excluded).
fn latencies(l: &Ledger) -> (Vec<f64>, Vec<f64>) {
    let ack: Vec<f64> = l
        .acked
        .iter()
        .filter_map(|(k, (_, ts))| l.sent.get(k).map(|s| ts.saturating_sub(s.first_ts) as f64))
        .collect();
    let mut delivery = Vec::new();
    for got in l.inbox.values() {
        let mut seen: BTreeSet<&MsgKey> = BTreeSet::new();
        for g in got.iter().filter(|g| !g.replay) {
            if seen.insert(&g.key) {
                if let Some(s) = l.sent.get(&g.key) {
                    delivery.push(g.ts.saturating_sub(s.first_ts) as f64);
                }
            }
        }
    }
    (ack, delivery)
}

/// The delivery checker (Jepsen's set-full, for chat).
pub struct Delivery;

impl Checker for Delivery {
    fn name(&self) -> &'static str {
        "delivery"
    }
    fn default_deadline(&self, _c: &ClusterSettings) -> Option<Deadline> {
        None
    }
    fn check(&self, cx: &CheckContext) -> CheckResult {
        check(cx.scenario, cx.records)
    }
}

pub fn check(s: &Scenario, records: &[Record]) -> CheckResult {
    let l = ledger(records);
    let [lost, duplicated, reordered, room_order, offline_fifo, phantom, forged] = [
        lost(&l),
        duplicated(&l),
        private_order(&l),
        room_order(&l),
        offline_fifo(&l),
        phantom(&l),
        forged(&l),
    ];
    let all = [
        &lost,
        &duplicated,
        &reordered,
        &room_order,
        &offline_fifo,
        &phantom,
        &forged,
    ];
    let mut details: Vec<String> = all.iter().flat_map(|f| f.examples.clone()).collect();
    let acked = l.acked.len();
    let expects_traffic = s.workload.rate_per_s > 0.0
        || s.steps
            .iter()
            .any(|st| matches!(st.kind, crate::scenario::StepKind::Send { .. }));
    let mut passed = all.iter().all(|f| f.count == 0);
    if expects_traffic && acked == 0 {
        passed = false;
        details.insert(
            0,
            "no message was acknowledged: the workload did not get through".into(),
        );
    }
    let figure = format!(
        "{} acked, {} sent: lost {}, duplicated {}, reordered {}, room-order {}, offline-fifo {}, phantom {}, forged {}",
        acked,
        l.sent.len(),
        lost.count,
        duplicated.count,
        reordered.count,
        room_order.count,
        offline_fifo.count,
        phantom.count,
        forged.count
    );
    let mut result = CheckResult::new("delivery", passed, figure);
    result.details = details;
    for f in all {
        result.sample(&f.kind.replace(' ', "_"), [f.count as f64]);
    }
    result.sample("acked", [acked as f64]);
    let (ack, delivery) = latencies(&l);
    result.sample("ack_latency_ms", ack);
    result.sample("delivery_latency_ms", delivery);
    result
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
