//! The node's snapshot paths: taking one every `--snapshot-every` applied entries (and
//! compacting the log behind the previous one), the checkpoint record that makes it durable,
//! sending it to a follower the log no longer reaches, and installing a received one. The
//! decisions live in [`crate::core::snapshot`] and
//! [`crate::core::replication::snapshot_send`]; this is the glue.

use super::Node;
use crate::core::replication::snapshot_send::Transfer;
use crate::core::snapshot::{self, Incoming, Received, Snapshot};
use crate::core::wire::PeerMsg;
use crate::core::{Lane, Persist};
use crate::events::{Credentials, Event};
use crate::ids::{NodeId, Role};
use crate::settings::QuorumMode;
use std::sync::Arc;

/// What the node keeps about snapshots.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    /// Entries between two snapshots (0: never).
    every: u64,
    /// Where in each stretch of `every` this node snapshots ([`snapshot::phase`]).
    phase: u64,
    /// The latest snapshot taken or installed.
    pub latest: Option<Arc<Snapshot>>,
    /// Its JSON text: made when the snapshot is taken, or when a follower first needs it.
    text: Option<Arc<str>>,
    /// A snapshot being received from the leader.
    incoming: Incoming,
}

impl Snapshots {
    /// Snapshots restored from disk; none are taken until [`Node::snapshot_every`].
    pub fn new(latest: Option<Snapshot>) -> Snapshots {
        Snapshots {
            latest: latest.map(Arc::new),
            ..Snapshots::default()
        }
    }

    fn set(&mut self, s: Snapshot, text: Option<Arc<str>>) {
        self.latest = Some(Arc::new(s));
        self.text = text;
    }

    fn due(&self, index: u64) -> bool {
        snapshot::due(index, self.every, self.phase)
    }
}

impl Node {
    /// Snapshots every this many applied entries (0: never). Without a quorum
    /// (`--quorum none`) never: a split brain's loser rebuilds its chat state from its whole
    /// log when it rejoins.
    pub fn snapshot_every(mut self, every: u64) -> Node {
        self.snapshots.every = match self.cfg.quorum {
            QuorumMode::Majority => every,
            QuorumMode::None => 0,
        };
        self.snapshots.phase = snapshot::phase(self.cfg.id.0, self.snapshots.every);
        self
    }

    /// The latest snapshot (taken or installed), if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshots.latest.as_deref()
    }

    /// Index of the first log entry held (1 until the log is compacted).
    pub fn first_log_index(&self) -> u64 {
        self.log.start().0 + 1
    }

    /// Called right after applying `index` (of `epoch`): snapshots there if it is due, and
    /// drops the log up to the previous snapshot.
    pub(super) fn maybe_snapshot(&mut self, index: u64, epoch: u64) {
        if !self.snapshots.due(index) {
            return;
        }
        if let Some(prev) = self.snapshots.latest.clone() {
            self.log.compact_to(prev.index, prev.epoch);
        }
        let s = Snapshot {
            index,
            epoch,
            chat: self.chat.clone(),
        };
        // Encoded once: its size for the event, and the text a lagging follower is sent.
        let text: Arc<str> = s.encode().into();
        let bytes = text.len() as u64;
        self.snapshots.set(s, Some(text));
        self.checkpoint(true);
        let log_start = self.log.start().0;
        self.emit(Event::SnapshotTaken {
            index,
            bytes,
            log_start,
        });
    }

    /// Writes everything durable as one [`Persist::Checkpoint`]: the hard state, the latest
    /// snapshot and the log handed to the driver so far. `taken`: the snapshot is of this
    /// node's own applied log, so what it already wrote implies it
    /// ([`Persist::Checkpoint::in_background`]).
    fn checkpoint(&mut self, taken: bool) {
        let Some(s) = self.snapshots.latest.clone() else {
            return;
        };
        let persisted = self.persisted;
        let entries = self
            .log
            .entries()
            .iter()
            .take_while(|e| e.index <= persisted)
            .cloned()
            .collect();
        let record = Persist::Checkpoint {
            epoch: self.epoch,
            voted_for: self.voted_for,
            snapshot: s,
            log_start: self.log.start(),
            entries,
            in_background: taken,
        };
        let output = self.durability.record(record, persisted);
        self.out.push(output);
    }

    /// `peer` needs entries the log no longer holds: send it the latest snapshot.
    pub(super) fn start_snapshot(&mut self, peer: NodeId) {
        let Some(s) = self.snapshots.latest.clone() else {
            return;
        };
        let text = self
            .snapshots
            .text
            .get_or_insert_with(|| s.encode().into())
            .clone();
        let last = self.log.last_index();
        self.leader_state
            .progress(peer, last)
            .become_snapshot(s.index);
        let transfer = Transfer::new(s.index, s.epoch, text);
        self.emit(Event::SnapshotSending {
            peer,
            index: s.index,
            bytes: transfer.total(),
        });
        self.leader_state.transfers.insert(peer, transfer);
        self.send_chunk(peer);
    }

    /// Sends `peer` the chunk its transfer is at.
    fn send_chunk(&mut self, peer: NodeId) {
        let Some(t) = self.leader_state.transfers.get(&peer) else {
            return;
        };
        let (offset, data) = t.chunk();
        let msg = PeerMsg::Snapshot {
            epoch: self.epoch,
            index: t.index,
            index_epoch: t.epoch,
            total: t.total(),
            offset,
            data: data.to_string(),
        };
        self.send_on(peer, &msg, Lane::Bulk);
    }

    /// Every heartbeat, for a follower in the snapshot state: resend what went unanswered.
    pub(super) fn heartbeat_transfer(&mut self, peer: NodeId) {
        let resend = self
            .leader_state
            .transfers
            .get_mut(&peer)
            .is_some_and(|t| t.on_heartbeat());
        if resend {
            self.send_chunk(peer);
        }
    }

    pub(super) fn on_snapshot_ack(&mut self, from: NodeId, epoch: u64, index: u64, received: u64) {
        if epoch > self.epoch {
            self.adopt_epoch(epoch);
            return;
        }
        if epoch != self.epoch || self.role != Role::Leader {
            return;
        }
        let more = match self.leader_state.transfers.get_mut(&from) {
            Some(t) if t.index == index => t.on_ack(received),
            _ => false,
        };
        if more {
            self.send_chunk(from);
        }
    }

    /// A chunk of the leader's snapshot.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_snapshot_chunk(
        &mut self,
        from: NodeId,
        epoch: u64,
        index: u64,
        index_epoch: u64,
        total: u64,
        offset: u64,
        data: &str,
    ) {
        if epoch < self.epoch {
            self.refuse_stale(from);
            return;
        }
        if epoch > self.epoch {
            self.adopt_epoch(epoch);
        }
        if self.role == Role::Leader {
            return;
        }
        match self.leader {
            None => {
                let credentials = Credentials {
                    last_log_epoch: index_epoch,
                    last_log_index: index,
                    id: from,
                };
                self.accept_leader(from, credentials);
            }
            Some(l) if l != from => return,
            Some(_) => {}
        }
        self.leader_contact = self.now;
        if index <= self.applied {
            // Installed already (its acknowledgement was lost), or the log caught up: the
            // committed prefix up to `index` is the leader's.
            self.ack_snapshot(from, index);
            return;
        }
        match self
            .snapshots
            .incoming
            .chunk(epoch, index, total, offset, data)
        {
            Received::Partial(received) => {
                let msg = PeerMsg::SnapshotAck {
                    epoch: self.epoch,
                    index,
                    received,
                };
                self.send_on(from, &msg, Lane::Control);
            }
            Received::Complete(s) if s.epoch == index_epoch => self.install(from, s, total),
            Received::Complete(_) => {
                tracing::warn!("snapshot {index} from {from}: its epoch is not {index_epoch}")
            }
            // Not answered: the leader sends again at its next heartbeat, from the start.
            Received::Bad(why) => tracing::warn!("snapshot {index} from {from}: {why}"),
        }
    }

    /// Takes the leader's snapshot as this node's state: the log is kept after it where it
    /// matches and dropped where it does not; the entries in between are never applied here.
    fn install(&mut self, from: NodeId, s: Snapshot, bytes: u64) {
        let index = s.index;
        let skipped_from = self.applied + 1;
        self.log.compact_to(s.index, s.epoch);
        let old = std::mem::replace(&mut self.chat, s.chat.clone());
        self.applied = index;
        self.commit = self.commit.max(index);
        self.persisted = self.log.last_index();
        self.verified = self.verified.max(index);
        self.snapshots.set(s, None);
        self.checkpoint(false);
        self.emit(Event::SnapshotInstalled {
            from,
            index,
            skipped_from,
            bytes,
        });
        let mut outs = Vec::new();
        self.sessions
            .snapshot_installed(&old, &self.chat, &mut outs);
        self.session_outputs(outs);
        self.ack_snapshot(from, index);
    }

    /// The follower's log matches the leader's up to `index` (sent once that is durable).
    fn ack_snapshot(&mut self, to: NodeId, index: u64) {
        let msg = PeerMsg::AppendAck {
            epoch: self.epoch,
            success: true,
            match_index: index,
            rejected: 0,
        };
        self.send_to(to, &msg);
    }
}
