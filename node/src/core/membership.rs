//! The peers this node knows: where each was last heard from, what client address it
//! advertises, when it was last heard, and whether it is alive, suspected, down or gone.

use super::Millis;
use crate::ids::NodeId;
use std::collections::BTreeMap;

/// A peer's liveness as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Alive,
    /// Silent for half the failure timeout: an early warning, still in the view.
    Suspected,
    /// Silent for the failure timeout: out of the view.
    Down,
    /// Announced a graceful leave: out of the view until heard again.
    Left,
}

impl PeerState {
    /// Whether the peer counts as a live member of the view.
    pub fn in_view(self) -> bool {
        matches!(self, PeerState::Alive | PeerState::Suspected)
    }
}

#[derive(Clone, Debug)]
pub struct Peer {
    /// Source address of the last datagram (`ip:port`), used for unicast replies.
    pub addr: String,
    /// The client address the peer advertises.
    pub client_addr: String,
    pub last_heard: Millis,
    pub state: PeerState,
    /// The leader the peer last said it follows, with the peer's epoch then.
    pub leader_claim: Option<(NodeId, u64)>,
    /// The peers this peer said it hears (its view, in its latest beacon).
    pub hears: Vec<NodeId>,
    /// When it was discovered or came back: until its beacons and the others' have gone
    /// round, what the lists say about its links is not evidence yet (see `can_lead`).
    pub since: Millis,
}

/// What hearing from a peer changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// First datagram ever from this peer.
    Discovered,
    /// The peer was suspected, down or left and is back; `silence_ms` it had been quiet.
    Back {
        silence_ms: Millis,
        was_in_view: bool,
    },
    /// Nothing changed.
    Same,
}

#[derive(Clone, Debug, Default)]
pub struct Membership {
    peers: BTreeMap<NodeId, Peer>,
    /// When this node first heard any peer (since it started).
    first_heard: Option<Millis>,
}

impl Membership {
    /// Records a datagram from `id` at `addr`.
    pub fn heard(&mut self, id: NodeId, addr: &str, now: Millis) -> Heard {
        match self.peers.get_mut(&id) {
            None => {
                self.first_heard.get_or_insert(now);
                self.peers.insert(
                    id,
                    Peer {
                        addr: addr.to_string(),
                        client_addr: String::new(),
                        last_heard: now,
                        state: PeerState::Alive,
                        leader_claim: None,
                        hears: Vec::new(),
                        since: now,
                    },
                );
                Heard::Discovered
            }
            Some(p) => {
                let silence_ms = now.saturating_sub(p.last_heard);
                if p.addr != addr {
                    p.addr = addr.to_string();
                }
                p.last_heard = now;
                let was = p.state;
                p.state = PeerState::Alive;
                if was == PeerState::Alive {
                    Heard::Same
                } else {
                    p.since = now;
                    Heard::Back {
                        silence_ms,
                        was_in_view: was.in_view(),
                    }
                }
            }
        }
    }

    pub fn set_client_addr(&mut self, id: NodeId, client_addr: &str) {
        if let Some(p) = self.peers.get_mut(&id) {
            if p.client_addr != client_addr {
                p.client_addr = client_addr.to_string();
            }
        }
    }

    /// Whether a live peer says it follows a leader of at least `epoch`: then that leader is
    /// fine and we only have not heard it yet. A leader out of our view counts too (a
    /// one-way cut may hide a working leader from us alone; a leader that cannot keep a
    /// quorum steps down, and its claims stop), except the very leader and epoch we saw go
    /// silent ourselves (`lost`): peers that have not yet noticed are not news.
    pub fn live_leader_claimed(&self, me: NodeId, epoch: u64, lost: Option<(NodeId, u64)>) -> bool {
        self.peers.values().any(|p| {
            p.state.in_view()
                && p.leader_claim.is_some_and(|(l, e)| {
                    e >= epoch
                        && l != me
                        && (self.get(l).is_some_and(|lp| lp.state.in_view())
                            || lost != Some((l, e)))
                })
        })
    }

    /// Marks a peer as gone after its graceful leave; returns whether it was in the view.
    pub fn left(&mut self, id: NodeId) -> bool {
        match self.peers.get_mut(&id) {
            Some(p) => {
                let was = p.state.in_view();
                p.state = PeerState::Left;
                was
            }
            None => false,
        }
    }

    pub fn get(&self, id: NodeId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Peer> {
        self.peers.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &Peer)> {
        self.peers.iter().map(|(id, p)| (*id, p))
    }

    /// Live members, `me` included, sorted by id.
    /// Members heard within half the failure timeout (not even suspected), this node
    /// included.
    pub fn heard_lately(&self) -> usize {
        1 + self
            .peers
            .values()
            .filter(|p| p.state == PeerState::Alive)
            .count()
    }

    pub fn view(&self, me: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state.in_view())
            .map(|(id, _)| *id)
            .collect();
        v.push(me);
        v.sort();
        v.dedup();
        v
    }

    /// Peers heard within `window` of `now` (for the leader's check-quorum).
    /// The members of this node's view (itself included) that exchange messages both ways
    /// with at least `quorum` nodes (themselves included), as far as this node can tell: `x`
    /// and `y` talk both ways when each lists the other in what it hears (this node's own
    /// list is its view). Links between two peers this node does not hear are unknown and
    /// count as missing — except for a node that joined (this node's) view less than `fresh`
    /// ago: its links are given the benefit of the doubt until the beacons that would list
    /// them have gone round (a just-restarted node is in nobody's list yet).
    pub fn can_lead(&self, me: NodeId, quorum: usize, now: Millis, fresh: Millis) -> Vec<NodeId> {
        let view = self.view(me);
        let is_fresh = |x: NodeId| -> bool {
            let since = if x == me {
                self.first_heard
            } else {
                self.get(x).map(|p| p.since)
            };
            since.is_some_and(|t| now.saturating_sub(t) < fresh)
        };
        let hears = |x: NodeId, y: NodeId| -> bool {
            if is_fresh(x) || is_fresh(y) {
                return true;
            }
            if x == me {
                view.contains(&y)
            } else {
                self.get(x).is_some_and(|p| p.hears.contains(&y))
            }
        };
        view.iter()
            .copied()
            .filter(|x| {
                1 + view
                    .iter()
                    .filter(|y| *y != x && hears(*x, **y) && hears(**y, *x))
                    .count()
                    >= quorum
            })
            .collect()
    }

    /// The peers of this node's view that, as far as their latest beacons tell, would take
    /// part in an election with it: they hear this node, and their own view holds a quorum
    /// (a node without one takes no part). A peer that joined the view less than `fresh`
    /// ago, or any peer while this node itself just started, gets the benefit of the doubt.
    pub fn takes_part(&self, me: NodeId, quorum: usize, now: Millis, fresh: Millis) -> Vec<NodeId> {
        let recent = |since: Option<Millis>| since.is_some_and(|t| now.saturating_sub(t) < fresh);
        let me_fresh = recent(self.first_heard);
        self.view(me)
            .into_iter()
            .filter(|x| *x != me)
            .filter(|x| {
                self.get(*x).is_some_and(|p| {
                    me_fresh
                        || recent(Some(p.since))
                        || (p.hears.contains(&me) && p.hears.len() + 1 >= quorum)
                })
            })
            .collect()
    }

    pub fn heard_within(&self, now: Millis, window: Millis) -> usize {
        self.peers
            .values()
            .filter(|p| p.state != PeerState::Left && now.saturating_sub(p.last_heard) < window)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_way_cut_costs_both_ends_their_link_in_can_lead() {
        // The issue-9 shape seen from C (3): A (1) hears B (2) and C; B hears only C.
        let mut m = Membership::default();
        for id in [1, 2] {
            m.heard(NodeId(id), "a", 0);
        }
        m.get_mut(NodeId(1)).unwrap().hears = vec![NodeId(2), NodeId(3)];
        m.get_mut(NodeId(2)).unwrap().hears = vec![NodeId(3)];
        // Just heard: no evidence yet, everyone may lead.
        assert_eq!(m.can_lead(NodeId(3), 3, 100, 200).len(), 3);
        assert_eq!(m.can_lead(NodeId(3), 3, 1000, 200), vec![NodeId(3)]);
        assert_eq!(
            m.can_lead(NodeId(3), 2, 1000, 200),
            vec![NodeId(1), NodeId(2), NodeId(3)]
        );
    }

    #[test]
    fn a_peer_that_does_not_hear_us_or_lacks_a_quorum_takes_no_part() {
        // Seen from 5: 1 hears only 5 (no quorum in its view), 2 hears 1, 3 and 5, 3 does
        // not hear 5.
        let mut m = Membership::default();
        for id in [1, 2, 3] {
            m.heard(NodeId(id), "a", 0);
        }
        m.get_mut(NodeId(1)).unwrap().hears = vec![NodeId(5)];
        m.get_mut(NodeId(2)).unwrap().hears = vec![NodeId(1), NodeId(3), NodeId(5)];
        m.get_mut(NodeId(3)).unwrap().hears = vec![NodeId(1), NodeId(2)];
        assert_eq!(m.takes_part(NodeId(5), 3, 100, 200).len(), 3, "just heard");
        assert_eq!(m.takes_part(NodeId(5), 3, 1000, 200), vec![NodeId(2)]);
    }

    #[test]
    fn hearing_again_reports_back_with_silence() {
        let mut m = Membership::default();
        assert_eq!(m.heard(NodeId(2), "a", 10), Heard::Discovered);
        assert_eq!(m.heard(NodeId(2), "a", 20), Heard::Same);
        m.left(NodeId(2));
        assert_eq!(m.view(NodeId(1)), vec![NodeId(1)]);
        assert_eq!(
            m.heard(NodeId(2), "b", 120),
            Heard::Back {
                silence_ms: 100,
                was_in_view: false
            }
        );
        assert_eq!(m.get(NodeId(2)).unwrap().addr, "b");
    }
}
