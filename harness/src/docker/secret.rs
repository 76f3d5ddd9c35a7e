//! The run's cluster secret: 32 random bytes, hex, made fresh for every run and given to
//! every node (and to nothing else: the outsider of a `forge` step never has it) in the
//! environment as `CHAT_CLUSTER_SECRET`, so it stays off the nodes' command lines and out of
//! the run's records.

use rand::RngCore;

/// `CHAT_CLUSTER_SECRET=<64 hex digits>` for a node container's environment.
pub fn cluster_secret_env() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("CHAT_CLUSTER_SECRET={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_gets_its_own_secret() {
        let (a, b) = (cluster_secret_env(), cluster_secret_env());
        assert_ne!(a, b);
        let hex = a.strip_prefix("CHAT_CLUSTER_SECRET=").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
