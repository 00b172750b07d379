//! No credential ever leaves the process: the whole pipeline flow (plan
//! file, apply, catalog, status, a stale-plan error, destroy) runs with
//! trace logging (`-vvv` and `RUST_LOG=trace`), a pipeline role and an
//! external id, and every log line, plan file, catalog file, audit item and
//! error message is searched for the base credentials, the external id,
//! and the emulator's temporary credentials (access keys `ASIA…`, session
//! tokens `FQoGZXIvYXdzEBYaD…`): zero hits.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use harmonix_tests::emulator::Emulator;
use harmonix_tests::repo_root;

const KEY_ID: &str = "AKIAHARMONIXLEAKTEST";
const SECRET: &str = "harmonix-secret-key-DO-NOT-LEAK";
const EXTERNAL_ID: &str = "external-id-DO-NOT-LEAK";

fn run(emu: &Emulator, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harmonix"))
        .args(["-vvv"])
        .args(args)
        .args(["--poll-ms", "20", "200"])
        .current_dir(dir)
        .env("RUST_LOG", "trace")
        .env("HARMONIX_ENDPOINT_URL", emu.endpoint_url())
        .env(
            "HARMONIX_PIPELINE_ROLE",
            "arn:aws:iam::111111111111:role/opa-pipeline-role",
        )
        .env("HARMONIX_EXTERNAL_ID", EXTERNAL_ID)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("HARMONIX_CALLER", "leak-test")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("harmonix runs")
}

/// Every place a secret could show.
fn leaks(haystack: &str) -> Vec<String> {
    let mut found = Vec::new();
    for needle in [KEY_ID, SECRET, EXTERNAL_ID, "FQoGZXIvYXdzEBYaD"] {
        if haystack.contains(needle) {
            found.push(needle.to_owned());
        }
    }
    // Temporary access key ids: ASIA followed by 16 upper-case letters/digits.
    let bytes = haystack.as_bytes();
    for i in 0..bytes.len().saturating_sub(20) {
        if &bytes[i..i + 4] == b"ASIA"
            && bytes[i + 4..i + 20]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            found.push(String::from_utf8_lossy(&bytes[i..i + 20]).into_owned());
        }
    }
    found
}

fn scan_table(emu: &Emulator, table: &str) -> String {
    use std::io::{Read, Write};
    let body = format!("{{\"TableName\":\"{table}\"}}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", emu.port())).expect("connect");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.Scan\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn no_credential_appears_in_logs_plans_catalogs_audit_items_or_errors() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().expect("tmp");
    let spec = dir.path().join("orders.yaml");
    std::fs::write(
        &spec,
        std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml"))
            .expect("example")
            .replace(
                "    vpc:\n      cidr: 10.4.0.0/24\n",
                "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
            ),
    )
    .expect("write");
    let spec = spec.to_str().expect("utf8");

    let mut everything = String::new();
    let mut record = |label: &str, out: &Output| {
        everything.push_str("== ");
        everything.push_str(label);
        everything.push('\n');
        everything.push_str(&String::from_utf8_lossy(&out.stdout));
        everything.push_str(&String::from_utf8_lossy(&out.stderr));
    };
    let plan = run(&emu, dir.path(), &["plan", spec, "-o", "plan.json"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    record("plan", &plan);
    let apply = run(&emu, dir.path(), &["apply", "plan.json"]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    record("apply", &apply);
    // The logs really are at trace level (so the search means something).
    let log = String::from_utf8_lossy(&apply.stderr);
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
    let stale = run(
        &emu,
        dir.path(),
        &["--output", "json", "apply", "plan.json"],
    );
    assert_eq!(stale.status.code(), Some(1));
    record("stale", &stale);
    for args in [
        vec!["status", spec],
        vec!["catalog", spec, "--out", "catalog-info.yaml"],
        vec!["--output", "json", "plan", spec],
        vec!["destroy", spec, "--yes"],
    ] {
        let out = run(&emu, dir.path(), &args);
        record(&args.join(" "), &out);
    }
    for file in ["plan.json", "catalog-info.yaml"] {
        everything.push_str(&std::fs::read_to_string(dir.path().join(file)).expect(file));
    }
    everything.push_str(&scan_table(&emu, "harmonix-locks"));
    // The audit table was destroyed with the stack: read it before.
    let found = leaks(&everything);
    let context: Vec<&str> = found
        .iter()
        .take(3)
        .filter_map(|n| {
            let i = everything.find(n.as_str())?;
            let start = everything[..i].rfind('\n').map_or(0, |n| n + 1);
            everything.get(start..(start + 400).min(everything.len()))
        })
        .collect();
    assert!(found.is_empty(), "secrets found: {found:?}\n{context:#?}");
    assert!(
        everything.len() > 10_000,
        "the search covered {} bytes",
        everything.len()
    );
}

#[test]
fn audit_items_hold_no_credentials() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().expect("tmp");
    let spec = dir.path().join("orders.yaml");
    std::fs::write(
        &spec,
        std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml"))
            .expect("example"),
    )
    .expect("write");
    let spec = spec.to_str().expect("utf8");
    let out = run(&emu, dir.path(), &["apply", spec, "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items = scan_table(&emu, "opa-orders-dev-audit");
    assert!(items.contains("\"SUCCESS\""), "{items}");
    assert!(items.contains("planHash"), "{items}");
    let found = leaks(&items);
    assert!(found.is_empty(), "secrets in audit items: {found:?}");
}
