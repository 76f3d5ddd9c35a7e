//! What the [`ClientCore`](super::ClientCore) asks its driver to do, and what it tells the
//! application and the observer.

use crate::client::error::ClientError;
use crate::ids::NodeId;
use crate::protocol::{ErrorReply, InboxMessage, OkReply};

/// One connection the core asked for. Lines and the end of a connection are reported with
/// its id; reports about a connection the core has already given up are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// One operation submitted to the core (a request, or "be logged in").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// An instruction to the driver, or news for the application.
#[derive(Debug)]
pub enum Output {
    /// Open a TCP connection to `addr` (the core times it and the `welcome`); report every
    /// line with [`handle_line`](super::ClientCore::handle_line) and its end (or a failure to
    /// open it) with [`handle_closed`](super::ClientCore::handle_closed).
    Connect { link: LinkId, addr: String },
    /// Write one line (without its `\n`) on the connection.
    Send { link: LinkId, line: String },
    /// Close the connection; the core has forgotten it.
    Close { link: LinkId },
    /// Broadcast discovery (avoiding `avoid` as the early stop) and report the addresses,
    /// best first, with [`handle_discovered`](super::ClientCore::handle_discovered).
    Discover { avoid: Vec<String> },
    /// For the observer (history, logs).
    Event(SessionEvent),
    /// For the application: a new message, a presence change, a notice.
    Incoming(Incoming),
    /// An operation ended: the reply and the number of attempts, or the error it ended with
    /// (boxed: a reply is large beside the other outputs).
    Done {
        op: OpId,
        result: Box<Result<(OkReply, u32), ClientError>>,
    },
    /// The server sent a line the core could not read (a server bug; it was skipped).
    Unreadable { line: String, error: String },
}

/// What the observer hears about.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// Logged in on `server` (node `node`); `mailbox` stored messages follow.
    Connected {
        server: String,
        node: NodeId,
        mailbox: u64,
    },
    /// The connection to `server` was given up.
    Disconnected { server: String, reason: String },
    /// One attempt of a request (`op` is the wire op; `id` the message id for send/post).
    Attempt {
        op: String,
        id: Option<String>,
        target: Option<String>,
        attempt: u32,
        server: String,
    },
    /// The request succeeded after `attempts` attempts.
    Acked {
        op: String,
        id: Option<String>,
        target: Option<String>,
        reply: Box<OkReply>,
        attempts: u32,
    },
    /// The request failed for good.
    Failed {
        op: String,
        id: Option<String>,
        target: Option<String>,
        error: String,
    },
    /// A new message arrived.
    Received(InboxMessage),
    /// A message arrived again (same `useq`) and was dropped.
    DuplicateDropped(InboxMessage),
}

/// What the application reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Message(InboxMessage),
    Presence {
        user: String,
        online: bool,
    },
    /// The connection broke and the session logged in again on `server`.
    Reconnected {
        server: String,
        node: NodeId,
    },
    /// An error line the server sent without a request (e.g. a line it could not read).
    Notice(ErrorReply),
}
