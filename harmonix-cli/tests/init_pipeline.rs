//! `harmonix init` end to end: the generated repository's `.gitlab-ci.yml`
//! runs in gitlab-ci-local (shell executor, `tests/gitlab/`, installed by
//! `scripts/setup`) against the local moto emulator, first as a merge
//! request pipeline (validate, plan), then as a default-branch pipeline
//! (validate, plan, apply, catalog commit pushed with the CI token), then
//! once more (no changes, no commit). Checked: exit codes, the plan
//! artifact, the stack on the emulator, `catalog-info.yaml` filled in,
//! valid for Backstage's catalog model and pushed to the remote.
//!
//! The remote is a local bare repository: `origin` is an https URL (so
//! gitlab-ci-local derives the project path and server from it) that git
//! pushes to the bare repository instead (`url.*.pushInsteadOf`), for the
//! plain URL and for the URL with the token the job must use, so a push
//! without the right token fails.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harmonix_tests::backstage;
use harmonix_tests::emulator::Emulator;
use harmonix_tests::repo_root;
use serde_json::Value;

const NAME: &str = "payments-dev";
const STACK: &str = "opa-payments-dev-environment";
const TOKEN: &str = "glpat-harmonix-test-token";
const REMOTE_URL: &str = "https://gitlab.example.test/platform/payments-dev.git";
/// Everything one test may spend in the commands it runs.
const BUDGET: Duration = Duration::from_secs(100);
/// At most this long for one command.
const COMMAND_LIMIT: Duration = Duration::from_mins(1);

fn hint(what: &str) -> String {
    format!("{what}: run `scripts/setup` first (it installs the test tools)")
}

/// gitlab-ci-local from `tests/gitlab/node_modules`, and the tools it
/// needs (node, git, rsync): panics with a hint when one is missing.
fn gitlab_ci_local() -> PathBuf {
    let bin = repo_root().join("tests/gitlab/node_modules/.bin/gitlab-ci-local");
    assert!(
        bin.exists(),
        "{}",
        hint(&format!("{} not found", bin.display()))
    );
    for tool in ["node", "git", "rsync"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{}", hint(&format!("`{tool}` is not on PATH")));
    }
    bin
}

/// The outcome of a command: exit code and everything it printed.
struct Ran {
    code: Option<i32>,
    output: String,
}

/// Run `cmd` in its own process group with stdout and stderr into one
/// file, killing the group when it outlives `deadline` (or
/// [`COMMAND_LIMIT`]).
fn run(cmd: &mut Command, deadline: Instant, what: &str) -> Ran {
    let log = tempfile::NamedTempFile::new().expect("log file");
    let out = log.reopen().expect("log");
    let err = log.reopen().expect("log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let limit = deadline.min(Instant::now() + COMMAND_LIMIT);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= limit {
            // The whole group: gitlab-ci-local's shells and their harmonix.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    File::open(log.path())
        .and_then(|mut f| f.read_to_string(&mut output))
        .expect("read log");
    let Some(status) = status else {
        panic!("{what}: still running after its time limit; killed. Output:\n{output}");
    };
    Ran {
        code: status.code(),
        output,
    }
}

/// A test's repository, remote and tools.
struct Setup {
    dir: tempfile::TempDir,
    gcl: PathBuf,
    deadline: Instant,
}

impl Setup {
    fn new() -> Self {
        let gcl = gitlab_ci_local();
        let dir = tempfile::tempdir().expect("tmp");
        // Git and gitlab-ci-local see no user or global configuration.
        std::fs::write(dir.path().join("gitconfig"), "").expect("gitconfig");
        std::fs::create_dir(dir.path().join("gcl-home")).expect("gcl home");
        Self {
            dir,
            gcl,
            deadline: Instant::now() + BUDGET,
        }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn bare(&self) -> PathBuf {
        self.dir.path().join("origin.git")
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("GIT_CONFIG_GLOBAL", self.dir.path().join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("AWS_PROFILE")
            .env_remove("HARMONIX_PIPELINE_ROLE")
            .env_remove("HARMONIX_ENDPOINT_URL")
            .env_remove("CLICOLOR_FORCE");
    }

    fn harmonix(&self, args: &[&str]) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_harmonix"));
        cmd.args(args).current_dir(self.dir.path());
        self.env(&mut cmd);
        run(&mut cmd, self.deadline, &format!("harmonix {args:?}"))
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir);
        self.env(&mut cmd);
        let r = run(&mut cmd, self.deadline, &format!("git {args:?}"));
        assert_eq!(r.code, Some(0), "git {args:?}:\n{}", r.output);
        r.output
    }

    /// The generated repository as the platform would push it: a commit
    /// on `main`, pushed to the bare remote, whose default branch `main`
    /// is known.
    fn commit_and_push(&self) {
        let repo = self.repo();
        let bare = self.bare();
        let bare_url = bare.to_str().expect("utf-8 path");
        self.git(
            self.dir.path(),
            &["init", "--quiet", "--bare", "-b", "main", bare_url],
        );
        self.git(&repo, &["init", "--quiet", "-b", "main"]);
        let key = format!("url.{bare_url}.pushInsteadOf");
        let token_url = REMOTE_URL.replace("https://", &format!("https://oauth2:{TOKEN}@"));
        self.git(&repo, &["config", "--add", &key, REMOTE_URL]);
        self.git(&repo, &["config", "--add", &key, &token_url]);
        self.git(&repo, &["config", "user.name", "Platform"]);
        self.git(&repo, &["config", "user.email", "platform@example.test"]);
        self.git(&repo, &["add", "--all"]);
        self.git(&repo, &["commit", "--quiet", "-m", "New environment"]);
        self.git(&repo, &["remote", "add", "origin", REMOTE_URL]);
        self.git(&repo, &["push", "--quiet", "origin", "main"]);
        self.git(&repo, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
        self.git(&repo, &["remote", "set-head", "origin", "main"]);
    }

    /// gitlab-ci-local in the repository with the shell executor; `mr`
    /// makes it a merge-request pipeline (as GitLab does: the source is
    /// `merge_request_event` and `CI_COMMIT_BRANCH` is not set).
    fn pipeline(&self, extra: &[&str], variables: &[(&str, &str)], mr: bool) -> Ran {
        let mut cmd = Command::new(&self.gcl);
        cmd.current_dir(self.repo())
            .args([
                "--home",
                self.dir.path().join("gcl-home").to_str().expect("utf-8"),
            ])
            .args([
                "--shell-executor-no-image",
                "--no-color",
                "--max-job-name-padding",
                "0",
            ]);
        if mr {
            cmd.args([
                "--ignore-predefined-vars",
                "CI_PIPELINE_SOURCE,CI_MERGE_REQUEST_IID,CI_MERGE_REQUEST_SOURCE_BRANCH_NAME,CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
                "--variable",
                "CI_PIPELINE_SOURCE=merge_request_event",
                "--variable",
                "CI_MERGE_REQUEST_IID=1",
                "--variable",
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME=change",
                "--variable",
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME=main",
                "--unset-variable",
                "CI_COMMIT_BRANCH",
            ]);
        }
        for (k, v) in variables {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        cmd.args(extra);
        self.env(&mut cmd);
        run(
            &mut cmd,
            self.deadline,
            &format!("gitlab-ci-local {extra:?}"),
        )
    }
}

/// A CloudFormation Query API call to the emulator (moto reads the account
/// from the access key and the region from the credential scope of the
/// `Authorization` header; it does not check signatures). The response
/// body (XML).
fn cloudformation(emulator: &Emulator, params: &str) -> String {
    let body = format!("{params}&Version=2010-05-15");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        port = emulator.port(),
        len = body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", emulator.port())).expect("emulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{params}: {response}"
    );
    response
}

/// The values of `<tag>` elements in `xml`.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_owned()))
        .collect()
}

fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .map(|d| serde_saphyr::from_str::<Value>(d).expect("catalog document"))
        .collect()
}

fn provider_doc(text: &str) -> Value {
    documents(text)
        .into_iter()
        .find(|d| d["kind"] == "AWSEnvironmentProvider")
        .expect("an AWSEnvironmentProvider document")
}

#[test]
fn an_ecs_repo_from_init_runs_its_gitlab_pipeline_on_the_emulator() {
    let started = Instant::now();
    let s = Setup::new();
    let emulator = Emulator::start();
    let endpoint = emulator.endpoint_url();

    // The platform creates the repository.
    let r = s.harmonix(&[
        "init",
        "--kind",
        "ecs",
        "--name",
        NAME,
        "--out",
        "repo",
        "--account",
        "123456789012",
        "--region",
        "us-east-1",
        "--owner",
        "group:payments",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    let repo = s.repo();
    for f in [
        "harmonix.yaml",
        ".gitlab-ci.yml",
        "catalog-info.yaml",
        "README.md",
        ".gitignore",
    ] {
        assert!(repo.join(f).is_file(), "{f} written");
    }
    let placeholder = std::fs::read_to_string(repo.join("catalog-info.yaml")).expect("catalog");
    assert_eq!(provider_doc(&placeholder)["metadata"]["vpc"], "");
    s.commit_and_push();
    let initial = s.git(&repo, &["rev-parse", "HEAD"]);

    let bin = env!("CARGO_BIN_EXE_harmonix");
    let variables = [
        ("HARMONIX_BIN", bin),
        ("HARMONIX_ENDPOINT_URL", endpoint.as_str()),
        ("HARMONIX_ARGS", "--poll-ms 20 200"),
        ("HARMONIX_CATALOG_TOKEN", TOKEN),
        ("HARMONIX_CALLER", "ci-bot"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_MAX_ATTEMPTS", "2"),
    ];

    // Merge request: validate and plan; no apply.
    let mr = s.pipeline(&[], &variables, true);
    assert_eq!(mr.code, Some(0), "merge request pipeline:\n{}", mr.output);
    assert!(mr.output.contains("PASS  validate"), "{}", mr.output);
    assert!(mr.output.contains("PASS  plan"), "{}", mr.output);
    assert!(!mr.output.contains("apply starting"), "{}", mr.output);
    assert!(
        mr.output.contains(&format!("stack {STACK}: create")),
        "{}",
        mr.output
    );
    let artifact = repo.join(".gitlab-ci-local/artifacts/plan/plan.json");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(&artifact).expect("plan artifact"))
            .expect("plan.json is JSON");
    assert!(plan.get("targets").is_some() && plan.get("contentHash").is_some());
    let statuses = xml_values(
        &cloudformation(&emulator, "Action=DescribeStacks"),
        "StackStatus",
    );
    assert!(
        !statuses.iter().any(|s| s == "CREATE_COMPLETE"),
        "nothing deployed by a merge request: {statuses:?}"
    );
    assert_eq!(s.git(&repo, &["rev-parse", "HEAD"]), initial);

    // Default branch: validate, plan, apply, catalog commit.
    let main = s.pipeline(&[], &variables, false);
    assert_eq!(
        main.code,
        Some(0),
        "default-branch pipeline:\n{}",
        main.output
    );
    for job in ["validate", "plan", "apply"] {
        assert!(
            main.output.contains(&format!("PASS  {job}")),
            "{job}:\n{}",
            main.output
        );
    }
    assert!(
        main.output.contains("Apply complete: 1 created."),
        "{}",
        main.output
    );
    assert!(
        main.output
            .contains("committed and pushed catalog-info.yaml"),
        "{}",
        main.output
    );
    assert!(artifact.is_file(), "plan artifact of the default branch");
    assert!(!main.output.contains(TOKEN), "the token is never printed");

    // The stack exists on the emulator, with the ECS cluster.
    let stacks = cloudformation(
        &emulator,
        &format!("Action=DescribeStacks&StackName={STACK}"),
    );
    assert_eq!(
        xml_values(&stacks, "StackStatus"),
        ["CREATE_COMPLETE"],
        "{stacks}"
    );
    let resources = cloudformation(
        &emulator,
        &format!("Action=DescribeStackResources&StackName={STACK}"),
    );
    let types = xml_values(&resources, "ResourceType");
    for t in ["AWS::ECS::Cluster", "AWS::EC2::VPC", "AWS::DynamoDB::Table"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    let vpc_id = xml_values(&resources, "StackResourceSummary")
        .into_iter()
        .chain(xml_values(&resources, "member"))
        .find(|m| m.contains("<ResourceType>AWS::EC2::VPC</ResourceType>"))
        .and_then(|m| xml_values(&m, "PhysicalResourceId").into_iter().next())
        .expect("the VPC's id");

    // catalog-info.yaml is filled in with the deployed values ...
    let catalog_path = repo.join("catalog-info.yaml");
    let catalog = std::fs::read_to_string(&catalog_path).expect("catalog");
    assert_ne!(catalog, placeholder);
    assert!(
        catalog.starts_with("# Backstage entities of this environment"),
        "{catalog}"
    );
    let provider = provider_doc(&catalog);
    assert_eq!(provider["metadata"]["name"], NAME);
    assert_eq!(provider["metadata"]["vpc"], vpc_id.as_str(), "{catalog}");
    assert_eq!(provider["metadata"]["stackName"], STACK);
    assert_eq!(provider["spec"]["owner"], "group:payments");
    // ... valid for Backstage ...
    let (code, verdicts) = backstage::validate(std::slice::from_ref(&catalog_path));
    assert_eq!(code, Some(0), "{verdicts:?}");
    let kinds: Vec<(Option<&str>, Option<&str>)> = verdicts
        .iter()
        .map(|v| (v.kind.as_deref(), v.name.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (Some("AWSEnvironmentProvider"), Some(NAME)),
            (Some("AWSEnvironment"), Some("payments-dev-env")),
        ]
    );
    assert!(verdicts.iter().all(|v| v.ok), "{verdicts:?}");
    // ... and committed back: one commit on top, only the catalog, pushed.
    let head = s.git(&repo, &["rev-parse", "HEAD"]);
    assert_ne!(head, initial);
    assert_eq!(s.git(&repo, &["rev-parse", "HEAD~1"]), initial);
    let bare = s.bare();
    assert_eq!(
        s.git(&bare, &["rev-parse", "main"]),
        head,
        "pushed to origin"
    );
    let log = s.git(&bare, &["log", "-1", "--format=%an%n%s", "main"]);
    assert_eq!(
        log.trim(),
        format!("Harmonix pipeline\nUpdate catalog-info.yaml after deploying {NAME} [skip ci]")
    );
    let changed = s.git(&bare, &["show", "--name-only", "--format=", "main"]);
    assert_eq!(changed.trim(), "catalog-info.yaml");
    assert_eq!(
        s.git(&bare, &["show", "main:catalog-info.yaml"]),
        catalog,
        "the pushed catalog is the written one"
    );
    assert_eq!(
        s.git(&repo, &["status", "--porcelain"]),
        "",
        "plan.json and gitlab-ci-local's state are ignored"
    );

    // Again, with the runner's own identity as the pipeline role (an
    // empty HARMONIX_PIPELINE_ROLE): nothing changes, nothing is committed.
    let mut direct = variables.to_vec();
    direct.push(("HARMONIX_PIPELINE_ROLE", ""));
    let again = s.pipeline(&[], &direct, false);
    assert_eq!(again.code, Some(0), "{}", again.output);
    assert!(again.output.contains("No changes."), "{}", again.output);
    assert!(
        again
            .output
            .contains("catalog-info.yaml unchanged: nothing to commit"),
        "{}",
        again.output
    );
    assert_eq!(s.git(&bare, &["rev-parse", "main"]), head);

    let elapsed = started.elapsed();
    eprintln!("init + three pipelines on the emulator: {elapsed:?}");
    assert!(elapsed < BUDGET, "took {elapsed:?}");
}

#[test]
fn a_production_repo_waits_for_a_person_to_apply() {
    let s = Setup::new();
    let r = s.harmonix(&[
        "init", "--kind", "ecs", "--name", NAME, "--out", "repo", "--prod",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    s.commit_and_push();
    let jobs = |mr: bool| -> Vec<(String, String)> {
        let r = s.pipeline(&["--list-json"], &[], mr);
        assert_eq!(r.code, Some(0), "{}", r.output);
        let start = r.output.find("\n[").map_or(0, |i| i + 1);
        let list: Value = serde_json::from_str(r.output[start..].trim())
            .unwrap_or_else(|e| panic!("--list-json: {e}:\n{}", r.output));
        list.as_array()
            .expect("a list of jobs")
            .iter()
            .map(|j| {
                (
                    j["name"].as_str().unwrap_or_default().to_owned(),
                    j["when"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let pair = |n: &str, w: &str| (n.to_owned(), w.to_owned());
    assert_eq!(
        jobs(false),
        [
            pair("validate", "on_success"),
            pair("plan", "on_success"),
            pair("apply", "manual")
        ]
    );
    assert_eq!(
        jobs(true),
        [
            pair("validate", "on_success"),
            pair("plan", "on_success"),
            pair("apply", "never")
        ]
    );
}
