//! Just enough HTTP/1.1 over raw TCP to check what the server answers:
//! status, headers and body, for plain requests and for WebSocket upgrade
//! requests (valid or deliberately broken).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// The `Sec-WebSocket-Key` from the example in RFC 6455, section 1.3.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` a server must answer to [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A GET request under construction. The `Host` header is added on sending.
#[derive(Debug, Clone)]
pub struct Request {
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// A plain `GET path` that asks the server to close the connection after
    /// answering.
    pub fn get(path: &str) -> Request {
        Request {
            path: path.to_owned(),
            headers: vec![("Connection".to_owned(), "close".to_owned())],
        }
    }

    /// A valid WebSocket upgrade request for `path`, using [`SAMPLE_KEY`].
    pub fn upgrade(path: &str) -> Request {
        Request {
            path: path.to_owned(),
            headers: Vec::new(),
        }
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", SAMPLE_KEY)
        .header("Sec-WebSocket-Version", "13")
    }

    /// Sets header `name` to `value`, replacing any earlier value.
    pub fn header(self, name: &str, value: &str) -> Request {
        let mut request = self.without_header(name);
        request.headers.push((name.to_owned(), value.to_owned()));
        request
    }

    /// Removes header `name`.
    pub fn without_header(mut self, name: &str) -> Request {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        self
    }

    /// The request as sent on the wire to a server at `host`.
    pub fn to_bytes(&self, host: SocketAddr) -> Vec<u8> {
        let mut head = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", self.path);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// Sends the request on a new connection to `addr` and reads the response.
    pub async fn send(&self, addr: SocketAddr) -> Response {
        let mut stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect to the server");
        within("sending a request", stream.write_all(&self.to_bytes(addr)))
            .await
            .expect("send the request");
        read_response(&mut stream, &mut Vec::new()).await
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `stream`. `buffer` holds bytes already read from
/// the stream; on return it holds the bytes that followed the response (for
/// a 101, the first WebSocket frames).
pub async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Response {
    let head = take_until(stream, buffer, b"\r\n\r\n", "a response head").await;
    let head = String::from_utf8(head).expect("response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    response.body = read_body(stream, buffer, &response).await;
    response
}

async fn read_body(stream: &mut TcpStream, buffer: &mut Vec<u8>, head: &Response) -> Vec<u8> {
    if head.status < 200 || head.status == 204 || head.status == 304 {
        return Vec::new();
    }
    if let Some(length) = head.header("Content-Length") {
        let length = length.parse().expect("numeric Content-Length");
        return take_exact(stream, buffer, length, "the response body").await;
    }
    if head
        .header("Transfer-Encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
    {
        return read_chunked_body(stream, buffer).await;
    }
    while read_more(stream, buffer, "the response body (until EOF)").await {}
    std::mem::take(buffer)
}

async fn read_chunked_body(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let size_line = take_until(stream, buffer, b"\r\n", "a chunk size").await;
        let size_line = String::from_utf8_lossy(&size_line);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        if size == 0 {
            // Skip trailers up to the blank line that ends the body.
            while !take_until(stream, buffer, b"\r\n", "chunk trailers")
                .await
                .is_empty()
            {}
            return body;
        }
        body.extend(take_exact(stream, buffer, size, "a chunk").await);
        take_exact(stream, buffer, 2, "a chunk's CRLF").await;
    }
}

/// Reads more bytes from `stream` into `buffer`; returns false at EOF.
pub async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>, what: &str) -> bool {
    let read = within(what, stream.read_buf(buffer))
        .await
        .unwrap_or_else(|error| panic!("reading {what}: {error}"));
    read > 0
}

/// Removes and returns the bytes before `delimiter` from the buffered stream,
/// dropping the delimiter.
async fn take_until(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    delimiter: &[u8],
    what: &str,
) -> Vec<u8> {
    loop {
        if let Some(at) = buffer
            .windows(delimiter.len())
            .position(|window| window == delimiter)
        {
            let taken = buffer[..at].to_vec();
            buffer.drain(..at + delimiter.len());
            return taken;
        }
        assert!(
            read_more(stream, buffer, what).await,
            "connection closed while reading {what}; got {:?}",
            String::from_utf8_lossy(buffer)
        );
    }
}

/// Removes and returns exactly `length` bytes from the buffered stream.
async fn take_exact(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    length: usize,
    what: &str,
) -> Vec<u8> {
    while buffer.len() < length {
        assert!(
            read_more(stream, buffer, what).await,
            "connection closed while reading {what}"
        );
    }
    buffer.drain(..length).collect()
}

/// Fetches `/healthz`, checks it answers 200 with JSON, and parses it.
pub async fn health(addr: SocketAddr) -> serde_json::Value {
    let response = Request::get("/healthz").send(addr).await;
    assert_eq!(response.status, 200, "/healthz answered {response:?}");
    let content_type = response.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "/healthz content type {content_type:?}"
    );
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|error| panic!("/healthz body {:?}: {error}", response.body_text()))
}

/// The open WebSocket connections of each worker, in the order a `/healthz`
/// document lists the workers.
pub fn connections_per_worker(health: &serde_json::Value) -> Vec<u64> {
    let workers = health["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("/healthz has no workers array: {health}"));
    workers
        .iter()
        .map(|worker| {
            worker["connections"]
                .as_u64()
                .unwrap_or_else(|| panic!("worker without a connection count: {worker}"))
        })
        .collect()
}
