//! An incremental Server-Sent Events parser, bounded in memory.
//!
//! Written by hand rather than taken from a crate: it must cap the size of one event (a
//! misbehaving upstream must not grow a buffer without end), report malformed input as a
//! protocol error, and accept bytes split anywhere, which is all it does.

use crate::error::LlmError;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Turns a byte stream into events.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    max_event_bytes: usize,
}

impl SseParser {
    /// A parser that refuses events larger than `max_event_bytes`.
    #[must_use]
    pub const fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            event: None,
            data: String::new(),
            has_data: false,
            max_event_bytes,
        }
    }

    /// Feeds bytes; returns the events they complete.
    ///
    /// # Errors
    /// A protocol error for an oversized event or a line that is not UTF-8.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LlmError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let line = String::from_utf8(line)
                    .map_err(|_| LlmError::protocol("a stream line is not UTF-8"))?;
                if let Some(event) = self.line_done(&line)? {
                    out.push(event);
                }
            } else {
                self.line.push(b);
                if self.line.len() + self.data.len() > self.max_event_bytes {
                    return Err(LlmError::protocol(format!(
                        "a stream event is larger than {} bytes",
                        self.max_event_bytes
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The end of the byte stream: a last event not followed by a blank line is dispatched.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn finish(&mut self) -> Result<Option<SseEvent>, LlmError> {
        if !self.line.is_empty() {
            let line = String::from_utf8(std::mem::take(&mut self.line))
                .map_err(|_| LlmError::protocol("a stream line is not UTF-8"))?;
            self.line_done(&line)?;
        }
        Ok(self.dispatch())
    }

    fn line_done(&mut self, line: &str) -> Result<Option<SseEvent>, LlmError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` drive browser reconnection, which we never do.
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent { event, data: std::mem::take(&mut self.data) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut p = SseParser::new(1024);
        let mut events = p.push(b"event: a\r\ndata: {\"x\"").unwrap();
        assert!(events.is_empty());
        events.extend(p.push(b":1}\r\n\r\n: keep-alive\n\ndata: one\ndata: two\n\n").unwrap());
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("a".into()), data: "{\"x\":1}".into() },
                SseEvent { event: None, data: "one\ntwo".into() },
            ]
        );
    }

    #[test]
    fn an_unterminated_last_event_is_dispatched_at_the_end() {
        let mut p = SseParser::new(1024);
        assert!(p.push(b"data: last").unwrap().is_empty());
        assert_eq!(p.finish().unwrap().map(|e| e.data), Some("last".into()));
    }

    #[test]
    fn oversized_events_and_invalid_utf8_are_protocol_errors() {
        let mut p = SseParser::new(8);
        assert!(matches!(p.push(b"data: 0123456789"), Err(LlmError::Protocol { .. })));
        let mut p = SseParser::new(1024);
        assert!(matches!(p.push(b"data: \xff\xfe\n"), Err(LlmError::Protocol { .. })));
    }
}
