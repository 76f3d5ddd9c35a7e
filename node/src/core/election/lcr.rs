//! LeLann–Chang–Roberts on the ring of live members ordered by id. Each node forwards the
//! best candidate it has seen to its ring successor, substituting itself when it is better
//! (once per epoch) and swallowing worse tokens after that; the node whose own token comes
//! back has the maximum credentials `(last log epoch, last log index, id)` and seeks promises.

use super::{Election, ElectionAction, ElectionContext};
use crate::events::Credentials;

#[derive(Debug, Default)]
pub struct Lcr {
    /// Whether this node already sent its own candidacy round the ring in this round.
    forwarded_own: bool,
    /// The last token this node forwarded, re-sent while no leader is known because the
    /// network may have dropped it (a duplicate token is harmless: it is swallowed or ends
    /// at the maximum, which then simply asks for promises again).
    last_forwarded: Option<Credentials>,
}

impl Lcr {
    fn forward(&mut self, ctx: &ElectionContext, candidate: Credentials) -> Vec<ElectionAction> {
        self.last_forwarded = Some(candidate);
        match ctx.successor {
            Some(to) => vec![ElectionAction::SendToken { to, candidate }],
            // Alone on the ring: the token has gone round.
            None if candidate.id == ctx.me.id => vec![ElectionAction::SeekPromises],
            None => Vec::new(),
        }
    }
}

impl Election for Lcr {
    fn name(&self) -> &'static str {
        "lcr"
    }

    fn start(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        self.forwarded_own = true;
        self.forward(ctx, ctx.me)
    }

    fn on_token(&mut self, ctx: &ElectionContext, candidate: Credentials) -> Vec<ElectionAction> {
        if candidate.id == ctx.me.id {
            // Our own token came back round: nobody on the ring beat us.
            return vec![ElectionAction::SeekPromises];
        }
        if ctx.me > candidate {
            if self.forwarded_own {
                return Vec::new();
            }
            self.forwarded_own = true;
            return self.forward(ctx, ctx.me);
        }
        self.forward(ctx, candidate)
    }

    fn retransmit(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        match self.last_forwarded {
            Some(c) if c.id == ctx.me.id => self.forward(ctx, ctx.me),
            Some(c) => self.forward(ctx, c),
            None => Vec::new(),
        }
    }

    fn reset(&mut self) {
        *self = Lcr::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn creds(epoch: u64, index: u64, id: u64) -> Credentials {
        Credentials {
            last_log_epoch: epoch,
            last_log_index: index,
            id: NodeId(id),
        }
    }

    fn ctx(me: Credentials, succ: u64) -> ElectionContext {
        ElectionContext {
            epoch: 3,
            me,
            successor: Some(NodeId(succ)),
        }
    }

    #[test]
    fn replaces_a_worse_candidate_once_then_swallows() {
        let mut lcr = Lcr::default();
        let c = ctx(creds(1, 5, 2), 3);
        let worse = creds(1, 4, 9);
        assert_eq!(
            lcr.on_token(&c, worse),
            vec![ElectionAction::SendToken {
                to: NodeId(3),
                candidate: c.me
            }]
        );
        assert!(lcr.on_token(&c, worse).is_empty());
    }

    #[test]
    fn forwards_a_better_candidate_and_wins_on_own_token() {
        let mut lcr = Lcr::default();
        let c = ctx(creds(1, 5, 2), 3);
        let better = creds(2, 1, 1);
        assert_eq!(
            lcr.on_token(&c, better),
            vec![ElectionAction::SendToken {
                to: NodeId(3),
                candidate: better
            }]
        );
        assert_eq!(lcr.on_token(&c, c.me), vec![ElectionAction::SeekPromises]);
    }

    #[test]
    fn log_beats_id() {
        // A higher id with a shorter log must lose: the winner holds every committed entry.
        assert!(creds(2, 7, 1) > creds(2, 6, 9));
        assert!(creds(3, 1, 1) > creds(2, 9, 9));
    }
}
