//! Splits a byte stream into text lines while holding at most one line's limit in memory.
//!
//! A line longer than the limit is emitted as soon as the limit is passed, cut at a UTF-8
//! boundary and marked truncated; the rest of it, up to the next newline, is discarded.
//! Bytes that are not UTF-8 are replaced (lossy), so any input gives valid text.

/// One line of output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// The line was longer than the limit and was cut.
    pub truncated: bool,
}

/// Turns chunks of bytes into [`Line`]s of at most `max` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
    /// The current line already passed the limit and was emitted; drop bytes up to the
    /// next newline.
    discarding: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            buf: Vec::new(),
            discarding: false,
        }
    }

    /// Feeds `chunk`, calling `emit` for every line it completes (or cuts).
    pub fn push(&mut self, mut chunk: &[u8], mut emit: impl FnMut(Line)) {
        while !chunk.is_empty() {
            let (part, ends_line) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let part = &chunk[..i];
                    chunk = &chunk[i + 1..];
                    (part, true)
                }
                None => (std::mem::take(&mut chunk), false),
            };
            if self.discarding {
                self.discarding = !ends_line;
                continue;
            }
            let room = self.max - self.buf.len();
            if part.len() > room {
                self.buf.extend_from_slice(&part[..room]);
                emit(self.take(true));
                self.discarding = !ends_line;
            } else {
                self.buf.extend_from_slice(part);
                if ends_line {
                    emit(self.take(false));
                }
            }
        }
    }

    /// The last line when the stream ended without a newline.
    pub fn finish(&mut self) -> Option<Line> {
        self.discarding = false;
        if self.buf.is_empty() {
            return None;
        }
        Some(self.take(false))
    }

    fn take(&mut self, cut: bool) -> Line {
        let mut bytes = std::mem::take(&mut self.buf);
        if cut {
            let keep = bytes.len() - incomplete_tail(&bytes);
            bytes.truncate(keep);
        }
        let mut text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let mut truncated = cut;
        if text.len() > self.max {
            // Replacement characters take more room than the bytes they replace.
            let mut end = self.max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            truncated = true;
        }
        Line { text, truncated }
    }
}

/// How many bytes at the end of `bytes` are the start of a multi-byte UTF-8 character
/// whose remaining bytes were cut off.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: look further back for the lead byte
        }
        let needed = match b {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut splitter = LineSplitter::new(max);
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |l| lines.push(l));
        }
        lines.extend(splitter.finish());
        lines
    }

    fn line(text: &str, truncated: bool) -> Line {
        Line {
            text: text.to_owned(),
            truncated,
        }
    }

    #[test]
    fn splits_on_newlines_across_chunks() {
        let lines = split(100, &[b"ab", b"c\nde", b"f\n\ng"]);
        assert_eq!(
            lines,
            vec![
                line("abc", false),
                line("def", false),
                line("", false),
                line("g", false)
            ]
        );
    }

    #[test]
    fn final_line_without_newline_is_kept_and_empty_end_is_not_a_line() {
        assert_eq!(
            split(100, &[b"x\ny"]),
            vec![line("x", false), line("y", false)]
        );
        assert_eq!(split(100, &[b"x\n"]), vec![line("x", false)]);
        assert!(split(100, &[]).is_empty());
    }

    #[test]
    fn line_at_the_limit_is_whole() {
        assert_eq!(split(3, &[b"abc\n"]), vec![line("abc", false)]);
        assert_eq!(split(3, &[b"abc"]), vec![line("abc", false)]);
    }

    #[test]
    fn long_line_is_cut_once_and_rest_discarded() {
        let lines = split(4, &[b"abcdefg", b"hij", b"klm\nnext\n"]);
        assert_eq!(lines, vec![line("abcd", true), line("next", false)]);
        // Cut without a newline ever coming.
        assert_eq!(split(4, &[b"abcdefgh", b"ijkl"]), vec![line("abcd", true)]);
        // Cut exactly at a newline in the same chunk.
        assert_eq!(
            split(2, &[b"abc\nd"]),
            vec![line("ab", true), line("d", false)]
        );
    }

    #[test]
    fn cut_respects_utf8_boundaries() {
        // "é" is two bytes; a cut after 3 bytes would split the second one.
        let lines = split(3, &["aéé\n".as_bytes()]);
        assert_eq!(lines, vec![line("aé", true)]);
        // A four-byte character cut after one byte disappears entirely.
        let lines = split(2, &["a😀\n".as_bytes()]);
        assert_eq!(lines, vec![line("a", true)]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_within_the_limit() {
        assert_eq!(split(100, &[b"a\xffb\n"]), vec![line("a\u{fffd}b", false)]);
        // Four invalid bytes fit the 4-byte limit but their replacements (3 bytes each) do not.
        let lines = split(4, &[b"\xff\xff\xff\xff\n"]);
        assert_eq!(lines, vec![line("\u{fffd}", true)]);
        assert!(lines.iter().all(|l| l.text.len() <= 4));
    }

    #[test]
    fn buffer_never_grows_past_the_limit() {
        let mut splitter = LineSplitter::new(16);
        let chunk = vec![b'x'; 4096];
        let mut count = 0;
        for _ in 0..100 {
            splitter.push(&chunk, |_| count += 1);
            assert!(splitter.buf.len() <= 16);
        }
        assert_eq!(count, 1);
        assert_eq!(splitter.finish(), None);
    }
}
