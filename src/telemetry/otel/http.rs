//! The exporter's HTTP client: one blocking HTTP/1.1 POST per export, on the exporter's own
//! thread, every step bounded by the export timeout. Plain `http://` only.
//!
//! A collector is one request every few seconds, so a connection per export is enough, and
//! this keeps reqwest, hyper and their runtimes out of the library.

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The most of a collector's answer that is read (its body is a small protobuf message).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub struct BlockingHttp {
    pub timeout: Duration,
}

#[async_trait::async_trait]
impl HttpClient for BlockingHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        post(&request, Instant::now() + self.timeout).map_err(|e| Box::new(e) as HttpError)
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("collector: {what} timed out"),
    )
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The time left before `deadline`, as a socket timeout (never zero, which means "none").
fn left(deadline: Instant, what: &str) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out(what));
    }
    Ok(left)
}

/// Sends `request` and reads the whole answer by `deadline`.
pub fn post(request: &Request<Bytes>, deadline: Instant) -> io::Result<Response<Bytes>> {
    let mut stream = send(request.uri(), request.headers(), request.body(), deadline)?;
    read_response(&mut stream, deadline)
}

/// Posts `body` to `uri` and returns the answer's status, by `deadline` (the trace exporter's
/// way: no copy of the body).
pub fn post_body(
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
    deadline: Instant,
) -> io::Result<u16> {
    let mut stream = send(uri, headers, body, deadline)?;
    Ok(read_response(&mut stream, deadline)?.status().as_u16())
}

/// Connects and writes a POST of `body`; the stream is left to read the answer from.
fn send(
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
    deadline: Instant,
) -> io::Result<TcpStream> {
    if uri.scheme_str() != Some("http") {
        return Err(invalid(format!(
            "collector URL {uri}: only http:// is supported"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| invalid(format!("collector URL {uri} has no host")))?;
    let port = uri.port_u16().unwrap_or(80);
    let mut stream = connect(host.trim_matches(['[', ']']), port, deadline)?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        uri.path_and_query().map_or("/", |p| p.as_str()),
        uri.authority().map_or(host, |a| a.as_str()),
        body.len()
    );
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    write_all(&mut stream, head.as_bytes(), deadline)?;
    write_all(&mut stream, body, deadline)?;
    Ok(stream)
}

fn connect(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, left(deadline, "connect")?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| invalid(format!("collector host {host} has no address"))))
}

fn write_all(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.set_write_timeout(Some(left(deadline, "write")?))?;
        match stream.write(&bytes[..bytes.len().min(64 << 10)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(timed_out("write")),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads the status line, the headers and the body (by Content-Length, or to the close).
fn read_response(stream: &mut TcpStream, deadline: Instant) -> io::Result<Response<Bytes>> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut parsed: Option<(u16, usize, Option<usize>)> = None;
    loop {
        if let Some((_, body_start, Some(length))) = parsed
            && buffer.len() >= body_start + length
        {
            break;
        }
        stream.set_read_timeout(Some(left(deadline, "read")?))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(timed_out("read")),
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > MAX_RESPONSE_BYTES {
            return Err(invalid("collector answer too large".into()));
        }
        if parsed.is_none() {
            parsed = parse_head(&buffer)?;
        }
    }
    let (status, body_start, length) =
        parsed.ok_or_else(|| invalid("collector closed before answering".into()))?;
    let end = length.map_or(buffer.len(), |l| (body_start + l).min(buffer.len()));
    let body = Bytes::copy_from_slice(&buffer[body_start.min(end)..end]);
    Response::builder()
        .status(status)
        .body(body)
        .map_err(|e| invalid(format!("collector answer: {e}")))
}

/// `(status, where the body starts, Content-Length)` once the head is complete.
fn parse_head(buffer: &[u8]) -> io::Result<Option<(u16, usize, Option<usize>)>> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..end])
        .map_err(|_| invalid("collector answer head is not text".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("collector answer: bad status line {status_line:?}")))?;
    let length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    Ok(Some((status, end + 4, length)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn request(port: u16) -> Request<Bytes> {
        Request::post(format!("http://127.0.0.1:{port}/v1/traces"))
            .header("Content-Type", "application/x-protobuf")
            .body(Bytes::from_static(b"\x0a\x00"))
            .unwrap()
    }

    #[test]
    fn posts_and_reads_the_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\x0a\x00") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = post(&request(port), deadline).unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.body().as_ref(), b"ok");
        let sent = server.join().unwrap();
        assert!(sent.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{sent}");
        assert!(
            sent.contains("content-type: application/x-protobuf\r\n"),
            "{sent}"
        );
        assert!(sent.contains("Content-Length: 2\r\n"), "{sent}");
    }

    #[test]
    fn a_silent_collector_costs_the_timeout_and_no_more() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let started = Instant::now();
        let error = post(&request(port), started + Duration::from_millis(300)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(20));
        drop(listener);
    }

    #[test]
    fn a_closed_port_fails_at_once_and_https_is_refused() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        assert!(post(&request(port), deadline).is_err());
        let mut https = request(port);
        *https.uri_mut() = "https://127.0.0.1:1/v1/traces".parse().unwrap();
        assert!(post(&https, deadline).is_err());
    }
}
