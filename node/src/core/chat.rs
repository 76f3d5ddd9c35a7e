//! The replicated chat state machine (placeholder: the core owner fills it in).

use serde::{Deserialize, Serialize};

/// One chat operation, the payload of a log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ChatOp {
    /// Written by a new leader to commit its epoch.
    Noop,
}
