//! The client library, shared by the interactive client (`chat-node client`), the `status`
//! and `health` commands and the harness's simulated users.
//!
//! - [`discovery`]: find servers by UDP broadcast.
//! - [`connection`]: one TCP connection: request/reply correlation by `req`, pushed lines.
//! - [`core`]: the client state machine without I/O: finds a server, logs in, retries with
//!   the same message id across failovers, deduplicates received messages, acks them. The
//!   tokio session and the simulator's users drive it.
//! - [`session`]: the tokio driver of the core (async calls); [`link`] is its connection.
//! - [`recent_failures`]: addresses that just failed are tried last for a while.
//! - [`ui`]: the interactive line client.

pub mod connection;
pub mod core;
pub mod discovery;
pub mod error;
pub mod link;
pub mod message_id;
pub mod probe;
pub mod recent_failures;
pub mod session;
pub mod ui;

pub use crate::protocol::Welcome;
pub use connection::{Connection, Pushed};
pub use discovery::{discover, discover_at, find_leader, ServerInfo};
pub use error::ClientError;
pub use message_id::MessageIds;
pub use recent_failures::RecentFailures;
pub use session::{Incoming, SendOutcome, Session, SessionConfig, SessionEvent};
