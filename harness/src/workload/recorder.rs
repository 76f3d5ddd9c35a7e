//! Turns the client library's session events (`chat_node::client::SessionEvent`) into history
//! records: every attempt, acknowledgement, failure, login and receipt of one user.

use super::Shared;
use crate::docker::now_ms;
use crate::history::{ClientAction, ClientRecord, HarnessRecord, Record};
use chat_node::client::session::Observer;
use chat_node::client::SessionEvent;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What the recorder remembers between events.
#[derive(Default)]
struct Memory {
    /// Messages still to come from the mailbox replayed at the latest login.
    replay_left: u64,
    /// Why the latest connection was given up (the reason a retried attempt failed).
    last_disconnect: Option<String>,
}

/// One user's recorder.
pub struct Recorder {
    user: String,
    records: mpsc::UnboundedSender<Record>,
    shared: Arc<Shared>,
    /// Length of the text being sent (the library's events carry the id, not the text).
    text_len: AtomicUsize,
    memory: Mutex<Memory>,
}

impl Recorder {
    pub fn new(
        user: &str,
        records: mpsc::UnboundedSender<Record>,
        shared: Arc<Shared>,
    ) -> Arc<Recorder> {
        Arc::new(Recorder {
            user: user.to_string(),
            records,
            shared,
            text_len: AtomicUsize::new(0),
            memory: Mutex::new(Memory::default()),
        })
    }

    /// The observer to hand to `Session::set_observer`.
    pub fn observer(self: &Arc<Self>) -> Observer {
        let me = self.clone();
        Arc::new(move |ts_ms, event| me.on_event(ts_ms, event))
    }

    /// Call before sending a message of this length.
    pub fn sending(&self, text_len: usize) {
        self.text_len.store(text_len, Ordering::Relaxed);
    }

    /// Records an action the user took outside the library (offline, online, joined).
    pub fn record(&self, action: ClientAction) {
        self.push(now_ms(), action);
    }

    fn push(&self, ts_ms: u64, action: ClientAction) {
        let _ = self.records.send(Record::Client(ClientRecord {
            ts_ms,
            user: self.user.clone(),
            action,
        }));
    }

    fn note(&self, ts_ms: u64, msg: String) {
        let _ = self.records.send(Record::Harness(HarnessRecord {
            ts_ms,
            msg: format!("{}: {msg}", self.user),
        }));
    }

    fn on_event(&self, ts_ms: u64, event: &SessionEvent) {
        let Ok(mut memory) = self.memory.lock() else {
            return;
        };
        match event {
            SessionEvent::Connected { node, mailbox, .. } => {
                memory.replay_left = *mailbox;
                self.push(
                    ts_ms,
                    ClientAction::Login {
                        node: Some(*node),
                        mailbox: *mailbox,
                    },
                );
            }
            SessionEvent::Disconnected { server, reason } => {
                memory.last_disconnect = Some(reason.clone());
                self.note(ts_ms, format!("left {server}: {reason}"));
            }
            SessionEvent::Attempt {
                op,
                id: Some(id),
                target,
                attempt,
                ..
            } if is_message(op) => {
                if *attempt > 1 {
                    // The library retries silently: the previous attempt failed.
                    let why = memory
                        .last_disconnect
                        .clone()
                        .unwrap_or_else(|| "no reply".into());
                    self.push(
                        ts_ms,
                        ClientAction::Failed {
                            id: id.clone(),
                            error: format!("attempt {} failed: {why}", attempt - 1),
                        },
                    );
                }
                let (to, room) = split_target(op, target.as_deref());
                self.push(
                    ts_ms,
                    ClientAction::Send {
                        id: id.clone(),
                        to,
                        room,
                        text_len: self.text_len.load(Ordering::Relaxed),
                        attempt: *attempt,
                    },
                );
            }
            SessionEvent::Acked {
                op,
                id: Some(id),
                reply,
                ..
            } if is_message(op) => self.push(
                ts_ms,
                ClientAction::Acked {
                    id: id.clone(),
                    index: reply.index.unwrap_or(0),
                    room_seq: reply.room_seq,
                    duplicate: reply.duplicate,
                },
            ),
            SessionEvent::Failed {
                op,
                id: Some(id),
                error,
                ..
            } if is_message(op) => self.push(
                ts_ms,
                ClientAction::Failed {
                    id: id.clone(),
                    error: error.clone(),
                },
            ),
            SessionEvent::Received(message) => {
                let replay = memory.replay_left > 0;
                memory.replay_left = memory.replay_left.saturating_sub(1);
                self.shared.last_receipt_ms.store(ts_ms, Ordering::Relaxed);
                self.push(
                    ts_ms,
                    ClientAction::Received {
                        message: message.clone(),
                        replay,
                    },
                );
            }
            SessionEvent::DuplicateDropped(message) => self.note(
                ts_ms,
                format!(
                    "dropped a second copy of useq {} (id {})",
                    message.useq, message.id
                ),
            ),
            _ => {}
        }
    }
}

fn is_message(op: &str) -> bool {
    op == "send" || op == "post"
}

/// The library names a room target `#room`.
fn split_target(op: &str, target: Option<&str>) -> (Option<String>, Option<String>) {
    match (op, target) {
        ("post", Some(t)) => (None, Some(t.trim_start_matches('#').to_string())),
        (_, Some(t)) => (Some(t.to_string()), None),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_node::ids::NodeId;
    use chat_node::protocol::{InboxMessage, OkReply};
    use std::sync::atomic::AtomicU64;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            users: 1,
            logged_in: AtomicUsize::new(0),
            all_in_at_ms: AtomicU64::new(0),
            last_receipt_ms: AtomicU64::new(0),
            busy: vec![],
        })
    }

    fn message(useq: u64) -> InboxMessage {
        InboxMessage {
            useq,
            from: "u2".into(),
            room: None,
            room_seq: None,
            id: format!("m{useq}"),
            text: "hi".into(),
            index: useq,
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Record>) -> Vec<ClientAction> {
        let mut out = Vec::new();
        while let Ok(r) = rx.try_recv() {
            if let Record::Client(c) = r {
                out.push(c.action);
            }
        }
        out
    }

    #[test]
    fn a_retried_post_records_the_failed_attempt_then_the_ack_with_the_same_id() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let rec = Recorder::new("u1", tx, shared());
        let observe = rec.observer();
        rec.sending(5);
        let attempt = |n| SessionEvent::Attempt {
            op: "post".into(),
            id: Some("x-1".into()),
            target: Some("#general".into()),
            attempt: n,
            server: "10.0.0.1:7070".into(),
        };
        observe(1, &attempt(1));
        observe(
            2,
            &SessionEvent::Disconnected {
                server: "10.0.0.1:7070".into(),
                reason: "the connection closed".into(),
            },
        );
        observe(3, &attempt(2));
        let reply = OkReply {
            index: Some(9),
            room_seq: Some(4),
            ..Default::default()
        };
        observe(
            4,
            &SessionEvent::Acked {
                op: "post".into(),
                id: Some("x-1".into()),
                target: Some("#general".into()),
                reply: Box::new(reply),
                attempts: 2,
            },
        );
        let actions = drain(&mut rx);
        assert_eq!(actions.len(), 4, "{actions:?}");
        assert!(
            matches!(&actions[0], ClientAction::Send { room: Some(r), attempt: 1, text_len: 5, .. } if r == "general")
        );
        assert!(
            matches!(&actions[1], ClientAction::Failed { id, error } if id == "x-1" && error.contains("connection closed"))
        );
        assert!(matches!(&actions[2], ClientAction::Send { attempt: 2, .. }));
        assert!(matches!(
            &actions[3],
            ClientAction::Acked {
                index: 9,
                room_seq: Some(4),
                ..
            }
        ));
    }

    #[test]
    fn the_mailbox_after_a_login_is_marked_as_replay_and_later_messages_are_not() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let rec = Recorder::new("u1", tx, shared());
        let observe = rec.observer();
        observe(
            1,
            &SessionEvent::Connected {
                server: "s".into(),
                node: NodeId(2),
                mailbox: 2,
            },
        );
        for useq in 1..=3 {
            observe(1 + useq, &SessionEvent::Received(message(useq)));
        }
        let replays: Vec<bool> = drain(&mut rx)
            .into_iter()
            .filter_map(|a| match a {
                ClientAction::Received { replay, .. } => Some(replay),
                _ => None,
            })
            .collect();
        assert_eq!(replays, vec![true, true, false]);
        assert_eq!(rec.shared.last_receipt_ms.load(Ordering::Relaxed), 4);
    }
}
