//! Raft's leader election (the Raft paper §5.2, with PreVote and CheckQuorum from §9.6, as
//! raft-rs runs them). A follower that has not heard a leader for its randomised election
//! timeout (in `[ft, 2 ft)`, drawn afresh each time) first asks for pre-votes: "would you vote
//! for me in the next epoch?". Only with a quorum of pre-votes does it move to the next epoch
//! and request real votes (the node's shared vote round: one durable vote per epoch, only for
//! a log at least as up to date). A node that has heard its leader within the failure timeout
//! (it is "in the lease") neither grants a pre-vote nor lets a vote request raise its epoch,
//! so a follower cut off from a healthy leader that a majority still hears cannot depose it.
//! The leader's side of CheckQuorum (step down without a quorum for one failure timeout) is
//! the node's, for every algorithm.

use super::{
    Election, ElectionAction, ElectionBody, ElectionConfig, ElectionContext, VoteDecision,
};
use crate::core::rng::SplitMix64;
use crate::core::Millis;
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use crate::settings::ElectionKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Raft's messages (the body of `PeerMsg::Election`). The real vote request and grant are
/// the node's shared `elected` / `promise`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum RaftMsg {
    /// Would the receiver vote for `candidate` in the epoch after the envelope's?
    PreVote { candidate: Credentials },
    /// The answer to a pre-vote for the epoch after the envelope's.
    PreVoteResp { granted: bool },
}

impl RaftMsg {
    pub fn name(&self) -> &'static str {
        match self {
            RaftMsg::PreVote { .. } => "raft.pre_vote",
            RaftMsg::PreVoteResp { .. } => "raft.pre_vote_resp",
        }
    }
}

/// A pre-vote round for the epoch after `epoch`.
#[derive(Debug)]
struct PreVoteRound {
    epoch: u64,
    trigger: &'static str,
    granted: BTreeSet<NodeId>,
}

pub struct Raft {
    cfg: ElectionConfig,
    rng: SplitMix64,
    /// The current randomised election timeout.
    timeout: Millis,
    /// The election timer last restarted here (a vote granted, a round started); the leader's
    /// contact restarts it too (the context's `leader_contact`).
    timer_from: Millis,
    prevote: Option<PreVoteRound>,
}

impl Raft {
    pub fn new(cfg: ElectionConfig) -> Raft {
        let mut raft = Raft {
            cfg,
            rng: SplitMix64::new(cfg.seed ^ 0x7af7_u64.rotate_left(40)),
            timeout: 0,
            timer_from: 0,
            prevote: None,
        };
        raft.timeout = raft.draw_timeout();
        raft
    }

    /// Raft's randomised election timeout: uniformly in `[ft, 2 ft)`.
    fn draw_timeout(&mut self) -> Millis {
        let ft = self.cfg.failure_timeout_ms.max(1);
        ft + self.rng.below(ft)
    }

    fn restart_timer(&mut self, now: Millis) {
        self.timer_from = now;
        self.timeout = self.draw_timeout();
    }

    /// Heard from a leader within the failure timeout (or is the leader): such a node
    /// neither grants a pre-vote nor lets a vote request raise its epoch.
    fn in_lease(ctx: &ElectionContext) -> bool {
        ctx.role == Role::Leader
            || (ctx.leader.is_some()
                && ctx.now.saturating_sub(ctx.leader_contact) < ctx.failure_timeout_ms)
    }

    fn log_ok(ctx: &ElectionContext, candidate: Credentials) -> bool {
        (candidate.last_log_epoch, candidate.last_log_index)
            >= (ctx.me.last_log_epoch, ctx.me.last_log_index)
    }

    fn pre_vote_requests(ctx: &ElectionContext) -> Vec<ElectionAction> {
        ctx.view
            .iter()
            .filter(|id| **id != ctx.me.id)
            .map(|to| ElectionAction::Send {
                to: *to,
                body: ElectionBody::Raft(RaftMsg::PreVote { candidate: ctx.me }),
            })
            .collect()
    }

    fn check_pre_votes(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        match &self.prevote {
            Some(r) if r.epoch == ctx.epoch && r.granted.len() >= ctx.quorum => {
                let trigger = r.trigger;
                self.prevote = None;
                vec![ElectionAction::StartElection { trigger }]
            }
            _ => Vec::new(),
        }
    }
}

impl Election for Raft {
    fn kind(&self) -> ElectionKind {
        ElectionKind::Raft
    }

    /// The election timer: no leader heard (and no round of ours) for the randomised
    /// timeout starts a pre-vote round.
    fn on_tick(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        if ctx.role == Role::Leader {
            return Vec::new();
        }
        let since = self.timer_from.max(ctx.leader_contact);
        if ctx.now.saturating_sub(since) < self.timeout || !ctx.may_start {
            return Vec::new();
        }
        self.restart_timer(ctx.now);
        let mut granted = BTreeSet::new();
        granted.insert(ctx.me.id);
        self.prevote = Some(PreVoteRound {
            epoch: ctx.epoch,
            trigger: ctx.wants.unwrap_or("election_timeout"),
            granted,
        });
        let mut out = Raft::pre_vote_requests(ctx);
        out.extend(self.check_pre_votes(ctx));
        out
    }

    /// Pre-votes lost on the way are asked for again.
    fn on_heartbeat(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        match &self.prevote {
            Some(r) if r.epoch == ctx.epoch => Raft::pre_vote_requests(ctx)
                .into_iter()
                .filter(|a| match a {
                    ElectionAction::Send { to, .. } => !r.granted.contains(to),
                    _ => true,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn start(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction> {
        self.restart_timer(ctx.now);
        vec![ElectionAction::SeekVotes {
            reason: "requested_votes",
        }]
    }

    fn on_message(
        &mut self,
        ctx: &ElectionContext,
        from: NodeId,
        body: ElectionBody,
    ) -> Vec<ElectionAction> {
        let ElectionBody::Raft(msg) = body else {
            return Vec::new();
        };
        match msg {
            RaftMsg::PreVote { candidate } => {
                // Granting records nothing: a pre-vote promises no real vote.
                let granted = !Raft::in_lease(ctx) && Raft::log_ok(ctx, candidate);
                vec![ElectionAction::Send {
                    to: from,
                    body: ElectionBody::Raft(RaftMsg::PreVoteResp { granted }),
                }]
            }
            RaftMsg::PreVoteResp { granted } => {
                if let Some(r) = self.prevote.as_mut() {
                    if granted && r.epoch == ctx.epoch {
                        r.granted.insert(from);
                    }
                }
                self.check_pre_votes(ctx)
            }
        }
    }

    /// Leader stickiness: inside the lease a pre-vote or a vote request of a higher epoch is
    /// dropped without raising this node's epoch; anything else of a higher epoch is adopted.
    fn adopts_epoch(&self, ctx: &ElectionContext, body: Option<&ElectionBody>) -> bool {
        let vote_request = matches!(
            body,
            None | Some(ElectionBody::Raft(RaftMsg::PreVote { .. }))
        );
        !(vote_request && Raft::in_lease(ctx))
    }

    fn on_vote_request(&mut self, ctx: &ElectionContext, _candidate: Credentials) -> VoteDecision {
        // The node's rules (one vote per epoch, an up-to-date log) are Raft's whole rule.
        // Granting restarts the election timer, so a voter does not run against the
        // candidate it just voted for.
        self.restart_timer(ctx.now);
        VoteDecision::Grant
    }

    /// The candidacy's or the granted vote's timer counts from when it left, not from the
    /// decision (a slow sync in between must not use up the round). Only a vote restarts it:
    /// a node that merely adopted a higher epoch (refusing a staler log) keeps its timer, so
    /// the best log is not held back.
    fn on_hard_state_durable(&mut self, ctx: &ElectionContext) {
        if ctx.role != Role::Leader && ctx.leader.is_none() && ctx.voted_for.is_some() {
            self.restart_timer(ctx.now);
        }
    }

    fn reset(&mut self) {
        self.prevote = None;
    }

    /// The randomised timeout runs from the leader's last contact and ends up to `2 ft`
    /// after it, one `ft` later than detection; then a pre-vote round trip and a vote round
    /// trip (4 hops), and two heartbeats for a pre-vote or vote request lost and re-sent:
    /// `1 ft + 2 hb + 4 hops`. Two candidates whose timeouts fall within one round trip
    /// split the vote and cost another timeout; that is rare and not allowed for.
    fn failover_allowance(&self) -> super::Allowance {
        super::Allowance {
            failure_timeouts: 1,
            heartbeats: 2,
            hops_per_member: 0,
            hops: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::election::test_ctx;

    fn creds(epoch: u64, index: u64, id: u64) -> Credentials {
        Credentials {
            last_log_epoch: epoch,
            last_log_index: index,
            id: NodeId(id),
        }
    }

    fn raft() -> Raft {
        Raft::new(ElectionConfig {
            heartbeat_ms: 100,
            failure_timeout_ms: 500,
            seed: 7,
        })
    }

    fn five(me: Credentials) -> ElectionContext {
        ElectionContext {
            view: [1, 2, 3, 4, 5].into_iter().map(NodeId).collect(),
            quorum: 3,
            ..test_ctx(me)
        }
    }

    fn pre_vote_resp(out: &[ElectionAction]) -> Option<bool> {
        out.iter().find_map(|a| match a {
            ElectionAction::Send {
                body: ElectionBody::Raft(RaftMsg::PreVoteResp { granted }),
                ..
            } => Some(*granted),
            _ => None,
        })
    }

    #[test]
    fn the_election_timeout_is_randomised_in_one_to_two_failure_timeouts() {
        let mut r = raft();
        let drawn: BTreeSet<Millis> = (0..50).map(|_| r.draw_timeout()).collect();
        assert!(drawn.iter().all(|t| (500..1000).contains(t)), "{drawn:?}");
        assert!(drawn.len() > 10, "not constant: {drawn:?}");
    }

    #[test]
    fn a_timed_out_follower_asks_for_pre_votes_and_starts_only_with_a_quorum() {
        let mut r = raft();
        let me = creds(1, 4, 1);
        let mut c = five(me);
        c.now = 400;
        assert!(r.on_tick(&c).is_empty(), "within the timeout");
        c.now = 2_000;
        let out = r.on_tick(&c);
        assert_eq!(out.len(), 4, "a pre-vote to each peer: {out:?}");
        assert!(r
            .on_message(
                &c,
                NodeId(2),
                ElectionBody::Raft(RaftMsg::PreVoteResp { granted: true })
            )
            .is_empty());
        assert!(r
            .on_message(
                &c,
                NodeId(3),
                ElectionBody::Raft(RaftMsg::PreVoteResp { granted: false })
            )
            .is_empty());
        let out = r.on_message(
            &c,
            NodeId(4),
            ElectionBody::Raft(RaftMsg::PreVoteResp { granted: true }),
        );
        assert!(
            matches!(out[..], [ElectionAction::StartElection { .. }]),
            "{out:?}"
        );
    }

    #[test]
    fn a_node_in_the_lease_refuses_pre_votes_and_keeps_its_epoch() {
        let mut r = raft();
        let mut c = five(creds(1, 4, 2));
        c.leader = Some(NodeId(5));
        c.leader_contact = 900;
        c.now = 1_000;
        let out = r.on_message(
            &c,
            NodeId(1),
            ElectionBody::Raft(RaftMsg::PreVote {
                candidate: creds(1, 4, 1),
            }),
        );
        assert_eq!(pre_vote_resp(&out), Some(false));
        assert!(
            !r.adopts_epoch(&c, None),
            "a vote request inside the lease is dropped"
        );
        // Once the leader has been silent for the failure timeout, the same request is granted.
        c.now = 1_400;
        let out = r.on_message(
            &c,
            NodeId(1),
            ElectionBody::Raft(RaftMsg::PreVote {
                candidate: creds(1, 4, 1),
            }),
        );
        assert_eq!(pre_vote_resp(&out), Some(true));
        assert!(r.adopts_epoch(&c, None));
    }

    #[test]
    fn a_pre_vote_needs_an_up_to_date_log() {
        let mut r = raft();
        let c = five(creds(2, 4, 2));
        let out = r.on_message(
            &c,
            NodeId(1),
            ElectionBody::Raft(RaftMsg::PreVote {
                candidate: creds(2, 3, 9),
            }),
        );
        assert_eq!(pre_vote_resp(&out), Some(false));
        let out = r.on_message(
            &c,
            NodeId(1),
            ElectionBody::Raft(RaftMsg::PreVote {
                candidate: creds(3, 1, 1),
            }),
        );
        assert_eq!(pre_vote_resp(&out), Some(true));
    }
}
