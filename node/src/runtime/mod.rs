//! The tokio runtime around the core (placeholder: the runtime owner fills it in).
