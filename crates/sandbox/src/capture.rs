//! Bounded capture of a command's output: the first and last bytes in memory, everything (up
//! to a limit) in the log file, and best-effort live chunks to a listener. Memory use is fixed
//! by the cap, whatever the command prints.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::command::{LogSummary, Output};

/// A ring buffer keeping the last `capacity` bytes written to it.
#[derive(Debug)]
struct Tail {
    buf: Vec<u8>,
    capacity: usize,
    /// Next write position once `buf` is full.
    start: usize,
}

impl Tail {
    fn new(capacity: usize) -> Self {
        Self { buf: Vec::new(), capacity, start: 0 }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        if bytes.len() >= self.capacity {
            bytes = &bytes[bytes.len() - self.capacity..];
            self.buf.clear();
            self.buf.extend_from_slice(bytes);
            self.start = 0;
            return;
        }
        if self.buf.len() < self.capacity {
            let room = self.capacity - self.buf.len();
            let now = bytes.len().min(room);
            self.buf.extend_from_slice(&bytes[..now]);
            bytes = &bytes[now..];
        }
        while !bytes.is_empty() {
            let now = bytes.len().min(self.capacity - self.start);
            self.buf[self.start..self.start + now].copy_from_slice(&bytes[..now]);
            self.start = (self.start + now) % self.capacity;
            bytes = &bytes[now..];
        }
    }

    fn into_bytes(mut self) -> Vec<u8> {
        if self.buf.len() == self.capacity {
            self.buf.rotate_left(self.start);
        }
        self.buf
    }
}

/// Collects the output of one command.
#[derive(Debug)]
pub(crate) struct Capture {
    head: Vec<u8>,
    head_capacity: usize,
    tail: Tail,
    total: u64,
    log: Option<Log>,
    live: Option<mpsc::Sender<Vec<u8>>>,
}

#[derive(Debug)]
struct Log {
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    written: u64,
    max: u64,
    truncated: bool,
    failed: bool,
}

impl Capture {
    /// A capture keeping `cap` bytes in memory, logging to `log` (already created).
    pub(crate) fn new(
        cap: usize,
        log: Option<(PathBuf, tokio::fs::File)>,
        log_max: u64,
        live: Option<mpsc::Sender<Vec<u8>>>,
    ) -> Self {
        let head_capacity = cap / 2;
        Self {
            head: Vec::new(),
            head_capacity,
            tail: Tail::new(cap - head_capacity),
            total: 0,
            log: log.map(|(path, file)| Log {
                path,
                file: tokio::io::BufWriter::with_capacity(1 << 20, file),
                written: 0,
                max: log_max,
                truncated: false,
                failed: false,
            }),
            live,
        }
    }

    pub(crate) async fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_capacity - self.head.len();
        let (to_head, rest) = bytes.split_at(bytes.len().min(room));
        self.head.extend_from_slice(to_head);
        self.tail.push(rest);
        if let Some(live) = &self.live {
            // A slow listener loses chunks rather than slowing the command or growing memory.
            let _ = live.try_send(bytes.to_vec());
        }
        if let Some(log) = &mut self.log
            && !log.failed
        {
            let room = log.max.saturating_sub(log.written);
            let now = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
            if now < bytes.len() {
                log.truncated = true;
            }
            if now > 0 {
                match log.file.write_all(&bytes[..now]).await {
                    Ok(()) => log.written += now as u64,
                    Err(e) => {
                        tracing::warn!(path = %log.path.display(), error = %e, "command log write failed");
                        log.failed = true;
                        log.truncated = true;
                    }
                }
            }
        }
    }

    pub(crate) async fn finish(self) -> (Output, Option<LogSummary>) {
        let log = match self.log {
            Some(mut log) => {
                if let Err(e) = log.file.flush().await {
                    tracing::warn!(path = %log.path.display(), error = %e, "command log flush failed");
                    log.truncated = true;
                }
                Some(LogSummary { path: log.path, bytes: log.written, truncated: log.truncated })
            }
            None => None,
        };
        let output =
            Output { head: self.head, tail: self.tail.into_bytes(), total_bytes: self.total };
        (output, log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_bytes_across_chunk_sizes() {
        for chunk in [1usize, 3, 7, 10, 11, 64] {
            let mut tail = Tail::new(10);
            let data: Vec<u8> = (0..200u8).collect();
            for piece in data.chunks(chunk) {
                tail.push(piece);
            }
            assert_eq!(tail.into_bytes(), data[190..].to_vec(), "chunk {chunk}");
        }
        let mut short = Tail::new(10);
        short.push(b"abc");
        assert_eq!(short.into_bytes(), b"abc".to_vec());
    }

    #[tokio::test]
    async fn output_over_the_cap_keeps_head_and_tail() {
        let mut capture = Capture::new(8, None, 0, None);
        for piece in [b"0123".as_slice(), b"456789", b"abcdef"] {
            capture.push(piece).await;
        }
        let (out, log) = capture.finish().await;
        assert!(log.is_none());
        assert_eq!(out.head, b"0123");
        assert_eq!(out.tail, b"cdef");
        assert_eq!(out.total_bytes, 16);
        assert_eq!(out.omitted_bytes(), 8);
    }

    #[tokio::test]
    async fn the_log_stops_at_its_limit_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = tokio::fs::File::create(&path).await.unwrap();
        let mut capture = Capture::new(1024, Some((path.clone(), file)), 5, None);
        capture.push(b"abc").await;
        capture.push(b"defg").await;
        let (out, log) = capture.finish().await;
        assert_eq!(out.head, b"abcdefg");
        let log = log.unwrap();
        assert_eq!((log.bytes, log.truncated), (5, true));
        assert_eq!(std::fs::read(&path).unwrap(), b"abcde");
    }
}
