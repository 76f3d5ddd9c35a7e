//! `chat-node forge`: a **test tool**, the outsider of the threat model. It runs on the
//! cluster's network without being a member, listens to the peer traffic it can hear
//! (broadcast hellos, multicast heartbeats, and whatever the nodes send back to the addresses
//! it claims), and for a fixed time sends, at a fixed rate:
//! - **replays**: datagrams it captured, verbatim (they carry valid MACs once peer
//!   authentication is on; the replay window must refuse them);
//! - **forgeries** of every peer message kind, with random and learned epochs, member and
//!   non-member ids, indexes and log entries, encoded with the node's own wire format;
//! - **garbage**: random bytes, flipped bits, truncated and oversized datagrams.
//!
//! It exists so that the harness (`forge:` steps, docs/SCENARIOS.md) can prove that a
//! stranger on the bridge changes nothing: no epoch, vote, role or commit. The generation is
//! sans-IO and seeded ([`generate`]); [`outsider`] is the socket loop around it.

pub mod generate;
pub mod kind;
pub mod outsider;

pub use generate::{Dest, Forged, Forger, Learned};
pub use kind::ForgeKind;
pub use outsider::{run, ForgeArgs};
