//! The real password work for [`crate::core::credentials`]: argon2id (the `argon2` crate's
//! defaults: 19 MiB, 2 passes, 1 lane, version 0x13) with a 16-byte random salt, computed on
//! tokio's blocking pool so the event loop keeps its heartbeats. At most [`PARALLEL`] jobs run
//! at once: each costs 19 MiB and a core's worth of time, and a burst of logins must not
//! exhaust memory. Session tokens are 128 bits from `rand`'s OS-seeded CSPRNG.

use crate::core::credentials::{
    token_from_bits, CredentialJob, CredentialOutcome, CredentialResult, CredentialWork,
};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Password jobs computed at the same time.
pub const PARALLEL: usize = 2;

/// Runs jobs in the background and queues their results for the driver.
#[derive(Clone)]
pub struct CredentialWorker {
    permits: Arc<Semaphore>,
    results: mpsc::UnboundedSender<CredentialResult>,
}

impl CredentialWorker {
    pub fn new(results: mpsc::UnboundedSender<CredentialResult>) -> CredentialWorker {
        CredentialWorker {
            permits: Arc::new(Semaphore::new(PARALLEL)),
            results,
        }
    }

    /// Starts `job`; its result arrives on the channel given to [`CredentialWorker::new`].
    pub fn start(&self, job: CredentialJob) {
        let permits = self.permits.clone();
        let results = self.results.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let id = job.id;
            let result = tokio::task::spawn_blocking(move || compute(job))
                .await
                .unwrap_or_else(|e| CredentialResult {
                    id,
                    outcome: CredentialOutcome::Failed(format!("password worker: {e}")),
                    token: new_token(),
                });
            let _ = results.send(result);
        });
    }
}

/// A fresh 128-bit session token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    token_from_bits(u128::from_be_bytes(bytes))
}

/// Does one job (blocking: tens of milliseconds).
pub fn compute(job: CredentialJob) -> CredentialResult {
    let outcome = match job.work {
        CredentialWork::Hash { password } => {
            let mut salt = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut salt);
            let hashed = SaltString::encode_b64(&salt).and_then(|salt| {
                Argon2::default()
                    .hash_password(password.0.as_bytes(), &salt)
                    .map(|h| h.to_string())
            });
            match hashed {
                Ok(hash) => CredentialOutcome::Hashed(hash),
                Err(e) => CredentialOutcome::Failed(format!("hashing: {e}")),
            }
        }
        CredentialWork::Verify { password, hash } => match PasswordHash::new(&hash) {
            Ok(parsed) => CredentialOutcome::Verified(
                Argon2::default()
                    .verify_password(password.0.as_bytes(), &parsed)
                    .is_ok(),
            ),
            Err(e) => CredentialOutcome::Failed(format!("the stored hash is unreadable: {e}")),
        },
    };
    CredentialResult {
        id: job.id,
        outcome,
        token: new_token(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::credentials::Password;

    fn hash(password: &str) -> String {
        let work = CredentialWork::Hash {
            password: Password(password.into()),
        };
        match compute(CredentialJob { id: 1, work }).outcome {
            CredentialOutcome::Hashed(h) => h,
            other => panic!("{other:?}"),
        }
    }

    fn verify(password: &str, hash: &str) -> CredentialOutcome {
        let work = CredentialWork::Verify {
            password: Password(password.into()),
            hash: hash.into(),
        };
        compute(CredentialJob { id: 2, work }).outcome
    }

    #[test]
    fn argon2id_with_a_random_salt_verifies_only_the_same_password() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert_ne!(h, hash("correct horse"), "a fresh salt each time");
        assert_eq!(
            verify("correct horse", &h),
            CredentialOutcome::Verified(true)
        );
        assert_eq!(verify("wrong", &h), CredentialOutcome::Verified(false));
        assert!(matches!(
            verify("x", "not a hash"),
            CredentialOutcome::Failed(_)
        ));
    }

    #[test]
    fn tokens_are_128_random_bits_in_hex() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
