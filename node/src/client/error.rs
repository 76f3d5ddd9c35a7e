//! What can go wrong talking to a server.

use crate::protocol::{ErrorCode, ErrorReply};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the connection closed")]
    Closed,
    #[error("the server sent something unexpected: {0}")]
    Protocol(String),
    #[error("{}: {}", code_name(.0.code), .0.message)]
    Server(ErrorReply),
    #[error("no server answered (tried: {0})")]
    NoServer(String),
}

impl ClientError {
    /// The server's error code, when the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }

    /// True when trying again (possibly on another server) can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Server(e) => matches!(
                e.code,
                ErrorCode::NotLeader | ErrorCode::Unavailable | ErrorCode::NotLoggedIn
            ),
            ClientError::Protocol(_) => false,
            _ => true,
        }
    }
}

/// The wire name of an error code (`not_leader`, …).
pub fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{code:?}"))
}
