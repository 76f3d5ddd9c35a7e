//! Where a client should log in (issue 12; seeds 002 and 004: "the leader assigns and
//! redistributes clients"). Every server reports its load — users logged in, and whether it
//! is at its `--max-clients` — in its beacons. The leader turns the loads of the servers in
//! its view into a table and publishes it in its heartbeats; every server answers from the
//! leader's latest table (the leader from its own), so a `server_here` or a `welcome` names
//! the same least-loaded server wherever a client asks. Between two heartbeats a server adds
//! the clients it sent somewhere to its copy of the table, so a burst of logins spreads
//! instead of herding onto the server that was emptiest at the last heartbeat.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One server's load in the leader's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLoad {
    pub node: NodeId,
    pub clients: u32,
}

/// A server keeps a connecting client unless it already serves at least this many more
/// users than the least-loaded one: staying would make the gap two, moving makes it none.
/// Equal loads never move anyone (a move costs the client a second connection).
pub const MOVE_MARGIN: u32 = 1;

/// The loads this server heard and the leader's table it answers from.
#[derive(Debug, Default)]
pub struct Assignment {
    /// Each peer's last reported load: (users logged in, full).
    reported: BTreeMap<NodeId, (u32, bool)>,
    /// The leader's latest table (servers with room), plus this server's hand-outs since.
    table: Vec<ServerLoad>,
}

impl Assignment {
    /// A beacon from `from` said it serves `clients` users and whether it is full.
    pub fn reported(&mut self, from: NodeId, clients: u32, full: bool) {
        self.reported.insert(from, (clients, full));
    }

    /// The leader's table: every server in `view` (the leader included, with its own load)
    /// that has room, by its last reported load. A peer not heard from yet counts as empty.
    pub fn leader_table(&self, me: (NodeId, u32, bool), view: &[NodeId]) -> Vec<ServerLoad> {
        view.iter()
            .filter_map(|&node| {
                let (clients, full) = if node == me.0 {
                    (me.1, me.2)
                } else {
                    self.reported.get(&node).copied().unwrap_or((0, false))
                };
                (!full).then_some(ServerLoad { node, clients })
            })
            .collect()
    }

    /// The leader's new table replaces this server's copy (and the hand-outs counted in it).
    pub fn adopt(&mut self, table: Vec<ServerLoad>) {
        self.table = table;
    }

    pub fn table(&self) -> &[ServerLoad] {
        &self.table
    }

    /// This server knows its own load better than the last table: at least `clients`
    /// (seats taken now), and no entry at all once it is full.
    pub fn note_own(&mut self, me: NodeId, clients: u32, full: bool) {
        if full {
            self.table.retain(|s| s.node != me);
        } else if let Some(s) = self.table.iter_mut().find(|s| s.node == me) {
            s.clients = s.clients.max(clients);
        }
    }

    /// The least-loaded server of the table among `usable` ones, ties broken by `pick` (a
    /// random number), counted as one more client there. `None` when none is usable.
    pub fn choose(&mut self, usable: impl Fn(NodeId) -> bool, pick: u64) -> Option<NodeId> {
        let least = self
            .table
            .iter()
            .filter(|s| usable(s.node))
            .map(|s| s.clients)
            .min()?;
        let ties: Vec<usize> = (0..self.table.len())
            .filter(|&i| usable(self.table[i].node) && self.table[i].clients == least)
            .collect();
        let chosen = &mut self.table[ties[(pick % ties.len() as u64) as usize]];
        chosen.clients += 1;
        Some(chosen.node)
    }

    /// Whether a client connecting to `here` (already serving `clients` users, not counting
    /// this one; `full` or not) should move to a server of the table: only when `here` is
    /// full or the best usable one serves at least [`MOVE_MARGIN`] fewer. That server is
    /// then counted as one more client.
    pub fn better_than(
        &mut self,
        here: (NodeId, u32, bool),
        usable: impl Fn(NodeId) -> bool,
        pick: u64,
    ) -> Option<NodeId> {
        let (me, clients, full) = here;
        let best = self
            .table
            .iter()
            .filter(|s| s.node != me && usable(s.node))
            .map(|s| s.clients)
            .min()?;
        if !full && best + MOVE_MARGIN > clients {
            return None;
        }
        self.choose(|n| n != me && usable(n), pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(node: u64, clients: u32) -> ServerLoad {
        ServerLoad {
            node: NodeId(node),
            clients,
        }
    }

    #[test]
    fn the_leader_table_holds_the_servers_in_view_with_room() {
        let mut a = Assignment::default();
        a.reported(NodeId(2), 4, false);
        a.reported(NodeId(3), 3, true);
        a.reported(NodeId(9), 0, false); // not in the view: dead or cut off
        let view = [NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
        assert_eq!(
            a.leader_table((NodeId(1), 1, false), &view),
            [load(1, 1), load(2, 4), load(4, 0)]
        );
    }

    #[test]
    fn a_burst_of_clients_is_spread_not_herded() {
        let mut a = Assignment::default();
        a.adopt(vec![load(1, 0), load(2, 0), load(3, 0)]);
        let mut got = BTreeMap::new();
        for pick in 0..9 {
            *got.entry(a.choose(|_| true, pick).unwrap()).or_insert(0) += 1;
        }
        assert_eq!(got.values().copied().collect::<Vec<_>>(), [3, 3, 3]);
    }

    #[test]
    fn a_server_counts_its_own_load_from_its_seats_not_the_stale_table() {
        let mut a = Assignment::default();
        a.adopt(vec![load(1, 0), load(2, 1)]);
        a.note_own(NodeId(1), 3, false);
        assert_eq!(a.choose(|_| true, 0), Some(NodeId(2)));
        a.note_own(NodeId(2), 0, true);
        assert_eq!(a.table(), [load(1, 3)]);
    }

    #[test]
    fn an_unusable_server_is_never_chosen() {
        let mut a = Assignment::default();
        a.adopt(vec![load(1, 5), load(2, 0)]);
        assert_eq!(a.choose(|n| n != NodeId(2), 0), Some(NodeId(1)));
        assert_eq!(a.choose(|_| false, 0), None);
    }

    #[test]
    fn a_client_moves_only_off_a_full_or_clearly_busier_server() {
        let mut a = Assignment::default();
        a.adopt(vec![load(1, 2), load(2, 2), load(3, 3)]);
        // As loaded as the best: stay (the client makes it one more, which is balanced).
        assert_eq!(a.better_than((NodeId(1), 2, false), |_| true, 0), None);
        // One more than the best already: staying would make it two; go.
        assert_eq!(
            a.better_than((NodeId(3), 3, false), |_| true, 0),
            Some(NodeId(1))
        );
        // Full: go anywhere with room, even a busier one.
        let mut a = Assignment::default();
        a.adopt(vec![load(1, 0), load(2, 6)]);
        assert_eq!(
            a.better_than((NodeId(1), 3, true), |_| true, 0),
            Some(NodeId(2))
        );
    }
}
