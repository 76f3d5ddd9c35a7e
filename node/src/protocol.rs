//! The client protocol: TCP, one JSON object per line, documented in `docs/PROTOCOL.md`.
//! Also the UDP datagrams a client uses to find a server.

use crate::ids::{NodeId, Role};
use serde::{Deserialize, Serialize};

/// Version of the client protocol, sent in the `welcome` line. Version 2: passwords and
/// server-issued session tokens (docs/PROTOCOL.md, "Changes from version 1").
pub const PROTOCOL_VERSION: u32 = 2;
/// Longest accepted client line in bytes (including the JSON around the text, not counting
/// the `\n` or `\r\n` that ends it).
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Longest accepted chat text in bytes.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;
/// Longest accepted user or room name in bytes.
pub const MAX_NAME_BYTES: usize = 32;
/// Longest accepted password in bytes (at least 1).
pub const MAX_PASSWORD_BYTES: usize = 256;

/// One line from a client: an optional request number echoed in the reply, and the request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<u64>,
    #[serde(flatten)]
    pub request: Request,
}

/// What a client can ask, tagged by `"op"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Log in. The first login of a name registers it with `password`; every later login
    /// needs the same password. `session` is a token the server issued at an earlier login:
    /// with the user's current token the login takes the session over (the reconnect after a
    /// failover); a login of an online name without it is refused. `since` is the highest
    /// inbox sequence the client already has; without it the server resumes after the last
    /// `ack`.
    Login {
        user: String,
        password: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// Log out and close the session.
    Logout,
    /// A private message. `id` is client-chosen and unique per user: a retry with the same id
    /// is recognised and delivered once.
    Send {
        to: String,
        id: String,
        text: String,
    },
    /// Join a room, creating it if it does not exist.
    Join { room: String },
    /// Leave a room.
    Leave { room: String },
    /// Post to a room the user has joined. `id` as for `send`.
    Post {
        room: String,
        id: String,
        text: String,
    },
    /// The client holds every inbox message up to `upto`; they are not sent again at login.
    Ack { upto: u64 },
    /// Who is online.
    Who,
    /// The rooms with their members.
    Rooms,
    /// The cluster as this server sees it.
    Status,
    /// Liveness check; answered with `ok`.
    Ping,
}

/// A line from the server, tagged by `"type"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerLine {
    /// Sent once when the connection opens.
    Welcome(Welcome),
    /// A request succeeded.
    Ok(OkReply),
    /// A request failed; `code` is machine-readable, `message` is for people.
    Error(ErrorReply),
    /// A chat message for this user (private or room), in inbox order.
    Message(InboxMessage),
    /// Someone came online or went offline.
    Presence { user: String, online: bool },
}

/// The server's first line on a new connection: who it is and where the leader is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub node: NodeId,
    pub cluster: String,
    pub version: u32,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_addr: Option<String>,
    /// Present when this server is full or clearly busier than the least-loaded live one:
    /// the leader's assignment, where a client that has not logged in yet should go instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_addr: Option<String>,
}

/// The success reply; fields are present when the request produces them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OkReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<u64>,
    /// For `send`/`post`: the log index at which the message was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// For `post`: the message's position in the room's total order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_seq: Option<u64>,
    /// For `send`/`post`: this id had already been committed; nothing new was delivered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// For `login`: how many stored messages follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<u64>,
    /// For `login`: the session token the server issued (send it with the next login to take
    /// this session over after a reconnect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// For `login`: this login registered the name (its first login).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub registered: bool,
    /// For `who`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// For `rooms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<RoomInfo>>,
    /// For `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterStatus>,
}

/// A failed request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
    /// With `not_leader`: where the leader's client port is, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_addr: Option<String>,
}

/// Machine-readable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line was not valid JSON, had an unknown `op`, or a field was missing, of the wrong
    /// type or invalid.
    BadRequest,
    /// The line was longer than [`MAX_LINE_BYTES`] (not counting its `\n` or `\r\n`); it was
    /// skipped and the connection stays open.
    LineTooLong,
    /// The line was not valid UTF-8; it was skipped and the connection stays open.
    NotUtf8,
    /// The request needs a login first.
    NotLoggedIn,
    /// The name is online in another session.
    NameTaken,
    /// Wrong password for a registered name (or a registration that lost a race).
    AuthFailed,
    /// The recipient has never registered.
    UnknownUser,
    /// The user is not a member of that room.
    NotMember,
    /// This server is not the leader; reconnect to `leader_addr`.
    NotLeader,
    /// The leader lost its leadership or its quorum before the request committed: retry
    /// (with the same message id) once a leader is known.
    Unavailable,
    /// The server has as many connections as it accepts (`--max-connections`); it closes
    /// this one. Try another server or later.
    TooManyConnections,
    /// The server already serves its `--max-clients` users: log in on another server.
    ServerFull,
    /// The connection did not log in within the login timeout; the server closes it.
    LoginTimeout,
    /// Another connection logged in with this session's token and password and took the
    /// session over; the server closes this connection. Do not log in again from here: the
    /// two connections would keep displacing each other.
    SessionTakenOver,
}

/// A room and its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub name: String,
    pub members: Vec<String>,
}

/// A chat message as delivered to its recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMessage {
    /// Position in the recipient's inbox: strictly increasing, never reused.
    pub useq: u64,
    pub from: String,
    /// Set for a room post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Position in the room's total order, for a room post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_seq: Option<u64>,
    /// The sender's message id.
    pub id: String,
    pub text: String,
    /// Log index of the committed message (the same for every recipient of a room post).
    pub index: u64,
}

/// The cluster as one server sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: NodeId,
    pub role: Role,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_addr: Option<String>,
    pub cluster_size: usize,
    pub members: Vec<MemberStatus>,
    pub commit_index: u64,
    pub last_index: u64,
    pub election: String,
    /// Users logged in on this server, and its `--max-clients` (absent: no limit).
    #[serde(default)]
    pub clients: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clients: Option<usize>,
    pub quorum: String,
}

/// One member in a status reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    /// Client address (`ip:port`) the member advertises.
    pub addr: String,
    pub alive: bool,
}

/// UDP datagrams used by clients to find a server (sent to the discovery port).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Discovery {
    /// Broadcast by a client: "which servers of `cluster` are there?"
    FindServer { cluster: String },
    /// A server's unicast answer.
    ServerHere {
        cluster: String,
        node: NodeId,
        addr: String,
        role: Role,
        epoch: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader: Option<NodeId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leader_addr: Option<String>,
        /// Users logged in on this server (its load).
        #[serde(default)]
        clients: usize,
        /// The least-loaded live server by the leader's assignment table (possibly this
        /// one): where a new client should log in. Absent while no leader is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assigned_addr: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_flat() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"req":4,"op":"send","to":"bob","id":"m1","text":"hi"}"#)
                .unwrap();
        assert_eq!(f.req, Some(4));
        assert!(matches!(f.request, Request::Send { .. }));
        let who: ClientFrame = serde_json::from_str(r#"{"op":"who"}"#).unwrap();
        assert_eq!(who.request, Request::Who);
    }

    #[test]
    fn welcome_is_one_flat_line() {
        let w = ServerLine::Welcome(Welcome {
            node: NodeId(3),
            cluster: "c".into(),
            version: PROTOCOL_VERSION,
            role: Role::Leader,
            leader: None,
            leader_addr: None,
            assigned_addr: None,
        });
        let line = r#"{"type":"welcome","node":3,"cluster":"c","version":2,"role":"leader"}"#;
        assert_eq!(serde_json::to_string(&w).unwrap(), line);
        assert_eq!(serde_json::from_str::<ServerLine>(line).unwrap(), w);
    }

    #[test]
    fn server_lines_are_tagged_by_type() {
        let ok = ServerLine::Ok(OkReply {
            req: Some(1),
            index: Some(9),
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"type":"ok","req":1,"index":9}"#
        );
        let back: ServerLine = serde_json::from_str(r#"{"type":"ok","req":1,"index":9}"#).unwrap();
        assert_eq!(back, ok);
    }
}
