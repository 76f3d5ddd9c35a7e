//! The cluster secret as the core holds it: an HMAC-SHA256 key (keyed once, cloned per frame)
//! or the explicit absence of one (`--insecure`). Never printed.

use super::frame::{Mode, TAG_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// How this node seals and checks peer frames.
#[derive(Clone)]
pub struct PeerKey {
    mac: Option<HmacSha256>,
}

impl PeerKey {
    /// Frames are sealed and checked with HMAC-SHA256 under `secret`.
    pub fn from_secret(secret: &[u8]) -> PeerKey {
        // HMAC takes keys of any length (longer ones are hashed first).
        let mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
        PeerKey { mac: Some(mac) }
    }

    /// No secret: frames carry a zero tag and anyone can forge them.
    pub fn insecure() -> PeerKey {
        PeerKey { mac: None }
    }

    /// The mode this node sends in and accepts.
    pub fn mode(&self) -> Mode {
        if self.mac.is_some() {
            Mode::Hmac
        } else {
            Mode::Insecure
        }
    }

    /// The HMAC of `signed` (zeros without a key).
    pub fn tag(&self, signed: &[u8]) -> [u8; TAG_LEN] {
        match &self.mac {
            Some(mac) => {
                let mut m = mac.clone();
                m.update(signed);
                m.finalize().into_bytes().into()
            }
            None => [0u8; TAG_LEN],
        }
    }

    /// Whether `tag` is the right one for `signed`, compared in constant time.
    pub fn verify(&self, signed: &[u8], tag: &[u8]) -> bool {
        match &self.mac {
            Some(mac) => {
                let mut m = mac.clone();
                m.update(signed);
                m.verify_slice(tag).is_ok()
            }
            None => tag.len() == TAG_LEN && tag.iter().all(|b| *b == 0),
        }
    }
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode() {
            Mode::Hmac => f.write_str("PeerKey(hmac-sha256, secret not shown)"),
            Mode::Insecure => f.write_str("PeerKey(insecure)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_4231_test_case_2() {
        let key = PeerKey::from_secret(b"Jefe");
        let tag = key.tag(b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(key.verify(b"what do ya want for nothing?", &tag));
        assert!(!PeerKey::from_secret(b"jefe").verify(b"what do ya want for nothing?", &tag));
        assert!(!format!("{key:?}").contains("Jefe"));
    }
}
