//! `harmonix-proxy`: the counting, fault-injecting, timing-model proxy of
//! `harmonix_tests::proxy` as a process, for harnesses that drive other
//! tools (benches/compare).
//!
//! ```text
//! harmonix-proxy --upstream PORT [--port PORT] [--config JSON]
//! ```
//!
//! Prints `listening on http://127.0.0.1:PORT` once ready; runs until
//! killed. Control it with `GET /__proxy/counts`, `POST /__proxy/reset`,
//! `POST /__proxy/config` on the same port.

use harmonix_tests::proxy::{Config, Proxy};

fn main() {
    let mut upstream = None;
    let mut port = 0u16;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--upstream" => upstream = args.next().and_then(|p| p.parse().ok()),
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--config" => {
                let text = args.next().unwrap_or_default();
                config = serde_json::from_str(&text).unwrap_or_else(|e| {
                    eprintln!("harmonix-proxy: --config is not a proxy configuration: {e}");
                    std::process::exit(2);
                });
            }
            _ => {
                eprintln!("usage: harmonix-proxy --upstream PORT [--port PORT] [--config JSON]");
                std::process::exit(2);
            }
        }
    }
    let Some(upstream) = upstream else {
        eprintln!("harmonix-proxy: --upstream PORT is required");
        std::process::exit(2);
    };
    let proxy = Proxy::start_with(upstream, config, port);
    println!("listening on {}", proxy.endpoint_url());
    proxy.wait();
}
