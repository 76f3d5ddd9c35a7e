//! Part of the election check: every leader, vote and epoch in the history has a legitimate
//! origin inside the cluster. An outsider that forges peer datagrams shows up here even when
//! it breaks nothing else (a single leader per epoch, the same commits everywhere):
//! - a node **followed a leader nobody elected**: it accepted `L` as leader of epoch `e`
//!   (`leader_elected` naming `L`) but `L` never won `e` — a non-member, or a member that a
//!   forged heartbeat made look like a leader;
//! - a node **voted for a non-member** (`vote_granted` for an id that is no node);
//! - a node **entered an epoch no member started**: every epoch comes from some member's
//!   `election_started` (a node only adopts epochs other nodes carry), so an epoch nobody
//!   started — one forged heartbeat at `u64::MAX` — is poisoned.
//!
//! Members are the nodes that wrote events or that faults named (the harness's containers).

use crate::history::Record;
use chat_node::events::Event;
use chat_node::ids::{NodeId, Role};
use std::collections::{BTreeMap, BTreeSet};

/// Who did it (first seen at `ts`), per key.
type Seen<K> = BTreeMap<K, (BTreeSet<NodeId>, u64)>;

fn note<K: Ord>(m: &mut Seen<K>, key: K, node: NodeId, ts: u64) {
    m.entry(key)
        .or_insert_with(|| (BTreeSet::new(), ts))
        .0
        .insert(node);
}

/// The violations, one line per kind (with the count and the first case).
pub fn violations(records: &[Record], members: &BTreeSet<NodeId>) -> Vec<String> {
    let mut won: BTreeSet<(NodeId, u64)> = BTreeSet::new();
    let mut started: BTreeSet<u64> = BTreeSet::new();
    for r in records {
        let Record::Node(ev) = r else { continue };
        match &ev.event {
            Event::LeaderElected { leader, .. } if *leader == ev.node => {
                won.insert((ev.node, ev.epoch));
            }
            Event::RoleChanged {
                to: Role::Leader, ..
            } => {
                won.insert((ev.node, ev.epoch));
            }
            Event::ElectionStarted { .. } if members.contains(&ev.node) => {
                started.insert(ev.epoch);
            }
            _ => {}
        }
    }
    let t0 = records.first().map(Record::ts_ms).unwrap_or(0);
    let mut followed: Seen<(NodeId, u64)> = BTreeMap::new();
    let mut votes: Seen<NodeId> = BTreeMap::new();
    let mut poisoned: Seen<u64> = BTreeMap::new();
    for r in records {
        let Record::Node(ev) = r else { continue };
        if ev.epoch > 0 && !started.contains(&ev.epoch) {
            note(&mut poisoned, ev.epoch, ev.node, ev.ts_ms);
        }
        match &ev.event {
            Event::LeaderElected { leader, .. }
                if *leader != ev.node && !won.contains(&(*leader, ev.epoch)) =>
            {
                note(&mut followed, (*leader, ev.epoch), ev.node, ev.ts_ms);
            }
            Event::VoteGranted { candidate } if !members.contains(candidate) => {
                note(&mut votes, *candidate, ev.node, ev.ts_ms);
            }
            _ => {}
        }
    }
    let nodes = |s: &BTreeSet<NodeId>| {
        s.iter()
            .map(|n| n.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = Vec::new();
    if let Some(((leader, epoch), (by, ts))) = followed.iter().next() {
        let who = if members.contains(leader) {
            format!("member {leader}, which never won that epoch")
        } else {
            format!("non-member {leader}")
        };
        out.push(format!(
            "{} leaders nobody elected were followed; first: nodes {} followed {who} as leader of epoch {epoch} at +{} ms",
            followed.len(),
            nodes(by),
            ts.saturating_sub(t0)
        ));
    }
    if let Some((candidate, (by, ts))) = votes.iter().next() {
        out.push(format!(
            "votes for {} non-members; first: nodes {} voted for non-member {candidate} at +{} ms",
            votes.len(),
            nodes(by),
            ts.saturating_sub(t0)
        ));
    }
    if let Some((epoch, (by, ts))) = poisoned.iter().next() {
        let highest = poisoned.keys().next_back().copied().unwrap_or(*epoch);
        out.push(format!(
            "epoch poisoning: {} epochs no member started (highest {highest}); first: nodes {} entered epoch {epoch} at +{} ms",
            poisoned.len(),
            nodes(by),
            ts.saturating_sub(t0)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;

    fn members() -> BTreeSet<NodeId> {
        [1, 2, 3].into_iter().map(NodeId).collect()
    }

    fn started(ts: u64, node: u64, epoch: u64) -> Record {
        ev(
            ts,
            node,
            epoch,
            Role::Candidate,
            Event::ElectionStarted {
                trigger: "no_leader".into(),
                algorithm: "lcr".into(),
                credentials: creds(0, 0, node),
            },
        )
    }

    /// Node 1 starts and wins epoch 1; 2 and 3 follow.
    fn honest() -> Vec<Record> {
        let mut h = vec![started(90, 1, 1)];
        h.extend(elect(100, 1, 1, &[2, 3], (0, 0)));
        h
    }

    #[test]
    fn an_honest_election_is_legitimate() {
        assert!(violations(&honest(), &members()).is_empty());
    }

    #[test]
    fn a_forged_leader_heartbeat_at_the_largest_epoch_is_caught_twice() {
        let mut h = honest();
        // Node 2 and 3 adopt u64::MAX from a forged heartbeat of non-member 99 and follow it.
        for n in [2, 3] {
            h.push(ev(
                500,
                n,
                u64::MAX,
                Role::Follower,
                Event::LeaderElected {
                    leader: NodeId(99),
                    votes: 0,
                    credentials: creds(0, 0, 99),
                },
            ));
        }
        let v = violations(&h, &members());
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].contains(
                "nodes 2,3 followed non-member 99 as leader of epoch 18446744073709551615"
            ),
            "{}",
            v[0]
        );
        assert!(
            v[1].starts_with("epoch poisoning: 1 epochs no member started"),
            "{}",
            v[1]
        );
    }

    #[test]
    fn following_a_member_that_never_won_and_voting_for_a_stranger_are_caught() {
        let mut h = honest();
        h.push(started(600, 3, 2));
        // A forged heartbeat in node 1's name claims epoch 2, which 3 started but nobody won.
        h.push(ev(
            610,
            2,
            2,
            Role::Follower,
            Event::LeaderElected {
                leader: NodeId(1),
                votes: 0,
                credentials: creds(1, 1, 1),
            },
        ));
        h.push(ev(
            620,
            3,
            2,
            Role::Follower,
            Event::VoteGranted {
                candidate: NodeId(150),
            },
        ));
        let v = violations(&h, &members());
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].contains("followed member 1, which never won that epoch"),
            "{}",
            v[0]
        );
        assert!(v[1].contains("voted for non-member 150"), "{}", v[1]);
    }
}
