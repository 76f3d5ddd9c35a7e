//! Client line framing: `\n`-terminated UTF-8 lines of at most [`MAX_LINE_BYTES`].
//!
//! `LinesCodec` reports an oversized or non-UTF-8 line as an error, and a `Framed` stream ends
//! after any decoder error. This codec turns those two problems into items instead, so the
//! connection survives: the runtime answers the client with a `bad_request` error line and
//! reads on (the codec has already skipped the bad line).

use crate::protocol::MAX_LINE_BYTES;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

/// Why a client line was not passed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineProblem {
    TooLong,
    NotUtf8,
}

impl LineProblem {
    pub fn describe(&self) -> String {
        match self {
            LineProblem::TooLong => format!("line longer than {MAX_LINE_BYTES} bytes"),
            LineProblem::NotUtf8 => "line is not valid UTF-8".to_string(),
        }
    }
}

/// A line, or the problem that replaced it.
pub type FramedLine = Result<String, LineProblem>;

/// [`LinesCodec`] with a length limit whose per-line problems are items, not stream errors.
pub struct ClientLineCodec {
    inner: LinesCodec,
}

impl ClientLineCodec {
    pub fn new() -> ClientLineCodec {
        ClientLineCodec::with_max_length(MAX_LINE_BYTES)
    }

    pub fn with_max_length(max: usize) -> ClientLineCodec {
        ClientLineCodec {
            inner: LinesCodec::new_with_max_length(max),
        }
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
        map(self.inner.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<FramedLine>, std::io::Error> {
        map(self.inner.decode_eof(buf))
    }
}

fn map(r: Result<Option<String>, LinesCodecError>) -> Result<Option<FramedLine>, std::io::Error> {
    match r {
        Ok(line) => Ok(line.map(Ok)),
        Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Err(LineProblem::TooLong))),
        // The decoder never does I/O itself: its only `Io` error is invalid UTF-8, and it has
        // consumed that line already.
        Err(LinesCodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Ok(Some(Err(LineProblem::NotUtf8)))
        }
        Err(LinesCodecError::Io(e)) => Err(e),
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
}
