//! HTTP/1.1 requests sent exactly as written, for tests that must control the bytes of the
//! request target the server sees. Ordinary clients normalise paths before sending them (they
//! resolve `..` and `.` segments, re-encode or refuse some characters), which would hide from a
//! traversal test precisely the forms it needs to send.
//!
//! A [`Connection`] keeps one persistent connection and reconnects whenever the server closes
//! it (as it does after a request it could not parse).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long one request may take, connection to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response head read.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A response as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Every byte received, head included.
    pub raw: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One persistent HTTP/1.1 connection to `addr`, reopened when the server closes it.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    /// A connection to `addr`, opened at the first request.
    #[must_use]
    pub const fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// Sends `method target` with `headers` and `body`, the target byte for byte as given, and
    /// reads the response.
    ///
    /// # Errors
    /// When the connection fails, times out, or the response is not HTTP/1.1.
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<RawResponse> {
        let request = encode(self.addr, method, target, headers, body);
        let reused = self.stream.is_some();
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(&request)).await {
            Ok(Ok(response)) => Ok(response),
            // A kept-alive connection the server had closed meanwhile: once more, afresh.
            Ok(Err(_)) if reused => {
                self.stream = None;
                timeout(self.exchange(&request)).await
            }
            Ok(Err(err)) => {
                self.stream = None;
                Err(err)
            }
            Err(_) => {
                self.stream = None;
                Err(timed_out())
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<RawResponse> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self.stream.insert(BufReader::new(TcpStream::connect(self.addr).await?)),
        };
        stream.get_mut().write_all(request).await?;
        let response = read_response(stream).await;
        let keep = response.as_ref().is_ok_and(|r| {
            !r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
        });
        if !keep {
            self.stream = None;
        }
        response
    }
}

async fn timeout(
    exchange: impl Future<Output = std::io::Result<RawResponse>>,
) -> std::io::Result<RawResponse> {
    tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| timed_out())?
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out")
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}

fn encode(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut request = Vec::with_capacity(256 + target.len() + body.len());
    request.extend_from_slice(format!("{method} ").as_bytes());
    request.extend_from_slice(target.as_bytes());
    request.extend_from_slice(format!(" HTTP/1.1\r\nHost: {addr}\r\n").as_bytes());
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

/// Reads one response: the head, then a body delimited by `Content-Length`, chunking, or the
/// end of the connection.
async fn read_response(stream: &mut BufReader<TcpStream>) -> std::io::Result<RawResponse> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        stream.read_until(b'\n', &mut raw).await?;
        if raw.len() == before {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before a response",
            ));
        }
        if raw.ends_with(b"\r\n\r\n") {
            break;
        }
        if raw.len() > MAX_HEAD_BYTES {
            return Err(invalid("response head too long"));
        }
    }
    let (status, headers) = parse_head(&raw)?;
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(stream, &mut raw).await?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad content-length"))?;
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        raw.extend_from_slice(&body);
        body
    } else {
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await?;
        raw.extend_from_slice(&body);
        body
    };
    Ok(RawResponse { status, headers, body, raw })
}

fn parse_head(raw: &[u8]) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let head = String::from_utf8_lossy(raw);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.") {
        return Err(invalid("not an HTTP/1 response"));
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

async fn read_chunked(
    stream: &mut BufReader<TcpStream>,
    raw: &mut Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        stream.read_until(b'\n', &mut line).await?;
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let mut trailer = Vec::new();
                stream.read_until(b'\n', &mut trailer).await?;
                raw.extend_from_slice(&trailer);
                if trailer == b"\r\n" || trailer.is_empty() {
                    return Ok(body);
                }
            }
        }
        let mut chunk = vec![0u8; size + 2];
        stream.read_exact(&mut chunk).await?;
        raw.extend_from_slice(&chunk);
        chunk.truncate(size);
        body.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers each request on a connection with the next canned response.
    async fn serve(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = BufReader::new(stream);
            for response in responses {
                let mut line = Vec::new();
                loop {
                    line.clear();
                    stream.read_until(b'\n', &mut line).await.unwrap();
                    if line == b"\r\n" {
                        break;
                    }
                }
                stream.get_mut().write_all(response).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn responses_are_read_by_length_and_by_chunks_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ])
        .await;
        let mut connection = Connection::new(addr);
        let plain = connection.send("GET", "/a/../b", &[], b"").await.unwrap();
        assert_eq!(plain.status, 404);
        assert_eq!(plain.header("x-a"), Some("b"));
        assert_eq!(plain.body, b"hi");
        let chunked = connection.send("GET", "/%2e%2e", &[], b"").await.unwrap();
        assert_eq!(chunked.body, b"abcde");
        assert!(String::from_utf8_lossy(&chunked.raw).starts_with("HTTP/1.1 200 OK"));
    }
}
