//! The replicated chat state machine. Every node applies the same committed entries in the
//! same order, so everything here must be deterministic (ordered maps, no clock, no RNG).

use super::dedup::Dedup;
use crate::events::Target;
use crate::protocol::{ErrorCode, InboxMessage, RoomInfo};
use serde::{Deserialize, Serialize};
use std::collections::{vec_deque, BTreeMap, BTreeSet, VecDeque};

/// One chat operation, the payload of a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ChatOp {
    /// Written by a new leader to commit its epoch; also sets everyone offline. Every server
    /// then proposes a [`ChatOp::Resume`] for each session it still holds (issue 12: clients
    /// on surviving servers keep their connections), so what stays offline is exactly the
    /// sessions of servers that are gone.
    NewEpoch,
    /// A login. `session` is the server-issued token of the session. With `password_hash` it
    /// is the name's registration: the leader hashed the password (argon2id, random salt)
    /// before proposing, so every replica stores the same hash and none sees the password.
    Login {
        user: String,
        session: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_hash: Option<String>,
    },
    Logout {
        user: String,
        session: String,
    },
    /// A server still holds `session` of `user` after a new epoch: online again, with no
    /// presence line (nobody saw it go offline), unless another session is online by now.
    Resume {
        user: String,
        session: String,
    },
    Send {
        from: String,
        to: String,
        id: String,
        text: String,
    },
    Join {
        user: String,
        room: String,
    },
    Leave {
        user: String,
        room: String,
    },
    Post {
        from: String,
        room: String,
        id: String,
        text: String,
    },
    Ack {
        user: String,
        upto: u64,
    },
}

impl ChatOp {
    /// The `op` name used in `committed` events.
    pub fn kind(&self) -> &'static str {
        match self {
            ChatOp::NewEpoch => "noop",
            ChatOp::Login { .. } => "login",
            ChatOp::Logout { .. } => "logout",
            ChatOp::Resume { .. } => "resume",
            ChatOp::Send { .. } => "send",
            ChatOp::Join { .. } => "join",
            ChatOp::Leave { .. } => "leave",
            ChatOp::Post { .. } => "post",
            ChatOp::Ack { .. } => "ack",
        }
    }

    /// Sender, message id and target of a chat message.
    pub fn message(&self) -> Option<(&str, &str, Target)> {
        match self {
            ChatOp::Send { from, to, id, .. } => Some((from, id, Target::User(to.clone()))),
            ChatOp::Post { from, room, id, .. } => Some((from, id, Target::Room(room.clone()))),
            _ => None,
        }
    }
}

/// A registered user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The session token of the online session, if any.
    pub online: Option<String>,
    /// The argon2id PHC string of the user's password (`None` only for a name registered by
    /// a version-1 log entry: its next login sets the password).
    pub password_hash: Option<String>,
    /// The messages delivered to the user and not yet acknowledged, oldest first: the one
    /// at position `p` has `useq` = `dropped + p + 1`.
    pub inbox: VecDeque<InboxMessage>,
    /// How many messages were delivered before the first one in `inbox`: all acknowledged
    /// and dropped (memory stays bounded by what clients have not confirmed yet).
    #[serde(default)]
    pub dropped: u64,
    /// The acknowledgement cursor: the user's client has confirmed (with a committed `ack`)
    /// that it holds every inbox message with `useq <= acked`. Those messages are never
    /// replayed again at a login, so applying the `ack` drops them; `useq` numbering
    /// continues. Mailbox paging on the leader (`sessions`) also waits for acks, but the
    /// cursor moves only when an `ack` entry is applied, identically on every replica.
    pub acked: u64,
}

impl User {
    /// The `useq` of the last message delivered.
    fn delivered(&self) -> u64 {
        self.dropped + self.inbox.len() as u64
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub members: BTreeSet<String>,
    /// Sequence number the next post gets.
    pub next_seq: u64,
}

/// What applying one entry produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The answer for the client that proposed the entry.
    pub reply: Result<ChatReply, (ErrorCode, String)>,
    /// Messages written into inboxes: (recipient, message).
    pub deliveries: Vec<(String, InboxMessage)>,
    /// A user came online or went offline.
    pub presence: Option<(String, bool)>,
    /// A login made this the user's online session: every server closes its connections of
    /// the user that hold another session (`session_taken_over`).
    pub session: Option<(String, String)>,
}

/// A successful apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatReply {
    /// For messages: the index of the first commit of this id.
    pub index: Option<u64>,
    pub room_seq: Option<u64>,
    pub duplicate: bool,
    /// For a login: it registered the name.
    pub registered: bool,
}

/// The whole chat state (serialised whole into a snapshot: [`crate::core::snapshot`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatState {
    pub users: BTreeMap<String, User>,
    pub rooms: BTreeMap<String, Room>,
    /// The sender's latest message ids and their first commits ([`Dedup`]: a window per
    /// sender, so a retry is answered with the first commit).
    dedup: Dedup,
}

fn ok() -> Result<ChatReply, (ErrorCode, String)> {
    Ok(ChatReply::default())
}

impl ChatState {
    /// Applies the entry at `index`.
    pub fn apply(&mut self, index: u64, op: &ChatOp) -> Applied {
        let mut out = Applied {
            reply: ok(),
            deliveries: Vec::new(),
            presence: None,
            session: None,
        };
        match op {
            ChatOp::NewEpoch => {
                for u in self.users.values_mut() {
                    u.online = None;
                }
            }
            ChatOp::Login {
                user,
                session,
                password_hash,
            } => {
                let u = self.users.entry(user.clone()).or_default();
                if password_hash.is_some() && u.password_hash.is_some() {
                    // Two first logins raced: the earlier registration stands.
                    out.reply = Err((
                        ErrorCode::AuthFailed,
                        format!("`{user}` was registered by another login just now; log in with its password"),
                    ));
                    return out;
                }
                // Every login entry was checked against the password before it was proposed,
                // so it takes the session over from any other: the user proved who they are,
                // and a session whose server died would otherwise lock them out.
                if u.online.is_none() {
                    out.presence = Some((user.clone(), true));
                }
                u.online = Some(session.clone());
                out.session = Some((user.clone(), session.clone()));
                if let Some(hash) = password_hash {
                    u.password_hash = Some(hash.clone());
                    out.reply = Ok(ChatReply {
                        registered: true,
                        ..ChatReply::default()
                    });
                }
            }
            ChatOp::Logout { user, session } => {
                if let Some(u) = self.users.get_mut(user) {
                    if u.online.as_deref() == Some(session.as_str()) {
                        u.online = None;
                        out.presence = Some((user.clone(), false));
                    }
                }
            }
            ChatOp::Resume { user, session } => {
                if let Some(u) = self.users.get_mut(user) {
                    if u.online.is_none() {
                        u.online = Some(session.clone());
                    }
                }
            }
            ChatOp::Join { user, room } => {
                self.rooms
                    .entry(room.clone())
                    .or_insert_with(|| Room {
                        members: BTreeSet::new(),
                        next_seq: 1,
                    })
                    .members
                    .insert(user.clone());
            }
            ChatOp::Leave { user, room } => {
                let removed = self
                    .rooms
                    .get_mut(room)
                    .is_some_and(|r| r.members.remove(user));
                if !removed {
                    out.reply = Err((
                        ErrorCode::NotMember,
                        format!("`{user}` is not a member of `{room}`"),
                    ));
                }
            }
            ChatOp::Ack { user, upto } => {
                if let Some(u) = self.users.get_mut(user) {
                    u.acked = u.acked.max((*upto).min(u.delivered()));
                    // Acknowledged messages are never replayed again: drop them.
                    while u.dropped < u.acked {
                        u.inbox.pop_front();
                        u.dropped += 1;
                    }
                }
            }
            ChatOp::Send { from, to, id, text } => {
                if let Some(dup) = self.duplicate(from, id) {
                    out.reply = Ok(dup);
                } else if !self.users.contains_key(to) {
                    out.reply = Err((
                        ErrorCode::UnknownUser,
                        format!("`{to}` has never registered"),
                    ));
                } else {
                    self.dedup.insert(from, id, (index, None));
                    let msg = self.deliver(to, from, None, id, text, index);
                    out.deliveries.push((to.clone(), msg));
                    out.reply = Ok(ChatReply {
                        index: Some(index),
                        ..ChatReply::default()
                    });
                }
            }
            ChatOp::Post {
                from,
                room,
                id,
                text,
            } => {
                if let Some(dup) = self.duplicate(from, id) {
                    out.reply = Ok(dup);
                } else {
                    let members = match self.rooms.get_mut(room) {
                        Some(r) if r.members.contains(from) => {
                            let seq = r.next_seq;
                            r.next_seq += 1;
                            Some((seq, r.members.iter().cloned().collect::<Vec<_>>()))
                        }
                        _ => None,
                    };
                    match members {
                        None => {
                            out.reply = Err((
                                ErrorCode::NotMember,
                                format!("`{from}` is not a member of `{room}`"),
                            ));
                        }
                        Some((seq, members)) => {
                            self.dedup.insert(from, id, (index, Some(seq)));
                            for m in members {
                                let msg =
                                    self.deliver(&m, from, Some((room, seq)), id, text, index);
                                out.deliveries.push((m, msg));
                            }
                            out.reply = Ok(ChatReply {
                                index: Some(index),
                                room_seq: Some(seq),
                                ..ChatReply::default()
                            });
                        }
                    }
                }
            }
        }
        out
    }

    fn duplicate(&self, from: &str, id: &str) -> Option<ChatReply> {
        self.dedup.get(from, id).map(|(index, room_seq)| ChatReply {
            index: Some(index),
            room_seq,
            duplicate: true,
            registered: false,
        })
    }

    fn deliver(
        &mut self,
        to: &str,
        from: &str,
        room: Option<(&String, u64)>,
        id: &str,
        text: &str,
        index: u64,
    ) -> InboxMessage {
        let u = self.users.entry(to.to_string()).or_default();
        let msg = InboxMessage {
            useq: u.delivered() + 1,
            from: from.to_string(),
            room: room.map(|(r, _)| r.clone()),
            room_seq: room.map(|(_, s)| s),
            id: id.to_string(),
            text: text.to_string(),
            index,
        };
        u.inbox.push_back(msg.clone());
        msg
    }

    pub fn is_registered(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The stored password hash of `user` (`None`: not registered, or registered without a
    /// password by a version-1 entry; either way the next login sets one).
    pub fn password_hash(&self, user: &str) -> Option<&str> {
        self.users
            .get(user)
            .and_then(|u| u.password_hash.as_deref())
    }

    /// The session token `user` is online with.
    pub fn online_session(&self, user: &str) -> Option<&str> {
        self.users.get(user).and_then(|u| u.online.as_deref())
    }

    pub fn acked(&self, user: &str) -> u64 {
        self.users.get(user).map_or(0, |u| u.acked)
    }

    /// Inbox messages after `useq` that are still held (acknowledged ones are dropped;
    /// nobody asks for those: a login replays from the acknowledgement cursor on).
    pub fn inbox_after(&self, user: &str, useq: u64) -> vec_deque::Iter<'_, InboxMessage> {
        static NONE: VecDeque<InboxMessage> = VecDeque::new();
        match self.users.get(user) {
            Some(u) => {
                let skip = useq.saturating_sub(u.dropped).min(u.inbox.len() as u64) as usize;
                u.inbox.range(skip..)
            }
            None => NONE.range(..),
        }
    }

    /// The `useq` of the last message delivered to `user` (0: none).
    pub fn delivered(&self, user: &str) -> u64 {
        self.users.get(user).map_or(0, User::delivered)
    }

    pub fn online_users(&self) -> Vec<String> {
        self.users
            .iter()
            .filter(|(_, u)| u.online.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn room_list(&self) -> Vec<RoomInfo> {
        self.rooms
            .iter()
            .map(|(name, r)| RoomInfo {
                name: name.clone(),
                members: r.members.iter().cloned().collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(s: &mut ChatState, i: u64, user: &str, session: &str) -> Applied {
        s.apply(
            i,
            &ChatOp::Login {
                user: user.into(),
                session: session.into(),
                password_hash: None,
            },
        )
    }

    fn send(from: &str, to: &str, id: &str) -> ChatOp {
        ChatOp::Send {
            from: from.into(),
            to: to.into(),
            id: id.into(),
            text: "hi".into(),
        }
    }

    #[test]
    fn a_login_takes_the_session_over_and_resume_restores_it_after_a_new_epoch() {
        let mut s = ChatState::default();
        let first = login(&mut s, 1, "alice", "s1");
        assert_eq!(first.presence, Some(("alice".into(), true)));
        // Another verified login takes over: no presence line, the new session is online
        // and every server is told to close connections on the old one.
        let second = login(&mut s, 2, "alice", "s2");
        assert!(second.reply.is_ok());
        assert_eq!(second.presence, None);
        assert_eq!(second.session, Some(("alice".into(), "s2".into())));
        assert_eq!(s.online_session("alice"), Some("s2"));
        // A new epoch takes everyone offline; the server still holding s2 resumes it.
        s.apply(3, &ChatOp::NewEpoch);
        assert_eq!(s.online_session("alice"), None);
        let resume = |session: &str| ChatOp::Resume {
            user: "alice".into(),
            session: session.into(),
        };
        let r = s.apply(4, &resume("s2"));
        assert_eq!(r.presence, None);
        assert_eq!(s.online_session("alice"), Some("s2"));
        // A late resume of an older session does not displace the online one.
        s.apply(5, &resume("s1"));
        assert_eq!(s.online_session("alice"), Some("s2"));
    }

    #[test]
    fn duplicate_message_ids_are_delivered_once() {
        let mut s = ChatState::default();
        login(&mut s, 1, "alice", "a");
        login(&mut s, 2, "bob", "b");
        let first = s.apply(3, &send("alice", "bob", "m1"));
        assert_eq!(first.deliveries.len(), 1);
        let again = s.apply(4, &send("alice", "bob", "m1"));
        assert!(again.deliveries.is_empty());
        let reply = again.reply.unwrap();
        assert!(reply.duplicate);
        assert_eq!(reply.index, Some(3));
        assert_eq!(s.inbox_after("bob", 0).len(), 1);
        let unknown = s.apply(5, &send("alice", "carol", "m2")).reply;
        assert_eq!(unknown.unwrap_err().0, ErrorCode::UnknownUser);
    }

    #[test]
    fn room_posts_reach_every_member_in_one_order() {
        let mut s = ChatState::default();
        for (i, u) in ["a", "b"].iter().enumerate() {
            login(&mut s, i as u64 + 1, u, u);
            s.apply(
                10 + i as u64,
                &ChatOp::Join {
                    user: u.to_string(),
                    room: "r".into(),
                },
            );
        }
        let post = |from: &str, id: &str| ChatOp::Post {
            from: from.into(),
            room: "r".into(),
            id: id.into(),
            text: "x".into(),
        };
        let p1 = s.apply(20, &post("a", "1"));
        assert_eq!(p1.deliveries.len(), 2);
        s.apply(21, &post("b", "1"));
        for u in ["a", "b"] {
            let seqs: Vec<_> = s.inbox_after(u, 0).map(|m| m.room_seq).collect();
            assert_eq!(seqs, vec![Some(1), Some(2)]);
        }
        let outsider = s.apply(22, &post("c", "1")).reply;
        assert_eq!(outsider.unwrap_err().0, ErrorCode::NotMember);
    }

    #[test]
    fn ack_moves_the_cursor_forward_only() {
        let mut s = ChatState::default();
        login(&mut s, 1, "a", "a");
        login(&mut s, 2, "b", "b");
        s.apply(3, &send("a", "b", "1"));
        s.apply(4, &send("a", "b", "2"));
        s.apply(
            5,
            &ChatOp::Ack {
                user: "b".into(),
                upto: 9,
            },
        );
        assert_eq!(s.acked("b"), 2, "capped at the inbox length");
        s.apply(
            6,
            &ChatOp::Ack {
                user: "b".into(),
                upto: 1,
            },
        );
        assert_eq!(s.acked("b"), 2);
        assert_eq!(s.inbox_after("b", 0).len(), 0, "acknowledged: dropped");
        assert_eq!(s.delivered("b"), 2);
        s.apply(7, &send("a", "b", "3"));
        let next: Vec<u64> = s.inbox_after("b", 0).map(|m| m.useq).collect();
        assert_eq!(next, [3], "useq numbering continues");
    }

    fn register(s: &mut ChatState, i: u64, user: &str, session: &str, hash: &str) -> Applied {
        s.apply(
            i,
            &ChatOp::Login {
                user: user.into(),
                session: session.into(),
                password_hash: Some(hash.into()),
            },
        )
    }

    #[test]
    fn a_registration_stores_the_hash_and_a_racing_second_one_is_refused() {
        let mut s = ChatState::default();
        let first = register(&mut s, 1, "alice", "t1", "$argon2id$first");
        assert!(first.reply.unwrap().registered);
        assert_eq!(s.password_hash("alice"), Some("$argon2id$first"));
        s.apply(
            2,
            &ChatOp::Logout {
                user: "alice".into(),
                session: "t1".into(),
            },
        );
        // A second first-login that was hashed before the first one committed.
        let second = register(&mut s, 3, "alice", "t2", "$argon2id$second");
        assert_eq!(second.reply.unwrap_err().0, ErrorCode::AuthFailed);
        assert_eq!(s.password_hash("alice"), Some("$argon2id$first"));
        assert_eq!(
            s.online_session("alice"),
            None,
            "the refused login is not online"
        );
        // A version-1 user (no hash) gets one at its next registration-style login.
        login(&mut s, 4, "old", "t");
        assert_eq!(s.password_hash("old"), None);
        s.apply(
            5,
            &ChatOp::Logout {
                user: "old".into(),
                session: "t".into(),
            },
        );
        assert!(register(&mut s, 6, "old", "t3", "$h").reply.is_ok());
        assert_eq!(s.password_hash("old"), Some("$h"));
    }

    #[test]
    fn sending_to_yourself_is_allowed() {
        let mut s = ChatState::default();
        login(&mut s, 1, "alice", "a");
        let r = s.apply(2, &send("alice", "alice", "m1"));
        assert!(r.reply.is_ok());
        assert_eq!(r.deliveries.len(), 1);
        assert_eq!(s.inbox_after("alice", 0).next().unwrap().from, "alice");
    }

    #[test]
    fn a_resend_with_another_text_keeps_the_first_text() {
        let mut s = ChatState::default();
        login(&mut s, 1, "alice", "a");
        login(&mut s, 2, "bob", "b");
        s.apply(3, &send("alice", "bob", "m1"));
        let changed = ChatOp::Send {
            from: "alice".into(),
            to: "bob".into(),
            id: "m1".into(),
            text: "a different text".into(),
        };
        let again = s.apply(4, &changed);
        assert!(again.reply.unwrap().duplicate);
        assert!(again.deliveries.is_empty());
        let inbox: Vec<_> = s.inbox_after("bob", 0).collect();
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].text, "hi");
    }
}
