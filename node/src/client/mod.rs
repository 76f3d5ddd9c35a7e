//! The client library (placeholder: the runtime owner fills it in).
