//! Reading request lines and splitting them into commands and words, as
//! HAProxy's CLI does: `;` separates commands, spaces and tabs separate
//! words, and a backslash makes the next character literal.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Most words HAProxy keeps per command (`MAX_CLI_ARGS`); more are dropped.
const MAX_WORDS: usize = 64;

/// One command: its words, unescaped.
pub type Words = Vec<String>;

/// Split one request line into commands.
pub fn split(line: &str) -> Vec<Words> {
    let mut commands = Vec::new();
    let mut words: Words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let end_word = |words: &mut Words, word: &mut String, in_word: &mut bool| {
        if *in_word && words.len() < MAX_WORDS {
            words.push(std::mem::take(word));
        }
        word.clear();
        *in_word = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            ';' => {
                end_word(&mut words, &mut word, &mut in_word);
                commands.push(std::mem::take(&mut words));
            }
            ' ' | '\t' => end_word(&mut words, &mut word, &mut in_word),
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end_word(&mut words, &mut word, &mut in_word);
    commands.push(words);
    commands
}

/// Why no line could be read.
#[derive(Debug)]
pub enum ReadError {
    /// More than the limit without a line break.
    TooLong,
    Io(std::io::Error),
}

/// Reads `\n`-terminated lines of bounded length.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    limit: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader that refuses lines longer than `limit` bytes.
    pub fn new(inner: R, limit: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            limit,
            eof: false,
        }
    }

    /// True when a complete line (or final text before EOF) is buffered.
    pub fn has_line(&self) -> bool {
        self.buf.contains(&b'\n') || (self.eof && !self.buf.is_empty())
    }

    /// Read and drop input until the peer closes (so that closing after
    /// an error sends FIN, not a reset that could eat the error message).
    pub async fn discard(&mut self) {
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = self.inner.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
        self.eof = true;
    }

    /// The next line without its line break (`\r\n` or `\n`); `None` at
    /// end of input. Text after the last line break counts as a line.
    pub async fn next_line(&mut self) -> Result<Option<String>, ReadError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buf.len() > self.limit {
                return Err(ReadError::TooLong);
            }
            let mut chunk = [0u8; 4096];
            let n = self.inner.read(&mut chunk).await.map_err(ReadError::Io)?;
            if n == 0 {
                self.eof = true;
            } else {
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<&'static str>> {
        split(line)
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|w| &*Box::leak(w.into_boxed_str()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn splits_commands_and_words() {
        assert_eq!(
            words("show info;show  stat\t-1 ; get weight a/b"),
            vec![
                vec!["show", "info"],
                vec!["show", "stat", "-1"],
                vec!["get", "weight", "a/b"]
            ]
        );
        assert_eq!(words(""), vec![Vec::<&str>::new()]);
        assert_eq!(
            words("show backend;"),
            vec![vec!["show", "backend"], vec![]]
        );
    }

    #[test]
    fn backslash_escapes() {
        assert_eq!(words(r"a b\;c d\\e\ f"), vec![vec!["a", "b;c", r"d\e f"]]);
        assert_eq!(words(r"x \"), vec![vec!["x", ""]]);
    }

    #[test]
    fn word_count_is_bounded() {
        let line = "w ".repeat(500);
        assert_eq!(split(&line)[0].len(), MAX_WORDS);
    }

    #[tokio::test]
    async fn reads_bounded_lines() {
        let data: &[u8] = b"one\r\ntwo\nlast";
        let mut r = LineReader::new(data, 100);
        assert_eq!(r.next_line().await.ok().flatten().as_deref(), Some("one"));
        assert!(r.has_line());
        assert_eq!(r.next_line().await.ok().flatten().as_deref(), Some("two"));
        assert_eq!(r.next_line().await.ok().flatten().as_deref(), Some("last"));
        assert!(matches!(r.next_line().await, Ok(None)));
        let long = vec![b'x'; 10_000];
        let mut r = LineReader::new(&long[..], 1000);
        assert!(matches!(r.next_line().await, Err(ReadError::TooLong)));
    }
}
