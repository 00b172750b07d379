//! Crash and resume, and concurrent runs, with the real `harmonix` binary
//! against the emulator behind the proxy's AWS timing model (80 ms per
//! call; stacks in progress for about a second after create/update), so
//! that there is time to kill a run in the middle:
//!
//! - SIGKILL during change-set creation, during execution, and at several
//!   moments around the catalog write; each re-run converges, takes over
//!   the dead process's lock at once, creates no stack twice, and the
//!   catalog file is always the old or the new complete file;
//! - a second apply on a locked environment is refused naming the holder;
//! - a lock of another host is recovered after its lease.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harmonix_tests::emulator::Emulator;
use harmonix_tests::proxy::{Config, Proxy};
use harmonix_tests::repo_root;

struct Setup {
    emu: Emulator,
    proxy: Proxy,
    dir: tempfile::TempDir,
    specs: Vec<PathBuf>,
}

impl Setup {
    fn new(n: usize) -> Self {
        Self::with_config(n, Config::aws_model())
    }

    fn with_config(n: usize, config: Config) -> Self {
        let emu = Emulator::start();
        let proxy = Proxy::start_with(emu.port(), config, 0);
        let dir = tempfile::tempdir().expect("tmp");
        let base = std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml"))
            .expect("example")
            .replace(
                "    vpc:\n      cidr: 10.4.0.0/24\n",
                "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
            );
        let specs = (0..n)
            .map(|i| {
                let p = dir.path().join(format!("c{i}.yaml"));
                std::fs::write(
                    &p,
                    base.replace("name: orders-dev\n", &format!("name: c{i}\n")),
                )
                .expect("write");
                p
            })
            .collect();
        Self {
            emu,
            proxy,
            dir,
            specs,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_harmonix"));
        c.args(args)
            .args(self.specs.iter().map(|p| p.to_str().expect("utf8")))
            .args(["--poll-ms", "100", "500", "--lock-lease", "30"])
            .current_dir(self.dir.path())
            .env("HARMONIX_ENDPOINT_URL", self.proxy.endpoint_url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_MAX_ATTEMPTS", "3")
            .env("HARMONIX_CALLER", "crash-test")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        c
    }

    fn apply(&self) -> Output {
        self.command(&["--output", "json", "apply", "--yes"])
            .output()
            .expect("harmonix runs")
    }

    fn spawn_apply(&self) -> Child {
        self.command(&["--output", "json", "apply", "--yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("harmonix starts")
    }

    /// Wait until the proxy saw `n` requests of `op`; false after 60 s.
    fn wait_for(&self, op: &str, n: u64) -> bool {
        let deadline = Instant::now() + Duration::from_mins(1);
        while Instant::now() < deadline {
            if self.proxy.count(op) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Live stacks by name, read from the emulator directly (all
    /// statuses, DELETE_COMPLETE ones left out).
    fn live(&self) -> BTreeMap<String, Vec<String>> {
        let out = Command::new(env!("CARGO_BIN_EXE_harmonix"))
            .args(["--output", "json", "status"])
            .args(self.specs.iter().map(|p| p.to_str().expect("utf8")))
            .env("HARMONIX_ENDPOINT_URL", self.emu.endpoint_url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("status runs");
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            m.entry(v["stack"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(format!("{}/{}", v["status"], v["drift"]));
        }
        m
    }
}

fn kill(mut child: Child) {
    // Child::kill sends SIGKILL on Unix: no cleanup runs.
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every stack created exactly once and in sync.
fn assert_converged(s: &Setup, out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let live = s.live();
    assert_eq!(live.len(), s.specs.len(), "{live:?}");
    for (stack, states) in &live {
        assert_eq!(
            states.as_slice(),
            ["\"CREATE_COMPLETE\"/\"inSync\""],
            "{stack}: {states:?}"
        );
    }
    // Directly on the emulator, no stack name appears twice (a crashed
    // run must not leave a second stack behind).
    let all = list_all_stacks(&s.emu);
    for (name, n) in &all {
        assert_eq!(*n, 1, "stack {name} exists {n} times: {all:?}");
    }
}

/// Every live stack name on the emulator with how many live stacks carry it.
fn list_all_stacks(emu: &Emulator) -> BTreeMap<String, usize> {
    // DescribeStacks through a tiny awsQuery call over plain HTTP.
    let body = "Action=DescribeStacks&Version=2010-05-15";
    let resp = http_post(emu.port(), body);
    let mut out = BTreeMap::new();
    for member in resp.split("<member>").skip(1) {
        let field = |tag: &str| {
            member
                .split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|r| r.split(&format!("</{tag}>")).next())
                .unwrap_or_default()
                .to_owned()
        };
        let (name, status) = (field("StackName"), field("StackStatus"));
        if !name.is_empty() && status != "DELETE_COMPLETE" && !status.is_empty() {
            *out.entry(name).or_default() += 1;
        }
    }
    out
}

fn http_post(port: u16, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn killed_during_change_set_creation_then_rerun_converges() {
    let s = Setup::new(3);
    let child = s.spawn_apply();
    assert!(s.wait_for("CreateChangeSet", 1), "{:?}", s.proxy.counts());
    kill(child);
    let out = s.apply();
    assert_converged(&s, &out);
}

#[test]
fn killed_mid_execution_takes_over_the_dead_lock_and_converges() {
    let s = Setup::new(3);
    let child = s.spawn_apply();
    assert!(s.wait_for("ExecuteChangeSet", 1), "{:?}", s.proxy.counts());
    let pid = child.id();
    kill(child);
    let out = s.apply();
    assert_converged(&s, &out);
    // The killed run's lock (this host, dead pid) was taken over at once.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("took over lock") && stdout.contains(&format!("pid {pid}")),
        "{stdout}"
    );
}

#[test]
fn the_catalog_is_always_the_old_or_the_new_complete_file() {
    let s = Setup::new(2);
    let catalog = s.dir.path().join("catalog-info.yaml");
    let old = "# kept\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\nspec:\n  type: service\n  owner: group:web\n";
    // Kill at moments spread over the end of the run: after the first,
    // second, ... status poll that follows the executions.
    for k in 1..=4u64 {
        std::fs::write(&catalog, old).expect("write old");
        let before = s.proxy.count("DescribeStacks");
        let child = s.spawn_apply();
        let _ = s.wait_for("DescribeStacks", before + k);
        std::thread::sleep(Duration::from_millis(30 * k));
        kill(child);
        check_catalog(&catalog, old);
    }
    let out = s.apply();
    assert_converged(&s, &out);
    let text = std::fs::read_to_string(&catalog).expect("catalog");
    assert!(text.starts_with(old), "foreign document kept");
    assert_eq!(
        text.matches("kind: AWSEnvironmentProvider").count(),
        2,
        "{text}"
    );
}

fn check_catalog(path: &Path, old: &str) {
    let now = std::fs::read_to_string(path).expect("catalog exists");
    if now == old {
        return;
    }
    assert!(
        now.starts_with(old),
        "not the old file and not a merge of it:\n{now}"
    );
    assert_eq!(
        now.matches("kind: AWSEnvironmentProvider").count(),
        2,
        "a partial catalog:\n{now}"
    );
    assert!(now.ends_with('\n'));
    // No temporary file left next to it that a reader could pick up.
    let stray: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn a_second_apply_on_a_locked_environment_is_refused_naming_the_holder() {
    // The first apply's stack stays in progress for ~11 s (timing model
    // scaled by 10), so the second starts while the first holds the lock.
    let s = Setup::with_config(
        1,
        Config {
            scale: 10.0,
            ..Config::aws_model()
        },
    );
    let first = s.spawn_apply();
    let pid = first.id();
    assert!(s.wait_for("ExecuteChangeSet", 1));
    let second = s.apply();
    let done1 = first.wait_with_output().expect("first finishes");
    assert_eq!(
        second.status.code(),
        Some(1),
        "{}\n{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    let err = text(&second.stdout);
    assert!(err.contains("HARMONIX_LOCK_HELD"), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert_eq!(done1.status.code(), Some(0), "{}", text(&done1.stderr));
}

#[test]
fn a_lock_of_another_host_is_recovered_after_its_lease() {
    let s = Setup::new(1);
    // Make the lock table, then put another host's lock with a short lease.
    let boot = s.command(&["bootstrap"]).output().expect("bootstrap");
    assert_eq!(boot.status.code(), Some(0), "{}", text(&boot.stderr));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_millis();
    // A live lease: refused, naming the holder.
    put_item(s.emu.port(), &other_lock(now + 600_000));
    let refused = s.apply();
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}\n{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    assert!(
        text(&refused.stdout).contains("another-runner"),
        "{}",
        text(&refused.stdout)
    );
    // The same holder whose lease runs out (its process died and stopped
    // renewing): taken over once it has expired.
    put_item(s.emu.port(), &other_lock(now + 1_000));
    std::thread::sleep(Duration::from_millis(1_500));
    let out = s.apply();
    assert_converged(&s, &out);
    assert!(
        text(&out.stdout).contains("took over lock"),
        "{}",
        text(&out.stdout)
    );
}

/// A lock item of another runner on environment `c0`.
fn other_lock(expires_at_ms: u128) -> String {
    serde_json::json!({
        "TableName": "harmonix-locks",
        "Item": {
            "lockId": {"S": "123456789012/us-east-1/opa-c0"},
            "holderId": {"S": "other"},
            "host": {"S": "another-runner"},
            "pid": {"N": "1"},
            "user": {"S": "ci"},
            "command": {"S": "harmonix apply c0.yaml"},
            "acquiredAt": {"N": (expires_at_ms - 1_000).to_string()},
            "expiresAt": {"N": expires_at_ms.to_string()},
        }
    })
    .to_string()
}

fn put_item(port: u16, body: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.PutItem\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(
        out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
        "{out}"
    );
}
