//! Client message ids: a random prefix per process (per [`MessageIds`]) plus a counter, so a
//! restarted client never reuses an id and its new messages are not dropped as duplicates of
//! the old ones (a bug of the seeds' implementations).

use rand::Rng;

/// Generates ids `<prefix>-<n>`.
#[derive(Clone, Debug)]
pub struct MessageIds {
    prefix: String,
    next: u64,
}

impl MessageIds {
    /// A fresh random prefix (64 random bits).
    pub fn new() -> MessageIds {
        MessageIds::with_prefix(format!("{:016x}", rand::thread_rng().gen::<u64>()))
    }

    pub fn with_prefix(prefix: String) -> MessageIds {
        MessageIds { prefix, next: 1 }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        let id = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        id
    }
}

impl Default for MessageIds {
    fn default() -> Self {
        MessageIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_within_and_across_restarts() {
        let mut first = MessageIds::new();
        let a: Vec<String> = (0..3).map(|_| first.next_id()).collect();
        assert_eq!(a.len(), 3);
        assert_ne!(a[0], a[1]);
        // A "restarted" client starts its counter again but with another prefix.
        let mut second = MessageIds::new();
        assert_ne!(second.next_id(), a[0]);
    }
}
