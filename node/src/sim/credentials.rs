//! The simulator's stand-in for password work: a cheap, deterministic keyed FNV-1a "hash" with
//! a salt drawn from the simulation's RNG, so `cargo test` runs thousands of logins in
//! milliseconds and every seed replays exactly. It has the same interface and the same
//! outcomes as the real argon2id work in `runtime::credentials` (a fresh salt per
//! registration, a match only for the same password) but **no security at all**: it exists
//! only inside the simulator and the core's unit tests. The real node always uses argon2id.

use crate::core::credentials::{
    token_from_bits, CredentialJob, CredentialOutcome, CredentialResult, CredentialWork,
};
use crate::core::rng::SplitMix64;

/// Virtual time the simulator lets the work take (argon2id takes tens of ms for real).
pub const SIM_CREDENTIAL_MS: u64 = 20;

fn fnv(salt: &str, password: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain([0u8]).chain(password.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Does the job, drawing the salt and the session token from `rng`.
pub fn compute(job: CredentialJob, rng: &mut SplitMix64) -> CredentialResult {
    let outcome = match job.work {
        CredentialWork::Hash { password } => {
            let salt = format!("{:016x}", rng.next_u64());
            CredentialOutcome::Hashed(format!("$sim${salt}${:016x}", fnv(&salt, &password.0)))
        }
        CredentialWork::Verify { password, hash } => {
            match hash.split('$').collect::<Vec<_>>()[..] {
                ["", "sim", salt, digest] => CredentialOutcome::Verified(
                    format!("{:016x}", fnv(salt, &password.0)) == digest,
                ),
                _ => CredentialOutcome::Failed("not a simulator hash".into()),
            }
        }
    };
    let bits = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    CredentialResult {
        id: job.id,
        outcome,
        token: token_from_bits(bits),
    }
}

/// Answers every password job in `out` at once (and the jobs those answers start), returning
/// all outputs in order: the core's unit tests drive a node through logins with this.
pub fn answer_all(
    node: &mut crate::core::Node,
    now: crate::core::Millis,
    out: Vec<crate::core::Output>,
) -> Vec<crate::core::Output> {
    use crate::core::{Input, Output};
    let mut rng = SplitMix64::new(now);
    let mut all = Vec::new();
    let mut todo = out;
    while !todo.is_empty() {
        let mut next = Vec::new();
        for o in todo {
            if let Output::Credential(job) = &o {
                next.extend(
                    node.handle(now, Input::CredentialDone(compute(job.clone(), &mut rng))),
                );
            }
            all.push(o);
        }
        todo = next;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::credentials::Password;

    #[test]
    fn only_the_same_password_verifies_and_salts_differ() {
        let mut rng = SplitMix64::new(1);
        let hash = |rng: &mut SplitMix64, p: &str| match compute(
            CredentialJob {
                id: 1,
                work: CredentialWork::Hash {
                    password: Password(p.into()),
                },
            },
            rng,
        )
        .outcome
        {
            CredentialOutcome::Hashed(h) => h,
            other => panic!("{other:?}"),
        };
        let h1 = hash(&mut rng, "pw");
        assert_ne!(h1, hash(&mut rng, "pw"), "a fresh salt each time");
        let verify = |rng: &mut SplitMix64, p: &str| {
            compute(
                CredentialJob {
                    id: 2,
                    work: CredentialWork::Verify {
                        password: Password(p.into()),
                        hash: h1.clone(),
                    },
                },
                rng,
            )
        };
        let ok = verify(&mut rng, "pw");
        assert_eq!(ok.outcome, CredentialOutcome::Verified(true));
        assert_eq!(ok.token.len(), 32);
        assert_eq!(
            verify(&mut rng, "other").outcome,
            CredentialOutcome::Verified(false)
        );
    }
}
