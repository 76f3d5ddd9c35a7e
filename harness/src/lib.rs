//! faultline harness: YAML fault scenarios against a real Docker cluster of `chat-node`,
//! with checked verdicts. Pipeline: scenario → cluster → nemesis + workload → history →
//! checkers → report.

pub mod out;

// Pure parts (no Docker): parsed plans, the history, what it shows, verdicts.
pub mod checkers;
pub mod faults;
pub mod history;
pub mod observed;
pub mod report;
pub mod scenario;

// Effectful parts: the backend seam, Docker, faults, clients, the step runner, the CLI.
pub mod backend;
pub mod bench;
pub mod chaos;
pub mod cli;
pub mod docker;
pub mod matrix;
pub mod repeat;
pub mod runner;
pub mod shrink;
pub mod workload;
