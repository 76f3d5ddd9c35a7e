//! The state file's format and the rules for reading it back, apart from any file I/O.
//!
//! Each durable record is one line, `{"r":<record>,"crc":"<8 hex digits>"}`: still one JSON
//! object per line (jq reads it), with the CRC32C of the record's exact bytes. A checksum per
//! record is what tells a torn write from damage: without it, a record edited into other valid
//! JSON was replayed as if the node had written it.
//!
//! The rules, in [`parse`]:
//! - Only the very last line may be bad (incomplete, or a bad checksum), and only if it lies
//!   beyond the length the file is known to have been durable at (the *mark*, kept beside it
//!   by [`super::persist`]): a crash can tear only what was being written. That line is cut.
//! - Anything else bad, or a file shorter than its mark (cut short: a torn write never removes
//!   bytes that were already durable), is [`Damage`], and the node refuses to start.
//! - A file written before checksums (round 1: bare `{"p":…}` lines, *legacy*) is read with the
//!   old rules and then rewritten with checksums, once ([`Parsed::legacy`]).

use crate::core::Persist;
use serde::de::DeserializeOwned;
use serde::Serialize;

const HEAD: &[u8] = br#"{"r":"#;
const CRC_KEY: &[u8] = br#","crc":""#;
/// `,"crc":"` + 8 hex digits + `"}`.
const TAIL_LEN: usize = CRC_KEY.len() + 8 + 2;

/// One line of the state file (newline included) holding `value` and its checksum.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let body = serde_json::to_vec(value).expect("durable records serialize");
    let mut line = Vec::with_capacity(HEAD.len() + body.len() + TAIL_LEN + 1);
    line.extend_from_slice(HEAD);
    line.extend_from_slice(&body);
    line.extend_from_slice(CRC_KEY);
    line.extend_from_slice(format!("{:08x}", crc32c::crc32c(&body)).as_bytes());
    line.extend_from_slice(b"\"}\n");
    line
}

/// The value in one line (without its newline), or why it is not a good line.
pub fn decode<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    if line.len() < HEAD.len() + TAIL_LEN || !line.starts_with(HEAD) || !line.ends_with(b"\"}") {
        return Err("not a checksummed record".into());
    }
    let body = &line[HEAD.len()..line.len() - TAIL_LEN];
    let tail = &line[line.len() - TAIL_LEN..];
    if !tail.starts_with(CRC_KEY) {
        return Err("not a checksummed record".into());
    }
    let hex = std::str::from_utf8(&tail[CRC_KEY.len()..CRC_KEY.len() + 8])
        .map_err(|_| "its checksum is not hexadecimal".to_string())?;
    let stored =
        u32::from_str_radix(hex, 16).map_err(|_| "its checksum is not hexadecimal".to_string())?;
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, the record's bytes give {actual:08x})"
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("checksum matches but the record is not valid: {e}"))
}

/// A record that cannot be a torn write: the start must be refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    /// 1-based line of the first bad record (the line after the last one for a cut file).
    pub line: usize,
    /// Byte offset where that line starts: everything before it is good.
    pub offset: usize,
    /// Records before it.
    pub good_records: usize,
    pub why: String,
}

/// A torn last record, to be cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Torn {
    pub line: usize,
    pub bytes: usize,
    pub why: String,
}

/// A state file read back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub records: Vec<Persist>,
    /// Length of the good prefix (the file is cut to it when `torn` is set).
    pub good_len: usize,
    pub torn: Option<Torn>,
    /// Written before checksums: to be rewritten with them.
    pub legacy: bool,
}

/// Reads a state file's bytes; `durable_len` is the length it is known to have been fsynced
/// at (its mark; 0 when there is none). See the module docs for the rules.
pub fn parse(text: &[u8], durable_len: usize) -> Result<Parsed, Damage> {
    let legacy = text.starts_with(br#"{"p":"#);
    let cut_short = text.len() < durable_len;
    let cut_why = || {
        format!(
            "the file is {} bytes but it held {durable_len} durable bytes at its last mark: it was cut short (a torn write never removes durable records)",
            text.len()
        )
    };
    let mut parsed = Parsed {
        legacy,
        ..Parsed::default()
    };
    let mut offset = 0;
    let mut line_no = 0;
    while offset < text.len() {
        line_no += 1;
        let rest = &text[offset..];
        let (line, complete) = match rest.iter().position(|b| *b == b'\n') {
            Some(n) => (&rest[..n], true),
            None => (rest, false),
        };
        let next = offset + line.len() + usize::from(complete);
        let is_last = next == text.len();
        let result = if !complete {
            Err("incomplete line (no newline)".to_string())
        } else if legacy {
            if line.starts_with(HEAD) {
                Err("a checksummed record in a file written without checksums".to_string())
            } else {
                serde_json::from_slice::<Persist>(line).map_err(|e| e.to_string())
            }
        } else if line.starts_with(br#"{"p":"#) {
            Err("a record without a checksum among checksummed ones".to_string())
        } else {
            decode::<Persist>(line)
        };
        match result {
            Ok(record) => parsed.records.push(record),
            Err(why) if is_last && offset >= durable_len => {
                parsed.torn = Some(Torn {
                    line: line_no,
                    bytes: text.len() - offset,
                    why,
                });
                parsed.good_len = offset;
                return Ok(parsed);
            }
            Err(why) => {
                let why = if cut_short {
                    cut_why()
                } else if is_last {
                    format!(
                        "{why}; it was already durable (the file held {durable_len} bytes at its last mark), so this is not a torn write"
                    )
                } else {
                    why
                };
                return Err(Damage {
                    line: line_no,
                    offset,
                    good_records: parsed.records.len(),
                    why,
                });
            }
        }
        offset = next;
    }
    parsed.good_len = offset;
    if cut_short {
        return Err(Damage {
            line: line_no + 1,
            offset: text.len(),
            good_records: parsed.records.len(),
            why: cut_why(),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn hard(epoch: u64) -> Persist {
        Persist::HardState {
            epoch,
            voted_for: Some(NodeId(2)),
        }
    }

    fn file(records: &[Persist]) -> Vec<u8> {
        records.iter().flat_map(encode).collect()
    }

    #[test]
    fn a_line_is_json_with_the_records_checksum() {
        let line = encode(&hard(4));
        let text = std::str::from_utf8(&line).unwrap();
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["r"]["epoch"], 4);
        assert_eq!(v["crc"].as_str().unwrap().len(), 8);
        assert_eq!(decode::<Persist>(&line[..line.len() - 1]), Ok(hard(4)));
    }

    #[test]
    fn a_record_edited_into_valid_json_fails_its_checksum() {
        let line = encode(&hard(4));
        let edited = String::from_utf8(line)
            .unwrap()
            .replace(r#""epoch":4"#, r#""epoch":9"#);
        let err = decode::<Persist>(edited.trim_end().as_bytes()).unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
        // In the middle of a file: refused, naming line 2.
        let text = [file(&[hard(1)]), edited.into_bytes(), file(&[hard(5)])].concat();
        let damage = parse(&text, 0).unwrap_err();
        assert_eq!((damage.line, damage.good_records), (2, 1));
    }

    #[test]
    fn only_a_bad_last_line_beyond_the_mark_is_torn() {
        let good = file(&[hard(1), hard(2)]);
        // A crash in the middle of the third write.
        let third = encode(&hard(3));
        let torn = [&good[..], &third[..20]].concat();
        let p = parse(&torn, good.len()).unwrap();
        assert_eq!((p.records.len(), p.good_len), (2, good.len()));
        assert_eq!(p.torn.as_ref().map(|t| (t.line, t.bytes)), Some((3, 20)));
        // A complete last line with a bad checksum (a write that reached the disk as garbage).
        let mut garbled = third.clone();
        garbled[10] ^= 0x01;
        let p = parse(&[&good[..], &garbled[..]].concat(), good.len()).unwrap();
        assert_eq!(p.torn.map(|t| t.line), Some(3));
        // The same garbled line, but the mark says it was durable: damage, not a torn write.
        let text = [&good[..], &garbled[..]].concat();
        let damage = parse(&text, text.len()).unwrap_err();
        assert_eq!(damage.line, 3);
        assert!(damage.why.contains("not a torn write"), "{}", damage.why);
    }

    #[test]
    fn a_file_cut_in_half_is_refused() {
        let text = file(&(1..=10).map(hard).collect::<Vec<_>>());
        // Not on a record boundary (the records are all the same length).
        let half = &text[..text.len() / 2 + 7];
        let damage = parse(half, text.len()).unwrap_err();
        assert!(damage.why.contains("cut short"), "{}", damage.why);
        // Without a mark it would have passed as a torn last record.
        assert!(parse(half, 0).unwrap().torn.is_some());
        // Cut exactly at a record boundary: no torn line at all, still refused.
        let one = encode(&hard(1)).len();
        let damage = parse(&text[..one * 3], text.len()).unwrap_err();
        assert_eq!((damage.line, damage.good_records), (4, 3));
    }

    #[test]
    fn a_bad_record_in_the_middle_is_refused_with_its_line() {
        let a = file(&[hard(1)]);
        for bad in [
            &b"garbage\n"[..],
            b"\n",
            b"{\"p\":\"hard_state\",\"epoch\":1,\"voted_for\":null}\n",
        ] {
            let text = [&a[..], bad, &a[..]].concat();
            let damage = parse(&text, 0).unwrap_err();
            assert_eq!((damage.line, damage.offset), (2, a.len()), "{bad:?}");
        }
    }

    #[test]
    fn a_file_written_before_checksums_is_read_with_the_old_rules() {
        let legacy = b"{\"p\":\"hard_state\",\"epoch\":3,\"voted_for\":1}\n{\"p\":\"truncate_from\",\"from\":1}\n{\"p\":\"hard";
        let p = parse(legacy, 0).unwrap();
        assert!(p.legacy);
        assert_eq!(p.records.len(), 2);
        assert!(p.torn.is_some());
        let lines: Vec<&[u8]> = legacy.split_inclusive(|b| *b == b'\n').collect();
        let mixed = [lines[0], &encode(&hard(4))[..], lines[1]].concat();
        assert!(parse(&mixed, 0).is_err());
    }
}
