//! Deterministic, seeded simulator of a cluster of [`crate::core::Node`]s (placeholder).
