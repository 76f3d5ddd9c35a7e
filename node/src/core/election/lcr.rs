//! LeLann–Chang–Roberts on the ring of live members ordered by id. Each node forwards the
//! best candidate it has seen to its ring successor, substituting itself when it is better
//! (once per epoch) and swallowing worse tokens after that; the node whose own token comes
//! back has the maximum credentials `(last log epoch, last log index, id)` and seeks promises.
//!
//! Every hop is acknowledged. A successor that does not acknowledge within the ack timeout
//! is skipped for the rest of the epoch (the ring closes over a dead or one-way-cut link),
//! and a token that comes round to a node a second time without having met its candidate
//! (whom some node's view leaves off the ring) is handed to that candidate directly.

use super::{Election, ElectionAction, ElectionBody, ElectionContext, VoteDecision};
use crate::core::Millis;
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use crate::settings::ElectionKind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A ring successor that has not acknowledged a token for this many heartbeats is skipped
/// (the token is re-sent every heartbeat meanwhile, so one lost datagram is no reason).
const TOKEN_ACK_HEARTBEATS: Millis = 2;

/// LCR's messages (the body of `PeerMsg::Election`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum LcrMsg {
    /// The best candidate seen so far on its way round the ring.
    Token {
        candidate: Credentials,
        /// Hops the token has made since its candidate entered it: a node that sees the same
        /// candidate again with more hops knows the token went round without meeting it
        /// (a duplicate or a retransmission carries the same count).
        #[serde(default)]
        hops: u32,
    },
    /// The ring successor got the token for `candidate` (unicast back to the sender): a
    /// sender that hears no ack skips that successor for the rest of the epoch, so a
    /// one-way cut cannot swallow every token of an election.
    TokenAck { candidate: NodeId },
}

impl LcrMsg {
    pub fn name(&self) -> &'static str {
        match self {
            LcrMsg::Token { .. } => "lcr.token",
            LcrMsg::TokenAck { .. } => "lcr.token_ack",
        }
    }
}

fn token(to: NodeId, candidate: Credentials, hops: u32) -> ElectionAction {
    ElectionAction::Send {
        to,
        body: ElectionBody::Lcr(LcrMsg::Token { candidate, hops }),
    }
}

fn ack_timeout(ctx: &ElectionContext) -> Millis {
    TOKEN_ACK_HEARTBEATS * ctx.heartbeat_ms
}
/// A token sent and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
struct Pending {
    to: NodeId,
    candidate: Credentials,
    hops: u32,
    since: Millis,
}

#[derive(Debug, Default)]
pub struct Lcr {
    /// Whether this node already sent its own candidacy round the ring in this round.
    forwarded_own: bool,
    /// Candidates (other than this node) already forwarded in this round, with the hop
    /// count their token had when it first arrived.
    forwarded: BTreeMap<NodeId, u32>,
    /// Candidates whose looping token was already handed to them directly.
    handed_over: BTreeSet<NodeId>,
    /// Better-credentialled candidates this node believes cannot lead, for whose token it
    /// already sent its own candidacy round again (see [`Lcr::on_token`]).
    reasserted: BTreeSet<NodeId>,
    /// The token awaiting its successor's ack; re-sent every heartbeat until then.
    pending: Option<Pending>,
    /// Successors that did not acknowledge a token in `skipped_epoch`.
    skipped: BTreeSet<NodeId>,
    skipped_epoch: u64,
}

impl Lcr {
    /// The next live id after this node's on the ring, wrapping, leaving out successors
    /// that did not acknowledge in this epoch and those whose beacons say they would take
    /// no part (they do not hear us, or hold no quorum in view: either would cost an ack
    /// timeout, and a round of such skips can outlast the election timeout); `None` when
    /// no one is left.
    fn successor(&mut self, ctx: &ElectionContext) -> Option<NodeId> {
        if self.skipped_epoch != ctx.epoch {
            self.skipped.clear();
            self.skipped_epoch = ctx.epoch;
        }
        let me = ctx.me.id;
        let usable = |id: &&NodeId| {
            **id != me && !self.skipped.contains(*id) && ctx.takes_part.contains(*id)
        };
        ctx.view
            .iter()
            .filter(usable)
            .find(|id| **id > me)
            .or_else(|| ctx.view.iter().find(usable))
            .copied()
    }

    fn send(
        &mut self,
        ctx: &ElectionContext,
        to: NodeId,
        candidate: Credentials,
        hops: u32,
    ) -> ElectionAction {
        self.pending = Some(Pending {
            to,
            candidate,
            hops,
            since: ctx.now,
        });
        token(to, candidate, hops)
    }

    fn forward(
        &mut self,
        ctx: &ElectionContext,
        candidate: Credentials,
        hops: u32,
    ) -> Vec<ElectionAction> {
        match self.successor(ctx) {
            Some(to) => vec![self.send(ctx, to, candidate, hops)],
            // Alone on the ring (or every successor silent): the token has gone round.
            None if candidate.id == ctx.me.id => {
                self.pending = None;
                vec![ElectionAction::SeekVotes {
                    reason: "ring_maximum",
                }]
            }
            None => {
                self.pending = None;
                Vec::new()
            }
        }
    }
}

impl Lcr {
    pub fn start_round(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        self.forwarded_own = true;
        self.forward(ctx, ctx.me, 1)
    }

    pub fn on_token(
        &mut self,
        ctx: &ElectionContext,
        candidate: Credentials,
        hops: u32,
    ) -> Vec<ElectionAction> {
        if candidate.id == ctx.me.id {
            // Our own token came back round: nobody on the ring beat us.
            return vec![ElectionAction::SeekVotes {
                reason: "ring_maximum",
            }];
        }
        if ctx.outranks(candidate) {
            // Swallowing a worse token is safe when it is worse by credentials, an order
            // every node agrees on: our own token is still going round and beats it. When
            // it is better by credentials and only "cannot lead" puts it below us, its node
            // may know better or worse than we do (who hears whom travels in beacons, a
            // heartbeat late) and may have replaced our token with its own: then both
            // tokens are dead and the round stalls until the election timeout. Send our
            // candidacy round again, once per such candidate.
            if self.forwarded_own && (candidate < ctx.me || !self.reasserted.insert(candidate.id)) {
                return Vec::new();
            }
            self.forwarded_own = true;
            return self.forward(ctx, ctx.me, 1);
        }
        match self.forwarded.get(&candidate.id) {
            None => {
                self.forwarded.insert(candidate.id, hops);
                self.forward(ctx, candidate, hops + 1)
            }
            // A duplicate or a retransmission: already on its way.
            Some(first) if hops <= *first => Vec::new(),
            // Round again without meeting its candidate: some node's view leaves the
            // candidate off the ring. Hand the token over directly, once; drop later laps so
            // a token can never circle for ever.
            Some(_) if self.handed_over.insert(candidate.id) => {
                vec![self.send(ctx, candidate.id, candidate, hops + 1)]
            }
            Some(_) => Vec::new(),
        }
    }

    pub fn on_token_ack(&mut self, from: NodeId, candidate: NodeId) {
        if self
            .pending
            .is_some_and(|p| p.to == from && p.candidate.id == candidate)
        {
            self.pending = None;
        }
    }

    pub fn assert_candidacy(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        self.forwarded_own = true;
        self.forward(ctx, ctx.me, 1)
    }

    /// The pending token's successor was declared down (it left the view): close the ring
    /// over it now rather than after the ack timeout (the failover tail of issue 8).
    pub fn skip_if_down(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        match self.pending {
            Some(p) if !ctx.view.contains(&p.to) => self.skip(ctx, p),
            _ => Vec::new(),
        }
    }

    pub fn retransmit(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        let Some(p) = self.pending else {
            return Vec::new();
        };
        if ctx.now.saturating_sub(p.since) < ack_timeout(ctx) {
            // Still within the ack timeout: the token or its ack may have been lost.
            return vec![token(p.to, p.candidate, p.hops)];
        }
        // No ack: this successor is dead or cannot be reached; close the ring over it.
        self.skip(ctx, p)
    }

    fn skip(&mut self, ctx: &ElectionContext, p: Pending) -> Vec<ElectionAction> {
        if self.skipped_epoch != ctx.epoch {
            self.skipped.clear();
            self.skipped_epoch = ctx.epoch;
        }
        self.skipped.insert(p.to);
        let candidate = if p.candidate.id == ctx.me.id {
            ctx.me
        } else {
            p.candidate
        };
        self.forward(ctx, candidate, p.hops)
    }

    fn forget_round(&mut self) {
        // Skipped successors are remembered for the rest of their epoch.
        *self = Lcr {
            skipped: std::mem::take(&mut self.skipped),
            skipped_epoch: self.skipped_epoch,
            ..Lcr::default()
        };
    }
}

impl Election for Lcr {
    fn kind(&self) -> ElectionKind {
        ElectionKind::Lcr
    }

    /// LCR has no timer of its own before a round: it starts as soon as the node wants an
    /// election, may start one, and could lead itself. A node that cannot lead (it does not
    /// talk both ways with a quorum) would win its own ring fragment and ask for votes that a
    /// voter still counting the dead leader grants, spending that voter's vote for the epoch:
    /// the round then waits for the election timeout (issue 9's one-way scenario, A = 3
    /// started 3 ms before C = 2 noticed the leader's death: 1210 ms against 1140). It waits
    /// instead, and takes part in the round of a node that can.
    fn on_tick(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        let could_lead = ctx.can_lead(ctx.me.id);
        if let Some(trigger) = ctx.wants.filter(|_| ctx.may_start && could_lead) {
            return vec![ElectionAction::StartElection { trigger }];
        }
        self.skip_if_down(ctx)
    }

    fn on_heartbeat(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        if ctx.in_round && !ctx.seeking_votes {
            self.retransmit(ctx)
        } else {
            Vec::new()
        }
    }

    fn start(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        self.start_round(ctx)
    }

    fn on_message(
        &mut self,
        ctx: &ElectionContext,
        from: NodeId,
        body: ElectionBody,
    ) -> Vec<ElectionAction> {
        let ElectionBody::Lcr(msg) = body else {
            return Vec::new();
        };
        match msg {
            LcrMsg::Token { candidate, hops } => {
                if !ctx.quorum_in_view {
                    // Pre-vote for the ring: with only part of the cluster in view (just
                    // restarted, or cut off) this node's ring is a fragment, and a token that
                    // comes back round a fragment proves nothing. Take no part; without our
                    // ack the sender closes the ring over us.
                    return Vec::new();
                }
                let mut out = vec![ElectionAction::Send {
                    to: from,
                    body: ElectionBody::Lcr(LcrMsg::TokenAck {
                        candidate: candidate.id,
                    }),
                }];
                if ctx.leader.is_some() || ctx.role == Role::Leader {
                    return out; // this epoch's election is over
                }
                out.push(ElectionAction::Join);
                out.extend(self.on_token(ctx, candidate, hops));
                out
            }
            LcrMsg::TokenAck { candidate } => {
                self.on_token_ack(from, candidate);
                Vec::new()
            }
        }
    }

    /// A token ack of a newer epoch says nothing about this node's round; a token does.
    fn adopts_epoch(&self, _ctx: &ElectionContext, body: Option<&ElectionBody>) -> bool {
        !matches!(body, Some(ElectionBody::Lcr(LcrMsg::TokenAck { .. })))
    }

    fn on_vote_request(&mut self, ctx: &ElectionContext, candidate: Credentials) -> VoteDecision {
        if ctx.voted_for.is_none() && ctx.outranks(candidate) && ctx.leader.is_none() {
            // LCR must elect the live maximum, and that is us rather than this candidate,
            // whose ring never carried our candidacy. Withhold the promise and send our
            // candidacy round (again): the candidate's token passes us and ends at us. The
            // maximum can always gather its promises, as everyone below it grants them.
            let mut out = vec![ElectionAction::Join];
            if ctx.quorum_in_view {
                out.extend(self.assert_candidacy(ctx));
            }
            return VoteDecision::RunMyself(out);
        }
        VoteDecision::Grant
    }

    fn reset(&mut self) {
        self.forget_round();
    }

    /// A token goes round a ring of n nodes (n hops), the elected announcement goes round
    /// again (n hops), a promise round trip (2 hops), plus two heartbeats for a candidate
    /// that starts its round a little late: `2 hb + (2n + 2) hops`.
    fn failover_allowance(&self) -> super::Allowance {
        super::Allowance {
            failure_timeouts: 0,
            heartbeats: 2,
            hops_per_member: 2,
            hops: 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(epoch: u64, index: u64, id: u64) -> Credentials {
        Credentials {
            last_log_epoch: epoch,
            last_log_index: index,
            id: NodeId(id),
        }
    }

    fn ctx_at(me: Credentials, ring: &[u64], now: Millis) -> ElectionContext {
        ElectionContext {
            epoch: 3,
            view: ring.iter().copied().map(NodeId).collect(),
            can_lead: ring.iter().copied().map(NodeId).collect(),
            takes_part: ring
                .iter()
                .copied()
                .map(NodeId)
                .filter(|id| *id != me.id)
                .collect(),
            now,
            ..super::super::test_ctx(me)
        }
    }

    fn ctx(me: Credentials, ring: &[u64]) -> ElectionContext {
        ctx_at(me, ring, 0)
    }

    fn send(to: u64, candidate: Credentials, hops: u32) -> Vec<ElectionAction> {
        vec![token(NodeId(to), candidate, hops)]
    }

    #[test]
    fn replaces_a_worse_candidate_once_then_swallows() {
        let mut lcr = Lcr::default();
        let c = ctx(creds(1, 5, 2), &[1, 2, 3]);
        let worse = creds(1, 4, 9);
        assert_eq!(lcr.on_token(&c, worse, 1), send(3, c.me, 1));
        assert!(lcr.on_token(&c, worse, 4).is_empty());
    }

    #[test]
    fn forwards_a_better_candidate_and_wins_on_own_token() {
        let mut lcr = Lcr::default();
        let c = ctx(creds(1, 5, 2), &[1, 2, 3]);
        let better = creds(2, 1, 1);
        assert_eq!(lcr.on_token(&c, better, 1), send(3, better, 2));
        assert_eq!(
            lcr.on_token(&c, c.me, 3),
            vec![ElectionAction::SeekVotes {
                reason: "ring_maximum"
            }]
        );
    }

    #[test]
    fn the_ring_wraps_to_the_lowest_id() {
        let mut lcr = Lcr::default();
        let c = ctx(creds(1, 5, 3), &[1, 2, 3]);
        assert_eq!(lcr.start_round(&c), send(1, c.me, 1));
    }

    #[test]
    fn an_unacknowledged_successor_is_skipped_for_the_epoch() {
        let mut lcr = Lcr::default();
        let me = creds(1, 5, 2);
        let ring = [1, 2, 3, 4];
        assert_eq!(lcr.start_round(&ctx_at(me, &ring, 0)), send(3, me, 1));
        // Within the ack timeout the token is re-sent to the same successor.
        assert_eq!(lcr.retransmit(&ctx_at(me, &ring, 100)), send(3, me, 1));
        // Then the successor is skipped, and stays skipped in this epoch.
        assert_eq!(lcr.retransmit(&ctx_at(me, &ring, 200)), send(4, me, 1));
        lcr.on_token_ack(NodeId(4), NodeId(2));
        assert!(lcr.retransmit(&ctx_at(me, &ring, 300)).is_empty(), "acked");
        lcr.forget_round();
        assert_eq!(lcr.start_round(&ctx_at(me, &ring, 400)), send(4, me, 1));
    }

    #[test]
    fn an_ack_for_another_candidate_does_not_stop_retransmission() {
        let mut lcr = Lcr::default();
        let me = creds(1, 5, 2);
        let better = creds(1, 5, 4);
        let ring = [1, 2, 3, 4];
        assert_eq!(lcr.on_token(&ctx(me, &ring), better, 2), send(3, better, 3));
        lcr.on_token_ack(NodeId(3), NodeId(2));
        assert_eq!(lcr.retransmit(&ctx_at(me, &ring, 50)), send(3, better, 3));
    }

    #[test]
    fn a_token_that_circles_without_its_candidate_is_handed_to_it() {
        let mut lcr = Lcr::default();
        let c = ctx(creds(1, 5, 2), &[1, 2, 3]);
        let best = creds(1, 5, 9); // off this node's ring
        assert_eq!(lcr.on_token(&c, best, 1), send(3, best, 2));
        assert!(
            lcr.on_token(&c, best, 1).is_empty(),
            "a duplicate is dropped"
        );
        assert_eq!(lcr.on_token(&c, best, 4), send(9, best, 5));
        assert!(
            lcr.on_token(&c, best, 7).is_empty(),
            "never circles for ever"
        );
    }

    #[test]
    fn a_better_node_that_cannot_lead_is_passed_over() {
        // Issue 9: node 9 has the best credentials but talks both ways with too few nodes.
        let mut lcr = Lcr::default();
        let mut c = ctx(creds(1, 5, 2), &[1, 2, 9]);
        c.can_lead = vec![NodeId(1), NodeId(2)];
        let best = creds(1, 5, 9);
        assert_eq!(
            lcr.on_token(&c, best, 1),
            send(9, c.me, 1),
            "replaced by our own"
        );
        let mut lcr = Lcr::default();
        assert!(
            matches!(
                lcr.on_vote_request(&c, creds(1, 5, 1)),
                VoteDecision::RunMyself(_)
            ),
            "outranks 1"
        );
        c.can_lead = vec![NodeId(1), NodeId(9)];
        let mut lcr = Lcr::default();
        assert_eq!(
            lcr.on_vote_request(&c, creds(1, 5, 1)),
            VoteDecision::Grant,
            "cannot lead itself: grants the worse candidate that can"
        );
    }

    #[test]
    fn a_node_that_cannot_lead_does_not_start_a_round() {
        // Issue 9's one-way scenario from A (3): B (4) does not hear it and the leader is
        // gone, so A talks both ways with C (2) alone, short of a quorum of 5.
        let mut lcr = Lcr::default();
        let mut c = ctx(creds(3, 84, 3), &[2, 3, 4]);
        c.wants = Some("leader_down");
        c.may_start = true;
        c.can_lead = vec![NodeId(2)];
        assert!(lcr.on_tick(&c).is_empty(), "waits for a node that can lead");
        c.can_lead = vec![NodeId(2), NodeId(3)];
        assert_eq!(
            lcr.on_tick(&c),
            vec![ElectionAction::StartElection {
                trigger: "leader_down"
            }],
            "starts once it could lead"
        );
    }

    #[test]
    fn a_better_candidate_we_believe_cannot_lead_gets_our_candidacy_again() {
        // Issue 9's scenario after the leader's death, seen from C (2): A (3) detected the
        // leader's death a moment later and, still counting it, replaced C's token with its
        // own; C knows A cannot lead (B, 4, does not hear A), so swallowing A's token would
        // leave no token on the ring. C sends its own again, once.
        let mut lcr = Lcr::default();
        let mut c = ctx(creds(2, 274, 2), &[2, 3, 4]);
        c.can_lead = vec![NodeId(2)];
        assert_eq!(lcr.start_round(&c), send(3, c.me, 1));
        let a = creds(2, 274, 3);
        assert_eq!(lcr.on_token(&c, a, 1), send(3, c.me, 1));
        assert!(lcr.on_token(&c, a, 1).is_empty(), "once per candidate");
        // A token worse by credentials is still swallowed: ours beats it on every ring.
        assert!(lcr.on_token(&c, creds(2, 273, 4), 1).is_empty());
    }

    #[test]
    fn successors_that_would_take_no_part_are_passed_over_at_once() {
        // The star of issue 9's scenario setup: 5 hears everyone, 1-4 hear only 5 (no quorum
        // in their views). Without this, each of them cost an ack timeout (2 hb) per round
        // and the round outlasted the election timeout again and again (4.7 s to elect).
        let mut lcr = Lcr::default();
        let mut c = ctx(creds(1, 3, 5), &[1, 2, 3, 4, 5]);
        c.takes_part = vec![];
        assert_eq!(
            lcr.start_round(&c),
            vec![ElectionAction::SeekVotes {
                reason: "ring_maximum"
            }]
        );
        // And a successor that does not hear us (a one-way cut) is passed over too.
        let mut c = ctx(creds(1, 3, 3), &[2, 3, 4]);
        c.takes_part = vec![NodeId(2)];
        assert_eq!(Lcr::default().start_round(&c), send(2, c.me, 1));
    }

    #[test]
    fn a_pending_token_is_re_forwarded_when_its_target_is_declared_down() {
        let mut lcr = Lcr::default();
        let me = creds(1, 5, 2);
        assert_eq!(
            lcr.start_round(&ctx_at(me, &[1, 2, 3, 4], 0)),
            send(3, me, 1)
        );
        // 3 leaves the view 50 ms later, well within the ack timeout: forward at once.
        let mut c = ctx_at(me, &[1, 2, 4], 50);
        c.wants = None;
        assert_eq!(lcr.on_tick(&c), send(4, me, 1));
    }

    #[test]
    fn log_beats_id() {
        // A higher id with a shorter log must lose: the winner holds every committed entry.
        assert!(creds(2, 7, 1) > creds(2, 6, 9));
        assert!(creds(3, 1, 1) > creds(2, 9, 9));
    }
}
