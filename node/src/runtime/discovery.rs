//! The discovery responder: a client's `find_server` broadcast for our cluster gets a unicast
//! `server_here` answer built from the node's status. Everything else on the peer port is the
//! core's business.

use crate::protocol::{ClusterStatus, Discovery};

/// If `bytes` is a `find_server` for `cluster`, the answer to send back to its source.
/// `status` (the node's status and its assignment) is only asked for then (most datagrams
/// on the port are the peers' traffic).
pub fn answer(
    bytes: &[u8],
    cluster: &str,
    my_client_addr: &str,
    status: impl FnOnce() -> (ClusterStatus, Option<String>),
) -> Option<Vec<u8>> {
    match serde_json::from_slice::<Discovery>(bytes) {
        Ok(Discovery::FindServer { cluster: asked }) if asked == cluster => {
            let (status, assigned_addr) = status();
            if status.max_clients.is_some_and(|max| status.clients >= max) {
                return None; // full: a client should find a server with room
            }
            let reply = Discovery::ServerHere {
                cluster: cluster.to_string(),
                node: status.node,
                addr: my_client_addr.to_string(),
                role: status.role,
                epoch: status.epoch,
                leader: status.leader,
                leader_addr: status.leader_addr.clone(),
                clients: status.clients,
                assigned_addr,
            };
            serde_json::to_vec(&reply).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{NodeId, Role};

    fn status() -> (ClusterStatus, Option<String>) {
        (base(), Some("10.99.0.4:7070".into()))
    }

    fn base() -> ClusterStatus {
        ClusterStatus {
            node: NodeId(2),
            role: Role::Follower,
            epoch: 3,
            leader: Some(NodeId(5)),
            leader_addr: Some("10.99.0.5:7070".into()),
            cluster_size: 3,
            members: vec![],
            commit_index: 0,
            last_index: 0,
            election: "lcr".into(),
            quorum: "majority".into(),
            clients: 2,
            max_clients: None,
        }
    }

    #[test]
    fn answers_our_cluster_with_the_leader_hint_and_the_assignment() {
        let ask = br#"{"t":"find_server","cluster":"faultline"}"#;
        let reply = answer(ask, "faultline", "10.99.0.2:7070", status).unwrap();
        let parsed: Discovery = serde_json::from_slice(&reply).unwrap();
        assert_eq!(
            parsed,
            Discovery::ServerHere {
                cluster: "faultline".into(),
                node: NodeId(2),
                addr: "10.99.0.2:7070".into(),
                role: Role::Follower,
                epoch: 3,
                leader: Some(NodeId(5)),
                leader_addr: Some("10.99.0.5:7070".into()),
                clients: 2,
                assigned_addr: Some("10.99.0.4:7070".into()),
            }
        );
    }

    #[test]
    fn a_full_server_does_not_offer_itself() {
        let ask = br#"{"t":"find_server","cluster":"faultline"}"#;
        let full = || {
            let s = ClusterStatus {
                max_clients: Some(2),
                ..base()
            };
            (s, None)
        };
        assert!(answer(ask, "faultline", "a:1", full).is_none());
        let room = || {
            let s = ClusterStatus {
                max_clients: Some(3),
                ..base()
            };
            (s, None)
        };
        assert!(answer(ask, "faultline", "a:1", room).is_some());
    }

    #[test]
    fn ignores_other_clusters_and_other_datagrams() {
        let other = br#"{"t":"find_server","cluster":"other"}"#;
        assert!(answer(other, "faultline", "a:1", status).is_none());
        assert!(answer(b"\x00garbage", "faultline", "a:1", status).is_none());
        assert!(answer(br#"{"t":"heartbeat"}"#, "faultline", "a:1", status).is_none());
    }
}
