//! `chat_node`: a fault-tolerant chat server cluster.
//!
//! The protocol logic lives in [`core`] and is sans-IO: it takes inputs (datagrams, client
//! lines, ticks) with the current instant and returns outputs (datagrams, client lines,
//! events, persistence writes). [`runtime`] drives it with tokio sockets; [`sim`] drives it in
//! a deterministic, seeded simulator. [`client`] is the client library shared by the
//! interactive client and the harness. [`forge`] is a test tool: an outsider on the network
//! that replays and forges peer datagrams.

pub mod client;
pub mod core;
pub mod duration;
pub mod events;
pub mod faults;
pub mod forge;
pub mod ids;
pub mod protocol;
pub mod runtime;
pub mod settings;
pub mod sim;
