//! Password work the core asks its driver for. Hashing and verifying a password with argon2id
//! takes tens of milliseconds and megabytes by design; run on the event loop it would stall
//! heartbeats. So the core stays pure: it emits a [`CredentialJob`] as an output, the runtime
//! computes it on a blocking thread (`runtime::credentials`) and feeds a [`CredentialResult`]
//! back as an input. The simulator computes a cheap deterministic stand-in (`sim::credentials`).
//! Every result also carries a fresh session token drawn by the driver (128 random bits from
//! the OS-seeded CSPRNG in the runtime), because the core owns no secure randomness.

use std::fmt;

/// A password: kept out of `Debug` output so it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// One piece of password work, numbered by the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialJob {
    pub id: u64,
    pub work: CredentialWork,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialWork {
    /// A registration: hash `password` with a fresh random salt (a PHC string).
    Hash { password: Password },
    /// A login of a registered name: does `password` match the stored `hash`?
    Verify { password: Password, hash: String },
}

/// The driver's answer to [`CredentialJob`] `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialResult {
    pub id: u64,
    pub outcome: CredentialOutcome,
    /// A fresh session token (32 lowercase hex digits), used if the login starts a session.
    pub token: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialOutcome {
    /// The PHC hash string of a registration.
    Hashed(String),
    /// Whether the password matched.
    Verified(bool),
    /// The work could not be done (an unreadable stored hash, a hashing error).
    Failed(String),
}

/// Formats 128 random bits as a session token.
pub fn token_from_bits(bits: u128) -> String {
    format!("{bits:032x}")
}
