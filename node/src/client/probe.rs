//! One-shot questions to one server: `chat-node status` and `chat-node health`.

use super::connection::Connection;
use super::error::ClientError;
use crate::protocol::{ClusterStatus, Request};
use std::time::Duration;

/// Asks the server at `addr` for its view of the cluster, all within `timeout`.
pub async fn cluster_status(addr: &str, timeout: Duration) -> Result<ClusterStatus, ClientError> {
    let started = tokio::time::Instant::now();
    let conn = Connection::connect(addr, timeout).await?;
    let left = timeout.saturating_sub(started.elapsed());
    let reply = conn.request(Request::Status, left).await?;
    reply
        .status
        .ok_or_else(|| ClientError::Protocol("status reply without status".into()))
}

/// A small table of the cluster for people.
pub fn format_status(status: &ClusterStatus) -> String {
    let mut out = format!(
        "node {} · {} · epoch {} · leader {} · commit {}/{} · {} election, quorum {}\n",
        status.node,
        status.role,
        status.epoch,
        status
            .leader
            .map(|l| format!("{l} ({})", status.leader_addr.as_deref().unwrap_or("?")))
            .unwrap_or_else(|| "none".into()),
        status.commit_index,
        status.last_index,
        status.election,
        status.quorum,
    );
    out.push_str(&format!(
        "{:<20} {:<22} {:<6} {}\n",
        "MEMBER", "ADDRESS", "ALIVE", "ROLE"
    ));
    let mut members = status.members.clone();
    members.sort_by_key(|m| m.id);
    for m in &members {
        let role = if Some(m.id) == status.leader {
            "leader"
        } else {
            ""
        };
        let me = if m.id == status.node {
            " (this node)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<20} {:<22} {:<6} {role}{me}\n",
            m.id.to_string(),
            m.addr,
            if m.alive { "yes" } else { "no" },
        ));
    }
    out.push_str(&format!(
        "{} of {} expected members known\n",
        members.len(),
        status.cluster_size
    ));
    out
}
