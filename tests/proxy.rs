//! A request-counting HTTP proxy in front of the emulator, on loopback,
//! with an optional AWS timing model and fault injection.
//!
//! Point a tool's endpoint at [`Proxy::endpoint_url`]: every request is
//! parsed (head and `Content-Length` body), counted by AWS operation (the
//! awsQuery `Action`, the awsJson `X-Amz-Target`, else `METHOD /path`) and
//! by client (the `User-Agent`'s first word), forwarded to the emulator on
//! a fresh connection and its response copied back. Counting here, outside
//! the process under test, measures what really went over the wire
//! (retries included).
//!
//! **AWS timing model** ([`Config::latency`], [`Config::model`]): the
//! emulator answers at once and completes stacks synchronously, which hides
//! what concurrency and polling are worth. With the model on, every call
//! waits `latency` (default 80 ms, a typical CloudFormation API round
//! trip), and after a `CreateStack`, `UpdateStack` or `ExecuteChangeSet` the
//! stack is reported by `DescribeStacks` as `CREATE_IN_PROGRESS` /
//! `UPDATE_IN_PROGRESS` for `(base + per_resource × resources) / scale`
//! (defaults: 30 s + 4 s per resource, the order of published CloudFormation
//! timings, e.g. about two minutes for a 20-resource VPC stack, scaled down
//! 100×).
//!
//! **Faults** ([`Config`] `throttle`, `server_error`, `drop`, `slow`): a
//! share of requests gets a `Throttling` error (HTTP 400, in the protocol's
//! error shape), an HTTP 500 or 503, a dropped connection (closed without a
//! response, before forwarding), or an extra delay. Decisions come from a
//! seeded generator: runs are repeatable.
//!
//! **Control**: `GET /__proxy/counts` (JSON: `total`, `byAction`,
//! `byClient`, `maxRatePerSecond`, `faults`), `POST /__proxy/reset`,
//! `POST /__proxy/config` (a JSON [`Config`]) on the proxy's own port, for
//! harnesses in other processes (see the `harmonix-proxy` binary).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Largest request head or body accepted.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// How the proxy behaves. Every share is a fraction of requests (0.0–1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Config {
    /// Added before forwarding every request (the model's API latency).
    pub latency_ms: u64,
    /// Report stacks in progress after create/update (the timing model).
    pub model: bool,
    /// Model: seconds every operation takes at least.
    pub base_seconds: f64,
    /// Model: seconds per resource of the template.
    pub per_resource_seconds: f64,
    /// Model: divide real durations by this.
    pub scale: f64,
    /// Share answered with a `Throttling` error.
    pub throttle: f64,
    /// Share answered with HTTP 500 or 503.
    pub server_error: f64,
    /// Share whose connection is closed without an answer.
    pub drop: f64,
    /// Share delayed by `slow_ms` more.
    pub slow: f64,
    /// Extra delay of slow requests.
    pub slow_ms: u64,
    /// Seed of the fault decisions.
    pub seed: u64,
    /// Only these operations get faults (empty: all).
    pub fault_operations: Vec<String>,
    /// Refuse, with AWS's own error, what AWS refuses and the emulator
    /// lets through (see [`aws_limit_violation`]). On by default: every
    /// end-to-end test runs through it.
    pub aws_limits: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            model: false,
            base_seconds: 30.0,
            per_resource_seconds: 4.0,
            scale: 100.0,
            throttle: 0.0,
            server_error: 0.0,
            drop: 0.0,
            slow: 0.0,
            slow_ms: 2_000,
            seed: 1,
            fault_operations: Vec::new(),
            aws_limits: true,
        }
    }
}

impl Config {
    /// The timing model with its defaults: 80 ms per call, stacks in
    /// progress for (30 s + 4 s per resource) / 100.
    pub fn aws_model() -> Self {
        Self {
            latency_ms: 80,
            model: true,
            ..Self::default()
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn duration(&self, resources: usize) -> Duration {
        let secs = (self.base_seconds + self.per_resource_seconds * resources as f64)
            / self.scale.max(1e-9);
        Duration::from_secs_f64(secs.clamp(0.0, 3_600.0))
    }
}

/// Counts and observations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// All requests.
    pub total: u64,
    /// By operation.
    pub by_action: BTreeMap<String, u64>,
    /// By client (`User-Agent`'s first word), then operation.
    pub by_client: BTreeMap<String, BTreeMap<String, u64>>,
    /// Most requests seen within one second (sliding).
    pub max_rate_per_second: u64,
    /// Faults injected, by kind (`throttle`, `500`, `503`, `drop`, `slow`).
    pub faults: BTreeMap<String, u64>,
    /// Requests refused as AWS would refuse them, by operation and rule
    /// (`CreateChangeSet: templateBody > 51200 bytes`).
    pub refused: BTreeMap<String, u64>,
}

/// Shared state of a running proxy.
struct State {
    config: Config,
    counts: Counts,
    /// Request times in the last second, for the rate.
    recent: std::collections::VecDeque<Instant>,
    /// Stack name → (in progress until, status to report).
    in_progress: HashMap<String, (Instant, String)>,
    /// Change set name or id → (stack, resources) from CreateChangeSet.
    change_sets: HashMap<String, (String, usize)>,
    rng: u64,
}

impl State {
    #[allow(clippy::cast_precision_loss)]
    fn next_random(&mut self) -> f64 {
        // xorshift64*: small, seeded, good enough for fault shares.
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// Listen on a free loopback port and forward to
    /// `127.0.0.1:upstream_port`, counting only.
    pub fn start(upstream_port: u16) -> Self {
        Self::start_with(upstream_port, Config::default(), 0)
    }

    /// The same with a configuration, on `port` (0: a free one).
    pub fn start_with(upstream_port: u16, config: Config, port: u16) -> Self {
        let listener =
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(Mutex::new(State {
            rng: config.seed,
            config,
            counts: Counts::default(),
            recent: std::collections::VecDeque::new(),
            in_progress: HashMap::new(),
            change_sets: HashMap::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || serve(conn, upstream_port, &state));
                }
            })
        };
        Self {
            port,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replace the configuration.
    pub fn configure(&self, config: Config) {
        let mut s = lock(&self.state);
        s.rng = config.seed;
        s.config = config;
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> Counts {
        lock(&self.state).counts.clone()
    }

    /// Requests forwarded so far, by operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.snapshot().by_action
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
        self.snapshot().total
    }

    /// Forget the counts (the configuration stays).
    pub fn reset(&self) {
        let mut s = lock(&self.state);
        s.counts = Counts::default();
        s.recent.clear();
    }

    /// Wait until the process is asked to stop (for the binary).
    pub fn wait(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
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
#[derive(Debug)]
pub struct Request {
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

    fn path(&self) -> &str {
        self.head_lines
            .first()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/")
    }

    fn is_json(&self) -> bool {
        self.header("x-amz-target").is_some()
            || self
                .header("content-type")
                .is_some_and(|c| c.contains("json"))
    }

    fn operation(&self) -> String {
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(t).to_owned();
        }
        if let Some(a) = form_value(&self.body, "Action") {
            return a;
        }
        let method = self
            .head_lines
            .first()
            .and_then(|l| l.split(' ').next())
            .unwrap_or("?");
        let first = self
            .path()
            .trim_start_matches('/')
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        format!("{method} /{first}")
    }

    fn client(&self) -> String {
        self.header("user-agent")
            .and_then(|ua| ua.split([' ', '/']).next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_owned()
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

/// Percent-decode a form value.
fn decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < v.len() => {
                let hex = std::str::from_utf8(&v[i + 1..i + 3]).unwrap_or("");
                if let Ok(b) = u8::from_str_radix(hex, 16) {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a form-encoded body.
fn form_value(body: &[u8], key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    body.split(|b| *b == b'&')
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(decode)
}

/// Resources in a form request's `TemplateBody` (JSON templates).
fn template_resources(body: &[u8]) -> usize {
    form_value(body, "TemplateBody")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("Resources")
                .and_then(|r| r.as_object())
                .map(serde_json::Map::len)
        })
        .unwrap_or(10)
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

/// What to do with a request.
enum Fault {
    None,
    Throttle,
    Status(u16),
    Drop,
    Slow(Duration),
}

fn decide(state: &Mutex<State>, op: &str, client: &str) -> (Fault, Duration) {
    let mut s = lock(state);
    let now = Instant::now();
    s.counts.total += 1;
    *s.counts.by_action.entry(op.to_owned()).or_default() += 1;
    *s.counts
        .by_client
        .entry(client.to_owned())
        .or_default()
        .entry(op.to_owned())
        .or_default() += 1;
    s.recent.push_back(now);
    while s
        .recent
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
    {
        s.recent.pop_front();
    }
    let rate = s.recent.len() as u64;
    s.counts.max_rate_per_second = s.counts.max_rate_per_second.max(rate);
    let latency = Duration::from_millis(s.config.latency_ms);
    let c = s.config.clone();
    let eligible = c.fault_operations.is_empty() || c.fault_operations.iter().any(|o| o == op);
    if !eligible {
        return (Fault::None, latency);
    }
    let r = s.next_random();
    let fault = if r < c.throttle {
        Fault::Throttle
    } else if r < c.throttle + c.server_error {
        Fault::Status(if s.next_random() < 0.5 { 500 } else { 503 })
    } else if r < c.throttle + c.server_error + c.drop {
        Fault::Drop
    } else if r < c.throttle + c.server_error + c.drop + c.slow {
        Fault::Slow(Duration::from_millis(c.slow_ms))
    } else {
        Fault::None
    };
    let kind = match &fault {
        Fault::None => None,
        Fault::Throttle => Some("throttle".to_owned()),
        Fault::Status(code) => Some(code.to_string()),
        Fault::Drop => Some("drop".to_owned()),
        Fault::Slow(_) => Some("slow".to_owned()),
    };
    if let Some(k) = kind {
        *s.counts.faults.entry(k).or_default() += 1;
    }
    (fault, latency)
}

fn respond(status: u16, reason: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: harmonix-proxy\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn error_response(req: &Request, status: u16, code: &str, message: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    if req.is_json() {
        let body = serde_json::json!({ "__type": code, "message": message }).to_string();
        let mut r = respond(status, reason, "application/x-amz-json-1.0", &body);
        // awsJson clients read the error code from this header too.
        let head_end = r.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
        let extra = format!("x-amzn-ErrorType: {code}\r\n");
        r.splice(head_end..head_end, extra.into_bytes());
        r
    } else {
        let body = format!(
            "<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>harmonix-proxy</RequestId></ErrorResponse>"
        );
        respond(status, reason, "text/xml", &body)
    }
}

fn control(req: &Request, state: &Mutex<State>) -> Vec<u8> {
    let path = req.path().to_owned();
    let mut s = lock(state);
    match path.as_str() {
        "/__proxy/counts" => {
            let body = serde_json::to_string(&s.counts).unwrap_or_default();
            respond(200, "OK", "application/json", &body)
        }
        "/__proxy/reset" => {
            s.counts = Counts::default();
            s.recent.clear();
            respond(200, "OK", "application/json", "{}")
        }
        "/__proxy/config" => match serde_json::from_slice::<Config>(&req.body) {
            Ok(c) => {
                s.rng = c.seed;
                s.config = c;
                respond(200, "OK", "application/json", "{}")
            }
            Err(e) => respond(400, "Bad Request", "text/plain", &e.to_string()),
        },
        _ => respond(404, "Not Found", "text/plain", "unknown proxy control path"),
    }
}

fn serve(client: TcpStream, upstream_port: u16, state: &Mutex<State>) {
    let _ = client.set_read_timeout(Some(Duration::from_mins(5)));
    let Ok(mut writer) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(client);
    while let Some(req) = read_request(&mut reader) {
        if req.path().starts_with("/__proxy/") {
            let _ = writer.write_all(&control(&req, state));
            continue;
        }
        let op = req.operation();
        let (fault, latency) = decide(state, &op, &req.client());
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let strict = lock(state).config.aws_limits;
        if let Some(v) = strict.then(|| aws_limit_violation(&req, &op)).flatten() {
            *lock(state)
                .counts
                .refused
                .entry(format!("{op}: {}", v.rule))
                .or_default() += 1;
            let response = error_response(&req, 400, v.code, &v.message);
            let close = req
                .header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close"));
            if writer.write_all(&response).is_err() || close {
                break;
            }
            continue;
        }
        let response = match fault {
            Fault::Drop => break,
            Fault::Throttle => error_response(&req, 400, "Throttling", "Rate exceeded"),
            Fault::Status(code) => error_response(
                &req,
                code,
                if code == 500 {
                    "InternalFailure"
                } else {
                    "ServiceUnavailable"
                },
                "injected by harmonix-proxy",
            ),
            Fault::Slow(d) => {
                std::thread::sleep(d);
                match forward(&req, upstream_port) {
                    Some(r) => model(&req, &op, r, state),
                    None => break,
                }
            }
            Fault::None => {
                let Some(r) = forward(&req, upstream_port) else {
                    let _ = writer.write_all(
                        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    break;
                };
                model(&req, &op, r, state)
            }
        };
        if writer.write_all(&response).is_err() {
            break;
        }
        if !has_length(&response) {
            break; // body delimited by close: the client needs the close
        }
        if req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            break; // the client asked to close after this response
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// A request AWS would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A short name of the rule, for the counts.
    pub rule: &'static str,
    /// AWS's error code.
    pub code: &'static str,
    /// AWS's message.
    pub message: String,
}

/// CloudFormation operations that take a template.
const TEMPLATE_OPERATIONS: [&str; 6] = [
    "CreateStack",
    "UpdateStack",
    "CreateChangeSet",
    "ValidateTemplate",
    "GetTemplateSummary",
    "EstimateTemplateCost",
];

/// Largest inline `TemplateBody` CloudFormation accepts, in bytes
/// ("Understand CloudFormation quotas":
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html>).
pub const MAX_TEMPLATE_BODY: usize = 51_200;

/// What AWS refuses that moto accepts, checked on the request before it
/// reaches the emulator:
/// - a `TemplateBody` over 51,200 bytes (AWS answers HTTP 400
///   `ValidationError` "1 validation error detected: Value '…' at
///   'templateBody' failed to satisfy constraint: Member must have length
///   less than or equal to 51200");
/// - a `TemplateURL` that is not an `https://` URL ("The location for an
///   Amazon S3 bucket must start with https://", `CreateStack` API
///   reference).
pub fn aws_limit_violation(req: &Request, op: &str) -> Option<Violation> {
    if req.is_json() || !TEMPLATE_OPERATIONS.contains(&op) {
        return None;
    }
    if let Some(body) = form_value(&req.body, "TemplateBody")
        && body.len() > MAX_TEMPLATE_BODY
    {
        let shown: String = body.chars().take(40).collect();
        return Some(Violation {
            rule: "templateBody > 51200 bytes",
            code: "ValidationError",
            message: format!(
                "1 validation error detected: Value '{}...' at 'templateBody' failed to satisfy constraint: Member must have length less than or equal to {MAX_TEMPLATE_BODY}",
                xml_escape(&shown)
            ),
        });
    }
    if let Some(url) = form_value(&req.body, "TemplateURL")
        && !url.starts_with("https://")
    {
        return Some(Violation {
            rule: "templateURL not https",
            code: "ValidationError",
            message: format!(
                "TemplateURL must be a supported URL: {} (S3 locations must start with https://)",
                xml_escape(&url)
            ),
        });
    }
    None
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The timing model: remember operations that start stack work, and show
/// those stacks in progress in `DescribeStacks` answers.
fn model(req: &Request, op: &str, response: Vec<u8>, state: &Mutex<State>) -> Vec<u8> {
    let mut s = lock(state);
    if !s.config.model || !status_ok(&response) {
        return response;
    }
    let now = Instant::now();
    match op {
        "CreateChangeSet" => {
            let stack = form_value(&req.body, "StackName").unwrap_or_default();
            let name = form_value(&req.body, "ChangeSetName").unwrap_or_default();
            let n = template_resources(&req.body);
            if let Some(id) = xml_value(&response, "Id") {
                s.change_sets.insert(id, (stack.clone(), n));
            }
            s.change_sets.insert(name, (stack, n));
            response
        }
        "ExecuteChangeSet" => {
            let cs = form_value(&req.body, "ChangeSetName").unwrap_or_default();
            if let Some((stack, n)) = s.change_sets.get(&cs).cloned() {
                let name = if stack.starts_with("arn:") {
                    form_value(&req.body, "StackName").unwrap_or(stack)
                } else {
                    stack
                };
                let until = now + s.config.duration(n);
                s.in_progress.insert(name, (until, String::new()));
            }
            response
        }
        "CreateStack" | "UpdateStack" => {
            let stack = form_value(&req.body, "StackName").unwrap_or_default();
            let n = if form_value(&req.body, "TemplateBody").is_some() {
                template_resources(&req.body)
            } else {
                10
            };
            let status = if op == "CreateStack" {
                "CREATE_IN_PROGRESS"
            } else {
                "UPDATE_IN_PROGRESS"
            };
            let until = now + s.config.duration(n);
            s.in_progress.insert(stack, (until, status.to_owned()));
            response
        }
        "DescribeStacks" => {
            s.in_progress.retain(|_, (until, _)| *until > now);
            if s.in_progress.is_empty() {
                return response;
            }
            rewrite_statuses(&response, &s.in_progress)
        }
        _ => response,
    }
}

fn status_ok(response: &[u8]) -> bool {
    response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200")
}

fn xml_value(response: &[u8], tag: &str) -> Option<String> {
    let text = String::from_utf8_lossy(response);
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text.get(start..)?.find(&format!("</{tag}>"))? + start;
    text.get(start..end).map(str::to_owned)
}

/// Replace the status of in-progress stacks in a `DescribeStacks` answer
/// (and fix `Content-Length`).
fn rewrite_statuses(response: &[u8], busy: &HashMap<String, (Instant, String)>) -> Vec<u8> {
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return response.to_vec();
    };
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = String::from_utf8_lossy(&response[split + 4..]).into_owned();
    // Every stack member has exactly one `StackName` and one
    // `StackStatus` (nested members such as parameters, tags and outputs
    // have neither), so the n-th name belongs with the n-th status
    // whatever the element order.
    let names = tag_values(&body, "StackName");
    let statuses = tag_ranges(&body, "StackStatus");
    let mut out = String::with_capacity(body.len());
    let mut last = 0;
    for (name, (vs, ve)) in names.iter().zip(&statuses) {
        out.push_str(&body[last..*vs]);
        let current = &body[*vs..*ve];
        let shown = match busy.get(name.as_str()) {
            Some((_, forced)) if !forced.is_empty() => forced.as_str(),
            Some(_) if current.starts_with("CREATE") => "CREATE_IN_PROGRESS",
            Some(_) if current.starts_with("UPDATE") => "UPDATE_IN_PROGRESS",
            _ => current,
        };
        out.push_str(shown);
        last = *ve;
    }
    out.push_str(&body[last..]);
    let head: String = head
        .lines()
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}", out.len())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let mut r = head.into_bytes();
    r.extend_from_slice(b"\r\n\r\n");
    r.extend_from_slice(out.as_bytes());
    r
}

/// The byte ranges of the values of every `<tag>…</tag>` in `text`.
fn tag_ranges(text: &str, tag: &str) -> Vec<(usize, usize)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(&open) {
        let vs = from + i + open.len();
        let Some(e) = text[vs..].find(&close) else {
            break;
        };
        out.push((vs, vs + e));
        from = vs + e + close.len();
    }
    out
}

/// The values of every `<tag>…</tag>` in `text`.
fn tag_values(text: &str, tag: &str) -> Vec<String> {
    tag_ranges(text, tag)
        .into_iter()
        .map(|(s, e)| text[s..e].to_owned())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_decode() {
        assert_eq!(
            form_value(b"Action=CreateStack&StackName=a%2Db+c", "StackName").as_deref(),
            Some("a-b c")
        );
        assert_eq!(form_value(b"Action=X", "StackName"), None);
        assert_eq!(
            template_resources(
                b"TemplateBody=%7B%22Resources%22%3A%7B%22A%22%3A%7B%7D%2C%22B%22%3A%7B%7D%7D%7D"
            ),
            2
        );
    }

    #[test]
    fn statuses_are_rewritten_for_busy_stacks_only() {
        let body = "<DescribeStacksResponse><Stacks><member><StackName>a</StackName><StackStatus>CREATE_COMPLETE</StackStatus></member><member><StackName>b</StackName><StackStatus>UPDATE_COMPLETE</StackStatus></member></Stacks></DescribeStacksResponse>";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let busy = HashMap::from([("a".to_owned(), (Instant::now(), String::new()))]);
        let out = String::from_utf8(rewrite_statuses(resp.as_bytes(), &busy)).expect("utf8");
        assert!(out.contains("<StackName>a</StackName><StackStatus>CREATE_IN_PROGRESS"));
        assert!(out.contains("<StackName>b</StackName><StackStatus>UPDATE_COMPLETE"));
        let (head, b) = out.split_once("\r\n\r\n").expect("head");
        assert!(head.contains(&format!("Content-Length: {}", b.len())));
    }

    #[test]
    fn nested_members_do_not_hide_the_stack_name() {
        // moto lists parameters (nested members) before the stack name.
        let body = "<DescribeStacksResponse><Stacks><member><Parameters><member><ParameterKey>P</ParameterKey></member></Parameters><StackStatus>CREATE_COMPLETE</StackStatus><StackName>a</StackName></member></Stacks></DescribeStacksResponse>";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let busy = HashMap::from([("a".to_owned(), (Instant::now(), String::new()))]);
        let out = String::from_utf8(rewrite_statuses(resp.as_bytes(), &busy)).expect("utf8");
        assert!(
            out.contains("<StackStatus>CREATE_IN_PROGRESS</StackStatus><StackName>a<"),
            "{out}"
        );
    }

    #[test]
    fn fault_shares_follow_the_seed() {
        let state = Mutex::new(State {
            config: Config {
                throttle: 0.3,
                server_error: 0.05,
                seed: 7,
                ..Config::default()
            },
            counts: Counts::default(),
            recent: std::collections::VecDeque::new(),
            in_progress: HashMap::new(),
            change_sets: HashMap::new(),
            rng: 7,
        });
        for _ in 0..10_000 {
            let _ = decide(&state, "DescribeStacks", "test");
        }
        let faults = lock(&state).counts.faults.clone();
        let throttled = faults.get("throttle").copied().unwrap_or(0);
        let errors =
            faults.get("500").copied().unwrap_or(0) + faults.get("503").copied().unwrap_or(0);
        assert!((2_700..3_300).contains(&throttled), "{faults:?}");
        assert!((350..650).contains(&errors), "{faults:?}");
    }
}
