//! A request-counting HTTP proxy in front of the emulator, on loopback.
//!
//! Point a tool's endpoint at [`Proxy::endpoint_url`]: every request is
//! parsed (head and `Content-Length` body), counted by AWS operation (the
//! awsQuery `Action`, the awsJson `X-Amz-Target`, else `METHOD /path`),
//! forwarded to the emulator on a fresh connection and its response copied
//! back. Counting here, outside the process under test, measures what
//! really went over the wire (retries included).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest request head or body accepted.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listen on a free loopback port and forward to
    /// `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let listener =
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let counts = Arc::clone(&counts);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let counts = Arc::clone(&counts);
                    std::thread::spawn(move || serve(conn, upstream_port, &counts));
                }
            })
        };
        Self {
            port,
            counts,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests forwarded so far, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests of one operation.
    pub fn count(&self, operation: &str) -> u64 {
        self.counts().get(operation).copied().unwrap_or(0)
    }

    /// Requests of every operation whose name contains `part`.
    pub fn count_matching(&self, part: &str) -> u64 {
        self.counts()
            .iter()
            .filter(|(k, _)| k.contains(part))
            .map(|(_, v)| v)
            .sum()
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    /// Forget the counts.
    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// One parsed request.
struct Request {
    head_lines: Vec<String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head_lines.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn operation(&self) -> String {
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(t).to_owned();
        }
        if let Some(a) = self
            .body
            .split(|b| *b == b'&')
            .find_map(|kv| kv.strip_prefix(b"Action="))
        {
            return String::from_utf8_lossy(a).into_owned();
        }
        let mut parts = self
            .head_lines
            .first()
            .map_or("", String::as_str)
            .split(' ');
        let method = parts.next().unwrap_or("?");
        let path = parts.next().unwrap_or("/");
        let first = path
            .trim_start_matches('/')
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        format!("{method} /{first}")
    }

    /// The request to send upstream, with `Connection: close`.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        for (i, l) in self.head_lines.iter().enumerate() {
            if i > 0
                && l.split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
            {
                continue;
            }
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Read one request; `None` at end of stream or on a malformed one.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head_lines = Vec::new();
    let mut size = 0usize;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).ok()?;
        if n == 0 {
            return None;
        }
        size += n;
        if size > MAX_REQUEST {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if head_lines.is_empty() {
                continue; // stray CRLF between requests
            }
            break;
        }
        head_lines.push(line);
    }
    let mut req = Request {
        head_lines,
        body: Vec::new(),
    };
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_REQUEST {
        return None;
    }
    req.body = vec![0; len];
    reader.read_exact(&mut req.body).ok()?;
    Some(req)
}

fn serve(client: TcpStream, upstream_port: u16, counts: &Mutex<BTreeMap<String, u64>>) {
    let _ = client.set_read_timeout(Some(Duration::from_mins(5)));
    let Ok(mut writer) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(client);
    while let Some(req) = read_request(&mut reader) {
        *counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(req.operation())
            .or_default() += 1;
        let Some(response) = forward(&req, upstream_port) else {
            let _ = writer.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            break;
        };
        if writer.write_all(&response).is_err() {
            break;
        }
        if !has_length(&response) {
            break; // body delimited by close: the client needs the close
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// Send to the emulator on a new connection; the whole response.
fn forward(req: &Request, upstream_port: u16) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream_port)).ok()?;
    let _ = up.set_read_timeout(Some(Duration::from_mins(5)));
    up.write_all(&req.to_bytes()).ok()?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).ok()?;
    (!response.is_empty()).then_some(response)
}

fn has_length(response: &[u8]) -> bool {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    String::from_utf8_lossy(response.get(..end).unwrap_or_default())
        .lines()
        .skip(1)
        .any(|l| {
            l.split_once(':').is_some_and(|(k, _)| {
                let k = k.trim();
                k.eq_ignore_ascii_case("content-length")
                    || k.eq_ignore_ascii_case("transfer-encoding")
            })
        })
}
