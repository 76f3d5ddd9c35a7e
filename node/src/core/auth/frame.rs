//! The peer frame of wire v2: a small binary header, the JSON message body and a 32-byte
//! HMAC-SHA256 tag over everything before it (docs/PROTOCOL.md, "Peer frames"). Sealing and
//! parsing only; whether a frame is admitted is [`super::Gate`]'s business.

use super::key::PeerKey;
use crate::ids::NodeId;

/// First four bytes of every v2 frame.
pub const MAGIC: &[u8; 4] = b"FLW2";
/// Length of the tag at the end of a frame.
pub const TAG_LEN: usize = 32;

/// The mode byte: how the tag was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 32 zero bytes: the sender runs `--insecure` (experiments and self-tests only).
    Insecure = 0,
    /// HMAC-SHA256 with the cluster secret.
    Hmac = 1,
}

/// The header fields of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub mode: Mode,
    pub cluster: String,
    /// The sender's own peer address (`ip:port`), the one its datagrams leave from.
    pub addr: String,
    pub from: NodeId,
    pub incarnation: u64,
    pub seq: u64,
    /// The node the frame is for; `NodeId(0)` for broadcast and multicast.
    pub dest: NodeId,
}

/// A parsed frame; the tag is not checked yet.
#[derive(Debug)]
pub struct Frame<'a> {
    pub header: Header,
    pub body: &'a [u8],
    /// Everything the tag covers.
    pub signed: &'a [u8],
    pub tag: &'a [u8],
}

/// Why bytes are not a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No `FLW2` magic (a v1 JSON envelope starts with `{`).
    NotV2,
    /// Cut short, an unknown mode or a field that is not UTF-8.
    Malformed(&'static str),
}

/// Seals `body` under `header`.
pub fn seal(key: &PeerKey, header: &Header, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + header.cluster.len() + header.addr.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.push(header.mode as u8);
    put_str(&mut out, &header.cluster);
    put_str(&mut out, &header.addr);
    for n in [header.from.0, header.incarnation, header.seq, header.dest.0] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(body);
    let tag = match header.mode {
        Mode::Hmac => key.tag(&out),
        Mode::Insecure => [0u8; TAG_LEN],
    };
    out.extend_from_slice(&tag);
    out
}

/// Strings are at most 255 bytes (longer ones are cut at a character boundary; the
/// runtime refuses cluster names that long at start).
fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// Splits bytes into a frame; never panics.
pub fn parse(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() < MAGIC.len() || &bytes[..4] != MAGIC {
        return Err(FrameError::NotV2);
    }
    if bytes.len() < 4 + 1 + TAG_LEN {
        return Err(FrameError::Malformed("frame too short"));
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let mut r = Reader { b: signed, at: 4 };
    let mode = match r.byte()? {
        0 => Mode::Insecure,
        1 => Mode::Hmac,
        _ => return Err(FrameError::Malformed("unknown mode byte")),
    };
    let cluster = r.string()?;
    let addr = r.string()?;
    let from = NodeId(r.u64()?);
    let incarnation = r.u64()?;
    let seq = r.u64()?;
    let dest = NodeId(r.u64()?);
    Ok(Frame {
        header: Header {
            mode,
            cluster,
            addr,
            from,
            incarnation,
            seq,
            dest,
        },
        body: &signed[r.at..],
        signed,
        tag,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FrameError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or(FrameError::Malformed("header cut short"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    fn string(&mut self) -> Result<String, FrameError> {
        let n = self.byte()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| FrameError::Malformed("header string not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(mode: Mode) -> Header {
        Header {
            mode,
            cluster: "c".into(),
            addr: "10.0.0.1:7400".into(),
            from: NodeId(3),
            incarnation: 7,
            seq: 9,
            dest: NodeId(0),
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let key = PeerKey::from_secret(b"s");
        let f = seal(&key, &header(Mode::Hmac), b"{}");
        // magic, mode, len+"c", len+addr, 4 x u64, body, tag
        assert_eq!(f.len(), 4 + 1 + 2 + 14 + 32 + 2 + 32);
        assert_eq!(&f[..6], b"FLW2\x01\x01");
        assert_eq!(&f[21..29], &3u64.to_be_bytes());
        let p = parse(&f).unwrap();
        assert_eq!(p.header, header(Mode::Hmac));
        assert_eq!(p.body, b"{}");
        assert_eq!(p.tag, &key.tag(p.signed));
        let insecure = seal(&key, &header(Mode::Insecure), b"{}");
        assert_eq!(&insecure[insecure.len() - TAG_LEN..], &[0u8; TAG_LEN]);
    }

    #[test]
    fn cut_and_foreign_bytes_are_errors_not_panics() {
        let f = seal(&PeerKey::insecure(), &header(Mode::Insecure), b"{}");
        assert_eq!(parse(br#"{"v":1}"#).unwrap_err(), FrameError::NotV2);
        for n in 0..f.len() {
            let _ = parse(&f[..n]);
        }
        let mut bad = f.clone();
        bad[4] = 9;
        assert!(matches!(parse(&bad), Err(FrameError::Malformed(_))));
    }
}
