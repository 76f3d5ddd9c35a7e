//! Client line framing: `\n`-terminated UTF-8 lines of at most [`MAX_LINE_BYTES`].
//!
//! The limit applies to the line's content: the bytes before the terminator, which is `\n`
//! or `\r\n` (one trailing `\r` is not part of the line). So a line of exactly
//! [`MAX_LINE_BYTES`] bytes is accepted whichever terminator follows it, and one byte more
//! is refused. (`LinesCodec` counted the `\r` against the limit, which refused a
//! maximal line sent with `\r\n` although the document says the `\r` is ignored.)
//!
//! An oversized or non-UTF-8 line is an item, not a stream error, so the connection
//! survives: the runtime answers the client with an error line (`line_too_long`,
//! `not_utf8`) and reads on; the codec has already skipped the bad line.

use crate::protocol::{ErrorCode, MAX_LINE_BYTES};
use tokio_util::bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Why a client line was not passed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineProblem {
    TooLong,
    NotUtf8,
}

impl LineProblem {
    /// The error code the client is sent (the contract; [`LineProblem::describe`] is for
    /// people).
    pub fn code(&self) -> ErrorCode {
        match self {
            LineProblem::TooLong => ErrorCode::LineTooLong,
            LineProblem::NotUtf8 => ErrorCode::NotUtf8,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            LineProblem::TooLong => format!("line longer than {MAX_LINE_BYTES} bytes"),
            LineProblem::NotUtf8 => "line is not valid UTF-8".to_string(),
        }
    }
}

/// A line, or the problem that replaced it.
pub type FramedLine = Result<String, LineProblem>;

/// Splits `\n`-terminated lines of at most `max` content bytes; per-line problems are items,
/// not stream errors.
pub struct ClientLineCodec {
    max: usize,
    /// Skipping the rest of an oversized line up to its `\n`.
    discarding: bool,
    /// Bytes of the buffer already searched for `\n`.
    searched: usize,
}

impl ClientLineCodec {
    pub fn new() -> ClientLineCodec {
        ClientLineCodec::with_max_length(MAX_LINE_BYTES)
    }

    pub fn with_max_length(max: usize) -> ClientLineCodec {
        ClientLineCodec {
            max,
            discarding: false,
            searched: 0,
        }
    }

    /// The longest a complete line can be on the wire: content, `\r`, `\n`.
    fn window(&self) -> usize {
        self.max.saturating_add(2)
    }

    /// Checks one line's bytes (without the `\n`).
    fn finish(&self, raw: &[u8]) -> FramedLine {
        let content = raw.strip_suffix(b"\r").unwrap_or(raw);
        if content.len() > self.max {
            return Err(LineProblem::TooLong);
        }
        std::str::from_utf8(content)
            .map(str::to_string)
            .map_err(|_| LineProblem::NotUtf8)
    }
}

impl Default for ClientLineCodec {
    fn default() -> Self {
        ClientLineCodec::new()
    }
}

impl Decoder for ClientLineCodec {
    type Item = FramedLine;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<FramedLine>, std::io::Error> {
        loop {
            if self.discarding {
                match buf.iter().position(|b| *b == b'\n') {
                    Some(at) => {
                        buf.advance(at + 1);
                        self.discarding = false;
                        self.searched = 0;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                }
                continue;
            }
            let read_to = self.window().min(buf.len());
            let start = self.searched.min(read_to);
            match buf[start..read_to].iter().position(|b| *b == b'\n') {
                Some(offset) => {
                    let line = buf.split_to(start + offset + 1);
                    self.searched = 0;
                    return Ok(Some(self.finish(&line[..line.len() - 1])));
                }
                None if buf.len() >= self.window() => {
                    // No `\n` within content + `\r\n`: too long whatever follows.
                    self.discarding = true;
                    self.searched = 0;
                    return Ok(Some(Err(LineProblem::TooLong)));
                }
                None => {
                    self.searched = read_to;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<FramedLine>, std::io::Error> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        self.searched = 0;
        if self.discarding || buf.is_empty() || buf[..] == b"\r"[..] {
            buf.clear();
            return Ok(None);
        }
        // A last line without its `\n`.
        let line = buf.split_to(buf.len());
        Ok(Some(self.finish(&line)))
    }
}

impl Encoder<String> for ClientLineCodec {
    type Error = std::io::Error;

    fn encode(&mut self, line: String, buf: &mut BytesMut) -> Result<(), std::io::Error> {
        buf.reserve(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.extend_from_slice(b"\n");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut ClientLineCodec, bytes: &[u8]) -> Vec<FramedLine> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn an_oversized_line_is_reported_and_the_next_line_still_arrives() {
        let mut codec = ClientLineCodec::with_max_length(16);
        let mut input = vec![b'x'; 40];
        input.extend_from_slice(b"\n{\"op\":\"ping\"}\n");
        let items = decode_all(&mut codec, &input);
        assert_eq!(
            items,
            vec![
                Err(LineProblem::TooLong),
                Ok(r#"{"op":"ping"}"#.to_string())
            ]
        );
    }

    #[test]
    fn a_non_utf8_line_is_reported_and_skipped() {
        let mut codec = ClientLineCodec::new();
        let items = decode_all(&mut codec, b"\xff\xfe\nok\r\n");
        assert_eq!(items, vec![Err(LineProblem::NotUtf8), Ok("ok".to_string())]);
    }

    /// The limit is on the content: a line of exactly the limit passes with `\n` and with
    /// `\r\n`; one byte more is too long with either terminator.
    #[test]
    fn the_limit_excludes_the_terminator_and_its_carriage_return() {
        for terminator in [&b"\n"[..], &b"\r\n"[..]] {
            let mut codec = ClientLineCodec::new();
            let mut input = vec![b'a'; MAX_LINE_BYTES];
            input.extend_from_slice(terminator);
            input.extend_from_slice(&[b'b'; MAX_LINE_BYTES + 1]);
            input.extend_from_slice(terminator);
            input.extend_from_slice(b"next");
            input.extend_from_slice(terminator);
            let items = decode_all(&mut codec, &input);
            assert_eq!(
                items,
                vec![
                    Ok("a".repeat(MAX_LINE_BYTES)),
                    Err(LineProblem::TooLong),
                    Ok("next".to_string())
                ],
                "terminator {terminator:?}"
            );
        }
    }

    /// Bytes arriving one at a time frame exactly as they do all at once (the search resumes
    /// where it stopped, and a `\r` waiting for its `\n` at the limit is not yet too long).
    #[test]
    fn lines_split_across_reads_frame_the_same() {
        let mut input = vec![b'a'; MAX_LINE_BYTES];
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&[b'b'; MAX_LINE_BYTES * 2]);
        input.extend_from_slice(b"\r\n\xff\nend\n");
        let mut codec = ClientLineCodec::new();
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for byte in &input {
            buf.extend_from_slice(&[*byte]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
        }
        assert_eq!(
            items,
            vec![
                Ok("a".repeat(MAX_LINE_BYTES)),
                Err(LineProblem::TooLong),
                Err(LineProblem::NotUtf8),
                Ok("end".to_string())
            ]
        );
    }

    #[test]
    fn a_last_line_without_newline_is_checked_like_the_others() {
        let mut codec = ClientLineCodec::with_max_length(4);
        let mut buf = BytesMut::from(&b"abcd\r"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Ok("abcd".to_string()))
        );
        let mut buf = BytesMut::from(&b"abcde"[..]);
        assert_eq!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Err(LineProblem::TooLong))
        );
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn problems_have_their_own_error_codes() {
        assert_eq!(LineProblem::TooLong.code(), ErrorCode::LineTooLong);
        assert_eq!(LineProblem::NotUtf8.code(), ErrorCode::NotUtf8);
    }
}
