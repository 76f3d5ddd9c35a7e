//! faultline harness (placeholder).
