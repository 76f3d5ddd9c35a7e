//! Hand-made histories for the checkers' tests.

use crate::history::{ClientAction, ClientRecord, FaultAction, FaultRecord, Record};
use crate::scenario::Scenario;
use chat_node::events::{Credentials, Event, EventRecord, EVENTS_VERSION};
use chat_node::ids::{NodeId, Role};
use chat_node::protocol::InboxMessage;

pub fn scenario(checks: &str) -> Scenario {
    scenario_nodes(checks, 3)
}

/// [`scenario`] with `nodes` nodes.
pub fn scenario_nodes(checks: &str, nodes: usize) -> Scenario {
    let text = format!(
        "name: t\nabout: a hand-made history for a checker test\n\
         cluster: {{nodes: {nodes}, heartbeat: 100ms, failure_timeout: 500ms}}\n\
         workload: {{users: 3, rooms: [general], rate: 5/s}}\n\
         steps:\n  - sleep: 1s\nchecks: [{checks}]\n"
    );
    Scenario::parse(&text, "t.yaml").expect("test scenario parses")
}

pub fn ev(ts: u64, node: u64, epoch: u64, role: Role, event: Event) -> Record {
    Record::Node(EventRecord {
        v: EVENTS_VERSION,
        ts_ms: ts,
        node: NodeId(node),
        epoch,
        role,
        event,
    })
}

pub fn creds(epoch: u64, index: u64, id: u64) -> Credentials {
    Credentials {
        last_log_epoch: epoch,
        last_log_index: index,
        id: NodeId(id),
    }
}

/// `node` starts and wins `epoch` (election start, role change, its own leader_elected), and
/// every follower accepts.
pub fn elect(ts: u64, leader: u64, epoch: u64, followers: &[u64], c: (u64, u64)) -> Vec<Record> {
    let mut v = vec![
        // Every epoch is started by a member (the legitimacy check asks).
        ev(
            ts,
            leader,
            epoch,
            Role::Candidate,
            Event::ElectionStarted {
                trigger: "test".into(),
                algorithm: "lcr".into(),
                credentials: creds(c.0, c.1, leader),
            },
        ),
        ev(
            ts,
            leader,
            epoch,
            Role::Leader,
            Event::RoleChanged {
                from: Role::Candidate,
                to: Role::Leader,
                reason: "won".into(),
            },
        ),
        ev(
            ts,
            leader,
            epoch,
            Role::Leader,
            Event::LeaderElected {
                leader: NodeId(leader),
                votes: followers.len() + 1,
                credentials: creds(c.0, c.1, leader),
            },
        ),
    ];
    for f in followers {
        v.push(ev(
            ts + 2,
            *f,
            epoch,
            Role::Follower,
            Event::LeaderElected {
                leader: NodeId(leader),
                votes: 0,
                credentials: creds(c.0, c.1, leader),
            },
        ));
    }
    v
}

/// Node `node`'s `started` event (a new incarnation) in a cluster of `size`.
pub fn started(ts: u64, node: u64, size: usize) -> Record {
    ev(
        ts,
        node,
        0,
        Role::Follower,
        Event::Started {
            cluster: "t".into(),
            election: "lcr".into(),
            quorum: "majority".into(),
            cluster_size: size,
            heartbeat_ms: 100,
            failure_timeout_ms: 500,
            restored_entries: 0,
        },
    )
}

pub fn view(ts: u64, node: u64, epoch: u64, role: Role, members: &[u64]) -> Record {
    ev(
        ts,
        node,
        epoch,
        role,
        Event::ViewChanged {
            members: members.iter().map(|m| NodeId(*m)).collect(),
        },
    )
}

pub fn peer_down(ts: u64, node: u64, peer: u64) -> Record {
    ev(
        ts,
        node,
        1,
        Role::Follower,
        Event::PeerDown {
            peer: NodeId(peer),
            silence_ms: 500,
        },
    )
}

pub fn committed(ts: u64, node: u64, epoch: u64, role: Role, index: u64, id: &str) -> Record {
    ev(
        ts,
        node,
        epoch,
        role,
        Event::Committed {
            index,
            entry_epoch: epoch,
            op: "send".into(),
            from: Some("u1".into()),
            id: Some(id.into()),
            target: None,
            room_seq: None,
            duplicate: false,
        },
    )
}

pub fn fault(ts: u64, action: FaultAction, nodes: &[u64]) -> Record {
    Record::Fault(FaultRecord {
        ts_ms: ts,
        action,
        nodes: nodes.iter().map(|n| NodeId(*n)).collect(),
        step: Some(0),
        groups: vec![],
        to: vec![],
        link: None,
        forge: None,
    })
}

pub fn partition(ts: u64, groups: &[&[u64]]) -> Record {
    Record::Fault(FaultRecord {
        ts_ms: ts,
        action: FaultAction::Partition,
        nodes: vec![],
        step: Some(0),
        groups: groups
            .iter()
            .map(|g| g.iter().map(|n| NodeId(*n)).collect())
            .collect(),
        to: vec![],
        link: None,
        forge: None,
    })
}

/// `user` logged in on `node` (an empty mailbox).
pub fn login(ts: u64, user: &str, node: u64) -> Record {
    client(
        ts,
        user,
        ClientAction::Login {
            node: Some(NodeId(node)),
            mailbox: 0,
        },
    )
}

pub fn client(ts: u64, user: &str, action: ClientAction) -> Record {
    Record::Client(ClientRecord {
        ts_ms: ts,
        user: user.into(),
        action,
    })
}

pub fn send(ts: u64, user: &str, id: &str, to: Option<&str>, room: Option<&str>) -> Record {
    client(
        ts,
        user,
        ClientAction::Send {
            id: id.into(),
            to: to.map(Into::into),
            room: room.map(Into::into),
            text_len: 5,
            attempt: 1,
        },
    )
}

pub fn acked(ts: u64, user: &str, id: &str, index: u64) -> Record {
    client(
        ts,
        user,
        ClientAction::Acked {
            id: id.into(),
            index,
            room_seq: None,
            duplicate: false,
        },
    )
}

pub fn received(
    ts: u64,
    user: &str,
    from: &str,
    id: &str,
    room: Option<&str>,
    useq: u64,
    index: u64,
) -> Record {
    client(
        ts,
        user,
        ClientAction::Received {
            message: InboxMessage {
                useq,
                from: from.into(),
                room: room.map(Into::into),
                room_seq: room.map(|_| index),
                id: id.into(),
                text: "hello".into(),
                index,
            },
            replay: false,
        },
    )
}
