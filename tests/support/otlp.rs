//! An OTLP/HTTP receiver on a free loopback port: it keeps every request's path and body and
//! answers `200` with an empty protobuf body (an empty `Export*ServiceResponse`), or `500`
//! when made `failing`. The tests decode the bodies with the OpenTelemetry proto definitions.

use super::fake::Listener;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Posted {
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub struct OtlpReceiver {
    listener: Listener,
    posted: Arc<Mutex<Vec<Posted>>>,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        OtlpReceiver::with_status(200)
    }

    /// A collector that answers every export with an error.
    pub fn failing() -> OtlpReceiver {
        OtlpReceiver::with_status(500)
    }

    fn with_status(status: u16) -> OtlpReceiver {
        let posted = Arc::new(Mutex::new(Vec::new()));
        let keep = posted.clone();
        let listener = Listener::start(move |mut conn, stop| {
            if let Some(request) = read_request(&mut conn, stop) {
                // Kept before the answer: a client that saw the answer finds it here.
                keep.lock().unwrap().push(request);
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let answer = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-protobuf\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        OtlpReceiver { listener, posted }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listener.addr.port())
    }

    /// What was posted to `path` so far.
    pub fn bodies(&self, path: &str) -> Vec<Posted> {
        let posted = self.posted.lock().unwrap();
        posted.iter().filter(|p| p.path == path).cloned().collect()
    }

    pub fn all(&self) -> Vec<Posted> {
        self.posted.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1.1 request.
fn read_request(conn: &mut TcpStream, stop: &AtomicBool) -> Option<Posted> {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut head: Option<(usize, String, String, usize)> = None;
    loop {
        if let Some((start, _, _, length)) = &head
            && buffer.len() >= start + length
        {
            break;
        }
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return None,
        }
        if head.is_none()
            && let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let path = lines.next()?.split(' ').nth(1)?.to_owned();
            let mut length = 0;
            let mut content_type = String::new();
            for line in lines {
                let (name, value) = line.split_once(':')?;
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().ok()?,
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
            head = Some((end + 4, path, content_type, length));
        }
    }
    let (start, path, content_type, length) = head?;
    Some(Posted {
        path,
        content_type,
        body: buffer[start..start + length].to_vec(),
    })
}
