//! The `harmonix` binary against the local emulator, as a CI job runs it:
//! environment variables for the endpoint and dummy credentials, a plan
//! file reviewed and applied, JSON output, exit codes, refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use harmonix_tests::emulator::Emulator;
use harmonix_tests::repo_root;
use serde_json::Value;

struct Cli<'a> {
    endpoint: String,
    dir: &'a Path,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_harmonix"))
            .args(args)
            .args(["--poll-ms", "20", "200"])
            .current_dir(self.dir)
            .env("HARMONIX_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_MAX_ATTEMPTS", "2")
            .env("HARMONIX_CALLER", "ci-bot")
            .env_remove("AWS_PROFILE")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null())
            .output()
            .expect("harmonix runs")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The serverless example in an existing VPC (so that the emulator can
/// also delete it), written to `dir`.
fn spec(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml"))
        .expect("example")
        .replace(
            "    vpc:\n      cidr: 10.4.0.0/24\n",
            "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
        );
    let p = dir.join("orders.yaml");
    std::fs::write(&p, text).expect("write spec");
    p
}

#[test]
fn plan_apply_status_catalog_destroy_through_the_binary() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().expect("tmp");
    let cli = Cli {
        endpoint: emu.endpoint_url(),
        dir: dir.path(),
    };
    let spec = spec(dir.path());
    let spec = spec.to_str().expect("utf8");

    // Without --yes and without a terminal, nothing is changed.
    let out = cli.run(&["apply", spec]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert!(!dir.path().join("catalog-info.yaml").exists());
    // ... and the change set it made for review is gone with its empty stack.
    let out = cli.run(&["--output", "json", "status", spec]);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["status"], Value::Null, "{lines:?}");

    // Plan, saved.
    let out = cli.run(&["plan", spec, "-o", "plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("stack opa-orders-dev-environment: create"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ Api (AWS::ApiGateway::RestApi) create"),
        "{stdout}"
    );
    assert!(stdout.contains("harmonix apply plan.json"), "{stdout}");
    assert!(!stdout.contains("\u{1b}["), "no color off a terminal");

    // Apply exactly that plan; events as JSON lines, then the result.
    let out = cli.run(&["--output", "json", "apply", "plan.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    for k in [
        "locked",
        "started",
        "stackDone",
        "finished",
        "catalogWritten",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let result = lines.last().expect("result line");
    assert_eq!(result["level"], "result");
    assert_eq!(result["succeeded"], true);
    // The environment's change set, and the account/region bootstrap
    // stack's (made on first use: the API Gateway logging role is an
    // account-level setting the serverless stage needs).
    assert_eq!(
        result["report"]["requests"]["ExecuteChangeSet"].as_u64(),
        Some(2),
        "{result}"
    );
    assert!(kinds.contains(&"started"), "{kinds:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "stackDone" && l["stack"] == "harmonix-bootstrap"),
        "the bootstrap stack is deployed before the environment: {lines:?}"
    );
    let catalog = std::fs::read_to_string(dir.path().join("catalog-info.yaml")).expect("catalog");
    assert!(
        catalog.contains("kind: AWSEnvironmentProvider"),
        "{catalog}"
    );
    assert!(catalog.contains("name: orders-dev"), "{catalog}");

    // Applying the same plan again is refused: the stack changed since.
    let out = cli.run(&["--output", "json", "apply", "plan.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = json_lines(&out)
        .into_iter()
        .find(|l| l["level"] == "error")
        .expect("error line");
    assert_eq!(err["code"], "HARMONIX_PLAN_STALE", "{err}");
    assert_eq!(err["stack"], "opa-orders-dev-environment");

    // A tampered plan file is refused before anything is called.
    let tampered = std::fs::read_to_string(dir.path().join("plan.json"))
        .expect("plan")
        .replace("\"stageName\": \"dev\"", "\"stageName\": \"prod\"");
    std::fs::write(dir.path().join("tampered.json"), tampered).expect("write");
    let out = cli.run(&["apply", "tampered.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("was modified"),
        "{}",
        text(&out.stderr)
    );

    // No changes now; status in sync.
    let out = cli.run(&["plan", spec]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("No changes."),
        "{}",
        text(&out.stdout)
    );
    let out = cli.run(&["status", spec]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("opa-orders-dev-environment  CREATE_COMPLETE  in sync"),
        "{stdout}"
    );

    // `apply FILE --yes` with nothing to change still writes the catalog.
    std::fs::remove_file(dir.path().join("catalog-info.yaml")).expect("rm");
    let out = cli.run(&["apply", spec, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Apply complete: 1 unchanged."),
        "{}",
        text(&out.stdout)
    );
    assert!(dir.path().join("catalog-info.yaml").exists());

    // The catalog command regenerates it elsewhere from deployed stacks.
    let out = cli.run(&["catalog", spec, "--out", "other/catalog-info.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("other/catalog-info.yaml")).expect("other"),
        std::fs::read_to_string(dir.path().join("catalog-info.yaml")).expect("catalog")
    );

    // Destroy: what the template keeps is listed.
    let out = cli.run(&["destroy", spec, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Destroy complete: 1 deleted."), "{stdout}");
    for line in [
        "kept: AuditTable (AWS::DynamoDB::Table) opa-orders-dev-audit (stack opa-orders-dev-environment)",
        "kept: EnvironmentLogGroup (AWS::Logs::LogGroup) /opa/orders-dev/environment (stack opa-orders-dev-environment)",
        "kept: EnvironmentKey (AWS::KMS::Key) ",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    let out = cli.run(&["--output", "json", "status", spec]);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["drift"], "missing", "{lines:?}");
}

/// `destroy --delete-data` of a production environment is refused, naming
/// it, before any AWS call; `--delete-production-data` alone is a usage
/// error.
#[test]
fn deleting_the_data_of_a_production_environment_needs_a_second_flag() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().expect("tmp");
    let cli = Cli {
        endpoint: emu.endpoint_url(),
        dir: dir.path(),
    };
    let dev = spec(dir.path());
    let text_of = std::fs::read_to_string(&dev).expect("spec");
    let prod = dir.path().join("orders-prod.yaml");
    std::fs::write(
        &prod,
        text_of.replacen(
            "    owner: group:orders\n",
            "    owner: group:orders\n    lifecycle: production\n",
            1,
        ),
    )
    .expect("write");
    let prod = prod.to_str().expect("utf8");
    let out = cli.run(&[
        "--output",
        "json",
        "destroy",
        prod,
        "--yes",
        "--delete-data",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = json_lines(&out)
        .into_iter()
        .find(|l| l["level"] == "error")
        .expect("error line");
    assert_eq!(err["code"], "HARMONIX_INVALID_INPUT", "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains("environment `orders-dev`"), "{msg}");
    assert!(msg.contains("production"), "{msg}");
    assert!(msg.contains("--delete-production-data"), "{msg}");
    assert!(
        !emu.output().contains("POST /"),
        "refused before any AWS call:\n{}",
        emu.output()
    );
    let out = cli.run(&["plan", prod, "--destroy", "--delete-data"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--delete-production-data"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.run(&["destroy", prod, "--yes", "--delete-production-data"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--delete-data"),
        "{}",
        text(&out.stderr)
    );
    // With both flags the destroy runs (nothing is deployed: no changes).
    let out = cli.run(&[
        "destroy",
        prod,
        "--yes",
        "--delete-data",
        "--delete-production-data",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_role_that_cannot_be_assumed_and_a_bad_option_are_clear_errors() {
    let emu = Emulator::start();
    let dir = tempfile::tempdir().expect("tmp");
    let cli = Cli {
        endpoint: emu.endpoint_url(),
        dir: dir.path(),
    };
    let spec = spec(dir.path());
    let spec = spec.to_str().expect("utf8");
    let out = cli.run(&["plan", spec, "--api-rate", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("api_budget.rate"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.run(&["plan", spec, "--pipeline-role", "not-an-arn"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("pipeline role") && stderr.contains("not-an-arn"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The external id never shows, even in errors.
    let out = cli.run(&["plan", spec, "--external-id", "x", "--output", "json"]);
    assert!(
        !text(&out.stdout).contains("\"x\""),
        "{}",
        text(&out.stdout)
    );
}
