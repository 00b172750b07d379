//! The local AWS emulator (moto, `scripts/setup` installs it into the venv)
//! as a test fixture: one `moto_server` process on a free loopback port,
//! killed when the fixture is dropped (also while a test panics), behind
//! the counting proxy with AWS's limits on ([`crate::proxy::Config::aws_limits`]):
//! [`Emulator::endpoint_url`] is the proxy's, so every end-to-end test is
//! refused what AWS would refuse (an inline template over 51,200 bytes).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proxy::Proxy;
use crate::venv_tool;

/// How long the server may take to answer its first HTTP request.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `moto_server` on `127.0.0.1`, stopped on drop.
#[derive(Debug)]
pub struct Emulator {
    /// The strict proxy in front (dropped before the server).
    proxy: Option<Proxy>,
    child: Child,
    port: u16,
    /// The server's stdout and stderr (a file, so a chatty server never
    /// blocks on a full pipe); read for panic messages.
    log: tempfile::NamedTempFile,
}

impl Emulator {
    /// Start `moto_server` on a free loopback port and wait (at most
    /// [`START_TIMEOUT`]) until it answers HTTP. Panics with the server's
    /// output when it exits or never answers.
    pub fn start() -> Self {
        let binary = venv_tool("moto_server");
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("temp file for the emulator log");
        let out = log.reopen().expect("emulator log reopens");
        let err = log.reopen().expect("emulator log reopens");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        // From here on `Drop` kills the process, whatever happens.
        let mut emulator = Self {
            proxy: None,
            child,
            port,
            log,
        };
        emulator.wait_until_ready(&binary);
        emulator.proxy = Some(Proxy::start(port));
        emulator
    }

    /// The strict proxy's `http://127.0.0.1:PORT`, for the SDK's endpoint
    /// override.
    pub fn endpoint_url(&self) -> String {
        self.proxy
            .as_ref()
            .map_or_else(|| self.moto_url(), Proxy::endpoint_url)
    }

    /// The strict proxy in front of the server (its counts include
    /// [`crate::proxy::Counts::refused`]).
    pub fn proxy(&self) -> &Proxy {
        self.proxy
            .as_ref()
            .expect("the proxy starts with the emulator")
    }

    /// The server itself, without the proxy (for setup that must not be
    /// counted or checked, and for proxies of a test's own).
    pub fn moto_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (a test's own [`Proxy`] forwards
    /// here).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the server wrote so far (its request log and tracebacks).
    pub fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(self.log.path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn wait_until_ready(&mut self, binary: &Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before answering on port {}:\n{}",
                    binary.display(),
                    self.port,
                    self.output()
                );
            }
            if answers_http(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer HTTP on 127.0.0.1:{} within {:?}:\n{}",
                binary.display(),
                self.port,
                START_TIMEOUT,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.proxy = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (the OS picks it).
fn free_port() -> u16 {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether an HTTP request to the server's own API gets an HTTP response.
fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
