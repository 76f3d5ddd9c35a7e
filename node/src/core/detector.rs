//! The heartbeat failure detector: silence turns a peer suspected at half the failure
//! timeout and down at the full timeout. Hearing it again (membership) brings it back.

use super::membership::{Membership, PeerState};
use super::Millis;
use crate::ids::NodeId;

/// A change the detector made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detection {
    Suspected { peer: NodeId, silence_ms: Millis },
    Down { peer: NodeId, silence_ms: Millis },
}

/// Checks every peer's silence at `now`.
pub fn check(members: &mut Membership, now: Millis, failure_timeout: Millis) -> Vec<Detection> {
    let mut out = Vec::new();
    let ids: Vec<NodeId> = members.iter().map(|(id, _)| id).collect();
    for id in ids {
        let Some(p) = members.get_mut(id) else {
            continue;
        };
        let silence_ms = now.saturating_sub(p.last_heard);
        if p.state.in_view() && silence_ms >= failure_timeout {
            p.state = PeerState::Down;
            out.push(Detection::Down {
                peer: id,
                silence_ms,
            });
        } else if p.state == PeerState::Alive && silence_ms >= failure_timeout / 2 {
            p.state = PeerState::Suspected;
            out.push(Detection::Suspected {
                peer: id,
                silence_ms,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspects_at_half_and_downs_at_full_timeout() {
        let mut m = Membership::default();
        m.heard(NodeId(2), "a", 0);
        assert!(check(&mut m, 240, 500).is_empty());
        assert_eq!(
            check(&mut m, 250, 500),
            vec![Detection::Suspected {
                peer: NodeId(2),
                silence_ms: 250
            }]
        );
        assert!(check(&mut m, 260, 500).is_empty());
        assert_eq!(
            check(&mut m, 500, 500),
            vec![Detection::Down {
                peer: NodeId(2),
                silence_ms: 500
            }]
        );
        assert!(check(&mut m, 900, 500).is_empty(), "down is reported once");
        assert_eq!(m.view(NodeId(1)), vec![NodeId(1)]);
    }
}
