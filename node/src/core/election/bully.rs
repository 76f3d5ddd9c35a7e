//! Bully (Garcia-Molina 1982), majority-gated. A node that starts an election sends
//! `election` to every live member. A member that outranks the starter answers (`answer`:
//! "I am alive and better; stand down") and runs itself. A starter that hears no answer
//! within the answer timeout is the best live node and announces itself as coordinator
//! through the node's shared vote round (`elected`): it leads only with a quorum of
//! promises, one per member per epoch, so Bully here never elects two leaders. A member
//! asked to promise to a candidate it outranks refuses and runs itself (it bullies).
//!
//! "Outranks" is [`ElectionContext::rank`]: first whether a node can lead at all (it
//! exchanges messages both ways with a quorum, as far as this node knows), then the
//! credentials `(last log epoch, last log index, id)`.

use super::{Election, ElectionAction, ElectionBody, ElectionContext, VoteDecision};
use crate::core::Millis;
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use crate::settings::ElectionKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A starter waits this many heartbeats for an answer before it calls itself coordinator
/// (the election message is re-sent every heartbeat meanwhile, so one lost datagram is no
/// reason to decide).
const ANSWER_HEARTBEATS: Millis = 2;

/// Bully's messages (the body of `PeerMsg::Election`); the coordinator message is the
/// node's shared `elected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BullyMsg {
    /// `candidate` runs in the envelope's epoch: anyone better, answer.
    Election { candidate: Credentials },
    /// The sender outranks the receiver's candidacy and runs itself.
    Answer,
}

impl BullyMsg {
    pub fn name(&self) -> &'static str {
        match self {
            BullyMsg::Election { .. } => "bully.election",
            BullyMsg::Answer => "bully.answer",
        }
    }
}

/// This node's candidacy in `epoch`.
#[derive(Clone, Debug)]
struct Round {
    epoch: u64,
    /// When the answer timeout began: the start, or when a member joined the view since.
    started: Millis,
    /// The members the election message went to. One that joins the view later (it just
    /// started, or came back) is asked too and restarts the answer timeout: claiming before
    /// a better newcomer could answer would elect a worse node than the best live one.
    asked: BTreeSet<NodeId>,
    /// A better node answered: wait for its coordinator message (or the node's retry).
    answered: bool,
    /// Already asked for votes.
    announced: bool,
}

#[derive(Debug, Default)]
pub struct Bully {
    round: Option<Round>,
}

impl Bully {
    fn current(&self, ctx: &ElectionContext) -> Option<&Round> {
        self.round.as_ref().filter(|r| r.epoch == ctx.epoch)
    }

    fn election_to(ctx: &ElectionContext, to: NodeId) -> ElectionAction {
        ElectionAction::Send {
            to,
            body: ElectionBody::Bully(BullyMsg::Election { candidate: ctx.me }),
        }
    }

    fn broadcast(ctx: &ElectionContext) -> Vec<ElectionAction> {
        ctx.view
            .iter()
            .filter(|id| **id != ctx.me.id)
            .map(|to| Bully::election_to(ctx, *to))
            .collect()
    }

    /// Run in the current epoch (once): tell everyone; decide after the answer timeout.
    fn run(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        if self.current(ctx).is_some() || !ctx.quorum_in_view || !ctx.can_lead(ctx.me.id) {
            return Vec::new();
        }
        self.round = Some(Round {
            epoch: ctx.epoch,
            started: ctx.now,
            asked: ctx.view.iter().copied().collect(),
            answered: false,
            announced: false,
        });
        let mut out = vec![ElectionAction::Join];
        out.extend(Bully::broadcast(ctx));
        out.extend(self.decide(ctx));
        out
    }

    /// No answer within the timeout (or nobody else to ask): this node is the best live one.
    fn decide(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        let Some(r) = self.round.as_mut().filter(|r| r.epoch == ctx.epoch) else {
            return Vec::new();
        };
        if r.answered || r.announced || ctx.leader.is_some() {
            return Vec::new();
        }
        let newcomers: Vec<NodeId> = ctx
            .view
            .iter()
            .copied()
            .filter(|id| !r.asked.contains(id))
            .collect();
        if !newcomers.is_empty() {
            r.asked.extend(newcomers.iter().copied());
            r.started = ctx.now;
            return newcomers
                .into_iter()
                .map(|to| Bully::election_to(ctx, to))
                .collect();
        }
        let alone = ctx.view.len() <= 1;
        let waited = ctx.now.saturating_sub(r.started) >= ANSWER_HEARTBEATS * ctx.heartbeat_ms;
        if !(alone || waited) {
            return Vec::new();
        }
        r.announced = true;
        vec![ElectionAction::SeekVotes {
            reason: "no_better_answer",
        }]
    }
}

impl Election for Bully {
    fn kind(&self) -> ElectionKind {
        ElectionKind::Bully
    }

    fn on_tick(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        if ctx.role == Role::Leader {
            return Vec::new();
        }
        if let Some(trigger) = ctx.wants.filter(|_| ctx.may_start) {
            return vec![ElectionAction::StartElection { trigger }];
        }
        self.decide(ctx)
    }

    /// Until answered, the election message is re-sent (the lossy network may eat it).
    fn on_heartbeat(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        match self.current(ctx) {
            Some(r) if !r.answered && !r.announced => Bully::broadcast(ctx),
            _ => Vec::new(),
        }
    }

    fn start(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        self.run(ctx)
    }

    fn on_message(
        &mut self,
        ctx: &ElectionContext,
        from: NodeId,
        body: ElectionBody,
    ) -> Vec<ElectionAction> {
        let ElectionBody::Bully(msg) = body else {
            return Vec::new();
        };
        if ctx.leader.is_some() || ctx.role == Role::Leader {
            return Vec::new(); // this epoch's election is over
        }
        match msg {
            BullyMsg::Election { candidate } => {
                let mut out = vec![ElectionAction::Join];
                if ctx.outranks(candidate) {
                    out.push(ElectionAction::Send {
                        to: from,
                        body: ElectionBody::Bully(BullyMsg::Answer),
                    });
                    out.extend(self.run(ctx));
                }
                out
            }
            BullyMsg::Answer => {
                // An answer promises a coordinator message; one from a node this node knows
                // cannot lead (it answered on an older view, a heartbeat behind) will never
                // come, so it is no reason to stand down.
                if !ctx.can_lead(from) {
                    return Vec::new();
                }
                if let Some(r) = self.round.as_mut().filter(|r| r.epoch == ctx.epoch) {
                    r.answered = true;
                }
                Vec::new()
            }
        }
    }

    fn on_vote_request(&mut self, ctx: &ElectionContext, candidate: Credentials) -> VoteDecision {
        if ctx.leader.is_none() && ctx.outranks(candidate) {
            // Bully: a better live node never lets a worse one lead; it runs itself. If it
            // had stood down for an answer, the answerer is not coming: the one asking for
            // votes is worse than this node. Run again.
            let mut out = vec![ElectionAction::Join];
            if let Some(r) = self.round.as_mut().filter(|r| r.epoch == ctx.epoch) {
                if r.answered && !r.announced {
                    r.answered = false;
                    r.started = ctx.now;
                    out.extend(Bully::broadcast(ctx));
                }
            }
            out.extend(self.run(ctx));
            return VoteDecision::RunMyself(out);
        }
        VoteDecision::Grant
    }

    fn reset(&mut self) {
        self.round = None;
    }

    /// The starter's election message (1 hop) reaches the best node, which answers and
    /// waits out its own answer timeout (2 hb) before it asks for votes (a round trip, 2
    /// hops); two heartbeats more for a starter that begins late or a message re-sent after
    /// a loss, and a hop of slack: `4 hb + 4 hops`.
    fn failover_allowance(&self) -> super::Allowance {
        super::Allowance {
            failure_timeouts: 0,
            heartbeats: 4,
            hops_per_member: 0,
            hops: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::election::test_ctx;

    fn creds(index: u64, id: u64) -> Credentials {
        Credentials {
            last_log_epoch: 1,
            last_log_index: index,
            id: NodeId(id),
        }
    }

    fn three(me: Credentials) -> ElectionContext {
        ElectionContext {
            view: [1, 2, 3].into_iter().map(NodeId).collect(),
            can_lead: [1, 2, 3].into_iter().map(NodeId).collect(),
            quorum: 2,
            ..test_ctx(me)
        }
    }

    fn sends(out: &[ElectionAction]) -> Vec<(u64, BullyMsg)> {
        out.iter()
            .filter_map(|a| match a {
                ElectionAction::Send {
                    to,
                    body: ElectionBody::Bully(m),
                } => Some((to.0, m.clone())),
                _ => None,
            })
            .collect()
    }

    fn seeks(out: &[ElectionAction]) -> bool {
        out.iter()
            .any(|a| matches!(a, ElectionAction::SeekVotes { .. }))
    }

    #[test]
    fn an_unanswered_starter_announces_itself_after_the_answer_timeout() {
        let mut b = Bully::default();
        let mut c = three(creds(5, 3));
        let out = b.start(&c);
        assert_eq!(sends(&out).len(), 2, "election to both peers: {out:?}");
        assert!(!seeks(&out));
        c.now = 199;
        assert!(!seeks(&b.on_tick(&c)));
        c.now = 200;
        assert!(seeks(&b.on_tick(&c)));
        c.now = 300;
        assert!(!seeks(&b.on_tick(&c)), "once");
    }

    #[test]
    fn a_member_that_joins_the_view_mid_round_is_asked_and_restarts_the_wait() {
        // Seen in the matrix (bully, partition-majority-minority): node 4 started while 3
        // waited out its answer timeout; 3 claimed 10 ms after 4 joined its view and won,
        // although 4 was better.
        let mut b = Bully::default();
        let mut c = three(creds(5, 3));
        c.quorum = 3;
        b.start(&c);
        c.now = 190;
        c.view.push(NodeId(4));
        c.can_lead.push(NodeId(4));
        let out = b.on_tick(&c);
        assert_eq!(
            sends(&out),
            vec![(
                4,
                BullyMsg::Election {
                    candidate: creds(5, 3)
                }
            )]
        );
        c.now = 250;
        assert!(
            !seeks(&b.on_tick(&c)),
            "the newcomer gets its answer timeout"
        );
        c.now = 390;
        assert!(seeks(&b.on_tick(&c)), "unanswered: claims");
    }

    #[test]
    fn an_answer_from_a_node_that_cannot_lead_or_a_worse_vote_request_does_not_stall() {
        // Issue 9's scenario under bully, seen from C (2): A (3) answered on a view that
        // still held the dead leader, then asked for votes it cannot gather.
        let mut b = Bully::default();
        let mut c = three(creds(5, 2));
        c.can_lead = vec![NodeId(1), NodeId(2)];
        b.start(&c);
        b.on_message(&c, NodeId(3), ElectionBody::Bully(BullyMsg::Answer));
        c.now = 200;
        assert!(
            seeks(&b.on_tick(&c)),
            "an answer from 3, which cannot lead, is ignored"
        );

        let mut b = Bully::default();
        let mut c = three(creds(5, 2));
        b.start(&c);
        b.on_message(&c, NodeId(3), ElectionBody::Bully(BullyMsg::Answer));
        c.now = 150;
        c.can_lead = vec![NodeId(1), NodeId(2)];
        let VoteDecision::RunMyself(out) = b.on_vote_request(&c, creds(5, 3)) else {
            panic!("2 outranks 3 now");
        };
        assert_eq!(sends(&out).len(), 2, "the election again: {out:?}");
        c.now = 300;
        assert!(!seeks(&b.on_tick(&c)), "a fresh answer timeout");
        c.now = 350;
        assert!(seeks(&b.on_tick(&c)));
    }

    #[test]
    fn a_better_node_answers_and_runs_and_the_answered_starter_waits() {
        let mut better = Bully::default();
        let c = three(creds(5, 3));
        let out = better.on_message(
            &c,
            NodeId(1),
            ElectionBody::Bully(BullyMsg::Election {
                candidate: creds(5, 1),
            }),
        );
        let s = sends(&out);
        assert!(s.contains(&(1, BullyMsg::Answer)), "{s:?}");
        assert!(s
            .iter()
            .any(|(to, m)| *to == 2 && matches!(m, BullyMsg::Election { .. })));

        let mut starter = Bully::default();
        let mut c1 = three(creds(5, 1));
        starter.start(&c1);
        starter.on_message(&c1, NodeId(3), ElectionBody::Bully(BullyMsg::Answer));
        c1.now = 1_000;
        assert!(
            !seeks(&starter.on_tick(&c1)),
            "answered: no coordinator claim"
        );
    }

    #[test]
    fn a_worse_candidate_is_bullied_and_a_better_one_gets_the_vote() {
        let mut b = Bully::default();
        let c = three(creds(5, 2));
        assert!(matches!(
            b.on_vote_request(&c, creds(5, 1)),
            VoteDecision::RunMyself(_)
        ));
        let mut b = Bully::default();
        assert_eq!(b.on_vote_request(&c, creds(5, 3)), VoteDecision::Grant);
        // A longer log outranks a higher id.
        assert_eq!(b.on_vote_request(&c, creds(6, 1)), VoteDecision::Grant);
    }

    #[test]
    fn a_node_that_cannot_lead_neither_answers_nor_bullies() {
        let mut b = Bully::default();
        let mut c = three(creds(9, 3));
        c.can_lead = vec![NodeId(1), NodeId(2)];
        let out = b.on_message(
            &c,
            NodeId(1),
            ElectionBody::Bully(BullyMsg::Election {
                candidate: creds(5, 1),
            }),
        );
        assert!(sends(&out).is_empty(), "{out:?}");
        assert_eq!(b.on_vote_request(&c, creds(5, 1)), VoteDecision::Grant);
    }
}
