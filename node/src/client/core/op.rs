//! One submitted operation: a request retried with the same content (so the same message id)
//! until it is answered or its deadline passes, or "be logged in" (`request: None`).

use super::output::OpId;
use crate::core::Millis;
use crate::protocol::Request;

#[derive(Clone, Debug)]
pub(super) struct Op {
    pub id: OpId,
    /// `None`: done once logged in.
    pub request: Option<Request>,
    /// The wire op, message id and target, for the observer.
    pub name: String,
    pub msg_id: Option<String>,
    pub target: Option<String>,
    /// After it a retryable failure ends the operation.
    pub deadline: Millis,
    pub attempts: u32,
    /// The `req` of the attempt in flight and when it times out.
    pub in_flight: Option<(u64, Millis)>,
    /// Answered `unavailable`: sent again on this connection at this time.
    pub resend_at: Option<Millis>,
    /// `unavailable` answers in a row on the current connection.
    pub unavailable_streak: u32,
}

impl Op {
    pub fn new(id: OpId, request: Option<Request>, deadline: Millis) -> Op {
        let (name, msg_id, target) = match &request {
            None => ("connect".to_string(), None, None),
            Some(r) => describe(r),
        };
        Op {
            id,
            request,
            name,
            msg_id,
            target,
            deadline,
            attempts: 0,
            in_flight: None,
            resend_at: None,
            unavailable_streak: 0,
        }
    }

    pub fn is_logout(&self) -> bool {
        matches!(self.request, Some(Request::Logout))
    }
}

/// The wire op, the message id (send/post) and the target (`user` or `#room`).
fn describe(request: &Request) -> (String, Option<String>, Option<String>) {
    let name = serde_json::to_value(request)
        .ok()
        .and_then(|v| v.get("op").and_then(|op| op.as_str()).map(str::to_string))
        .unwrap_or_default();
    let (id, target) = match request {
        Request::Send { to, id, .. } => (Some(id.clone()), Some(to.clone())),
        Request::Post { room, id, .. } => (Some(id.clone()), Some(format!("#{room}"))),
        Request::Join { room } | Request::Leave { room } => (None, Some(format!("#{room}"))),
        _ => (None, None),
    };
    (name, id, target)
}
